/*
 * stress_long: long handlers, the slave's loop taking the socket over, 601
 * and cancellation from another thread.
 *
 * On the main connection, each round starts a Sleep of LONG_MS (tens of ms:
 * the shared watchdog sees it running at two ticks and the slave's loop
 * takes the socket, so the master hears Accepted: STARTED). While it runs:
 * a blocking Sum and an async Sum on the same connection must be refused
 * with 601 (TASK_ALREADY_EXIST), pings from another thread must be answered,
 * and in every other round a canceller thread calls ia_task_cancel() on it.
 * Meanwhile a second slave, on the same watchdog, serves a thread that mixes
 * short Sums with 15 ms Sleeps.
 *
 * Checked: a cancelled Sleep ends CANCELLED (608), an uncancelled one
 * COMPLETED with its slept time; the Sums sent while it runs end in 601 (or,
 * if the Sleep was over by then, with the right sum); the Sum sent right
 * after the Sleep's outcome is in succeeds at once (the slot is freed before
 * the outcome is sent); every ping and every side call succeeds.
 */
#include <stdio.h>
#include <stdlib.h>

#include "stress.h"
#include "sum_handlers.h"

#define CHANNEL 43
#define LONG_MS 60      /* the main connection's long handler */
#define SIDE_LONG_MS 15 /* the side connection's long handler */
#define MAX_ROUNDS 400
#define MAX_SIDE_CALLS 20000
#define BUDGET_MS 1500 /* plain-build time for the rounds */

static uint64_t deadline;
static atomic_bool stop;
static atomic_long refused_blocking, refused_async, served_late, cancelled, completed_long, no_takeover;
static atomic_long after_ok, pings_ok, side_sums, side_sleeps;

/* ---- the canceller: ia_task_cancel() from a thread of its own ---- */

static pthread_mutex_t cancel_mu = PTHREAD_MUTEX_INITIALIZER;
static ia_task *cancel_target; /* (cancel_mu) */
static ia_code cancel_rc;      /* (cancel_mu) */
static tu_flag cancel_asked, cancel_done;

static void *canceller_main(void *arg) {
  (void)arg;
  for (int n = 1;; n++) {
    if (!tu_flag_wait(&cancel_asked, n, stress_ms(30000))) stress_hang("the canceller was never asked again");
    if (atomic_load(&stop)) break;
    pthread_mutex_lock(&cancel_mu);
    cancel_rc = ia_task_cancel(cancel_target);
    pthread_mutex_unlock(&cancel_mu);
    tu_flag_raise(&cancel_done);
  }
  return NULL;
}

/* Has the canceller cancel `t`; returns what ia_task_cancel() said. */
static ia_code cancel_from_other_thread(ia_task *t, int n) {
  pthread_mutex_lock(&cancel_mu);
  cancel_target = t;
  pthread_mutex_unlock(&cancel_mu);
  tu_flag_raise(&cancel_asked);
  if (!tu_flag_wait(&cancel_done, n, stress_ms(10000))) stress_hang("ia_task_cancel() never returned");
  pthread_mutex_lock(&cancel_mu);
  ia_code rc = cancel_rc;
  cancel_target = NULL;
  pthread_mutex_unlock(&cancel_mu);
  return rc;
}

/* ---- pings on the main connection, side calls on the other ---- */

static void *pinger_main(void *arg) {
  ia_conn *c = arg;
  while (!atomic_load(&stop) && stress_before(deadline)) {
    ia_error err = IA_ERROR_INIT;
    ia_code rc = ia_conn_ping(c, TU_WAIT_MS, NULL, &err);
    bool ok = STRESS_CHECK(rc == IA_OK, "ping during long tasks: %s: %s", ia_code_name(rc), err.message);
    ia_error_clear(&err);
    if (!ok) break;
    atomic_fetch_add(&pings_ok, 1);
    tu_sleep_ms(3);
  }
  return NULL;
}

static void *side_main(void *arg) {
  ia_conn *c = arg;
  stress_rng r;
  stress_rng_seed(&r, 3);
  for (int i = 0; i < MAX_SIDE_CALLS && !atomic_load(&stop) && stress_before(deadline); i++) {
    if (i % 10 == 9) {
      /* A blocking long call: the caller reads the Accepted and the result. */
      size_t len;
      uint8_t *req = tu_sleep_task(SIDE_LONG_MS, &len);
      void *reply = NULL;
      size_t reply_len = 0;
      ia_error err = IA_ERROR_INIT;
      ia_code rc =
          req ? ia_call(c, SUM_METHOD_SLEEP, req, len, &reply, &reply_len, TU_WAIT_MS, &err) : IA_NO_MEMORY;
      uint32_t slept = 0;
      bool ok =
          STRESS_CHECK(rc == IA_OK && tu_sleep_result(reply, reply_len, &slept) && slept == SIDE_LONG_MS,
                       "side Sleep call: %s: %s (slept %u)", ia_code_name(rc), err.message, slept);
      free(req);
      free(reply);
      ia_error_clear(&err);
      if (!ok) break;
      atomic_fetch_add(&side_sleeps, 1);
    } else {
      char why[IA_ERROR_MESSAGE_MAX];
      ia_code rc = stress_call_sum(c, &r, i % 2 == 0, why);
      if (!STRESS_CHECK(rc == IA_OK, "side Sum call: %s: %s", ia_code_name(rc), why)) break;
      atomic_fetch_add(&side_sums, 1);
    }
  }
  return NULL;
}

/* ---- one round on the main connection ---- */

/* A Sum sent while the slot is held: 601, or the right sum if the long task
 * was over by the time the slave read it. */
static void sum_while_busy(ia_conn *c, stress_rng *r, int round) {
  int64_t a = stress_operand(r), b = stress_operand(r), sum = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = tu_call_sum(c, a, b, &sum, &err);
  if (rc == IA_TASK_ALREADY_EXIST)
    atomic_fetch_add(&refused_blocking, 1);
  else if (STRESS_CHECK(rc == IA_OK && sum == a + b, "round %d: blocking Sum while busy: %s: %s", round,
                        ia_code_name(rc), err.message))
    atomic_fetch_add(&served_late, 1);
  ia_error_clear(&err);

  a = stress_operand(r);
  b = stress_operand(r);
  ia_task *t = stress_sum_task(c, a, b, round % 2 == 0);
  if (t == NULL) return;
  rc = ia_task_start(t);
  ia_code jr = ia_task_join(t, TU_WAIT_MS);
  ia_status st = ia_task_status(t);
  if (st == IA_STATUS_START_FAILED && ia_task_error(t)->code == IA_TASK_ALREADY_EXIST)
    atomic_fetch_add(&refused_async, 1);
  else if (STRESS_CHECK(rc == IA_OK && jr == IA_OK && stress_task_sum_is(t, a + b, round % 2 == 0),
                        "round %d: async Sum while busy ended %s (%s: %s)", round, ia_status_name(st),
                        ia_code_name(ia_task_error(t)->code), ia_task_error(t)->message))
    atomic_fetch_add(&served_late, 1);
  ia_task_free(t);
}

static void long_round(ia_conn *c, int round, int *cancels, stress_rng *r) {
  ia_task *t = tu_sleep_task_new(c, LONG_MS);
  if (!STRESS_CHECK(t != NULL, "no Sleep task")) return;
  ia_code rc = ia_task_start(t);
  if (!STRESS_CHECK(rc == IA_OK, "round %d: starting the Sleep: %s", round, ia_code_name(rc))) {
    ia_task_free(t);
    return;
  }
  bool cancel = round % 2 == 0;
  ia_status seen = tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS);
  bool took_over = seen == IA_STATUS_STARTED;
  if (took_over) {
    sum_while_busy(c, r, round);
    if (cancel) {
      ia_code cr = cancel_from_other_thread(t, ++*cancels);
      /* INVALID_ARGUMENT: the Sleep ended before the cancel was asked. */
      STRESS_CHECK(cr == IA_OK || cr == IA_INVALID_ARGUMENT, "round %d: ia_task_cancel: %s", round,
                   ia_code_name(cr));
    }
  } else {
    atomic_fetch_add(&no_takeover, 1);
  }
  ia_code jr = ia_task_join(t, TU_WAIT_MS);
  ia_status st = ia_task_status(t);
  const ia_error *e = ia_task_error(t);
  size_t len = 0;
  const uint8_t *res = ia_task_result(t, &len);
  uint32_t slept = 0;
  if (st == IA_STATUS_CANCELLED) {
    if (STRESS_CHECK(cancel && took_over && e->code == IA_CANCELLED,
                     "round %d: Sleep CANCELLED (%s) uncancelled", round, ia_code_name(e->code)))
      atomic_fetch_add(&cancelled, 1);
  } else if (STRESS_CHECK(jr == IA_OK && st == IA_STATUS_COMPLETED && res != NULL &&
                              tu_sleep_result(res, len, &slept) && slept == LONG_MS,
                          "round %d: Sleep ended %s (%s: %s), join %s", round, ia_status_name(st),
                          ia_code_name(e->code), e->message, ia_code_name(jr))) {
    atomic_fetch_add(&completed_long, 1);
  }
  ia_task_free(t);

  /* The outcome is in: the slot was freed before it was sent. */
  int64_t a = stress_operand(r), b = stress_operand(r), sum = 0;
  ia_error err = IA_ERROR_INIT;
  rc = tu_call_sum(c, a, b, &sum, &err);
  if (STRESS_CHECK(rc == IA_OK && sum == a + b, "round %d: Sum right after the Sleep: %s: %s", round,
                   ia_code_name(rc), err.message))
    atomic_fetch_add(&after_ok, 1);
  ia_error_clear(&err);
}

int main(void) {
  stress_begin("stress_long",
               "long handlers with 601 refusals, cancels from another thread, pings and short calls", 90);
  tu_flag_init(&cancel_asked);
  tu_flag_init(&cancel_done);
  ia_slave *s = stress_slave(CHANNEL, 2000), *side = stress_slave(CHANNEL, 2000);
  ia_master *m = stress_master("stress-long", CHANNEL);
  ia_conn *c = NULL, *cs = NULL;
  ia_code rc = IA_OK;
  if (s && side && m) {
    c = stress_connect(m, "main", ia_slave_port(s), &rc);
    STRESS_CHECK(c != NULL, "connecting main: %s", ia_code_name(rc));
    cs = stress_connect(m, "side", ia_slave_port(side), &rc);
    STRESS_CHECK(cs != NULL, "connecting side: %s", ia_code_name(rc));
  }
  int rounds = 0;
  if (c && cs) {
    stress_phase("long Sleeps with busy Sums and cancels; pings; side calls");
    deadline = stress_deadline(BUDGET_MS);
    pthread_t tc, tp, ts;
    bool up_c = stress_spawn(&tc, canceller_main, NULL);
    bool up_p = stress_spawn(&tp, pinger_main, c);
    bool up_s = stress_spawn(&ts, side_main, cs);
    stress_rng r;
    stress_rng_seed(&r, 11);
    int cancels = 0;
    while (up_c && rounds < MAX_ROUNDS && stress_before(deadline) && stress_failures() == 0)
      long_round(c, ++rounds, &cancels, &r);
    atomic_store(&stop, true);
    tu_flag_raise(&cancel_asked);
    uint32_t bound = stress_ms(20000);
    if (up_c) stress_join(tc, bound, "the canceller");
    if (up_p) stress_join(tp, bound, "the pinger");
    if (up_s) stress_join(ts, bound, "the side caller");
  }

  stress_report("rounds with a long Sleep", rounds);
  stress_report("Sleeps the watchdog handed to the loop (STARTED seen) before they ended",
                rounds - no_takeover);
  stress_report("blocking Sums refused 601 while busy", atomic_load(&refused_blocking));
  stress_report("async Sums START_FAILED 601 while busy", atomic_load(&refused_async));
  stress_report("Sums sent while busy but served after (right sum)", atomic_load(&served_late));
  stress_report("Sleeps cancelled from another thread: CANCELLED 608", atomic_load(&cancelled));
  stress_report("Sleeps COMPLETED with their slept time", atomic_load(&completed_long));
  stress_report("Sums right after a Sleep's outcome: served at once", atomic_load(&after_ok));
  stress_report("pings answered during long tasks", atomic_load(&pings_ok));
  stress_report("side Sums / Sleeps with the right result",
                atomic_load(&side_sums) + atomic_load(&side_sleeps));
  STRESS_CHECK(
      rounds - no_takeover > 0 && refused_blocking > 0 && refused_async > 0 && cancelled > 0 &&
          completed_long > 0 && side_sleeps > 0,
      "a behaviour was never seen: takeover %ld, 601 %ld/%ld, cancelled %ld, completed %ld, side sleeps %ld",
      rounds - no_takeover, atomic_load(&refused_blocking), atomic_load(&refused_async),
      atomic_load(&cancelled), atomic_load(&completed_long), atomic_load(&side_sleeps));

  ia_conn_free(c);
  ia_conn_free(cs);
  ia_master_free(m);
  ia_slave_free(s);
  ia_slave_free(side);
  tu_flag_destroy(&cancel_asked);
  tu_flag_destroy(&cancel_done);
  return stress_end();
}
