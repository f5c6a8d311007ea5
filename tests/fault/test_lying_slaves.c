/* Fake slaves (raw sockets, tu_fake) that answer a master with what no real
 * slave sends, or stop reading, or stop answering: a failure with code 0 or
 * no code, a Pong for a task, a handshake refused with code 0, a socket
 * that never drains, calls that all time out. The master must never turn
 * these into success, must end every task, must not block a caller that was
 * promised not to block, and must not pile up what timed out. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sum.pb-c.h"
#include "sum_handlers.h"

#define CHANNEL 121

/* What a fake slave does after reading the Task, and what it saw. */
typedef struct lie {
  int kind;      /* the body it answers with: TaskFail, Refusal or Pong */
  bool has_code; /* TaskFail and Refusal: whether the code field is there */
  uint32_t code;
  int tasks; /* how many Tasks to read before answering the first */
  /* Written by the fake's thread, read after tu_fake_join(). */
  bool got_task;
  bool got_goodbye;
  uint32_t goodbye_code;
  bool closed;
} lie;

/* Reads frames until `n` Tasks came (skipping anything else); the id of the
 * first, or 0. */
static uint64_t read_tasks(int fd, int n) {
  uint64_t first = 0;
  int seen = 0;
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  while (seen < n && tu_now_ms() < deadline) {
    Interaction__V1__Frame *f = NULL;
    if (tu_raw_read_frame(fd, TU_WAIT_MS, &f) != 1) return 0;
    if (f->body_case == INTERACTION__V1__FRAME__BODY_TASK && seen++ == 0) first = f->id;
    interaction__v1__frame__free_unpacked(f, NULL);
  }
  return seen == n ? first : 0;
}

static void lie_script(tu_fake *fake, int fd) {
  lie *l = fake->user;
  if (!tu_raw_welcome(fd)) return;
  uint64_t id = read_tasks(fd, l->tasks ? l->tasks : 1);
  l->got_task = id != 0;
  if (!l->got_task) return;
  if (l->kind == INTERACTION__V1__FRAME__BODY_PONG)
    tu_raw_send_empty(fd, id, l->kind);
  else
    tu_raw_send_status(fd, id, l->kind, l->has_code, l->code, "a lie");
  l->got_goodbye = tu_raw_await_goodbye(fd, TU_WAIT_MS, &l->goodbye_code);
  l->closed = tu_raw_expect_closed(fd, TU_WAIT_MS);
}

static void rig_up(fake_fixture *r, lie *l) {
  fake_fixture_start(r, lie_script, l, CHANNEL, "lied-to");
}

/* After the lie: the connection is closed with Goodbye 704. */
static void rig_down_expect_704(fake_fixture *r, lie *l) {
  cr_assert(tu_wait_connected(r->conn, false, TU_WAIT_MS), "the connection stayed up after the lie");
  fake_fixture_free(r);
  cr_assert(l->got_task, "the fake slave got no Task");
  cr_assert(l->got_goodbye, "the master said no Goodbye");
  cr_assert_eq(l->goodbye_code, IA_PROTOCOL_ERROR, "Goodbye %u %s, expected 704", l->goodbye_code,
               ia_code_name((int)l->goodbye_code));
  cr_assert(l->closed, "the master did not close after its Goodbye");
}

/* One ia_call answered by `l`: IA_PROTOCOL_ERROR, no reply, 704 Goodbye. */
static void call_gets_704(lie *l) {
  fake_fixture r;
  rig_up(&r, l);
  size_t len;
  uint8_t *req = tu_sum_task(1, 2, true, true, &len);
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_call(r.conn, SUM_METHOD_SUM, req, len, &reply, &reply_len, TU_WAIT_MS, &err);
  free(req);
  cr_assert_eq(rc, IA_PROTOCOL_ERROR, "ia_call returned %d %s (reply %p): %s", rc, ia_code_name(rc), reply,
               err.message);
  cr_assert_null(reply);
  ia_error_clear(&err);
  rig_down_expect_704(&r, l);
}

/* Defect 5 (fix E): a TaskFail with code 0 became a FAILED task whose code
 * was IA_OK, so ia_call returned IA_OK with a NULL reply. */
Test(lying_slaves, task_fail_with_code_0_is_a_protocol_error, .timeout = 30) {
  lie l = {.kind = INTERACTION__V1__FRAME__BODY_FAIL, .has_code = true, .code = 0};
  call_gets_704(&l);
}

/* Defect 5 (fix E): a TaskFail without a code was taken for 603. */
Test(lying_slaves, task_fail_without_code_is_a_protocol_error, .timeout = 30) {
  lie l = {.kind = INTERACTION__V1__FRAME__BODY_FAIL, .has_code = false};
  call_gets_704(&l);
}

/* Defect 5 (fix E): a Refusal with code 0 was a START_FAILED task with code
 * IA_OK: ia_call returned IA_OK with a NULL reply. */
Test(lying_slaves, refusal_with_code_0_is_a_protocol_error, .timeout = 30) {
  lie l = {.kind = INTERACTION__V1__FRAME__BODY_REFUSAL, .has_code = true, .code = 0};
  call_gets_704(&l);
}

/* Defect 5 (fix E), through a generated stub: a TaskFail with code 0 made
 * sum_adder_sum() return IA_OK with *reply NULL. */
Test(lying_slaves, typed_call_answered_with_code_0_is_a_protocol_error, .timeout = 30) {
  lie l = {.kind = INTERACTION__V1__FRAME__BODY_FAIL, .has_code = true, .code = 0};
  fake_fixture r;
  rig_up(&r, &l);
  Sum__SumTask req = SUM__SUM_TASK__INIT;
  req.has_a = req.has_b = 1;
  Sum__SumResult *reply = NULL;
  ia_error err = IA_ERROR_INIT;
  const ia_call_opts opts = {.timeout_ms = TU_WAIT_MS};
  ia_code rc = sum_adder_sum(r.conn, &req, &reply, &opts, &err);
  cr_assert_eq(rc, IA_PROTOCOL_ERROR, "sum_adder_sum returned %d %s (reply %p)", rc, ia_code_name(rc),
               (void *)reply);
  cr_assert_null(reply);
  ia_error_clear(&err);
  rig_down_expect_704(&r, &l);
}

/* A fake slave that answers Hello with a Refusal of code 0. */
static void refuse_hello_with_0(tu_fake *fake, int fd) {
  (void)fake;
  Interaction__V1__Frame *hello = NULL;
  if (tu_raw_read_frame(fd, TU_WAIT_MS, &hello) != 1) return;
  uint64_t id = hello->id;
  interaction__v1__frame__free_unpacked(hello, NULL);
  tu_raw_send_status(fd, id, INTERACTION__V1__FRAME__BODY_REFUSAL, true, 0, "refused, successfully");
  tu_raw_expect_closed(fd, TU_WAIT_MS);
}

/* Defect 5 (fix E): a handshake refused with code 0 made ia_master_connect
 * return IA_OK and register the connection. It is IA_PROTOCOL_ERROR, and
 * nothing is registered. */
Test(lying_slaves, hello_refused_with_code_0_is_a_protocol_error, .timeout = 30) {
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, refuse_hello_with_0, NULL, 0));
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("refused", CHANNEL, &m, &err), &err);
  ia_conn *conn = NULL;
  ia_code rc = tu_connect(m, "liar", fake.port, &conn, &err);
  cr_assert_eq(rc, IA_PROTOCOL_ERROR, "ia_master_connect returned %d %s: %s", rc, ia_code_name(rc),
               err.message);
  ia_error_clear(&err);
  cr_assert_null(tu_found(m, "liar"), "a refused connection was registered");
  ia_conn_free(conn);
  ia_master_free(m);
  tu_fake_join(&fake);
}

/* Defect 12d (fix F): a Pong whose id named a pending task ended that task
 * LOST but left the connection up, with every other task pending. It is a
 * protocol error like any other: Goodbye 704, the connection closed, every
 * pending task LOST. */
Test(lying_slaves, pong_for_a_task_closes_the_connection_and_loses_every_task, .timeout = 30) {
  lie l = {.kind = INTERACTION__V1__FRAME__BODY_PONG, .tasks = 2};
  fake_fixture r;
  rig_up(&r, &l);
  ia_task *a = tu_sum_task_new(r.conn, 1, 2), *b = tu_sum_task_new(r.conn, 3, 4);
  cr_assert(a && b);
  cr_assert_eq(ia_task_start(a), IA_OK);
  cr_assert_eq(ia_task_start(b), IA_OK);
  cr_assert_eq(ia_task_join(a, TU_WAIT_MS), IA_OK, "the task answered with a Pong never ended");
  TU_ASSERT_STATUS(a, IA_STATUS_LOST);
  cr_assert_eq(ia_task_join(b, TU_WAIT_MS), IA_OK, "the other pending task never ended");
  TU_ASSERT_STATUS(b, IA_STATUS_LOST);
  ia_task_free(a);
  ia_task_free(b);
  rig_down_expect_704(&r, &l);
}

/* ---- a slave that stops reading ---- */

/* Welcomes the master, then never reads again until the test raises the
 * flag in `user`; closing with unread data then resets the connection. */
static void never_read(tu_fake *fake, int fd) {
  tu_flag *done = fake->user;
  if (!tu_raw_welcome(fd)) return;
  tu_flag_wait(done, 1, 60000);
}

#define BIG_TASK (4u << 20)
#define START_BOUND_MS 1000u

/* ia_task_start() on a thread of its own, so that a start that blocks is
 * seen blocking without the test waiting for it. */
typedef struct starter {
  ia_task *task;
  ia_code rc;
  tu_flag returned;
} starter;

static void *start_main(void *arg) {
  starter *st = arg;
  st->rc = ia_task_start(st->task);
  tu_flag_raise(&st->returned);
  return NULL;
}

/* Defect 8b: ia_task_start() is documented never to block, but it sent the
 * task itself with a blocking send and a 10 s send timeout: against a slave
 * that does not read, it blocked until the kernel's buffers drained or the
 * send timed out (30 s for a 4 MiB task here, a timeout per partial send).
 * Each start of a multi-MiB task must return within 1 s. */
Test(lying_slaves, task_start_does_not_block_on_a_slave_that_never_reads, .timeout = 90) {
  tu_fake fake;
  tu_flag done;
  tu_flag_init(&done);
  cr_assert(tu_fake_start(&fake, never_read, &done, 4096), "cannot start the fake slave");
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("blocked", CHANNEL, &m, &err), &err);
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_connect(m, "sink", fake.port, &conn, &err), &err);
  uint8_t *payload = calloc(1, BIG_TASK);
  cr_assert_not_null(payload);
  ia_task *tasks[3];
  for (int i = 0; i < 3; i++) {
    tasks[i] = ia_conn_new_task(conn, "test.Big/Upload", payload, BIG_TASK);
    cr_assert_not_null(tasks[i]);
    starter st = {.task = tasks[i]};
    tu_flag_init(&st.returned);
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, start_main, &st), 0);
    uint32_t bound = tu_valgrind() ? 60000u : START_BOUND_MS;
    cr_assert(tu_flag_wait(&st.returned, 1, bound), "ia_task_start %d of a %u-byte task blocked over %u ms",
              i, BIG_TASK, bound);
    pthread_join(thread, NULL);
    tu_flag_destroy(&st.returned);
  }
  free(payload);
  tu_flag_raise(&done); /* the fake slave resets the connection: every task ends */
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(ia_task_join(tasks[i], TU_WAIT_MS), IA_OK, "task %d never ended", i);
    ia_task_free(tasks[i]);
  }
  ia_conn_free(conn);
  ia_master_free(m);
  tu_fake_join(&fake);
  tu_flag_destroy(&done);
}

/* ---- a slave that stops answering ---- */

/* Welcomes the master, then reads everything it is sent and never answers,
 * until the master closes. */
static void read_and_never_answer(tu_fake *fake, int fd) {
  (void)fake;
  if (!tu_raw_welcome(fd)) return;
  uint64_t deadline = tu_now_ms() + 60000;
  while (tu_now_ms() < deadline) {
    Interaction__V1__Frame *frame = NULL;
    int r = tu_raw_read_frame(fd, 1000, &frame);
    if (r == 0) return;
    if (frame) interaction__v1__frame__free_unpacked(frame, NULL);
  }
}

#define PENDING_CALLS 2000
#define PENDING_BUDGET_MS 20000
/* Slack for buffers and caches, and far less than a task per call. */
#define PENDING_SLACK (64u << 10)
#define PENDING_PER_CALL_MAX 64u

/* Defect 12b (fix I): a timed-out call's task stayed on its connection's
 * pending list (about 1 KB each) until the connection closed, so a loop of
 * calls to a slave that stops answering grew without bound. 2,000 calls with
 * a 1 ms timeout must leave the heap within a few hundred KiB of where it
 * was. (Bounded in time as well: the old code took ~50 ms per call.) */
Test(lying_slaves, timed_out_calls_do_not_pile_up_on_the_connection, .timeout = 90) {
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, read_and_never_answer, NULL, 0));
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("pile-up", CHANNEL, &m, &err), &err);
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_connect(m, "silent", fake.port, &conn, &err), &err);
  size_t len;
  uint8_t *req = tu_sum_task(1, 2, true, true, &len);
  cr_assert_not_null(req);

  int calls = 0;
  size_t before = 0;
  uint64_t deadline = tu_now_ms() + PENDING_BUDGET_MS;
  for (; calls < PENDING_CALLS && tu_now_ms() < deadline; calls++) {
    if (calls == 20) before = tu_heap_in_use(); /* after the buffers of a first few calls */
    void *reply = NULL;
    size_t reply_len = 0;
    ia_code rc = ia_call(conn, SUM_METHOD_SUM, req, len, &reply, &reply_len, 1, &err);
    free(reply);
    cr_assert_eq(rc, IA_TIMEOUT, "call %d to a silent slave: %d %s", calls, rc, ia_code_name(rc));
    ia_error_clear(&err);
  }
  size_t after = tu_heap_in_use();
  cr_assert_geq(calls, 200, "only %d calls in %d ms", calls, PENDING_BUDGET_MS);
  size_t growth = after > before ? after - before : 0;
  cr_assert_leq(growth, PENDING_SLACK + PENDING_PER_CALL_MAX * (size_t)calls,
                "%d timed-out calls left %zu bytes on the heap (%zu per call)", calls - 20, growth,
                growth / (size_t)(calls - 20));
  cr_assert(ia_conn_is_connected(conn));

  free(req);
  ia_conn_free(conn);
  ia_master_free(m);
  tu_fake_join(&fake);
}
