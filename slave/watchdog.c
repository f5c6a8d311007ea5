/*
 * The watchdog: one thread per process, shared by every slave in it, that
 * looks at the running handlers every tick while any slave is busy, and
 * sleeps otherwise. A handler it sees running at two looks in a row runs
 * long: its slave's loop then takes its socket over (slot.c, reader.c). The
 * tick is 1 ms while long handlers are about (one was found in the last
 * second), and 10 ms otherwise: a process that serves a stream of short
 * tasks (fan-out) pays 100 wake-ups a second instead of 1000, and notices
 * its first long handler within 10-20 ms instead of 1-2 ms. The worker
 * reads no clock per task: it counts the handlers it starts, and the check
 * compares counts.
 *
 * Why a shared periodic thread: arming a per-task timer costs a timerfd
 * syscall and a VM exit (4 us here, a third of a whole round trip), paid by
 * every task; a shared tick costs one wake-up per period per process, paid
 * by nobody's latency.
 *
 * Going to sleep races with a handler that starts at that moment. The rule
 * that closes it: the thread first says it sleeps (wd_asleep), then looks at
 * every watch once more, and only then waits, holding wd_mu throughout. A
 * handler marks itself running before it reads wd_asleep (the poke). Either
 * the last look sees the handler, or the poke sees wd_asleep and signals
 * under wd_mu, which it can take only once the thread waits.
 *
 * Never: block in a check, hold the registry lock while taking a slave's
 * lock the other way round, or make or join the thread from two callers at
 * once (wd_life serialises add and remove).
 */
#include "slave/watchdog.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "runtime/runtime-internal.h"

#define TICK_FAST_NS 1000000ull      /* 1 ms */
#define TICK_SLOW_NS 10000000ull     /* 10 ms */
#define FAST_WINDOW_NS 1000000000ull /* a long handler found keeps the fast tick this long */
#define IDLE_NS 100000000ull         /* ~100 ms without a running handler: sleep */

static pthread_mutex_t wd_life = PTHREAD_MUTEX_INITIALIZER; /* held across add and remove, join included */
static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wd_cond = PTHREAD_COND_INITIALIZER;
static ia__watch **wd_watches; /* (wd_mu) */
static size_t wd_n, wd_cap;    /* (wd_mu) */
static bool wd_running;        /* (wd_life) the thread exists */
static bool wd_stop;           /* (wd_mu) */
static bool wd_poked;          /* (wd_mu) a poke came while asleep */
static pthread_t wd_thread;
static atomic_bool wd_asleep;    /* the thread is about to wait, or waits, for a poke */
static uint64_t wd_last_long_ns; /* (wd_mu) when a long handler was last found (0: never) */

/* One look at every watch. (wd_mu) */
static int scan(void) {
  int seen = 0;
  for (size_t i = 0; i < wd_n; i++)
    seen |= wd_watches[i]->check(wd_watches[i]->arg);
  return seen;
}

static void *wd_main(void *arg) {
  (void)arg;
  uint64_t idle_since = ia__now_ns();
  pthread_mutex_lock(&wd_mu);
  while (!wd_stop) {
    uint64_t now = ia__now_ns();
    if (now - idle_since >= IDLE_NS) {
      atomic_store(&wd_asleep, true);
      int seen = scan();
      if (seen & IA__WD_LONG) wd_last_long_ns = now;
      if (!(seen & IA__WD_RUNNING)) {
        while (!wd_poked && !wd_stop)
          pthread_cond_wait(&wd_cond, &wd_mu);
      }
      wd_poked = false;
      atomic_store(&wd_asleep, false);
      idle_since = ia__now_ns();
      continue;
    }
    bool fast = wd_last_long_ns && now - wd_last_long_ns < FAST_WINDOW_NS;
    pthread_mutex_unlock(&wd_mu);
    struct timespec tick = {0, (long)(fast ? TICK_FAST_NS : TICK_SLOW_NS)};
    nanosleep(&tick, NULL);
    pthread_mutex_lock(&wd_mu);
    /* The registry lock is held while the watches are checked, so none of
     * them can be removed (and freed) meanwhile. */
    now = ia__now_ns();
    int seen = scan();
    if (seen & IA__WD_RUNNING) idle_since = now;
    if (seen & IA__WD_LONG) wd_last_long_ns = now;
  }
  pthread_mutex_unlock(&wd_mu);
  return NULL;
}

bool ia__watchdog_add(ia__watch *w) {
  pthread_mutex_lock(&wd_life);
  pthread_mutex_lock(&wd_mu);
  bool ok = true;
  if (wd_n == wd_cap) {
    size_t cap = wd_cap ? wd_cap * 2 : 8;
    ia__watch **a = realloc(wd_watches, cap * sizeof *a);
    if (a) {
      wd_watches = a;
      wd_cap = cap;
    } else {
      ok = false;
    }
  }
  if (ok && !wd_running) {
    wd_stop = false;
    wd_poked = false;
    atomic_store(&wd_asleep, false);
    ok = ia__thread_create(&wd_thread, wd_main, NULL) == 0;
    wd_running = ok;
  }
  if (ok) wd_watches[wd_n++] = w;
  pthread_mutex_unlock(&wd_mu);
  pthread_mutex_unlock(&wd_life);
  return ok;
}

void ia__watchdog_remove(ia__watch *w) {
  pthread_mutex_lock(&wd_life);
  pthread_mutex_lock(&wd_mu);
  for (size_t i = 0; i < wd_n; i++)
    if (wd_watches[i] == w) {
      wd_watches[i] = wd_watches[--wd_n];
      break;
    }
  bool last = wd_n == 0 && wd_running;
  if (last) {
    wd_stop = true;
    pthread_cond_signal(&wd_cond);
  }
  pthread_mutex_unlock(&wd_mu);
  if (last) {
    pthread_join(wd_thread, NULL);
    wd_running = false;
    pthread_mutex_lock(&wd_mu);
    free(wd_watches);
    wd_watches = NULL;
    wd_cap = 0;
    pthread_mutex_unlock(&wd_mu);
  }
  pthread_mutex_unlock(&wd_life);
}

void ia__watchdog_poke(void) {
  if (!atomic_load(&wd_asleep)) return;
  pthread_mutex_lock(&wd_mu);
  wd_poked = true;
  pthread_cond_signal(&wd_cond);
  pthread_mutex_unlock(&wd_mu);
}
