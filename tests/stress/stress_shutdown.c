/*
 * stress_shutdown: both ends shut down while work is in flight.
 *
 *  A. ia_slave_shutdown() -- from two threads at once -- while a long task
 *     runs on the slave and another thread keeps calling it.
 *  B. ia_master_shutdown() while callers block in calls on three
 *     connections and a thread keeps starting async tasks (with callbacks)
 *     on all of them.
 *  C. ia_master_free() while async tasks are in flight that their owner has
 *     already freed (their callbacks still report their end).
 *
 * Checked: nothing hangs (every join, shutdown and free returns within its
 * bound); every call returns the right sum or a code that says the peer is
 * going (601 while busy, 101 SHUTTING_DOWN, 701 CONNECTION_LOST, 502
 * NOT_CONNECTED); every task reaches a terminal status -- COMPLETED with the
 * right result, CANCELLED (the slave's grace ran out), LOST or START_FAILED
 * with such a code -- and exactly one of its callbacks ran; the connections
 * end down.
 */
#include <stdio.h>
#include <stdlib.h>

#include "stress.h"

#define CHANNEL 47
#define ROUNDS_A 8
#define ROUNDS_B 6
#define ROUNDS_C 6
#define LONG_MS 5000 /* never completes: shutdown ends it */
#define B_CONNS 3
#define B_TASKS 256 /* async tasks one round of B may start */
#define C_TASKS 24
#define BUDGET_MS 1200 /* plain-build time of each phase */

static atomic_long calls_ok, calls_going, tasks_ok, tasks_cancelled, tasks_lost, tasks_start_failed;

/* A code that says the other end is going away (or the slot is busy). */
static bool going_code(ia_code rc) {
  return rc == IA_TASK_ALREADY_EXIST || rc == IA_SHUTTING_DOWN || rc == IA_CONNECTION_LOST ||
         rc == IA_NOT_CONNECTED;
}

/* Judges a finished Sum task (a + b, typed or not) or long Sleep. */
static void judge_task(const ia_task *t, bool is_sum, int64_t want, bool typed, const char *where) {
  ia_status st = ia_task_status(t);
  ia_code code = ia_task_error(t)->code;
  if (st == IA_STATUS_COMPLETED) {
    if (STRESS_CHECK(is_sum && stress_task_sum_is(t, want, typed), "%s: COMPLETED with a wrong result",
                     where))
      atomic_fetch_add(&tasks_ok, 1);
  } else if (st == IA_STATUS_FAILED && code == IA_SHUTTING_DOWN) {
    /* Cancelled by the slave's shutdown: reported as 101, not CANCELLED. */
    if (STRESS_CHECK(!is_sum, "%s: a Sum FAILED with SHUTTING_DOWN", where)) atomic_fetch_add(&tasks_cancelled, 1);
  } else if (st == IA_STATUS_LOST) {
    if (STRESS_CHECK(going_code(code), "%s: LOST with %s", where, ia_code_name(code)))
      atomic_fetch_add(&tasks_lost, 1);
  } else if (STRESS_CHECK(st == IA_STATUS_START_FAILED && going_code(code), "%s: ended %s (%s)", where,
                          ia_status_name(st), ia_code_name(code))) {
    atomic_fetch_add(&tasks_start_failed, 1);
  }
}

/* A caller that keeps calling until its connection is down. */
typedef struct caller {
  ia_conn *conn;
  int seed;
  bool saw_end; /* read after the join */
} caller;

static void *caller_main(void *arg) {
  caller *c = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)c->seed);
  uint64_t deadline = stress_deadline(BUDGET_MS * 4);
  for (int i = 0; i < 100000 && stress_before(deadline); i++) {
    int64_t a = stress_operand(&r), b = stress_operand(&r), sum = 0;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = tu_call_sum(c->conn, a, b, &sum, &err);
    if (rc == IA_OK) {
      if (STRESS_CHECK(sum == a + b, "a call gave %lld for %lld + %lld", (long long)sum, (long long)a,
                       (long long)b))
        atomic_fetch_add(&calls_ok, 1);
    } else if (STRESS_CHECK(going_code(rc), "a call during shutdown: %s: %s", ia_code_name(rc),
                            err.message)) {
      atomic_fetch_add(&calls_going, 1);
    }
    ia_error_clear(&err);
    if (rc == IA_NOT_CONNECTED || !ia_conn_is_connected(c->conn)) {
      c->saw_end = true;
      break;
    }
    if (rc != IA_OK) tu_sleep_ms(1);
  }
  return NULL;
}

static void slave_join(void *arg) {
  ia_slave_join(arg);
}

static void slave_free(void *arg) {
  ia_slave_free(arg);
}

static void master_join(void *arg) {
  ia_master_join(arg);
}

static void master_free(void *arg) {
  ia_master_free(arg);
}

/* ---- A: the slave shuts down under a running task and a caller ---- */

static void *shutter_main(void *arg) {
  tu_sleep_ms(1);
  ia_slave_shutdown(arg);
  return NULL;
}

static void round_a(ia_master *m, int round) {
  ia_slave *s = stress_slave(CHANNEL, 50 + 30 * (round % 4));
  if (s == NULL) return;
  char name[32];
  snprintf(name, sizeof name, "victim-%d", round);
  ia_code rc = IA_OK;
  ia_conn *c = stress_connect(m, name, ia_slave_port(s), &rc);
  if (!STRESS_CHECK(c != NULL, "A%d: connect: %s", round, ia_code_name(rc))) {
    ia_slave_free(s);
    return;
  }
  ia_task *t = tu_sleep_task_new(c, LONG_MS);
  STRESS_CHECK(t != NULL && ia_task_start(t) == IA_OK, "A%d: starting the long task", round);
  if (t != NULL) tu_wait_status(t, IA_STATUS_STARTED, stress_ms(200));
  caller cl = {c, round, false};
  pthread_t tc, tsh;
  bool up_c = stress_spawn(&tc, caller_main, &cl);
  tu_sleep_ms(stress_ms(20));
  bool up_sh = stress_spawn(&tsh, shutter_main, s);
  ia_slave_shutdown(s);
  uint32_t bound = stress_ms(8000);
  if (up_sh) stress_join(tsh, bound, "a second ia_slave_shutdown()");
  if (t != NULL) {
    ia_code jr = ia_task_join(t, stress_ms(6000));
    if (STRESS_CHECK(jr == IA_OK, "A%d: the long task is still %s after the slave's shutdown", round,
                     ia_status_name(ia_task_status(t))))
      judge_task(t, false, 0, false, "A: the long task");
    ia_task_free(t);
  }
  stress_bounded(slave_join, s, bound, "ia_slave_join() after ia_slave_shutdown()");
  if (up_c) stress_join(tc, bound, "a caller of a shutting-down slave");
  STRESS_CHECK(cl.saw_end || !ia_conn_is_connected(c), "A%d: the caller never saw the connection end", round);
  STRESS_CHECK(tu_wait_connected(c, false, TU_WAIT_MS), "A%d: still connected after the slave's join", round);
  ia_conn_free(c);
  stress_bounded(slave_free, s, bound, "ia_slave_free() after its join");
}

/* ---- B: the master shuts down under callers and async tasks ---- */

typedef struct btask {
  ia_task *task;
  bool is_sum, typed;
  int64_t want;
  atomic_int cbs;
} btask;

typedef struct starter {
  ia_conn **conns;
  btask *tasks;
  atomic_int n; /* tasks started so far */
  atomic_bool stop;
} starter;

static void count_cb(ia_task *t, void *user) {
  (void)t;
  atomic_fetch_add(&((btask *)user)->cbs, 1);
}

/* Fills bt with a Sum (or, one in eight, a short Sleep) on c, callbacks set. */
static bool btask_make(btask *bt, ia_conn *c, stress_rng *r, int i) {
  bt->is_sum = i % 8 != 7;
  bt->typed = i % 2 == 0;
  atomic_init(&bt->cbs, 0);
  if (bt->is_sum) {
    int64_t a = stress_operand(r), b = stress_operand(r);
    bt->want = a + b;
    bt->task = stress_sum_task(c, a, b, bt->typed);
  } else {
    bt->task = tu_sleep_task_new(c, LONG_MS);
  }
  return bt->task != NULL && STRESS_CHECK(ia_task_on_complete(bt->task, count_cb, bt) == IA_OK &&
                                              ia_task_on_fail(bt->task, count_cb, bt) == IA_OK,
                                          "callbacks refused on an IDLE task");
}

static void *starter_main(void *arg) {
  starter *st = arg;
  stress_rng r;
  stress_rng_seed(&r, 500);
  for (int i = 0; i < B_TASKS && !atomic_load(&st->stop); i++) {
    btask *bt = &st->tasks[i];
    if (!btask_make(bt, st->conns[i % B_CONNS], &r, i)) break;
    ia_code rc = ia_task_start(bt->task); /* a refusal shows as the task's status */
    (void)rc;
    atomic_store(&st->n, i + 1);
    tu_sleep_ms(1);
  }
  return NULL;
}

static void round_b(int round) {
  ia_slave *slaves[B_CONNS] = {0};
  ia_conn *conns[B_CONNS] = {0};
  ia_master *m = stress_master("stress-shutdown-b", CHANNEL);
  bool ready = m != NULL;
  for (int i = 0; ready && i < B_CONNS; i++) {
    char name[32];
    snprintf(name, sizeof name, "b-%d", i);
    ia_code rc = IA_OK;
    ready = (slaves[i] = stress_slave(CHANNEL, 50)) != NULL &&
            STRESS_CHECK((conns[i] = stress_connect(m, name, ia_slave_port(slaves[i]), &rc)) != NULL,
                         "B%d: connect: %s", round, ia_code_name(rc));
  }
  btask *tasks = calloc(B_TASKS, sizeof *tasks);
  if (ready && STRESS_CHECK(tasks != NULL, "no memory")) {
    caller callers[B_CONNS];
    for (int i = 0; i < B_CONNS; i++)
      callers[i] = (caller){conns[i], round * 10 + i, false};
    starter st = {.conns = conns, .tasks = tasks};
    pthread_t tc[B_CONNS], ts;
    bool up_c[B_CONNS];
    for (int i = 0; i < B_CONNS; i++)
      up_c[i] = stress_spawn(&tc[i], caller_main, &callers[i]);
    bool up_s = stress_spawn(&ts, starter_main, &st);
    tu_sleep_ms(stress_ms(30 + 20 * (uint32_t)(round % 3)));
    ia_master_shutdown(m);
    uint32_t bound = stress_ms(8000);
    for (int i = 0; i < B_CONNS; i++)
      if (up_c[i]) stress_join(tc[i], bound, "a caller of a shutting-down master");
    atomic_store(&st.stop, true);
    if (up_s) stress_join(ts, bound, "the async starter");
    stress_bounded(master_join, m, bound, "ia_master_join() after ia_master_shutdown()");
    int n = atomic_load(&st.n);
    for (int i = 0; i < n; i++) {
      btask *bt = &tasks[i];
      ia_code jr = ia_task_join(bt->task, TU_WAIT_MS);
      if (STRESS_CHECK(jr == IA_OK, "B%d: task %d still %s after the master's join", round, i,
                       ia_status_name(ia_task_status(bt->task)))) {
        judge_task(bt->task, bt->is_sum, bt->want, bt->typed, "B: an async task");
        int cbs = atomic_load(&bt->cbs);
        STRESS_CHECK(cbs == 1, "B%d: task %d ran %d callbacks", round, i, cbs);
      }
      ia_task_free(bt->task);
    }
    for (int i = 0; i < B_CONNS; i++)
      STRESS_CHECK(!ia_conn_is_connected(conns[i]), "B%d: b-%d still connected after the master's join",
                   round, i);
  }
  free(tasks);
  for (int i = 0; i < B_CONNS; i++)
    ia_conn_free(conns[i]);
  if (m != NULL) stress_bounded(master_free, m, stress_ms(8000), "ia_master_free() after its join");
  for (int i = 0; i < B_CONNS; i++)
    if (slaves[i] != NULL) stress_bounded(slave_free, slaves[i], stress_ms(8000), "ia_slave_free()");
}

/* ---- C: the master is freed under async tasks nobody holds any more ---- */

static void round_c(int round) {
  ia_slave *slaves[2] = {0};
  ia_master *m = stress_master("stress-shutdown-c", CHANNEL);
  btask tasks[C_TASKS];
  int n = 0;
  bool ready = m != NULL;
  ia_conn *conns[2] = {0};
  for (int i = 0; ready && i < 2; i++) {
    char name[32];
    snprintf(name, sizeof name, "c-%d", i);
    ia_code rc = IA_OK;
    ready = (slaves[i] = stress_slave(CHANNEL, 50)) != NULL &&
            STRESS_CHECK((conns[i] = stress_connect(m, name, ia_slave_port(slaves[i]), &rc)) != NULL,
                         "C%d: connect: %s", round, ia_code_name(rc));
  }
  if (ready) {
    stress_rng r;
    stress_rng_seed(&r, (uint64_t)round + 600);
    for (; n < C_TASKS; n++) {
      if (!btask_make(&tasks[n], conns[n % 2], &r, n + round)) break;
      ia_code rc = ia_task_start(tasks[n].task); /* a failure shows in its callbacks */
      (void)rc;
      /* Dropped at once: "a running task goes on; its outcome is dropped",
       * but its callbacks still say how it ended. */
      ia_task_free(tasks[n].task);
      tasks[n].task = NULL;
    }
    tu_sleep_ms(stress_ms((uint32_t)(round % 3) * 5));
  }
  /* The connections are left to the master: ia_master_free() frees them. */
  if (m != NULL) stress_bounded(master_free, m, stress_ms(8000), "ia_master_free() with tasks in flight");
  for (int i = 0; i < n; i++) {
    int cbs = atomic_load(&tasks[i].cbs);
    STRESS_CHECK(cbs == 1, "C%d: a task dropped by its owner ran %d callbacks by the end of ia_master_free()",
                 round, cbs);
  }
  for (int i = 0; i < 2; i++)
    if (slaves[i] != NULL) stress_bounded(slave_free, slaves[i], stress_ms(8000), "ia_slave_free()");
}

int main(void) {
  stress_begin("stress_shutdown", "slave and master shutdown and free with calls and tasks in flight", 120);
  ia_master *m = stress_master("stress-shutdown-a", CHANNEL);
  int a = 0, b = 0, c = 0;
  if (m != NULL) {
    stress_phase("A: ia_slave_shutdown() under a running task and a caller");
    for (uint64_t d = stress_deadline(BUDGET_MS); a < ROUNDS_A && stress_before(d);)
      round_a(m, ++a);
    ia_master_free(m);
  }
  stress_phase("B: ia_master_shutdown() under callers and async tasks");
  for (uint64_t d = stress_deadline(BUDGET_MS); b < ROUNDS_B && stress_before(d);)
    round_b(++b);
  stress_phase("C: ia_master_free() under async tasks their owner dropped");
  for (uint64_t d = stress_deadline(BUDGET_MS); c < ROUNDS_C && stress_before(d);)
    round_c(++c);

  stress_report("A rounds: slave shut down under a task and a caller", a);
  stress_report("B rounds: master shut down under callers and async tasks", b);
  stress_report("C rounds: master freed under dropped async tasks", c);
  stress_report("calls with the right sum", atomic_load(&calls_ok));
  stress_report("calls ended by the shutdown (601/101/701/502)", atomic_load(&calls_going));
  stress_report("tasks COMPLETED right", atomic_load(&tasks_ok));
  stress_report("tasks stopped by the slave's grace: FAILED 101 SHUTTING_DOWN", atomic_load(&tasks_cancelled));
  stress_report("tasks LOST with a shutdown code", atomic_load(&tasks_lost));
  stress_report("tasks START_FAILED with a shutdown code or 601", atomic_load(&tasks_start_failed));
  STRESS_CHECK(a > 0 && b > 0 && c > 0 && calls_going > 0 && tasks_lost + tasks_cancelled > 0,
               "a phase did nothing, or nothing was ended by a shutdown");
  return stress_end();
}
