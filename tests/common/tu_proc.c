/* The test suite's child processes (tu.h, "spawned processes"): started with a
 * bounded wait for their ready line, tracked so that every one is killed
 * and reaped by its pid, never left running past its test. */
#define _GNU_SOURCE
#include "tu.h"
#include "tu-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- processes ---- */

#define TU_MAX_CHILDREN 32
static pthread_mutex_t children_mu = PTHREAD_MUTEX_INITIALIZER;
static pid_t children[TU_MAX_CHILDREN];

static void children_add(pid_t pid) {
  pthread_mutex_lock(&children_mu);
  for (int i = 0; i < TU_MAX_CHILDREN; i++) {
    if (children[i] == 0) {
      children[i] = pid;
      break;
    }
  }
  pthread_mutex_unlock(&children_mu);
}

static void children_remove(pid_t pid) {
  pthread_mutex_lock(&children_mu);
  for (int i = 0; i < TU_MAX_CHILDREN; i++)
    if (children[i] == pid) children[i] = 0;
  pthread_mutex_unlock(&children_mu);
}

/* SIGKILL + a bounded reap of one pid. SIGKILL cannot be caught, so the
 * child is gone within the bound unless the kernel is stuck. */
static int kill_and_reap(pid_t pid) {
  int status = 0;
  kill(pid, SIGKILL);
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  for (;;) {
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (tu_now_ms() >= deadline) {
      fprintf(stderr, "tu: pid %d not reaped after SIGKILL\n", (int)pid);
      break;
    }
    tu_sleep_ms(5);
  }
  children_remove(pid);
  return status;
}

void tu_proc_kill_all(void) {
  for (int i = 0; i < TU_MAX_CHILDREN; i++) {
    pthread_mutex_lock(&children_mu);
    pid_t pid = children[i];
    pthread_mutex_unlock(&children_mu);
    if (pid != 0) kill_and_reap(pid);
  }
}

static void proc_close(tu_proc *proc) {
  if (proc->out_fd >= 0) close(proc->out_fd);
  proc->out_fd = -1;
}

void tu_proc_kill(tu_proc *proc) {
  if (proc->pid > 0) {
    proc->status = kill_and_reap(proc->pid);
    proc->pid = 0;
  }
  proc_close(proc);
}

bool tu_proc_signal(tu_proc *proc, int sig) {
  return proc->pid > 0 && kill(proc->pid, sig) == 0;
}

bool tu_proc_wait(tu_proc *proc, uint32_t timeout_ms) {
  if (proc->pid <= 0) return true;
  uint64_t deadline = tu_now_ms() + timeout_ms;
  for (;;) {
    int status;
    pid_t r = waitpid(proc->pid, &status, WNOHANG);
    if (r == proc->pid) {
      children_remove(proc->pid);
      proc->status = status;
      proc->pid = 0;
      proc_close(proc);
      return true;
    }
    if (r < 0 && errno != EINTR) return false;
    if (tu_now_ms() >= deadline) return false;
    tu_sleep_ms(5);
  }
}

static bool atexit_done;

/* Reads the child's stdout until a line starting with `prefix`. */
static bool read_ready_line(tu_proc *proc, const char *prefix, uint32_t timeout_ms) {
  char buf[1024];
  size_t have = 0;
  uint64_t deadline = tu_now_ms() + timeout_ms;
  for (int rounds = 0; rounds < 10000; rounds++) {
    char *nl;
    while ((nl = memchr(buf, '\n', have)) != NULL) {
      *nl = '\0';
      bool match = strncmp(buf, prefix, strlen(prefix)) == 0;
      snprintf(proc->line, sizeof proc->line, "%.*s", (int)sizeof proc->line - 1, buf);
      size_t used = (size_t)(nl - buf) + 1;
      memmove(buf, nl + 1, have - used);
      have -= used;
      if (match) return true;
    }
    if (have == sizeof buf) have = 0; /* an overlong line: drop it */
    struct pollfd pfd = {.fd = proc->out_fd, .events = POLLIN};
    int ms = tu__remaining_ms(deadline);
    if (ms == 0) {
      snprintf(proc->line, sizeof proc->line, "no '%s' line within %u ms", prefix, timeout_ms);
      return false;
    }
    int pr = poll(&pfd, 1, ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t n = read(proc->out_fd, buf + have, sizeof buf - have);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      snprintf(proc->line, sizeof proc->line, "stdout closed before a '%s' line", prefix);
      return false;
    }
    have += (size_t)n;
  }
  snprintf(proc->line, sizeof proc->line, "too many reads waiting for '%s'", prefix);
  return false;
}

bool tu_spawn(tu_proc *proc, char *const argv[], const char *ready_prefix, uint32_t timeout_ms) {
  proc->pid = 0;
  proc->out_fd = -1;
  proc->status = 0;
  proc->line[0] = '\0';
  if (!atexit_done) {
    atexit_done = true;
    atexit(tu_proc_kill_all);
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    snprintf(proc->line, sizeof proc->line, "pipe: %s", strerror(errno));
    return false;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(proc->line, sizeof proc->line, "fork: %s", strerror(errno));
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (pid == 0) {
    /* Only async-signal-safe calls until execv: the parent may have threads. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigaction(SIGTERM, &dfl, NULL);
    sigaction(SIGINT, &dfl, NULL);
    if (dup2(fds[1], STDOUT_FILENO) < 0) _exit(126);
    /* Nothing of the test process (sockets, other pipes) leaks into the child. */
    close_range(3, ~0u, 0);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  proc->pid = pid;
  proc->out_fd = fds[0];
  children_add(pid);
  if (!read_ready_line(proc, ready_prefix, timeout_ms)) {
    char why[sizeof proc->line];
    snprintf(why, sizeof why, "%s", proc->line);
    tu_proc_kill(proc);
    snprintf(proc->line, sizeof proc->line, "%.200s (exit status 0x%x)", why, (unsigned)proc->status);
    return false;
  }
  return true;
}

bool tu_proc_read_line(tu_proc *proc, const char *prefix, uint32_t timeout_ms) {
  return read_ready_line(proc, prefix, timeout_ms);
}

uint16_t tu_spawn_sum_slave(tu_proc *proc, const char *path, uint32_t channel, const char *const extra[]) {
  char channel_text[16];
  snprintf(channel_text, sizeof channel_text, "%u", channel);
  char *argv[24];
  int n = 0;
  argv[n++] = (char *)path;
  argv[n++] = "--host";
  argv[n++] = TU_HOST;
  argv[n++] = "--port";
  argv[n++] = "0";
  argv[n++] = "--channel";
  argv[n++] = channel_text;
  for (int i = 0; extra != NULL && extra[i] != NULL && n < 23; i++)
    argv[n++] = (char *)extra[i];
  argv[n] = NULL;
  if (!tu_spawn(proc, argv, "listening on ", TU_WAIT_MS)) return 0;
  const char *colon = strrchr(proc->line, ':');
  long port = colon != NULL ? strtol(colon + 1, NULL, 10) : 0;
  if (port <= 0 || port > 65535) {
    tu_proc_kill(proc);
    return 0;
  }
  return (uint16_t)port;
}
