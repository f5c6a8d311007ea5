/* Time on CLOCK_MONOTONIC: now, deadlines, and condition variables that
 * wait on the same clock (a wall-clock jump must never stretch a wait);
 * and the interval clock of the hot path's durations (ia__ticks: the TSC,
 * calibrated here once, where the kernel keeps time with it). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runtime/runtime-internal.h"

double ia__ns_per_tick;

#if defined(__x86_64__)
/* A reading of the TSC and of CLOCK_MONOTONIC taken together: false if the
 * thread was interrupted between them, every time of a few. */
static bool tsc_pair(uint64_t *tsc, uint64_t *ns) {
  for (int i = 0; i < 8; i++) {
    uint64_t a = __builtin_ia32_rdtsc();
    uint64_t n = ia__now_ns();
    uint64_t b = __builtin_ia32_rdtsc();
    if (b > a && b - a < 20000) {
      *tsc = a + (b - a) / 2;
      *ns = n;
      return true;
    }
  }
  return false;
}

/* Whether the kernel keeps time with the TSC: then it found it invariant
 * and the same on every CPU, which is what durations taken on one CPU and
 * ended on another need. */
static bool kernel_uses_tsc(void) {
  FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "re");
  if (!f) return false;
  char name[32] = "";
  bool tsc = fgets(name, sizeof name, f) && strcmp(name, "tsc\n") == 0;
  fclose(f);
  return tsc;
}
#endif

void ia__clock_init(void) {
#if defined(__x86_64__)
  uint64_t t0, n0, t1, n1;
  if (!kernel_uses_tsc() || !tsc_pair(&t0, &n0)) return;
  struct timespec two_ms = {0, 2000000};
  nanosleep(&two_ms, NULL);
  if (!tsc_pair(&t1, &n1) || t1 <= t0 || n1 <= n0 + 1000000) return;
  double f = (double)(n1 - n0) / (double)(t1 - t0);
  if (f > 0.02 && f < 10) ia__ns_per_tick = f; /* a counter between 100 MHz and 50 GHz */
#endif
}

uint64_t ia__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ia__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ia__deadline_ts(struct timespec *ts, uint32_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000u;
  ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

uint64_t ia__deadline_after(uint32_t ms) {
  return ms == UINT32_MAX ? UINT64_MAX : ia__now_ms() + ms;
}

void ia__cond_init(pthread_cond_t *cond) {
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(cond, &ca);
  pthread_condattr_destroy(&ca);
}
