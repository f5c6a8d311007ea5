/*
 * stress_fanout: the original's learner aggregator, from several threads.
 *
 * Eight slaves run in this one process, so they share its watchdog thread.
 * In each round the coordinator (the main thread) starts one async task on
 * every slave -- a Sum (typed or untyped), or on a rotating few a Sleep long
 * enough for the watchdog to hand the socket to the slave's loop -- and
 * three joiner threads each join EVERY task of the round at the same time.
 *
 * Checked: every join returns IA_OK within TU_WAIT_MS; every task is
 * COMPLETED with its own result (a + b, or the slept milliseconds); its
 * on_complete callback ran exactly once, and before any join returned; no
 * on_fail callback ran.
 */
#include <stdio.h>
#include <stdlib.h>

#include "stress.h"

#define CHANNEL 42
#define N_SLAVES 8
#define N_JOINERS 3
#define MAX_ROUNDS 3000
#define SLEEP_MS 12    /* a long handler: two watchdog ticks (10 ms) or more */
#define SLEEP_EVERY 5  /* slave i sleeps in the rounds where (round + i) % SLEEP_EVERY == 0 */
#define BUDGET_MS 1500 /* plain-build time for all the rounds */

/* One slave's task in the current round. */
typedef struct slot {
  ia_task *task;
  bool sleeps;
  bool typed;
  int64_t want; /* a + b, or SLEEP_MS */
  atomic_int completed_cbs;
  atomic_int failed_cbs;
} slot;

static slot slots[N_SLAVES];
static tu_flag round_ready;  /* raised once per round, after every task started */
static tu_flag round_joined; /* raised by each joiner after it joined the whole round */
static atomic_bool finished; /* no more rounds: set before the last raise of round_ready */
static atomic_long joins_ok, tasks_ok, sleeps_ok;

static void on_complete(ia_task *t, void *user) {
  (void)t;
  atomic_fetch_add(&((slot *)user)->completed_cbs, 1);
}

static void on_fail(ia_task *t, void *user) {
  (void)t;
  atomic_fetch_add(&((slot *)user)->failed_cbs, 1);
}

static bool slot_result_ok(const slot *s) {
  if (!s->sleeps) return stress_task_sum_is(s->task, s->want, s->typed);
  size_t len = 0;
  const uint8_t *res = ia_task_result(s->task, &len);
  uint32_t slept = 0;
  return ia_task_status(s->task) == IA_STATUS_COMPLETED && res != NULL && tu_sleep_result(res, len, &slept) &&
         slept == (uint32_t)s->want;
}

static void *joiner_main(void *arg) {
  int id = *(int *)arg;
  for (int round = 1;; round++) {
    if (!tu_flag_wait(&round_ready, round, stress_ms(20000)))
      stress_hang("joiner %d: round %d never came", id, round);
    if (atomic_load(&finished)) break;
    /* Each joiner starts at a different slave, so joins overlap in every order. */
    for (int k = 0; k < N_SLAVES; k++) {
      slot *s = &slots[(k + id) % N_SLAVES];
      ia_code rc = ia_task_join(s->task, TU_WAIT_MS);
      int done = atomic_load(&s->completed_cbs), failed = atomic_load(&s->failed_cbs);
      bool ok =
          STRESS_CHECK(rc == IA_OK, "round %d slave %d: join gave %s (status %s)", round, (k + id) % N_SLAVES,
                       ia_code_name(rc), ia_status_name(ia_task_status(s->task))) &&
          STRESS_CHECK(done == 1 && failed == 0,
                       "round %d: join returned with %d on_complete and %d on_fail callbacks run", round,
                       done, failed) &&
          STRESS_CHECK(slot_result_ok(s), "round %d: %s task is %s, not COMPLETED with %lld", round,
                       s->sleeps ? "Sleep" : "Sum", ia_status_name(ia_task_status(s->task)),
                       (long long)s->want);
      if (ok) atomic_fetch_add(&joins_ok, 1);
    }
    tu_flag_raise(&round_joined);
  }
  return NULL;
}

/* Starts one task on every connection for `round`; false after a failed check. */
static bool start_round(ia_conn **conns, int round, stress_rng *r) {
  for (int i = 0; i < N_SLAVES; i++) {
    slot *s = &slots[i];
    s->sleeps = (round + i) % SLEEP_EVERY == 0;
    s->typed = (round + i) % 2 == 0;
    atomic_store(&s->completed_cbs, 0);
    atomic_store(&s->failed_cbs, 0);
    if (s->sleeps) {
      s->want = SLEEP_MS;
      s->task = tu_sleep_task_new(conns[i], SLEEP_MS);
    } else {
      int64_t a = stress_operand(r), b = stress_operand(r);
      s->want = a + b;
      s->task = stress_sum_task(conns[i], a, b, s->typed);
    }
    if (!STRESS_CHECK(s->task != NULL, "round %d: no task for slave %d", round, i)) return false;
    if (!STRESS_CHECK(ia_task_on_complete(s->task, on_complete, s) == IA_OK &&
                          ia_task_on_fail(s->task, on_fail, s) == IA_OK,
                      "round %d: callbacks refused", round))
      return false;
    ia_code rc = ia_task_start(s->task);
    if (!STRESS_CHECK(rc == IA_OK, "round %d: start on slave %d: %s", round, i, ia_code_name(rc)))
      return false;
  }
  return true;
}

int main(void) {
  stress_begin("stress_fanout",
               "fan-out rounds over 8 in-process slaves, every task joined by 3 threads at once", 90);
  tu_flag_init(&round_ready);
  tu_flag_init(&round_joined);
  ia_slave *slaves[N_SLAVES] = {0};
  ia_conn *conns[N_SLAVES] = {0};
  ia_master *m = stress_master("stress-fanout", CHANNEL);
  bool ready = m != NULL;
  for (int i = 0; ready && i < N_SLAVES; i++) {
    char name[32];
    snprintf(name, sizeof name, "learner-%d", i);
    slaves[i] = stress_slave(CHANNEL, 2000);
    ia_code rc = IA_OK;
    conns[i] = slaves[i] ? stress_connect(m, name, ia_slave_port(slaves[i]), &rc) : NULL;
    ready = STRESS_CHECK(conns[i] != NULL, "connecting %s: %s", name, ia_code_name(rc));
  }

  int ids[N_JOINERS];
  pthread_t joiners[N_JOINERS];
  int n_joiners = 0;
  int rounds = 0;
  if (ready) {
    stress_phase("fan-out rounds");
    for (; n_joiners < N_JOINERS; n_joiners++) {
      ids[n_joiners] = n_joiners;
      if (!stress_spawn(&joiners[n_joiners], joiner_main, &ids[n_joiners])) break;
    }
    stress_rng r;
    stress_rng_seed(&r, 7);
    uint64_t deadline = stress_deadline(BUDGET_MS);
    while (rounds < MAX_ROUNDS && stress_before(deadline) && stress_failures() == 0) {
      int round = rounds + 1;
      bool started = start_round(conns, round, &r);
      if (started) {
        tu_flag_raise(&round_ready);
        if (!tu_flag_wait(&round_joined, n_joiners * round, stress_ms(20000)))
          stress_hang("round %d: the joiners never finished", round);
      }
      for (int i = 0; i < N_SLAVES; i++) {
        if (started && slot_result_ok(&slots[i]))
          atomic_fetch_add(slots[i].sleeps ? &sleeps_ok : &tasks_ok, 1);
        ia_task_free(slots[i].task);
        slots[i].task = NULL;
      }
      if (!started) break;
      rounds = round;
    }
    atomic_store(&finished, true);
    tu_flag_raise(&round_ready);
    for (int i = 0; i < n_joiners; i++)
      stress_join(joiners[i], stress_ms(20000), "a joiner thread");
  }

  stress_report("fan-out rounds of 8 tasks", rounds);
  stress_report("Sum tasks COMPLETED with the right sum", atomic_load(&tasks_ok));
  stress_report("Sleep tasks COMPLETED with the slept time (watchdog hand-over)", atomic_load(&sleeps_ok));
  stress_report("joins (3 threads per task) that saw the task finished, callbacks run",
                atomic_load(&joins_ok));
  STRESS_CHECK(rounds > 0 && atomic_load(&sleeps_ok) > 0, "no complete round, or no Sleep task completed");

  for (int i = 0; i < N_SLAVES; i++)
    ia_conn_free(conns[i]);
  ia_master_free(m);
  for (int i = 0; i < N_SLAVES; i++)
    ia_slave_free(slaves[i]);
  tu_flag_destroy(&round_ready);
  tu_flag_destroy(&round_joined);
  return stress_end();
}
