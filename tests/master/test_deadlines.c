/* Deadlines, metadata and cancellation end to end: a task's deadline
 * travels as Task.deadline_ms, the handler reads what is left of it, the
 * slave cancels an overdue task and says 607, and the master ends it
 * TIMED_OUT at the deadline even when the slave never answers; metadata set
 * on the master reaches the handler; a cancelled Sleep ends CANCELLED and
 * frees the slot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "sum_handlers.h"

#define CHANNEL 64
#define SLACK_MS 1500u
#define METHOD_LEFT "test.Deadline/Left"
#define METHOD_META "test.Meta/Echo"

/* Replies with what is left of the deadline, as decimal text. */
static void left_handler(ia_task_ctx *task, void *user) {
  (void)user;
  char text[32];
  int n = snprintf(text, sizeof text, "%u", ia_task_ctx_deadline_ms(task));
  tu_ended(ia_task_ctx_reply(task, text, (size_t)n));
}

/* Replies with "trace-id|user" from the task's metadata ("-" if absent). */
static void meta_handler(ia_task_ctx *task, void *user) {
  (void)user;
  const char *a = ia_task_ctx_metadata(task, "trace-id"), *b = ia_task_ctx_metadata(task, "user");
  char text[1024];
  int n = snprintf(text, sizeof text, "%s|%s", a ? a : "-", b ? b : "-");
  if (n >= (int)sizeof text) n = (int)sizeof text - 1;
  tu_ended(ia_task_ctx_reply(task, text, (size_t)n));
}

static fixture start(void) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  fixture f = {0};
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_slave_new(&config, &f.slave, &err), &err);
  cr_assert_eq(ia_slave_register(f.slave, METHOD_LEFT, left_handler, NULL), IA_OK);
  cr_assert_eq(ia_slave_register(f.slave, METHOD_META, meta_handler, NULL), IA_OK);
  TU_ASSERT_OK(ia_slave_start(f.slave, &err), &err);
  TU_ASSERT_OK(tu_master_start("m", CHANNEL, &f.master, &err), &err);
  TU_ASSERT_OK(tu_connect(f.master, "slave", ia_slave_port(f.slave), &f.conn, &err), &err);
  return f;
}

/* A Sum succeeds within 3 s: a cancelled task freed the slot. */
static void assert_slot_frees(ia_conn *conn) {
  ia_error err = IA_ERROR_INIT;
  int64_t sum = 0;
  ia_code rc;
  uint64_t deadline = tu_now_ms() + 3000;
  while ((rc = tu_call_sum(conn, 40, 2, &sum, &err)) == IA_TASK_ALREADY_EXIST && tu_now_ms() < deadline) {
    ia_error_clear(&err);
    tu_sleep_ms(10);
  }
  cr_assert_eq(rc, IA_OK, "a Sum after the task: %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(sum, 42);
}

Test(deadlines, a_sleep_past_its_deadline_ends_timed_out_with_607, .timeout = 30) {
  fixture f = start();
  ia_task *t = tu_sleep_task_new(f.conn, 5000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_set_deadline(t, 200), IA_OK);
  uint64_t t0 = tu_now_ms();
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_set_deadline(t, 100), IA_INVALID_ARGUMENT, "a started task's deadline changed");
  cr_assert_eq(ia_task_join(t, 200 + SLACK_MS), IA_OK, "the task outlived its deadline");
  uint64_t took = tu_now_ms() - t0;
  TU_ASSERT_STATUS(t, IA_STATUS_TIMED_OUT);
  cr_assert_eq(ia_task_error(t)->code, IA_DEADLINE_EXCEEDED, "code %d %s (%s)", ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code), ia_task_error(t)->message);
  cr_log_info("a 200 ms deadline ended the task after %llu ms: %s", (unsigned long long)took,
              ia_task_error(t)->message);
  if (!tu_valgrind()) cr_assert_geq(took, 190, "ended after only %llu ms", (unsigned long long)took);
  assert_slot_frees(f.conn); /* the slave cancelled the Sleep too */
  ia_task_free(t);
  fixture_free(&f);
}

Test(deadlines, a_typed_task_takes_its_deadline_from_opts, .timeout = 30) {
  fixture f = start();
  Sum__SleepTask req = SUM__SLEEP_TASK__INIT;
  req.has_ms = 1;
  req.ms = 5000;
  const ia_metadata md[] = {{"trace-id", "typed"}};
  const ia_call_opts opts = {.timeout_ms = 200, .metadata = md, .n_metadata = 1};
  ia_task *t = sum_adder_sleep_start(f.conn, &req, &opts);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_join(t, 200 + SLACK_MS), IA_OK, "the typed task outlived its deadline");
  TU_ASSERT_STATUS(t, IA_STATUS_TIMED_OUT);
  cr_assert_eq(ia_task_error(t)->code, IA_DEADLINE_EXCEEDED);
  ia_task_free(t);
  assert_slot_frees(f.conn);
  fixture_free(&f);
}

Test(deadlines, the_handler_reads_what_is_left_of_its_deadline, .timeout = 30) {
  fixture f = start();
  ia_error err = IA_ERROR_INIT;
  void *reply = NULL;
  size_t len = 0;
  const ia_call_opts opts = {.timeout_ms = 3000};
  TU_ASSERT_OK(ia_call_with(f.conn, METHOD_LEFT, NULL, 0, &reply, &len, &opts, &err), &err);
  char text0[32]; /* the reply is not NUL-terminated */
  snprintf(text0, sizeof text0, "%.*s", (int)len, (const char *)reply);
  unsigned long left = strtoul(text0, NULL, 10);
  free(reply);
  cr_assert(left > 2000 && left <= 3000, "a 3000 ms call's handler saw %lu ms left", left);

  /* A task without a deadline has none. */
  ia_task *t = ia_conn_new_task(f.conn, METHOD_LEFT, NULL, 0);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  const uint8_t *res = ia_task_result(t, &len);
  char text[32];
  snprintf(text, sizeof text, "%.*s", (int)len, (const char *)res);
  cr_assert_eq(strtoul(text, NULL, 10), UINT32_MAX, "a task without a deadline saw '%s'", text);
  ia_task_free(t);
  fixture_free(&f);
}

Test(deadlines, metadata_from_the_master_reaches_the_handler, .timeout = 30) {
  fixture f = start();
  ia_error err = IA_ERROR_INIT;
  void *reply = NULL;
  size_t len = 0;
  const ia_metadata md[] = {{"trace-id", "abc-123"}, {"user", "learner-7"}};
  const ia_call_opts opts = {.timeout_ms = TU_WAIT_MS, .metadata = md, .n_metadata = 2};
  TU_ASSERT_OK(ia_call_with(f.conn, METHOD_META, NULL, 0, &reply, &len, &opts, &err), &err);
  cr_assert_eq(len, strlen("abc-123|learner-7"));
  cr_assert_arr_eq(reply, "abc-123|learner-7", len, "the handler saw '%.*s'", (int)len, (char *)reply);
  free(reply);

  /* On a task, with a value long enough that the frame is not a small one. */
  char big[600];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  ia_task *t = ia_conn_new_task(f.conn, METHOD_META, NULL, 0);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_add_metadata(t, "user", big), IA_OK);
  cr_assert_eq(ia_task_add_metadata(t, NULL, "v"), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_add_metadata(t, "late", "v"), IA_INVALID_ARGUMENT, "metadata added to a started task");
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  const uint8_t *res = ia_task_result(t, &len);
  cr_assert_eq(len, 2 + strlen(big), "reply of %zu bytes", len);
  cr_assert_arr_eq(res, "-|", 2);
  cr_assert_arr_eq(res + 2, big, strlen(big), "the handler saw '%.*s'", (int)(len > 40 ? 40 : len), (const char *)res);
  ia_task_free(t);
  fixture_free(&f);
}

Test(deadlines, a_cancelled_sleep_ends_cancelled_and_frees_the_slot, .timeout = 30) {
  fixture f = start();
  ia_task *t = tu_sleep_task_new(f.conn, 60000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED);
  cr_assert_eq(ia_task_cancel(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "a cancelled Sleep did not end");
  TU_ASSERT_STATUS(t, IA_STATUS_CANCELLED);
  cr_assert_eq(ia_task_error(t)->code, IA_CANCELLED, "code %d %s", ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code));
  assert_slot_frees(f.conn);
  ia_task_free(t);
  fixture_free(&f);
}

/* ---- against a fake slave that never answers ---- */

typedef struct mute {
  bool task_seen, deadline_sent, cancel_seen;
  uint64_t deadline_ms, task_id;
} mute;

static void mute_slave(tu_fake *fake, int fd) {
  mute *m = fake->user;
  if (!tu_raw_welcome(fd)) return;
  uint64_t end = tu_now_ms() + 5000;
  while (tu_now_ms() < end) { /* until the master closes */
    Interaction__V1__Frame *fr = NULL;
    if (tu_raw_read_frame(fd, 100, &fr) == 0) break;
    if (!fr) continue;
    if (fr->body_case == INTERACTION__V1__FRAME__BODY_TASK) {
      m->task_seen = true;
      m->task_id = fr->id;
      m->deadline_sent = fr->task->has_deadline_ms;
      m->deadline_ms = fr->task->deadline_ms;
    } else if (fr->body_case == INTERACTION__V1__FRAME__BODY_CANCEL && fr->id == m->task_id) {
      m->cancel_seen = true;
    }
    interaction__v1__frame__free_unpacked(fr, NULL);
  }
}

Test(deadlines, a_slave_that_never_answers_still_times_out_at_the_deadline, .timeout = 30) {
  mute m = {0};
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, mute_slave, &m, 0));
  ia_error err = IA_ERROR_INIT;
  ia_master *master = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("m", CHANNEL, &master, &err), &err);
  TU_ASSERT_OK(tu_connect(master, "mute", fake.port, &conn, &err), &err);
  ia_task *t = tu_sum_task_new(conn, 1, 2);
  cr_assert_not_null(t);
  const ia_call_opts opts = {.timeout_ms = 150};
  cr_assert_eq(ia_task_set_opts(t, &opts), IA_OK);
  uint64_t t0 = tu_now_ms();
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, 150 + SLACK_MS), IA_OK, "no end at the deadline without an answer");
  uint64_t took = tu_now_ms() - t0;
  TU_ASSERT_STATUS(t, IA_STATUS_TIMED_OUT);
  cr_assert_eq(ia_task_error(t)->code, IA_DEADLINE_EXCEEDED, "code %d %s (%s)", ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code), ia_task_error(t)->message);
  if (!tu_valgrind()) cr_assert_geq(took, 150, "TIMED_OUT after only %llu ms", (unsigned long long)took);
  cr_log_info("a 150 ms deadline with a mute slave ended the task after %llu ms", (unsigned long long)took);
  cr_assert(ia_conn_is_connected(conn), "a deadline must not end the connection");
  ia_task_free(t);
  ia_conn_free(conn);
  ia_master_free(master);
  tu_fake_join(&fake);
  cr_assert(m.task_seen && m.deadline_sent, "the Task frame carried no deadline_ms");
  cr_assert(m.deadline_ms > 0 && m.deadline_ms <= 150, "deadline_ms %llu", (unsigned long long)m.deadline_ms);
  cr_assert(m.cancel_seen, "the slave was not told to cancel the overdue task");
}

Test(deadlines, the_slave_answers_607_to_a_task_past_its_deadline, .timeout = 30) {
  /* A master of another implementation that only sends the deadline: the
   * slave itself stops the Sleep and says why. */
  fixture f = start();
  ia_conn_free(f.conn); /* the seat is the raw master's */
  f.conn = NULL;
  int fd = -1;
  uint64_t until = tu_now_ms() + TU_WAIT_MS;
  bool welcomed = false;
  while (!welcomed && tu_now_ms() < until) {
    if (fd >= 0) close(fd);
    fd = tu_raw_connect(ia_slave_port(f.slave));
    welcomed = fd >= 0 && tu_raw_hello(fd, CHANNEL, "raw");
    if (!welcomed) tu_sleep_ms(10);
  }
  cr_assert(welcomed, "the raw master was not welcomed");
  size_t len;
  uint8_t *req = tu_sleep_task(5000, &len);
  Interaction__V1__Task task = INTERACTION__V1__TASK__INIT;
  task.method = SUM_METHOD_SLEEP;
  task.has_payload = 1;
  task.payload.data = req;
  task.payload.len = len;
  task.has_deadline_ms = 1;
  task.deadline_ms = 100;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = 7;
  frame.body_case = INTERACTION__V1__FRAME__BODY_TASK;
  frame.task = &task;
  uint64_t t0 = tu_now_ms();
  cr_assert(tu_raw_send(fd, &frame));
  free(req);
  bool failed = false;
  uint32_t code = 0;
  for (int i = 0; i < 10 && !failed; i++) { /* an Accepted may come first */
    Interaction__V1__Frame *fr = NULL;
    cr_assert_eq(tu_raw_read_frame(fd, 100 + SLACK_MS, &fr), 1, "no answer to a task past its deadline");
    if (fr->body_case == INTERACTION__V1__FRAME__BODY_FAIL && fr->id == 7) {
      failed = true;
      code = fr->fail->code;
    }
    interaction__v1__frame__free_unpacked(fr, NULL);
  }
  uint64_t took = tu_now_ms() - t0;
  cr_assert(failed, "no TaskFail for the overdue task");
  cr_assert_eq(code, IA_DEADLINE_EXCEEDED, "TaskFail code %u %s", code, ia_code_name((int)code));
  if (!tu_valgrind()) cr_assert_geq(took, 95, "607 after only %llu ms", (unsigned long long)took);
  close(fd);
  fixture_free(&f);
}
