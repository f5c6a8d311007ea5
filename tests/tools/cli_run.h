/* Runs the `interaction` command-line tool (IA_CLI_PATH) as a child process
 * for the tests of tests/tools: its exit status, stdout and stderr, within a
 * bound. Criterion-asserting, so only tests include it; they define
 * _GNU_SOURCE before any include (pipe2, close_range). */
#ifndef IA_TESTS_CLI_RUN_H
#define IA_TESTS_CLI_RUN_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tu_assert.h"

#ifndef IA_CLI_PATH
#error "IA_CLI_PATH must name the interaction executable"
#endif

/* Bound on one run of the tool; every run here takes milliseconds. */
#define RUN_TIMEOUT_MS 10000u

/* ---- running the tool ---- */

typedef struct run {
  int exit_code; /* -1 if it did not exit normally */
  int signal;    /* the signal that ended it, or 0 */
  bool timed_out;
  uint8_t *out; /* stdout, raw */
  size_t out_len;
  char *err; /* stderr, NUL-terminated */
  size_t err_len;
} run;

static inline void run_free(run *r) {
  free(r->out);
  free(r->err);
  memset(r, 0, sizeof *r);
}

static inline bool append(uint8_t **buf, size_t *len, const uint8_t *data, size_t n) {
  uint8_t *nbuf = realloc(*buf, *len + n + 1);
  if (nbuf == NULL) return false;
  memcpy(nbuf + *len, data, n);
  *len += n;
  nbuf[*len] = '\0';
  *buf = nbuf;
  return true;
}

/* Runs the tool with `args` (NULL-terminated, without argv[0]), feeding
 * `in` on its stdin and capturing stdout and stderr, within RUN_TIMEOUT_MS;
 * a tool still running then is killed. Always reaps the child. */
static inline run run_cli(const char *const args[], const void *in, size_t in_len) {
  run r = {.exit_code = -1};
  char *argv[32];
  int argc = 0;
  argv[argc++] = (char *)IA_CLI_PATH;
  for (int i = 0; args[i] != NULL && argc < 31; i++)
    argv[argc++] = (char *)args[i];
  argv[argc] = NULL;

  int pin[2], pout[2], perr[2];
  cr_assert_eq(pipe2(pin, O_CLOEXEC), 0);
  cr_assert_eq(pipe2(pout, O_CLOEXEC), 0);
  cr_assert_eq(pipe2(perr, O_CLOEXEC), 0);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* Only async-signal-safe calls until execv: criterion has threads. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    if (dup2(pin[0], STDIN_FILENO) < 0 || dup2(pout[1], STDOUT_FILENO) < 0 ||
        dup2(perr[1], STDERR_FILENO) < 0)
      _exit(126);
    close_range(3, ~0u, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  close(pin[0]);
  close(pout[1]);
  close(perr[1]);
  fcntl(pin[1], F_SETFL, O_NONBLOCK);
  signal(SIGPIPE, SIG_IGN); /* a tool that exits before reading stdin */

  int fds[3] = {pin[1], pout[0], perr[0]};
  size_t in_off = 0;
  if (in_len == 0) {
    close(fds[0]);
    fds[0] = -1;
  }
  uint64_t deadline = tu_now_ms() + RUN_TIMEOUT_MS;
  while (fds[1] >= 0 || fds[2] >= 0) {
    uint64_t now = tu_now_ms();
    if (now >= deadline) {
      r.timed_out = true;
      break;
    }
    struct pollfd p[3] = {{.fd = fds[0], .events = POLLOUT},
                          {.fd = fds[1], .events = POLLIN},
                          {.fd = fds[2], .events = POLLIN}};
    int n = poll(p, 3, (int)(deadline - now));
    if (n < 0 && errno == EINTR) continue;
    cr_assert_geq(n, 0, "poll: %s", strerror(errno));
    if (fds[0] >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(fds[0], (const uint8_t *)in + in_off, in_len - in_off);
      if (w > 0) in_off += (size_t)w;
      if (in_off == in_len || (w < 0 && errno != EAGAIN && errno != EINTR)) {
        close(fds[0]);
        fds[0] = -1;
      }
    }
    for (int i = 1; i <= 2; i++) {
      if (fds[i] < 0 || !(p[i].revents & (POLLIN | POLLERR | POLLHUP))) continue;
      uint8_t buf[4096];
      ssize_t got = read(fds[i], buf, sizeof buf);
      if (got > 0) {
        bool ok = i == 1 ? append(&r.out, &r.out_len, buf, (size_t)got)
                         : append((uint8_t **)&r.err, &r.err_len, buf, (size_t)got);
        cr_assert(ok, "no memory");
      } else if (got == 0 || errno != EINTR) {
        close(fds[i]);
        fds[i] = -1;
      }
    }
  }
  for (int i = 0; i < 3; i++)
    if (fds[i] >= 0) close(fds[i]);

  /* The pipes are closed: the tool is exiting. Wait for it, bounded. */
  int status = 0;
  pid_t w = 0;
  while (!r.timed_out && (w = waitpid(pid, &status, WNOHANG)) == 0) {
    if (tu_now_ms() >= deadline) {
      r.timed_out = true;
      break;
    }
    tu_sleep_ms(5);
  }
  if (w != pid) {
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  if (r.err == NULL) r.err = calloc(1, 1);
  /* The tool runs under the same sanitizers as the tests in sanitizer builds;
   * their reports land on its stderr, not on ours. */
  cr_assert_null(strstr(r.err, "Sanitizer"), "sanitizer report from the tool:\n%s", r.err);
  cr_assert_null(strstr(r.err, "runtime error:"), "UBSan report from the tool:\n%s", r.err);
  cr_assert_not(r.timed_out, "`interaction %s` did not exit within %u ms", args[0] ? args[0] : "",
                RUN_TIMEOUT_MS);
  return r;
}

/* A port on TU_HOST that nothing listens on: bound, then closed. A call
 * there that gets as far as connecting exits 3. */
static inline uint16_t cli_closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  inet_pton(AF_INET, TU_HOST, &sa.sin_addr);
  socklen_t sl = sizeof sa;
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
  close(fd);
  return ntohs(sa.sin_port);
}

/* Asserts the exit status, showing stderr when it is not the expected one. */
#define ASSERT_EXIT(r, want)                                                                                 \
  cr_assert_eq((r).exit_code, (want), "exit %d (signal %d), expected %d; stderr: %s", (r).exit_code,         \
               (r).signal, (want), (r).err)

#define ASSERT_STDERR_HAS(r, text)                                                                           \
  cr_assert_not_null(strstr((r).err, (text)), "stderr lacks \"%s\": %s", (text), (r).err)

#endif
