/*
 * bench-detect: what heartbeats cost and what they buy (issue 9's `detect`
 * and idle-cost workloads; bench/README.md defines them).
 *
 *   bench-detect [--passes N] [--quick] [--idle-s S]
 *
 * detect-slave-stop: a slave process holds a task; the slave is frozen
 * (SIGSTOP); the time from the signal to the task's LOST on the master.
 * detect-master-stop: a master process holds a task on this process's
 * slave; the master is frozen; the time to the slave's lost_connection.
 * Each at the default heartbeat and at 200/1000 ms, against the goal of
 * tolerance + one interval.
 * idle-256: 256 connected idle slaves (16 processes of 16), the master's
 * CPU over S seconds at the default heartbeat, as % of one core.
 *
 * The other end of each measurement is this program itself, run again as a
 * child (`--child-slave`, `--child-master`): no thread exists when a child
 * is started, and every child is stopped by its id (SIGKILL, then reaped).
 * Everything is on 127.0.0.1, every wait is bounded.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "interaction/interaction.h"

#define CHANNEL 9
#define HOLD_METHOD "detect/Hold"
#define IDLE_PROCS 16
#define IDLE_PER_PROC 16
#define WAIT_MS 10000

extern char **environ;

/* ---- children ---- */

static void hold(ia_task_ctx *task, void *user) {
  (void)user;
  (void)ia_task_ctx_sleep(task, 120000); /* until cancelled: the master is gone */
  ia_code rc = ia_task_ctx_reply(task, "", 0);
  (void)rc;
}

static ia_slave *slave_new(uint32_t beat, uint32_t tol, ia_lost_connection_fn lost, void *user) {
  ia_slave_config c;
  ia_slave_config_init(&c);
  c.channel = CHANNEL;
  c.heartbeat_ms = beat;
  c.heartbeat_tolerance_ms = tol;
  c.handler = hold;
  c.lost_connection = lost;
  c.user = user;
  c.grace_ms = 100;
  ia_slave *s = NULL;
  ia_error err = IA_ERROR_INIT;
  if (ia_slave_new(&c, &s, &err) != IA_OK || ia_slave_start(s, &err) != IA_OK) {
    fprintf(stderr, "bench-detect: slave: %s\n", err.message);
    ia_slave_free(s);
    return NULL;
  }
  return s;
}

static ia_master *master_new(uint32_t beat, uint32_t tol) {
  ia_master_config c;
  ia_master_config_init(&c);
  c.name = "bench-detect";
  c.channel = CHANNEL;
  c.heartbeat_ms = beat;
  c.heartbeat_tolerance_ms = tol;
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  if (ia_master_new(&c, &m, &err) != IA_OK || ia_master_start(m, &err) != IA_OK) {
    fprintf(stderr, "bench-detect: master: %s\n", err.message);
    ia_master_free(m);
    return NULL;
  }
  return m;
}

/* Starts a Hold task on conn and waits until the slave holds it. */
static ia_task *hold_task(ia_conn *conn) {
  ia_task *t = ia_conn_new_task(conn, HOLD_METHOD, "", 0);
  if (!t || ia_task_start(t) != IA_OK) return t;
  for (int i = 0; i < WAIT_MS && ia_task_status(t) == IA_STATUS_STARTING; i++)
    usleep(1000);
  return t;
}

/* `--child-slave N BEAT TOL`: N slaves, their ports printed, until killed. */
static int child_slaves(unsigned n, uint32_t beat, uint32_t tol) {
  ia_slave *s[IDLE_PER_PROC] = {0};
  for (unsigned i = 0; i < n; i++) {
    if (!(s[i] = slave_new(beat, tol, NULL, NULL))) return 1;
    printf("listening on 127.0.0.1:%u\n", ia_slave_port(s[i]));
  }
  fflush(stdout);
  sleep(300); /* killed long before; a bound for a lost parent */
  return 0;
}

/* `--child-master PORT BEAT TOL`: holds a task on the slave, prints
 * "started", then waits to be frozen and killed. */
static int child_master(uint16_t port, uint32_t beat, uint32_t tol) {
  ia_master *m = master_new(beat, tol);
  ia_conn *conn = NULL;
  ia_error err = IA_ERROR_INIT;
  if (!m || ia_master_connect(m, "slave", "127.0.0.1", port, NULL, 0, WAIT_MS, &conn, &err) != IA_OK) return 1;
  ia_task *t = hold_task(conn);
  if (!t || ia_task_status(t) != IA_STATUS_STARTED) return 1;
  printf("started\n");
  fflush(stdout);
  sleep(300);
  return 0;
}

/* ---- spawning ourselves ---- */

typedef struct child {
  pid_t pid;
  FILE *out;
} child;

static bool spawn_self(child *c, char *const args[]) {
  int p[2];
  if (pipe(p) != 0) return false;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&fa, p[0]);
  int rc = posix_spawn(&c->pid, "/proc/self/exe", &fa, NULL, args, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(p[1]);
  c->out = fdopen(p[0], "r");
  /* Unbuffered: a line already read into a stdio buffer would leave
   * poll() in child_line() waiting for bytes that came long ago. */
  if (c->out) setvbuf(c->out, NULL, _IONBF, 0);
  return rc == 0 && c->out;
}

/* The next line of the child's stdout within WAIT_MS, or false. */
static bool child_line(child *c, char *line, size_t cap) {
  struct pollfd pf = {.fd = fileno(c->out), .events = POLLIN};
  return poll(&pf, 1, WAIT_MS) == 1 && fgets(line, (int)cap, c->out) != NULL;
}

static void child_stop(child *c) {
  if (c->pid > 0) {
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
  }
  if (c->out) fclose(c->out);
  c->pid = 0;
  c->out = NULL;
}

/* ---- the measurements ---- */

static uint64_t now_ms(void) {
  return bench_now_ns() / 1000000u;
}

/* One detect-slave-stop pass: ms from SIGSTOP to LOST, or -1. */
static long detect_slave_stop(uint32_t beat, uint32_t tol) {
  char b[16], t[16], line[128];
  snprintf(b, sizeof b, "%u", beat);
  snprintf(t, sizeof t, "%u", tol);
  char *args[] = {"bench-detect", "--child-slave", "1", b, t, NULL};
  child c = {0};
  long ms = -1;
  unsigned port = 0;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  ia_task *task = NULL;
  ia_error err = IA_ERROR_INIT;
  if (!spawn_self(&c, args) || !child_line(&c, line, sizeof line) || sscanf(line, "listening on 127.0.0.1:%u", &port) != 1)
    goto out;
  if (!(m = master_new(beat, tol)) ||
      ia_master_connect(m, "slave", "127.0.0.1", (uint16_t)port, NULL, 0, WAIT_MS, &conn, &err) != IA_OK)
    goto out;
  task = hold_task(conn);
  if (!task || ia_task_status(task) != IA_STATUS_STARTED) goto out;
  kill(c.pid, SIGSTOP);
  uint64_t t0 = now_ms();
  if (ia_task_join(task, 3 * tol + 2 * beat) == IA_OK && ia_task_status(task) == IA_STATUS_LOST)
    ms = (long)(now_ms() - t0);
out:
  if (ms < 0) fprintf(stderr, "bench-detect: detect-slave-stop pass failed %s\n", err.message);
  ia_task_free(task);
  ia_conn_free(conn);
  ia_master_free(m);
  child_stop(&c);
  return ms;
}

typedef struct lost_wait {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  uint64_t at_ms;
} lost_wait;

static void on_lost(const char *name, ia_code why, void *user) {
  (void)name;
  (void)why;
  lost_wait *w = user;
  pthread_mutex_lock(&w->mu);
  w->at_ms = now_ms();
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

/* One detect-master-stop pass: ms from SIGSTOP to lost_connection, or -1. */
static long detect_master_stop(uint32_t beat, uint32_t tol) {
  lost_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  ia_slave *s = slave_new(beat, tol, on_lost, &w);
  if (!s) return -1;
  char p[16], b[16], t[16], line[128];
  snprintf(p, sizeof p, "%u", ia_slave_port(s));
  snprintf(b, sizeof b, "%u", beat);
  snprintf(t, sizeof t, "%u", tol);
  char *args[] = {"bench-detect", "--child-master", p, b, t, NULL};
  child c = {0};
  long ms = -1;
  if (spawn_self(&c, args) && child_line(&c, line, sizeof line) && strncmp(line, "started", 7) == 0) {
    kill(c.pid, SIGSTOP);
    uint64_t t0 = now_ms(), end = t0 + 3 * tol + 2 * beat;
    pthread_mutex_lock(&w.mu);
    while (w.at_ms == 0 && now_ms() < end) {
      pthread_mutex_unlock(&w.mu);
      usleep(1000);
      pthread_mutex_lock(&w.mu);
    }
    if (w.at_ms) ms = (long)(w.at_ms - t0);
    pthread_mutex_unlock(&w.mu);
  }
  if (ms < 0) fprintf(stderr, "bench-detect: detect-master-stop pass failed\n");
  child_stop(&c);
  ia_slave_free(s);
  return ms;
}

/* idle-256: the master's CPU, % of one core, over `secs` with every slave
 * connected and idle; -1 on failure. */
static double idle_cpu(unsigned secs, unsigned *connected) {
  char n[8], b[16], t[16], line[128];
  snprintf(n, sizeof n, "%u", IDLE_PER_PROC);
  snprintf(b, sizeof b, "%u", IA_HEARTBEAT_DEFAULT_MS);
  snprintf(t, sizeof t, "%u", IA_HEARTBEAT_TOLERANCE_DEFAULT_MS);
  char *args[] = {"bench-detect", "--child-slave", n, b, t, NULL};
  child kids[IDLE_PROCS] = {{0}};
  ia_conn *conns[IDLE_PROCS * IDLE_PER_PROC] = {0};
  unsigned nc = 0;
  double pct = -1;
  ia_master *m = master_new(IA_HEARTBEAT_DEFAULT_MS, IA_HEARTBEAT_TOLERANCE_DEFAULT_MS);
  for (unsigned k = 0; m && k < IDLE_PROCS; k++) {
    if (!spawn_self(&kids[k], args)) goto out;
    for (unsigned i = 0; i < IDLE_PER_PROC; i++) {
      unsigned port;
      char name[32];
      ia_error err = IA_ERROR_INIT;
      if (!child_line(&kids[k], line, sizeof line) || sscanf(line, "listening on 127.0.0.1:%u", &port) != 1) goto out;
      snprintf(name, sizeof name, "s%u", nc);
      if (ia_master_connect(m, name, "127.0.0.1", (uint16_t)port, NULL, 0, WAIT_MS, &conns[nc], &err) != IA_OK)
        goto out;
      nc++;
    }
  }
  if (!m) goto out;
  sleep(1); /* settle: the handshakes' own work is not idle cost */
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  uint64_t t0 = bench_now_ns();
  sleep(secs);
  getrusage(RUSAGE_SELF, &r1);
  uint64_t wall_us = (bench_now_ns() - t0) / 1000;
  uint64_t cpu_us = (uint64_t)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) *
                        1000000u +
                    (uint64_t)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
  pct = 100.0 * (double)cpu_us / (double)wall_us;
  *connected = 0;
  for (unsigned i = 0; i < nc; i++)
    *connected += ia_conn_is_connected(conns[i]);
out:
  for (unsigned i = 0; i < nc; i++)
    ia_conn_free(conns[i]);
  ia_master_free(m);
  for (unsigned k = 0; k < IDLE_PROCS; k++)
    child_stop(&kids[k]);
  return pct;
}

/* ---- the driver ---- */

static int cmp_long(const void *a, const void *b) {
  long x = *(const long *)a, y = *(const long *)b;
  return x < y ? -1 : x > y;
}

static int report(const char *workload, long (*pass)(uint32_t, uint32_t), uint32_t beat, uint32_t tol,
                  unsigned passes) {
  long ms[16];
  unsigned ok = 0;
  for (unsigned i = 0; i < passes && i < 16; i++) {
    long v = pass(beat, tol);
    if (v >= 0) ms[ok++] = v;
  }
  if (ok == 0) {
    printf("peer=interaction workload=%s heartbeat_ms=%u tolerance_ms=%u FAILED\n", workload, beat, tol);
    return 1;
  }
  qsort(ms, ok, sizeof ms[0], cmp_long);
  long goal = (long)tol + (long)beat;
  printf("peer=interaction workload=%s heartbeat_ms=%u tolerance_ms=%u passes=%u detect_ms_p50=%ld "
         "detect_ms_max=%ld goal_ms=%ld p50/tolerance=%.2f %s\n",
         workload, beat, tol, ok, ms[ok / 2], ms[ok - 1], goal, (double)ms[ok / 2] / tol,
         ms[ok - 1] <= goal ? "MET" : "MISSED");
  fflush(stdout);
  return ms[ok - 1] <= goal ? 0 : 1;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (getenv("IA_LOG") == NULL) ia_log_set_level(IA_LOG_ERROR);
  unsigned long a, b, t;
  if (argc == 5 && strcmp(argv[1], "--child-slave") == 0 && bench_parse_uint(argv[2], IDLE_PER_PROC, &a) &&
      bench_parse_uint(argv[3], UINT32_MAX, &b) && bench_parse_uint(argv[4], UINT32_MAX, &t))
    return child_slaves((unsigned)a, (uint32_t)b, (uint32_t)t);
  if (argc == 5 && strcmp(argv[1], "--child-master") == 0 && bench_parse_uint(argv[2], UINT16_MAX, &a) &&
      bench_parse_uint(argv[3], UINT32_MAX, &b) && bench_parse_uint(argv[4], UINT32_MAX, &t))
    return child_master((uint16_t)a, (uint32_t)b, (uint32_t)t);
  unsigned long passes = 3, idle_s = 10;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      passes = 1;
      idle_s = 2;
    } else if (strcmp(argv[i], "--passes") == 0 && i + 1 < argc && bench_parse_uint(argv[i + 1], 15, &passes) &&
               passes > 0) {
      i++;
    } else if (strcmp(argv[i], "--idle-s") == 0 && i + 1 < argc && bench_parse_uint(argv[i + 1], 600, &idle_s) &&
               idle_s > 0) {
      i++;
    } else {
      fprintf(stderr, "usage: bench-detect [--passes N (1-15)] [--quick] [--idle-s S]\n");
      return 2;
    }
  }
  int missed = 0;
  const uint32_t settings[2][2] = {{IA_HEARTBEAT_DEFAULT_MS, IA_HEARTBEAT_TOLERANCE_DEFAULT_MS}, {200, 1000}};
  for (int s = 0; s < 2; s++) {
    missed += report("detect-slave-stop", detect_slave_stop, settings[s][0], settings[s][1], (unsigned)passes);
    missed += report("detect-master-stop", detect_master_stop, settings[s][0], settings[s][1], (unsigned)passes);
  }
  unsigned connected = 0;
  double pct = idle_cpu((unsigned)idle_s, &connected);
  bool idle_ok = pct >= 0 && pct <= 1.0 && connected == IDLE_PROCS * IDLE_PER_PROC;
  printf("peer=interaction workload=idle-256 heartbeat_ms=%u tolerance_ms=%u seconds=%lu connected=%u "
         "master_cpu_pct=%.3f goal_pct=1.000 %s\n",
         IA_HEARTBEAT_DEFAULT_MS, IA_HEARTBEAT_TOLERANCE_DEFAULT_MS, idle_s, connected, pct,
         idle_ok ? "MET" : "MISSED");
  return missed || !idle_ok ? 1 : 0;
}
