/* The sum example end to end on loopback: task and ia_call forms, TaskFail,
 * callbacks, join with a timeout and fan-out to many slaves. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sum_handlers.h"
#include "fixture.h"

#define CHANNEL 21

static fixture setup(void) {
  return fixture_default(CHANNEL);
}

static void teardown(fixture *f) {
  fixture_free(f);
}

/* What the callbacks saw. They run on the master's I/O thread; join()
 * returning after them is what makes these plain fields safe to read. */
typedef struct calls {
  int n;
  int order[8];
  ia_task *task[8];
  ia_status status[8];
  int64_t sum[8];
  bool has_sum[8];
} calls;

static void record(calls *c, int tag, ia_task *task) {
  if (c->n < 8) {
    c->order[c->n] = tag;
    c->task[c->n] = task;
    c->status[c->n] = ia_task_status(task);
    size_t len = 0;
    const uint8_t *res = ia_task_result(task, &len);
    c->has_sum[c->n] = res != NULL && tu_sum_result(res, len, &c->sum[c->n]);
  }
  c->n++;
}

static void on_complete_1(ia_task *t, void *user) {
  record(user, 1, t);
}
static void on_complete_2(ia_task *t, void *user) {
  record(user, 2, t);
}
static void on_fail_cb(ia_task *t, void *user) {
  record(user, 99, t);
}

Test(sum, task_completes_and_callbacks_run_in_order_before_join, .timeout = 30) {
  fixture f = setup();
  calls c = {0};
  ia_task *t = tu_sum_task_new(f.conn, 40, 2);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_status(t), IA_STATUS_IDLE);
  cr_assert_eq(ia_task_on_complete(t, on_complete_1, &c), IA_OK);
  cr_assert_eq(ia_task_on_complete(t, on_complete_2, &c), IA_OK);
  cr_assert_eq(ia_task_on_fail(t, on_fail_cb, &c), IA_OK);

  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "join timed out");
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);

  size_t len = 0;
  const uint8_t *res = ia_task_result(t, &len);
  cr_assert_not_null(res);
  int64_t sum = 0;
  cr_assert(tu_sum_result(res, len, &sum), "the result is not a SumResult");
  cr_assert_eq(sum, 42);

  cr_assert_eq(c.n, 2, "%d callbacks had run when join returned (on_fail must not run)", c.n);
  cr_assert_eq(c.order[0], 1);
  cr_assert_eq(c.order[1], 2);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(c.task[i], t);
    cr_assert_eq(c.status[i], IA_STATUS_COMPLETED, "callback %d saw %s", i, ia_status_name(c.status[i]));
    cr_assert(c.has_sum[i] && c.sum[i] == 42, "callback %d did not see the result", i);
  }

  /* Callbacks may only be added while the task is IDLE. */
  cr_assert_neq(ia_task_on_complete(t, on_complete_1, &c), IA_OK);
  cr_assert_neq(ia_task_on_fail(t, on_fail_cb, &c), IA_OK);

  ia_task_free(t);
  teardown(&f);
}

Test(sum, call_returns_the_sum, .timeout = 30) {
  fixture f = setup();
  size_t len;
  uint8_t *req = tu_sum_task(7, -10, true, true, &len);
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_call(f.conn, SUM_METHOD_SUM, req, len, &reply, &reply_len, TU_WAIT_MS, &err), &err);
  int64_t sum = 0;
  cr_assert(tu_sum_result(reply, reply_len, &sum), "the reply is not a SumResult");
  cr_assert_eq(sum, -3);
  free(reply);
  free(req);
  teardown(&f);
}

static void assert_fail_info(const uint8_t *data, size_t len) {
  char message[64] = "";
  cr_assert_not_null(data, "no FailInfo data");
  cr_assert(tu_fail_info(data, len, message, sizeof message), "the data is not a FailInfo");
  cr_assert_str_eq(message, "ab not found");
}

Test(sum, missing_b_fails_with_603_and_fail_info, .timeout = 30) {
  fixture f = setup();
  calls c = {0};
  size_t len;
  uint8_t *req = tu_sum_task(1, 0, true, false, &len);
  ia_task *t = ia_conn_new_task(f.conn, SUM_METHOD_SUM, req, len);
  free(req);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_on_complete(t, on_complete_1, &c), IA_OK);
  cr_assert_eq(ia_task_on_fail(t, on_fail_cb, &c), IA_OK);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "join timed out");

  TU_ASSERT_STATUS(t, IA_STATUS_FAILED);
  const ia_error *e = ia_task_error(t);
  cr_assert_not_null(e);
  cr_assert_eq(e->code, IA_TASK_FAILED);
  cr_assert_str_eq(e->message, "A or B not found in task data.");
  assert_fail_info(e->data, e->data_len);
  size_t rlen = 0;
  cr_assert_null(ia_task_result(t, &rlen), "a failed task has a result");

  cr_assert_eq(c.n, 1, "%d callbacks ran, expected on_fail alone", c.n);
  cr_assert_eq(c.order[0], 99, "on_complete ran for a failed task");
  cr_assert_eq(c.status[0], IA_STATUS_FAILED);

  ia_task_free(t);
  teardown(&f);
}

Test(sum, call_missing_b_returns_603_with_fail_info, .timeout = 30) {
  fixture f = setup();
  size_t len;
  uint8_t *req = tu_sum_task(0, 5, false, true, &len);
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_call(f.conn, SUM_METHOD_SUM, req, len, &reply, &reply_len, TU_WAIT_MS, &err);
  free(req);
  free(reply);
  cr_assert_eq(rc, IA_TASK_FAILED, "ia_call returned %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(err.code, IA_TASK_FAILED);
  cr_assert_str_eq(err.message, "A or B not found in task data.");
  assert_fail_info(err.data, err.data_len);
  ia_error_clear(&err);
  teardown(&f);
}

Test(sum, join_with_timeout_returns_and_the_task_goes_on, .timeout = 30) {
  fixture f = setup();
  ia_task *t = tu_sleep_task_new(f.conn, 1000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);

  cr_assert_eq(ia_task_join(t, 50), IA_TIMEOUT, "a 50 ms join of a 1000 ms task did not time out");
  ia_status s = ia_task_status(t);
  cr_assert(s == IA_STATUS_STARTING || s == IA_STATUS_STARTED, "status after a timed-out join: %s",
            ia_status_name(s));

  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "the task did not finish");
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  size_t len = 0;
  const uint8_t *res = ia_task_result(t, &len);
  uint32_t slept = 0;
  cr_assert(res != NULL && tu_sleep_result(res, len, &slept), "the result is not a SleepResult");
  cr_assert_eq(slept, 1000);
  ia_task_free(t);
  teardown(&f);
}

#define FAN_OUT 8

Test(sum, fan_out_to_8_slaves, .timeout = 60) {
  ia_slave *slaves[FAN_OUT];
  ia_conn *conns[FAN_OUT];
  ia_task *tasks[FAN_OUT];
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  TU_ASSERT_OK(tu_master_start("fan-out-master", CHANNEL, &m, &err), &err);
  for (int i = 0; i < FAN_OUT; i++) {
    ia_slave_config config;
    tu_slave_config(&config, CHANNEL);
    TU_ASSERT_OK(tu_slave_start(&config, &slaves[i], &err), &err);
    char name[16];
    snprintf(name, sizeof name, "learner-%d", i);
    TU_ASSERT_OK(tu_connect(m, name, ia_slave_port(slaves[i]), &conns[i], &err), &err);
  }
  /* Start all, then join all: every task is in flight at once. */
  for (int i = 0; i < FAN_OUT; i++) {
    tasks[i] = tu_sum_task_new(conns[i], 1000 * i, i);
    cr_assert_not_null(tasks[i]);
    cr_assert_eq(ia_task_start(tasks[i]), IA_OK, "start %d", i);
  }
  for (int i = 0; i < FAN_OUT; i++)
    assert_sum_task_done(tasks[i], i, 1000 * i + i);
  cr_assert_eq(tu_handler_calls(), FAN_OUT, "the handlers ran %d times", tu_handler_calls());
  for (int i = 0; i < FAN_OUT; i++)
    ia_task_free(tasks[i]);
  for (int i = 0; i < FAN_OUT; i++)
    ia_conn_free(conns[i]);
  ia_master_free(m);
  for (int i = 0; i < FAN_OUT; i++)
    ia_slave_free(slaves[i]);
}
