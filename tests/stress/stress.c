/* The stress programs' shared helpers; see stress.h. */
#define _GNU_SOURCE
#include "stress.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sum.pb-c.h"
#include "sum_handlers.h"


#define MAX_PRINTED_FAILURES 30

/* ---- the program ---- */

static pthread_mutex_t state_mu = PTHREAD_MUTEX_INITIALIZER;
static const char *program_name = "stress";
static char phase_name[96] = "start";
static uint64_t started_ms;
static atomic_int failures;

/* The guard's deadline; its thread waits for it, or for stress_end(). */
static uint64_t guard_deadline_ms;
static pthread_t guard_thread;
static bool guard_started, guard_stop; /* (state_mu) */
static pthread_cond_t guard_cond;      /* CLOCK_MONOTONIC */

static void *guard_main(void *arg) {
  (void)arg;
  pthread_mutex_lock(&state_mu);
  while (!guard_stop) {
    uint64_t now = tu_now_ms();
    if (now >= guard_deadline_ms) {
      pthread_mutex_unlock(&state_mu);
      stress_hang("the whole program ran past its limit");
    }
    uint64_t left = guard_deadline_ms - now;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ms = left > 500 ? 500 : left;
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&guard_cond, &state_mu, &until);
  }
  pthread_mutex_unlock(&state_mu);
  return NULL;
}

void stress_begin(const char *program, const char *what, uint32_t limit_s) {
  pthread_mutex_lock(&state_mu);
  program_name = program;
  started_ms = tu_now_ms();
  guard_deadline_ms = started_ms + (uint64_t)stress_ms(limit_s * 1000u);
  pthread_mutex_unlock(&state_mu);
  printf("stress %s (%s build, budget scale %u%%): %s\n", program,
         STRESS_TSAN   ? "ThreadSanitizer"
         : STRESS_ASAN ? "AddressSanitizer"
                       : "plain",
         stress_ms(1000) / 10, what);
  fflush(stdout);
  /* Output from several threads should not interleave within a line. */
  setvbuf(stdout, NULL, _IOLBF, 0);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&guard_cond, &ca);
  pthread_condattr_destroy(&ca);
  /* Joined by stress_end(): a thread still running at exit is memory that
   * valgrind calls possibly lost. */
  guard_started = pthread_create(&guard_thread, NULL, guard_main, NULL) == 0;
  if (!guard_started) stress_fail("cannot start the hang guard");
}

void stress_phase(const char *name) {
  pthread_mutex_lock(&state_mu);
  snprintf(phase_name, sizeof phase_name, "%s", name);
  uint64_t at = tu_now_ms() - started_ms;
  pthread_mutex_unlock(&state_mu);
  printf("  [%6llu ms] phase: %s\n", (unsigned long long)at, name);
}

void stress_report(const char *what, long n) {
  printf("  checked: %8ld  %s\n", n, what);
}

int stress_end(void) {
  pthread_mutex_lock(&state_mu);
  guard_stop = true;
  pthread_cond_broadcast(&guard_cond);
  pthread_mutex_unlock(&state_mu);
  if (guard_started) pthread_join(guard_thread, NULL);
  int n = atomic_load(&failures);
  pthread_mutex_lock(&state_mu);
  uint64_t took = tu_now_ms() - started_ms;
  pthread_mutex_unlock(&state_mu);
  printf("stress %s: %s (%d failed check%s) in %llu ms\n", program_name, n ? "FAIL" : "PASS", n,
         n == 1 ? "" : "s", (unsigned long long)took);
  fflush(stdout);
  return n ? 1 : 0;
}

/* The message of a failure or a hang, and the phase it came in. */
static void describe(char *msg, size_t cap, char *phase, const char *fmt, va_list ap) {
  vsnprintf(msg, cap, fmt, ap);
  pthread_mutex_lock(&state_mu);
  memcpy(phase, phase_name, sizeof phase_name);
  pthread_mutex_unlock(&state_mu);
}

void stress_fail(const char *fmt, ...) {
  int n = atomic_fetch_add(&failures, 1) + 1;
  if (n > MAX_PRINTED_FAILURES) return;
  char msg[512], phase[sizeof phase_name];
  va_list ap;
  va_start(ap, fmt);
  describe(msg, sizeof msg, phase, fmt, ap);
  va_end(ap);
  printf("  FAILED [%s]: %s%s\n", phase, msg,
         n == MAX_PRINTED_FAILURES ? " (further failures not printed)" : "");
}

int stress_failures(void) {
  return atomic_load(&failures);
}

_Noreturn void stress_hang(const char *fmt, ...) {
  char msg[512], phase[sizeof phase_name];
  va_list ap;
  va_start(ap, fmt);
  describe(msg, sizeof msg, phase, fmt, ap);
  va_end(ap);
  /* Threads may be stuck inside the library: nothing is cleaned up, the
   * process just ends (its sockets die with it). */
  printf("  HANG [%s]: %s\nstress %s: FAIL (hung; %d failed checks before)\n", phase, msg, program_name,
         atomic_load(&failures));
  fflush(stdout);
  _exit(2);
}

/* ---- time ---- */

uint32_t stress_ms(uint32_t plain_ms) {
  double scale = STRESS_TSAN ? 4.0 : STRESS_ASAN ? 2.0 : 1.0;
  /* scripts/valgrind.sh sets IA_VALGRIND: memcheck is slower still. */
  if (getenv("IA_VALGRIND") != NULL) scale *= 10.0;
  const char *env = getenv("IA_STRESS_SCALE");
  if (env != NULL) {
    double f = strtod(env, NULL);
    if (f > 0 && f <= 100) scale *= f;
  }
  double ms = plain_ms * scale;
  return ms > 4e9 ? 4000000000u : (uint32_t)ms;
}

uint64_t stress_deadline(uint32_t plain_ms) {
  return tu_now_ms() + stress_ms(plain_ms);
}

bool stress_before(uint64_t deadline) {
  return tu_now_ms() < deadline;
}

void stress_sleep_us(uint32_t us) {
  struct timespec ts = {.tv_sec = us / 1000000u, .tv_nsec = (long)(us % 1000000u) * 1000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- randomness (xorshift64*) ---- */

void stress_rng_seed(stress_rng *r, uint64_t seed) {
  r->s = seed * 0x9E3779B97F4A7C15ull + 1;
}

uint64_t stress_rng_next(stress_rng *r) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  return r->s * 2685821657736338717ull;
}

uint32_t stress_rng_below(stress_rng *r, uint32_t n) {
  return n ? (uint32_t)(stress_rng_next(r) % n) : 0;
}

/* ---- threads ---- */

bool stress_spawn(pthread_t *t, stress_fn fn, void *arg) {
  int rc = pthread_create(t, NULL, fn, arg);
  return STRESS_CHECK(rc == 0, "pthread_create: %s", strerror(rc));
}

void stress_join(pthread_t t, uint32_t timeout_ms, const char *what) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until); /* pthread_timedjoin_np's clock */
  until.tv_sec += timeout_ms / 1000u;
  until.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  int rc = pthread_timedjoin_np(t, NULL, &until);
  if (rc == ETIMEDOUT) stress_hang("%s did not end within %u ms", what, timeout_ms);
  STRESS_CHECK(rc == 0, "joining %s: %s", what, strerror(rc));
}

void stress_run(int n, stress_fn fn, void *args, size_t stride, uint32_t timeout_ms, const char *what) {
  pthread_t *ts = calloc((size_t)n, sizeof *ts);
  bool *up = calloc((size_t)n, sizeof *up);
  if (!STRESS_CHECK(ts != NULL && up != NULL, "no memory for %d threads", n)) {
    free(ts);
    free(up);
    return;
  }
  for (int i = 0; i < n; i++)
    up[i] = stress_spawn(&ts[i], fn, (char *)args + (size_t)i * stride);
  /* One deadline for the whole group, not one per thread. */
  uint64_t deadline = tu_now_ms() + timeout_ms;
  for (int i = 0; i < n; i++) {
    if (!up[i]) continue;
    uint64_t now = tu_now_ms();
    stress_join(ts[i], now < deadline ? (uint32_t)(deadline - now) : 1u, what);
  }
  free(ts);
  free(up);
}

typedef struct bounded_call {
  void (*fn)(void *arg);
  void *arg;
} bounded_call;

static void *bounded_main(void *arg) {
  bounded_call *b = arg;
  b->fn(b->arg);
  return NULL;
}

void stress_bounded(void (*fn)(void *arg), void *arg, uint32_t timeout_ms, const char *what) {
  bounded_call b = {fn, arg};
  pthread_t t;
  if (stress_spawn(&t, bounded_main, &b)) stress_join(t, timeout_ms, what);
}

/* ---- slaves, masters, connections ---- */

ia_slave *stress_slave(uint32_t channel, uint32_t grace_ms) {
  ia_slave_config config;
  tu_slave_config(&config, channel);
  config.grace_ms = grace_ms;
  ia_error err = IA_ERROR_INIT;
  ia_slave *s = NULL;
  ia_code rc = tu_slave_start(&config, &s, &err);
  STRESS_CHECK(rc == IA_OK && ia_slave_port(s) != 0, "starting a slave: %s: %s", ia_code_name(rc),
               err.message);
  ia_error_clear(&err);
  return rc == IA_OK ? s : NULL;
}

ia_master *stress_master(const char *name, uint32_t channel) {
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_code rc = tu_master_start(name, channel, &m, &err);
  STRESS_CHECK(rc == IA_OK, "starting master %s: %s: %s", name, ia_code_name(rc), err.message);
  ia_error_clear(&err);
  return m;
}

ia_conn *stress_connect(ia_master *m, const char *name, uint16_t port, ia_code *code) {
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc;
  for (;;) {
    rc = tu_connect(m, name, port, &c, &err);
    ia_error_clear(&err);
    /* A master-side 501 (the name is taken) is the caller's to judge; only
     * the slave's "I still have a master" is worth waiting out. */
    if (rc != IA_ALREADY_CONNECTED || ia_master_find(m, name) != NULL || !stress_before(deadline)) break;
    tu_sleep_ms(2);
  }
  if (code != NULL) *code = rc;
  return rc == IA_OK ? c : NULL;
}

/* ---- sums ---- */

int64_t stress_operand(stress_rng *r) {
  return (int64_t)(stress_rng_next(r) >> 20) - ((int64_t)1 << 43);
}

static ia_code call_sum_once(ia_conn *conn, int64_t a, int64_t b, bool typed, int64_t *sum, ia_error *err) {
  if (!typed) return tu_call_sum(conn, a, b, sum, err);
  Sum__SumTask req = SUM__SUM_TASK__INIT;
  req.has_a = req.has_b = 1;
  req.a = a;
  req.b = b;
  Sum__SumResult *reply = NULL;
  const ia_call_opts opts = {.timeout_ms = TU_WAIT_MS};
  ia_code rc = sum_adder_sum(conn, &req, &reply, &opts, err);
  if (rc == IA_OK) {
    if (reply->has_sum)
      *sum = reply->sum;
    else
      rc = IA_PROTOCOL_ERROR;
    sum__sum_result__free_unpacked(reply, NULL);
  }
  return rc;
}

ia_code stress_call_sum(ia_conn *conn, stress_rng *r, bool typed, char *why) {
  int64_t a = stress_operand(r), b = stress_operand(r);
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  ia_error err = IA_ERROR_INIT;
  ia_code rc;
  int64_t sum = 0;
  for (;;) {
    ia_error_clear(&err);
    rc = call_sum_once(conn, a, b, typed, &sum, &err);
    if (rc != IA_TASK_ALREADY_EXIST || !stress_before(deadline)) break;
    tu_sleep_ms(1);
  }
  if (rc == IA_OK)
    STRESS_CHECK(sum == a + b, "%s call: %lld + %lld gave %lld", typed ? "typed" : "ia_call", (long long)a,
                 (long long)b, (long long)sum);
  if (why != NULL) snprintf(why, IA_ERROR_MESSAGE_MAX, "%s", err.message);
  ia_error_clear(&err);
  return rc;
}

ia_task *stress_sum_task(ia_conn *conn, int64_t a, int64_t b, bool typed) {
  ia_task *t;
  if (typed) {
    Sum__SumTask req = SUM__SUM_TASK__INIT;
    req.has_a = req.has_b = 1;
    req.a = a;
    req.b = b;
    t = sum_adder_sum_task(conn, &req, NULL);
  } else {
    t = tu_sum_task_new(conn, a, b);
  }
  STRESS_CHECK(t != NULL, "no Sum task could be made");
  return t;
}

bool stress_task_sum_is(const ia_task *task, int64_t want, bool typed) {
  if (ia_task_status(task) != IA_STATUS_COMPLETED) return false;
  if (typed) {
    Sum__SumResult *reply = NULL;
    if (sum_adder_sum_reply(task, &reply) != IA_OK) return false;
    bool ok = reply->has_sum && reply->sum == want;
    sum__sum_result__free_unpacked(reply, NULL);
    return ok;
  }
  size_t len = 0;
  const uint8_t *res = ia_task_result(task, &len);
  int64_t sum = 0;
  return res != NULL && tu_sum_result(res, len, &sum) && sum == want;
}
