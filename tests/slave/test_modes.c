/* The four task modes: under a burst of tasks from one master, exactly
 * which run, which wait and which are refused with which code; the order
 * the queued modes run them in; N really running at once in the multi
 * modes; no task lost or run twice. And a waiting task's cancel, deadline,
 * and a master that goes away with tasks waiting. */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define CHANNEL 91
#define METHOD "modes/Run"
#define MAX_RUNS 64

/* ---- a handler that logs what ran, in what order, how many at once ---- */

static struct {
  pthread_mutex_t mu;
  int order[MAX_RUNS]; /* the tasks' labels, in the order they started */
  int runs, now, most;
} runlog = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void runlog_reset(void) {
  pthread_mutex_lock(&runlog.mu);
  runlog.runs = runlog.now = runlog.most = 0;
  pthread_mutex_unlock(&runlog.mu);
}

/* The payload: the task's label and how long it runs, two uint32s. */
static void run_handler(ia_task_ctx *task, void *user) {
  (void)user;
  size_t len = 0;
  const uint8_t *p = ia_task_ctx_payload(task, &len);
  uint32_t v[2] = {0, 0};
  if (len == sizeof v) memcpy(v, p, sizeof v);
  pthread_mutex_lock(&runlog.mu);
  if (runlog.runs < MAX_RUNS) runlog.order[runlog.runs] = (int)v[0];
  runlog.runs++;
  if (++runlog.now > runlog.most) runlog.most = runlog.now;
  pthread_mutex_unlock(&runlog.mu);
  bool whole = ia_task_ctx_sleep(task, v[1]);
  pthread_mutex_lock(&runlog.mu);
  runlog.now--;
  pthread_mutex_unlock(&runlog.mu);
  if (whole)
    tu_ended(ia_task_ctx_reply(task, p, len));
  else
    tu_ended(ia_task_ctx_fail(task, IA_CANCELLED, "cancelled", NULL, 0));
}

typedef struct setup {
  ia_slave *slave;
  ia_master *master;
  ia_conn *conn;
} setup;

static setup start(ia_mode mode, uint32_t workers, uint32_t queue) {
  runlog_reset();
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.mode = mode;
  config.workers = workers;
  config.queue = queue;
  config.grace_ms = 100;
  setup s = {0};
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_slave_new(&config, &s.slave, &err), &err);
  cr_assert_eq(ia_slave_register(s.slave, METHOD, run_handler, NULL), IA_OK);
  TU_ASSERT_OK(ia_slave_start(s.slave, &err), &err);
  TU_ASSERT_OK(tu_master_start("modes", CHANNEL, &s.master, &err), &err);
  TU_ASSERT_OK(tu_connect(s.master, "slave", ia_slave_port(s.slave), &s.conn, &err), &err);
  cr_assert_eq(ia_conn_slave_mode(s.conn), (uint32_t)mode, "Welcome says mode %u",
               ia_conn_slave_mode(s.conn));
  return s;
}

static void finish(setup *s) {
  ia_conn_free(s->conn);
  ia_master_free(s->master);
  ia_slave_free(s->slave);
}

static ia_task *run_task(ia_conn *conn, uint32_t label, uint32_t ms) {
  const uint32_t v[2] = {label, ms};
  ia_task *t = ia_conn_new_task(conn, METHOD, v, sizeof v);
  cr_assert_not_null(t);
  return t;
}

/* Starts n tasks labelled 1..n at once, each running `ms`, and joins them. */
static void burst(ia_conn *conn, ia_task **t, int n, uint32_t ms) {
  for (int i = 0; i < n; i++)
    t[i] = run_task(conn, (uint32_t)i + 1, ms);
  for (int i = 0; i < n; i++)
    cr_assert_eq(ia_task_start(t[i]), IA_OK);
  for (int i = 0; i < n; i++)
    cr_assert_eq(ia_task_join(t[i], 20000), IA_OK, "task %d never ended", i + 1);
}

static void assert_done(ia_task *t, int label) {
  cr_assert_eq(ia_task_status(t), IA_STATUS_COMPLETED, "task %d: %s %s (%s)", label,
               ia_status_name(ia_task_status(t)), ia_code_name(ia_task_error(t)->code),
               ia_task_error(t)->message);
  size_t len = 0;
  const uint8_t *r = ia_task_result(t, &len);
  uint32_t v[2] = {0, 0};
  cr_assert_eq(len, sizeof v);
  memcpy(v, r, sizeof v);
  cr_assert_eq(v[0], (uint32_t)label, "task %d got task %u's result", label, v[0]);
}

static void assert_refused(ia_task *t, int label, ia_code code) {
  cr_assert_eq(ia_task_status(t), IA_STATUS_START_FAILED, "task %d: %s, not refused", label,
               ia_status_name(ia_task_status(t)));
  cr_assert_eq(ia_task_error(t)->code, code, "task %d refused with %s, not %s", label,
               ia_code_name(ia_task_error(t)->code), ia_code_name(code));
}

static int cmp_int(const void *a, const void *b) {
  return *(const int *)a - *(const int *)b;
}

/* Exactly the tasks `labels` ran, each once, in that order (or in any
 * order when `any_order`: they started at once on several workers), with
 * at most `most` running at once. */
static void assert_ran_as(const int *labels, int n, int most, bool any_order) {
  pthread_mutex_lock(&runlog.mu);
  int runs = runlog.runs, seen_most = runlog.most;
  int order[MAX_RUNS], want[MAX_RUNS];
  memcpy(order, runlog.order, sizeof order);
  pthread_mutex_unlock(&runlog.mu);
  cr_assert_eq(runs, n, "%d tasks ran, not %d", runs, n);
  memcpy(want, labels, (size_t)n * sizeof *labels);
  if (any_order) {
    qsort(order, (size_t)n, sizeof *order, cmp_int);
    qsort(want, (size_t)n, sizeof *want, cmp_int);
  }
  for (int i = 0; i < n; i++)
    cr_assert_eq(order[i], want[i], "run %d was task %d, not task %d", i + 1, order[i], want[i]);
  cr_assert_eq(seen_most, most, "%d ran at once at most, not %d", seen_most, most);
}

static void assert_ran(const int *labels, int n, int most) {
  assert_ran_as(labels, n, most, false);
}

/* Waits (bounded) until n tasks have started. */
static void wait_runs(int n) {
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  for (;;) {
    pthread_mutex_lock(&runlog.mu);
    int runs = runlog.runs;
    pthread_mutex_unlock(&runlog.mu);
    if (runs >= n) return;
    cr_assert_lt(tu_now_ms(), deadline, "only %d of %d tasks started", runs, n);
    tu_sleep_ms(1);
  }
}

/* ---- each mode under a burst ---- */

Test(modes, nonblocking_single_runs_one_and_refuses_the_rest_with_601, .timeout = 60) {
  setup s = start(IA_MODE_NONBLOCKING_SINGLE, 0, 0);
  cr_assert_eq(ia_conn_slave_capacity(s.conn), 1);
  ia_task *t[3];
  burst(s.conn, t, 3, 300);
  assert_done(t[0], 1);
  assert_refused(t[1], 2, IA_TASK_ALREADY_EXIST);
  assert_refused(t[2], 3, IA_TASK_ALREADY_EXIST);
  assert_ran((const int[]){1}, 1, 1);
  for (int i = 0; i < 3; i++)
    ia_task_free(t[i]);
  finish(&s);
}

Test(modes, nonblocking_multi_runs_n_at_once_and_refuses_the_rest_with_601, .timeout = 60) {
  setup s = start(IA_MODE_NONBLOCKING_MULTI, 3, 0);
  cr_assert_eq(ia_conn_slave_capacity(s.conn), 3, "Welcome says capacity %u", ia_conn_slave_capacity(s.conn));
  ia_task *t[5];
  burst(s.conn, t, 5, 300);
  for (int i = 0; i < 3; i++)
    assert_done(t[i], i + 1);
  assert_refused(t[3], 4, IA_TASK_ALREADY_EXIST);
  assert_refused(t[4], 5, IA_TASK_ALREADY_EXIST);
  assert_ran_as((const int[]){1, 2, 3}, 3, 3, true);
  for (int i = 0; i < 5; i++)
    ia_task_free(t[i]);
  /* Free again: the next burst is taken whole. */
  runlog_reset();
  burst(s.conn, t, 3, 10);
  for (int i = 0; i < 3; i++) {
    assert_done(t[i], i + 1);
    ia_task_free(t[i]);
  }
  finish(&s);
}

Test(modes, blocking_single_runs_in_order_and_refuses_605_when_the_queue_is_full, .timeout = 60) {
  setup s = start(IA_MODE_BLOCKING_SINGLE, 0, 2);
  cr_assert_eq(ia_conn_slave_capacity(s.conn), 1);
  ia_task *t[4];
  burst(s.conn, t, 4, 150);
  for (int i = 0; i < 3; i++)
    assert_done(t[i], i + 1);
  assert_refused(t[3], 4, IA_QUEUE_FULL);
  assert_ran((const int[]){1, 2, 3}, 3, 1);
  for (int i = 0; i < 4; i++)
    ia_task_free(t[i]);
  finish(&s);
}

Test(modes, blocking_multi_runs_n_at_once_in_order_and_refuses_605_past_the_queue, .timeout = 60) {
  setup s = start(IA_MODE_BLOCKING_MULTI, 2, 2);
  cr_assert_eq(ia_conn_slave_capacity(s.conn), 2);
  ia_task *t[6];
  burst(s.conn, t, 6, 200);
  for (int i = 0; i < 4; i++)
    assert_done(t[i], i + 1);
  assert_refused(t[4], 5, IA_QUEUE_FULL);
  assert_refused(t[5], 6, IA_QUEUE_FULL);
  /* 1 and 2 start at once, in either order; 3 and 4 after them. */
  pthread_mutex_lock(&runlog.mu);
  int first = runlog.order[0], second = runlog.order[1];
  pthread_mutex_unlock(&runlog.mu);
  cr_assert((first == 1 && second == 2) || (first == 2 && second == 1), "the first two runs were %d and %d",
            first, second);
  pthread_mutex_lock(&runlog.mu);
  int third = runlog.order[2], fourth = runlog.order[3];
  int runs = runlog.runs, most = runlog.most;
  pthread_mutex_unlock(&runlog.mu);
  cr_assert((third == 3 && fourth == 4) || (third == 4 && fourth == 3), "the queued two ran as %d and %d",
            third, fourth);
  cr_assert_eq(runs, 4, "%d runs", runs);
  cr_assert_eq(most, 2, "%d ran at once", most);
  for (int i = 0; i < 6; i++)
    ia_task_free(t[i]);
  finish(&s);
}

/* ---- what happens to a waiting task ---- */

Test(modes, a_waiting_task_cancelled_ends_cancelled_and_never_runs, .timeout = 60) {
  setup s = start(IA_MODE_BLOCKING_SINGLE, 0, 4);
  ia_task *a = run_task(s.conn, 1, 2000), *b = run_task(s.conn, 2, 10);
  cr_assert_eq(ia_task_start(a), IA_OK);
  wait_runs(1); /* a runs, so b waits */
  cr_assert_eq(ia_task_start(b), IA_OK);
  cr_assert_eq(tu_wait_status(b, IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED,
               "the queued task was not Accepted");
  uint64_t t0 = tu_now_ms();
  cr_assert_eq(ia_task_cancel(b), IA_OK);
  cr_assert_eq(ia_task_join(b, TU_WAIT_MS), IA_OK);
  cr_assert_lt(tu_now_ms() - t0, 1500, "the waiting task ended only with the one before it");
  TU_ASSERT_STATUS(b, IA_STATUS_CANCELLED);
  cr_assert_eq(ia_task_error(b)->code, IA_CANCELLED);
  cr_assert_eq(ia_task_cancel(a), IA_OK);
  cr_assert_eq(ia_task_join(a, TU_WAIT_MS), IA_OK);
  assert_ran((const int[]){1}, 1, 1);
  ia_task_free(a);
  ia_task_free(b);
  finish(&s);
}

Test(modes, a_waiting_task_past_its_deadline_ends_607_and_never_runs, .timeout = 60) {
  setup s = start(IA_MODE_BLOCKING_SINGLE, 0, 4);
  ia_task *a = run_task(s.conn, 1, 400), *b = run_task(s.conn, 2, 10);
  cr_assert_eq(ia_task_set_deadline(b, 100), IA_OK);
  cr_assert_eq(ia_task_start(a), IA_OK);
  wait_runs(1);
  cr_assert_eq(ia_task_start(b), IA_OK);
  cr_assert_eq(ia_task_join(b, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(b, IA_STATUS_TIMED_OUT);
  cr_assert_eq(ia_task_error(b)->code, IA_DEADLINE_EXCEEDED);
  cr_assert_eq(ia_task_join(a, TU_WAIT_MS), IA_OK);
  assert_done(a, 1);
  tu_sleep_ms(100); /* the worker has taken b from the queue by now, and must not have run it */
  assert_ran((const int[]){1}, 1, 1);
  ia_task_free(a);
  ia_task_free(b);
  finish(&s);
}

Test(modes, a_master_that_goes_away_takes_its_waiting_tasks_with_it, .timeout = 60) {
  setup s = start(IA_MODE_BLOCKING_SINGLE, 0, 4);
  ia_task *t[3];
  for (int i = 0; i < 3; i++) {
    t[i] = run_task(s.conn, (uint32_t)i + 1, 500);
    cr_assert_eq(ia_task_start(t[i]), IA_OK);
    if (i == 0) wait_runs(1);
  }
  cr_assert_eq(tu_wait_status(t[2], IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED);
  ia_conn_free(s.conn); /* its tasks end LOST here; on the slave the running one is cancelled */
  s.conn = NULL;
  for (int i = 0; i < 3; i++) {
    TU_ASSERT_STATUS(t[i], IA_STATUS_LOST);
    ia_task_free(t[i]);
  }
  /* The next master finds the slave free, and only task 1 ever ran. */
  ia_error err = IA_ERROR_INIT;
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  ia_code rc;
  while ((rc = tu_connect(s.master, "next", ia_slave_port(s.slave), &s.conn, &err)) == IA_ALREADY_CONNECTED &&
         tu_now_ms() < deadline) {
    ia_error_clear(&err);
    tu_sleep_ms(10);
  }
  TU_ASSERT_OK(rc, &err);
  ia_task *n = run_task(s.conn, 9, 1);
  cr_assert_eq(ia_task_start(n), IA_OK);
  cr_assert_eq(ia_task_join(n, TU_WAIT_MS), IA_OK);
  assert_done(n, 9);
  ia_task_free(n);
  tu_sleep_ms(700); /* long enough for 2 and 3 to have run, had they been kept */
  assert_ran((const int[]){1, 9}, 2, 1);
  finish(&s);
}

/* Blocking calls from several threads on one connection to a multi slave
 * run side by side: the caller that reads hands the replies of the others
 * to them. Four 300 ms tasks on four workers take about 300 ms, not 1.2 s. */
typedef struct caller {
  ia_conn *conn;
  uint32_t label;
  ia_code rc;
} caller;

static void *call_main(void *arg) {
  caller *c = arg;
  const uint32_t v[2] = {c->label, 300};
  void *reply = NULL;
  size_t len = 0;
  ia_error err = IA_ERROR_INIT;
  c->rc = ia_call(c->conn, METHOD, v, sizeof v, &reply, &len, 10000, &err);
  ia_error_clear(&err);
  free(reply);
  return NULL;
}

Test(modes, blocking_calls_from_four_threads_run_side_by_side_on_a_multi_slave, .timeout = 60) {
  setup s = start(IA_MODE_NONBLOCKING_MULTI, 4, 0);
  pthread_t t[4];
  caller c[4];
  uint64_t t0 = tu_now_ms();
  for (int i = 0; i < 4; i++) {
    c[i] = (caller){s.conn, (uint32_t)i + 1, IA_OK};
    cr_assert_eq(pthread_create(&t[i], NULL, call_main, &c[i]), 0);
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  uint64_t took = tu_now_ms() - t0;
  for (int i = 0; i < 4; i++)
    cr_assert_eq(c[i].rc, IA_OK, "caller %d: %s", i + 1, ia_code_name(c[i].rc));
  assert_ran_as((const int[]){1, 2, 3, 4}, 4, 4, true);
  cr_log_info("four 300 ms calls on four threads took %llu ms", (unsigned long long)took);
  if (!tu_valgrind())
    cr_assert_lt(took, 1000, "they ran one after another: %llu ms", (unsigned long long)took);
  finish(&s);
}

/* One worker reads the master and runs its tasks itself, one after
 * another, with no hand-off between threads. A task of its that runs long
 * must not hold up the ones behind it: the loop takes the socket over and
 * hands them to the other workers. */
Test(modes, a_long_task_on_the_reading_worker_does_not_hold_up_the_tasks_behind_it, .timeout = 60) {
  const ia_mode modes[] = {IA_MODE_NONBLOCKING_MULTI, IA_MODE_BLOCKING_MULTI};
  for (int m = 0; m < 2; m++) {
    setup s = start(modes[m], 2, modes[m] == IA_MODE_BLOCKING_MULTI ? 2 : 0);
    ia_task *a = run_task(s.conn, 1, 10000), *b = run_task(s.conn, 2, 0);
    cr_assert_eq(ia_task_start(a), IA_OK);
    wait_runs(1);
    cr_assert_eq(ia_task_start(b), IA_OK);
    cr_assert_eq(ia_task_join(b, 5000), IA_OK, "%s: the task behind a long one waited for it",
                 ia_mode_name(modes[m]));
    assert_done(b, 2);
    cr_assert_eq(ia_task_join(a, 0), IA_TIMEOUT, "the long task ended early");
    cr_assert_eq(ia_task_cancel(a), IA_OK);
    cr_assert_eq(ia_task_join(a, TU_WAIT_MS), IA_OK);
    cr_assert_eq(ia_task_error(a)->code, IA_CANCELLED, "%s", ia_code_name(ia_task_error(a)->code));
    assert_ran_as((const int[]){1, 2}, 2, 2, false);
    /* And then the short tasks run as before, one after another. */
    runlog_reset();
    for (uint32_t i = 1; i <= 20; i++) {
      ia_task *t = run_task(s.conn, i, 0);
      cr_assert_eq(ia_task_start(t), IA_OK);
      cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
      assert_done(t, (int)i);
      ia_task_free(t);
    }
    ia_task_free(a);
    ia_task_free(b);
    finish(&s);
  }
}

/* The read side goes from the loop to a worker with each master's Hello,
 * and back when it leaves: a master that leaves and dials again at once,
 * over and over, finds it served every time, in every mode. (The workers'
 * note of which connection is theirs to read was once the slave's, not the
 * connection's: the old master's reader, ending, wiped out the new one's.) */
Test(modes, a_master_that_dials_again_at_once_is_read_in_every_mode, .timeout = 60) {
  for (int m = IA_MODE_NONBLOCKING_SINGLE; m <= IA_MODE_BLOCKING_MULTI; m++) {
    setup s = start((ia_mode)m, 0, 0);
    ia_error err = IA_ERROR_INIT;
    for (uint32_t i = 1; i <= 40; i++) {
      ia_task *t = run_task(s.conn, i, 0);
      cr_assert_eq(ia_task_start(t), IA_OK);
      cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "%s, round %u: no answer", ia_mode_name((ia_mode)m),
                   i);
      assert_done(t, (int)i);
      ia_task_free(t);
      TU_ASSERT_OK(ia_conn_disconnect(s.conn, NULL, 0, TU_WAIT_MS, &err), &err);
      ia_conn_free(s.conn);
      TU_ASSERT_OK(tu_connect(s.master, "slave", ia_slave_port(s.slave), &s.conn, &err), &err);
    }
    finish(&s);
  }
}
