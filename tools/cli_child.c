/* A bounded child process for the `interaction` tool: see cli_child.h. */
#define _GNU_SOURCE /* pipe2 */
#include "cli_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/* In the child, between fork and execv: only async-signal-safe calls. Tells
 * the parent why through the exec pipe, then exits. */
__attribute__((noreturn)) static void child_exit(int exec_fd) {
  int e = errno;
  ssize_t n = write(exec_fd, &e, sizeof e);
  (void)n;
  _exit(127);
}

__attribute__((noreturn)) static void child_exec(char *const argv[], int in_fd, int out_fd, int err_fd,
                                                 int exec_fd) {
  /* The tool ignores SIGPIPE; the child gets the default back, as from a
   * shell. */
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(SIGPIPE, &dfl, NULL);
  if (dup2(in_fd, STDIN_FILENO) < 0 || dup2(out_fd, STDOUT_FILENO) < 0 || dup2(err_fd, STDERR_FILENO) < 0)
    child_exit(exec_fd);
  /* dup2 onto the same number keeps close-on-exec: clear it on all three.
   * Every other descriptor of ours is close-on-exec already. */
  for (int fd = 0; fd <= 2; fd++)
    fcntl(fd, F_SETFD, 0);
  execv(argv[0], argv);
  child_exit(exec_fd);
}

/* Reads what is there on `fd` (a captured stdout) into c->out. False on EOF
 * or error, or once more than out_max bytes came (c->out_overflow). */
static bool read_out(int fd, cli_child *c) {
  uint8_t buf[65536];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  if ((size_t)n > c->out_max - c->out_len) {
    c->out_overflow = true;
    return false;
  }
  uint8_t *nout = realloc(c->out, c->out_len + (size_t)n + 1);
  if (nout == NULL) {
    c->out_overflow = true; /* as good as: the output cannot be kept */
    return false;
  }
  memcpy(nout + c->out_len, buf, (size_t)n);
  c->out = nout;
  c->out_len += (size_t)n;
  c->out[c->out_len] = '\0';
  return true;
}

/* Reads what is there on `fd` (stderr) into c->err, dropping what does not
 * fit. False on EOF or error. */
static bool read_err(int fd, cli_child *c, size_t *err_len) {
  char buf[4096];
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  size_t room = sizeof c->err - 1 - *err_len;
  size_t keep = (size_t)n < room ? (size_t)n : room;
  memcpy(c->err + *err_len, buf, keep);
  *err_len += keep;
  c->err[*err_len] = '\0';
  return true;
}

/* Reaps `pid` by the deadline, killing it first if `kill_now` or once the
 * deadline has passed; a killed child is then waited for without a bound,
 * which SIGKILL makes short. */
static void reap(pid_t pid, bool kill_now, uint64_t deadline, cli_child *c) {
  int status = 0;
  pid_t w = 0;
  if (kill_now) kill(pid, SIGKILL);
  while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now_ms() < deadline) {
    struct timespec nap = {0, 2 * 1000 * 1000};
    nanosleep(&nap, NULL);
  }
  if (w == 0) {
    c->timed_out = true;
    kill(pid, SIGKILL);
  }
  while (w <= 0 && (w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
  }
  if (w != pid) return;
  if (WIFEXITED(status)) c->exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) c->signal = WTERMSIG(status);
}

int cli_child_run(char *const argv[], uint32_t timeout_ms, cli_child *c) {
  c->out = NULL;
  c->out_len = 0;
  c->err[0] = '\0';
  c->exit_code = -1;
  c->signal = 0;
  c->exec_errno = 0;
  c->timed_out = c->out_overflow = false;
  bool capture = c->out_fd < 0;
  /* [0] and [1] of each pipe; -1 when not open. */
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, exec[2] = {-1, -1};
  if (pipe2(in, O_CLOEXEC) < 0 || (capture && pipe2(out, O_CLOEXEC) < 0) || pipe2(err, O_CLOEXEC) < 0 ||
      pipe2(exec, O_CLOEXEC) < 0)
    goto fail;
  uint64_t deadline = now_ms() + timeout_ms;
  pid_t pid = fork();
  if (pid < 0) goto fail;
  if (pid == 0) child_exec(argv, in[0], capture ? out[1] : c->out_fd, err[1], exec[1]);
  close_fd(&in[0]);
  close_fd(&out[1]);
  close_fd(&err[1]);
  close_fd(&exec[1]);
  fcntl(in[1], F_SETFL, O_NONBLOCK);
  if (c->in_len == 0) close_fd(&in[1]);

  size_t in_off = 0, err_len = 0;
  /* The exec pipe closes at the execv (or brings its errno); stdout and
   * stderr close when the child exits. */
  while (out[0] >= 0 || err[0] >= 0 || exec[0] >= 0) {
    uint64_t now = now_ms();
    if (now >= deadline) {
      c->timed_out = true;
      break;
    }
    struct pollfd p[4] = {{.fd = in[1], .events = POLLOUT},
                          {.fd = out[0], .events = POLLIN},
                          {.fd = err[0], .events = POLLIN},
                          {.fd = exec[0], .events = POLLIN}};
    int n = poll(p, 4, (int)(deadline - now));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    if (in[1] >= 0 && (p[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t w = write(in[1], (const uint8_t *)c->in + in_off, c->in_len - in_off);
      if (w > 0) in_off += (size_t)w;
      /* A child that stops reading (EPIPE) has said what it wanted. */
      if (in_off == c->in_len || (w < 0 && errno != EAGAIN && errno != EINTR)) close_fd(&in[1]);
    }
    if (out[0] >= 0 && (p[1].revents & (POLLIN | POLLERR | POLLHUP)) && !read_out(out[0], c)) {
      close_fd(&out[0]);
      if (c->out_overflow) break;
    }
    if (err[0] >= 0 && (p[2].revents & (POLLIN | POLLERR | POLLHUP)) && !read_err(err[0], c, &err_len))
      close_fd(&err[0]);
    if (exec[0] >= 0 && (p[3].revents & (POLLIN | POLLERR | POLLHUP))) {
      int e = 0;
      if (read(exec[0], &e, sizeof e) == (ssize_t)sizeof e) c->exec_errno = e;
      close_fd(&exec[0]);
    }
  }
  int fds[] = {in[1], out[0], err[0], exec[0]};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
    close_fd(&fds[i]);
  reap(pid, c->timed_out || c->out_overflow, deadline, c);
  return 0;

fail:;
  int saved = errno;
  int all[] = {in[0], in[1], out[0], out[1], err[0], err[1], exec[0], exec[1]};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    close_fd(&all[i]);
  errno = saved;
  return -1;
}

bool cli_child_ok(const cli_child *c) {
  return c->exit_code == 0 && c->exec_errno == 0 && !c->timed_out && !c->out_overflow;
}

char *cli_find_program(const char *name) {
  if (strchr(name, '/') != NULL) return strdup(name);
  const char *path = getenv("PATH");
  if (path == NULL) path = "/usr/local/bin:/usr/bin:/bin";
  size_t name_len = strlen(name);
  for (const char *dir = path;; dir++) {
    const char *end = strchrnul(dir, ':');
    size_t dir_len = (size_t)(end - dir);
    /* An empty entry means the working directory, as for execvp. */
    char *candidate = malloc(dir_len + name_len + 3);
    if (candidate == NULL) return NULL;
    if (dir_len == 0)
      memcpy(candidate, ".", (dir_len = 1));
    else
      memcpy(candidate, dir, dir_len);
    candidate[dir_len] = '/';
    memcpy(candidate + dir_len + 1, name, name_len + 1);
    struct stat st;
    if (stat(candidate, &st) == 0 && S_ISREG(st.st_mode) && access(candidate, X_OK) == 0) return candidate;
    free(candidate);
    if (*end == '\0') break;
    dir = end;
  }
  errno = ENOENT;
  return NULL;
}
