/*
 * bench-run: runs one workload of shared/BENCH.md against one peer and
 * prints its machine-readable line.
 *
 *   bench-run --peer interaction|floor --workload NAME [--passes N] [--quick]
 *             [--calls N] [--warmup N] [--timeout-s S] [--bin-dir DIR]
 *             [--pin none|same|split]
 *
 * For each pass it spawns the peer's slave processes (fork + exec, bounded
 * wait for their `listening on` lines), connects, runs the warm-up, reads
 * every slave process's CPU through Stats, runs the timed calls, reads the
 * Stats again, and stops the slaves (SIGTERM, SIGKILL after a bound, reaped),
 * also when the driver itself is interrupted or runs out of time. A TLS
 * workload's certificates (certs.h) are made once before the first pass and
 * removed after the last, or by the same interruption.
 */
#define _GNU_SOURCE /* sched_setaffinity */
#include "run.h"

#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define SPAWN_WAIT_MS 10000
#define STOP_WAIT_MS 3000

static const bench_workload workloads[] = {
    {"sum", BENCH_SUM, 0, 1, 1, 20000, 1000, 2000, 100, 1, false, false},
    {"blob-1M", BENCH_BLOB, 1u << 20, 1, 1, 200, 5, 20, 2, 1, false, false},
    {"blob-16M", BENCH_BLOB, 16u << 20, 1, 1, 20, 2, 4, 1, 1, false, false},
    {"fanout-16", BENCH_FANOUT, 0, 16, 1, 40000, 1024, 4000, 256, 1, false, false},
    {"fanout-256", BENCH_FANOUT, 0, 16, 16, 40000, 4096, 4000, 1024, 1, false, false},
    {"pipeline-4", BENCH_FANOUT, 0, 1, 1, 40000, 1024, 4000, 256, 4, false, false},
    {"busy", BENCH_BUSY, 0, 1, 1, 20000, 1000, 2000, 100, 1, false, false},
    {"connect", BENCH_CONNECT, 0, 1, 1, 2000, 100, 200, 10, 1, false, false},
    {"connect-auth", BENCH_CONNECT, 0, 1, 1, 2000, 100, 200, 10, 1, true, false},
    {"sum-tls", BENCH_SUM, 0, 1, 1, 20000, 1000, 2000, 100, 1, false, true},
    {"blob-16M-tls", BENCH_BLOB, 16u << 20, 1, 1, 20, 2, 4, 1, 1, false, true},
};

/* ---- helpers shared with the peers ---- */

int bench_fail(bench_env *env, const char *fmt, ...) {
  if (env->error[0] == '\0') {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(env->error, sizeof env->error, fmt, ap);
    va_end(ap);
  }
  return -1;
}

bool bench_blob_ok(const bench_env *env, const uint8_t *data, size_t len, bool full) {
  size_t n = env->w->blob_len;
  if (len != n) return false;
  if (full) return memcmp(data, env->blob, n) == 0;
  size_t mid = n / 2 - 4;
  return memcmp(data, env->blob, 8) == 0 && memcmp(data + mid, env->blob + mid, 8) == 0 &&
         memcmp(data + n - 8, env->blob + n - 8, 8) == 0;
}

/* xorshift64* from a fixed seed. */
static uint8_t *make_blob(size_t n) {
  uint8_t *b = malloc(n);
  if (b == NULL) return NULL;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    uint64_t v = x * 0x2545F4914F6CDD1Dull;
    memcpy(b + i, &v, n - i < 8 ? n - i : 8);
  }
  return b;
}

/* ---- CPU placement ---- */

/* --pin: where the master and the slave processes may run. On these 2-vCPU
 * VMs a round trip between two processes that share a CPU costs ~14 us, and
 * ~40-55 us when they sit on different CPUs (the wake-up crosses to another,
 * often idle, vCPU); left to the scheduler, a run lands in either mode, and
 * the ratios of one run with it. */
typedef enum pin_mode { PIN_NONE, PIN_SAME, PIN_SPLIT } pin_mode;
static pin_mode pin = PIN_NONE;

/* Restricts the calling process to CPU `first` (or `first` and every CPU
 * after it). Best effort: a CPU that does not exist leaves the mask as is. */
static void pin_to(int first, bool and_after) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  if (n <= first) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (long c = first; c < (and_after ? n : first + 1); c++)
    CPU_SET((int)c, &set);
  sched_setaffinity(0, sizeof set, &set);
}

/* ---- slave processes ---- */

#define MAX_CHILDREN 32
static volatile pid_t children[MAX_CHILDREN];
static volatile sig_atomic_t n_children;

/* Stops every child: SIGTERM, up to STOP_WAIT_MS for them to exit, then
 * SIGKILL; reaps all. Async-signal-safe, so the signal handler uses it too. */
static void stop_children(void) {
  int n = n_children;
  for (int i = 0; i < n; i++)
    if (children[i] > 0) kill(children[i], SIGTERM);
  for (int waited = 0;; waited += 5) {
    int alive = 0;
    for (int i = 0; i < n; i++) {
      if (children[i] <= 0) continue;
      pid_t r = waitpid(children[i], NULL, WNOHANG);
      if (r == children[i] || (r < 0 && errno == ECHILD))
        children[i] = 0;
      else
        alive++;
    }
    if (alive == 0) break;
    if (waited >= STOP_WAIT_MS) {
      for (int i = 0; i < n; i++) {
        if (children[i] <= 0) continue;
        kill(children[i], SIGKILL);
        waitpid(children[i], NULL, 0);
        children[i] = 0;
      }
      break;
    }
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  n_children = 0;
}

static void on_signal(int sig) {
  static const char msg[] = "bench-run: interrupted or out of time; stopping the slaves\n";
  ssize_t w = write(2, msg, sizeof msg - 1);
  (void)w;
  stop_children();
  bench_certs_remove();
  _exit(128 + sig);
}

/* Starts `prog --port 0 --count K --workers N [--tls-cert C --tls-key K]`
 * and reads its K ports into `ports`. */
static int spawn(bench_env *env, const char *prog, unsigned count, uint16_t *ports) {
  if (n_children >= MAX_CHILDREN) return bench_fail(env, "too many slave processes");
  int p[2];
  if (pipe(p) != 0) return bench_fail(env, "pipe: %s", strerror(errno));
  char countstr[16], workersstr[16];
  snprintf(countstr, sizeof countstr, "%u", count);
  snprintf(workersstr, sizeof workersstr, "%u", bench_in_flight(env->w));
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    close(p[0]);
    close(p[1]);
    return bench_fail(env, "fork: %s", strerror(errno));
  }
  if (pid == 0) {
    /* A slave must not outlive a driver killed with SIGKILL. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    if (pin == PIN_SPLIT) pin_to(1, true);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    char *argv[12] = {(char *)prog, "--port", "0", "--count", countstr, "--workers", workersstr};
    int argc = 7;
    if (env->tls) {
      argv[argc++] = "--tls-cert";
      argv[argc++] = (char *)env->tls->cert;
      argv[argc++] = "--tls-key";
      argv[argc++] = (char *)env->tls->key;
    }
    argv[argc] = NULL;
    execv(prog, argv);
    _exit(127);
  }
  children[n_children] = pid;
  n_children = n_children + 1;
  close(p[1]);

  /* Collects K lines, bounded in time. */
  char buf[4096];
  size_t have = 0;
  unsigned got = 0;
  uint64_t until = bench_now_ns() + SPAWN_WAIT_MS * 1000000ull;
  while (got < count) {
    uint64_t now = bench_now_ns();
    if (now >= until) break;
    struct pollfd pfd = {p[0], POLLIN, 0};
    int r = poll(&pfd, 1, (int)((until - now) / 1000000 + 1));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    ssize_t n = read(p[0], buf + have, sizeof buf - 1 - have);
    if (n <= 0) break;
    have += (size_t)n;
    buf[have] = '\0';
    char *line = buf, *nl;
    while (got < count && (nl = strchr(line, '\n')) != NULL) {
      *nl = '\0';
      unsigned port;
      if (sscanf(line, "listening on 127.0.0.1:%u", &port) == 1 && port > 0 && port < 65536)
        ports[got++] = (uint16_t)port;
      line = nl + 1;
    }
    have -= (size_t)(line - buf);
    memmove(buf, line, have);
    if (have == sizeof buf - 1) have = 0; /* a line too long to be ours */
  }
  close(p[0]);
  if (got < count) return bench_fail(env, "%s: got %u of %u `listening on` lines in time", prog, got, count);
  return 0;
}

/* ---- one pass ---- */

static uint64_t self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u +
         (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest value with at least p% of the samples at or
 * below it. */
static uint64_t percentile(const uint64_t *sorted, uint64_t n, unsigned p) {
  uint64_t rank = (n * p + 99) / 100;
  return sorted[rank ? rank - 1 : 0];
}

typedef struct pass_result {
  uint64_t elapsed_ns;
  uint64_t master_cpu_us;
  uint64_t slave_cpu_us;
  uint64_t slave_rss_kb;
} pass_result;

static int read_usage(const bench_peer *peer, void *state, bench_env *env, bench_usage *u) {
  for (unsigned p = 0; p < env->n_procs; p++)
    if (peer->usage(state, env, p, &u[p]) != 0) return -1;
  return 0;
}

/* Runs calls [first, first + count) of env's workload through the peer's
 * operation for its kind. */
static int run_calls(const bench_peer *peer, void *state, bench_env *env, uint64_t first, uint64_t count,
                     uint64_t *lat) {
  switch (env->w->kind) {
  case BENCH_SUM:
  case BENCH_BUSY:
    return peer->sequential(state, env, first, count, lat);
  case BENCH_BLOB:
    return peer->blob(state, env, count, lat);
  case BENCH_FANOUT:
    return peer->fanout(state, env, first, count, lat);
  case BENCH_CONNECT:
    return peer->connect(state, env, count, lat);
  }
  return bench_fail(env, "unknown workload");
}

static int run_pass(const bench_peer *peer, bench_env *env, const char *bin_dir, uint64_t *lat,
                    pass_result *res) {
  const bench_workload *w = env->w;
  char prog[PATH_MAX];
  snprintf(prog, sizeof prog, "%s/%s", bin_dir,
           env->tls && peer->tls_slave_prog ? peer->tls_slave_prog : peer->slave_prog);
  unsigned per_proc = w->per_proc + (env->stats_separate ? 1 : 0);
  uint16_t ports[BENCH_MAX_PER_PROC];
  for (unsigned p = 0; p < env->n_procs; p++) {
    if (spawn(env, prog, per_proc, ports) != 0) return -1;
    for (unsigned k = 0; k < w->per_proc; k++)
      env->work_ports[p * w->per_proc + k] = ports[k];
    env->stats_ports[p] = env->stats_separate ? ports[w->per_proc] : ports[0];
  }

  void *state = NULL;
  bench_usage *before = calloc(env->n_procs, sizeof *before);
  bench_usage *after = calloc(env->n_procs, sizeof *after);
  int rc = -1;
  if (before == NULL || after == NULL) {
    bench_fail(env, "out of memory");
  } else if (peer->open(env, &state) == 0) {
    if (run_calls(peer, state, env, 0, env->warmup, NULL) == 0 && read_usage(peer, state, env, before) == 0) {
      uint64_t cpu0 = self_cpu_us();
      uint64_t t0 = bench_now_ns();
      int r = run_calls(peer, state, env, env->warmup, env->calls, lat);
      uint64_t t1 = bench_now_ns();
      uint64_t cpu1 = self_cpu_us();
      if (r == 0 && read_usage(peer, state, env, after) == 0) {
        res->elapsed_ns = t1 - t0;
        res->master_cpu_us = cpu1 - cpu0;
        res->slave_cpu_us = 0;
        res->slave_rss_kb = 0;
        for (unsigned p = 0; p < env->n_procs; p++) {
          res->slave_cpu_us += after[p].cpu_us - before[p].cpu_us;
          if (after[p].maxrss_kb > res->slave_rss_kb) res->slave_rss_kb = after[p].maxrss_kb;
        }
        rc = 0;
      }
    }
    peer->close(state, env);
  }
  free(before);
  free(after);
  stop_children();
  return rc;
}

static void print_line(const bench_peer *peer, const bench_env *env, uint64_t *lat, const pass_result *r) {
  uint64_t n = env->calls;
  qsort(lat, n, sizeof *lat, cmp_u64);
  double secs = (double)r->elapsed_ns / 1e9;
  char mb[32] = "-";
  if (env->w->kind == BENCH_BLOB)
    snprintf(mb, sizeof mb, "%.1f", 2.0 * (double)env->w->blob_len * (double)n / secs / 1e6);
  printf("peer=%-11s workload=%s calls=%llu p50_us=%.1f p99_us=%.1f calls_per_s=%.0f mb_per_s=%s "
         "master_cpu_ms_per_1k=%.3f slave_cpu_ms_per_1k=%.3f slave_rss_kb=%llu\n",
         peer->name, env->w->name, (unsigned long long)n, (double)percentile(lat, n, 50) / 1e3,
         (double)percentile(lat, n, 99) / 1e3, (double)n / secs, mb, (double)r->master_cpu_us / (double)n,
         (double)r->slave_cpu_us / (double)n, (unsigned long long)r->slave_rss_kb);
  fflush(stdout);
}

static void usage(FILE *out) {
  fprintf(out, "usage: bench-run --peer interaction|floor --workload NAME [options]\n"
               "  workloads: sum blob-1M blob-16M fanout-16 fanout-256 pipeline-4 busy connect connect-auth\n"
               "             sum-tls blob-16M-tls\n"
               "  --passes N     passes, each with fresh slave processes (default 1)\n"
               "  --quick        reduced call counts\n"
               "  --calls N      timed calls (overrides the workload's)\n"
               "  --warmup N     warm-up calls (overrides the workload's)\n"
               "  --timeout-s S  abort a pass after S seconds (default 120)\n"
               "  --bin-dir DIR  where the slave programs are (default: next to bench-run)\n"
               "  --pin MODE     none (default): the scheduler places everything; same: master and\n"
               "                 slaves on CPU 0; split: master on CPU 0, slaves on the other CPUs\n");
}

int main(int argc, char **argv) {
  static const struct option options[] = {
      {"peer", required_argument, NULL, 'p'},
      {"workload", required_argument, NULL, 'w'},
      {"passes", required_argument, NULL, 'n'},
      {"quick", no_argument, NULL, 'q'},
      {"calls", required_argument, NULL, 'c'},
      {"warmup", required_argument, NULL, 'u'},
      {"timeout-s", required_argument, NULL, 't'},
      {"bin-dir", required_argument, NULL, 'b'},
      {"pin", required_argument, NULL, 'P'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  const char *peer_name = NULL, *wname = NULL, *bin_dir = NULL;
  unsigned long passes = 1, calls = 0, warmup = 0, timeout_s = 120, v;
  bool quick = false, have_warmup = false;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'p':
      peer_name = optarg;
      break;
    case 'w':
      wname = optarg;
      break;
    case 'q':
      quick = true;
      break;
    case 'b':
      bin_dir = optarg;
      break;
    case 'P':
      if (strcmp(optarg, "none") == 0) {
        pin = PIN_NONE;
      } else if (strcmp(optarg, "same") == 0) {
        pin = PIN_SAME;
      } else if (strcmp(optarg, "split") == 0) {
        pin = PIN_SPLIT;
      } else {
        fprintf(stderr, "bench-run: --pin takes none, same or split\n");
        return 2;
      }
      break;
    case 'n':
    case 'c':
    case 'u':
    case 't':
      if (!bench_parse_uint(optarg, 100000000, &v) || (v == 0 && opt != 'u')) {
        fprintf(stderr, "bench-run: bad number '%s'\n", optarg);
        return 2;
      }
      if (opt == 'n') passes = v;
      if (opt == 'c') calls = v;
      if (opt == 'u') warmup = v, have_warmup = true;
      if (opt == 't') timeout_s = v;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  const bench_peer *peer = NULL;
  if (peer_name && strcmp(peer_name, "interaction") == 0) peer = &bench_peer_interaction;
  if (peer_name && strcmp(peer_name, "floor") == 0) peer = &bench_peer_floor;
  const bench_workload *w = NULL;
  for (size_t i = 0; wname && i < sizeof workloads / sizeof workloads[0]; i++)
    if (strcmp(workloads[i].name, wname) == 0) w = &workloads[i];
  if (peer == NULL || w == NULL || optind != argc) {
    usage(stderr);
    return 2;
  }

  char self[PATH_MAX];
  if (bin_dir == NULL) {
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
      fprintf(stderr, "bench-run: cannot find my own directory; pass --bin-dir\n");
      return 1;
    }
    self[n] = '\0';
    bin_dir = dirname(self);
  }

  /* Before any thread or child exists, so that all of them inherit it. */
  if (pin != PIN_NONE) pin_to(0, false);
  /* The secret both ends then hold: the slaves inherit it, the master reads
   * it (the floor has none; `connect-auth` is measured against `connect`). */
  if (w->secret)
    setenv("IA_SECRET", "bench-run's shared secret, for connect-auth only", 1);
  else
    unsetenv("IA_SECRET");

  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  bench_env env = {.w = w};
  env.calls = calls ? calls : quick ? w->quick_calls : w->calls;
  env.warmup = have_warmup ? warmup : quick ? w->quick_warmup : w->warmup;
  env.n_work = (size_t)w->procs * w->per_proc;
  env.n_procs = w->procs;
  env.stats_separate = w->kind == BENCH_BUSY || w->kind == BENCH_CONNECT;
  env.work_ports = calloc(env.n_work, sizeof *env.work_ports);
  env.stats_ports = calloc(env.n_procs, sizeof *env.stats_ports);
  uint64_t *lat = calloc(env.calls, sizeof *lat);
  uint8_t *blob = w->kind == BENCH_BLOB ? make_blob(w->blob_len) : NULL;
  env.blob = blob;
  if (!env.work_ports || !env.stats_ports || !lat || (w->kind == BENCH_BLOB && !blob)) {
    fprintf(stderr, "bench-run: out of memory\n");
    return 1;
  }

  /* After the signal handlers, which remove them too. */
  bench_certs certs;
  if (w->tls) {
    char err[300];
    if (bench_certs_make(&certs, err, sizeof err) != 0) {
      fprintf(stderr, "bench-run: certificates for %s: %s\n", w->name, err);
      return 1;
    }
    env.tls = &certs;
  }

  int status = 0;
  for (unsigned long pass = 0; pass < passes && status == 0; pass++) {
    /* The hard bound: even a call stuck inside a library ends the pass. */
    alarm((unsigned)timeout_s + 30);
    env.deadline_ns = bench_now_ns() + timeout_s * 1000000000ull;
    env.error[0] = '\0';
    pass_result r;
    if (run_pass(peer, &env, bin_dir, lat, &r) != 0) {
      fprintf(stderr, "bench-run: peer=%s workload=%s: %s\n", peer->name, w->name,
              env.error[0] ? env.error : "failed");
      status = 1;
    } else {
      print_line(peer, &env, lat, &r);
    }
    alarm(0);
  }
  bench_certs_remove();
  free(env.work_ports);
  free(env.stats_ports);
  free(lat);
  free(blob);
  return status;
}
