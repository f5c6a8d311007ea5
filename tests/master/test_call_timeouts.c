/* Regression tests for blocking calls that time out: a typed call whose
 * reply comes late, how close to its timeout a call returns, and the code a
 * call gets when the slave stopped it at its deadline. (What a
 * timed-out call leaves behind is in tests/fault/test_lying_slaves.c.) */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fixture.h"
#include "sum.pb-c.h"
#include "sum_handlers.h"

#define CHANNEL 113

/* ---- a slave whose Sleep ignores Cancel, like a compute step ---- */

static tu_flag late_replied;

/* Sleep holds the slot for `ms` with a plain nanosleep (a handler that never
 * polls ia_task_ctx_cancelled()), then replies; everything else is the usual
 * test handler. */
static void stubborn_handler(ia_task_ctx *task, void *user) {
  if (strcmp(ia_task_ctx_method(task), SUM_METHOD_SLEEP) != 0) {
    tu_handler(task, user);
    return;
  }
  ProtobufCMessage *msg = NULL;
  if (ia_pb_request(task, &sum__sleep_task__descriptor, &msg) != IA_OK) {
    tu_ended(ia_task_ctx_fail(task, IA_TASK_ERROR, "not a SleepTask", NULL, 0));
    return;
  }
  Sum__SleepTask *req = (Sum__SleepTask *)msg;
  uint32_t ms = req->ms;
  sum__sleep_task__free_unpacked(req, NULL);
  tu_sleep_ms(ms);
  Sum__SleepResult res = SUM__SLEEP_RESULT__INIT;
  res.has_slept_ms = 1;
  res.slept_ms = ms;
  tu_ended(sum_adder_sleep_reply_ok(task, &res));
  tu_flag_raise(&late_replied);
}

/* Overwrites this thread's stack below the caller's frame, where the typed
 * call that just returned had its locals, and keeps it overwritten until the
 * late reply has been sent and read: a pointer the library kept into that
 * frame then reads the pattern instead of what the call left there. */
static __attribute__((noinline)) bool scribble_stack_until_replied(void) {
  volatile uint64_t junk[8192];
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
    junk[i] = 0x10; /* a "function pointer" that faults when called */
  bool replied = tu_flag_wait(&late_replied, 1, TU_WAIT_MS);
  tu_sleep_ms(300); /* the master's loop reads the reply meanwhile */
  __asm__ volatile("" : : "r"(junk) : "memory");
  return replied;
}

/* Defect 1: ia_pb_call put the address of a decoder on its own stack into
 * the task; on timeout the task stayed pending, and when the handler (which
 * ignores Cancel) answered later, the master's I/O thread called through the
 * stale pointer: SIGSEGV. Every generated blocking stub went this way. The
 * late reply must be dropped, the connection stay up and the next call work. */
Test(call_timeouts, typed_call_timeout_then_late_reply_does_not_crash, .timeout = 60) {
  tu_flag_init(&late_replied);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.handler = stubborn_handler;
  fixture f = fixture_start(&config, "typed-timeout");

  Sum__SleepTask req = SUM__SLEEP_TASK__INIT;
  req.has_ms = 1;
  req.ms = 400;
  Sum__SleepResult *reply = NULL;
  ia_error err = IA_ERROR_INIT;
  const ia_call_opts opts = {.timeout_ms = 50};
  ia_code rc = sum_adder_sleep(f.conn, &req, &reply, &opts, &err);
  cr_assert_eq(rc, IA_TIMEOUT, "a 400 ms Sleep with a 50 ms timeout returned %d %s", rc, ia_code_name(rc));
  cr_assert_null(reply);
  ia_error_clear(&err);

  cr_assert(scribble_stack_until_replied(), "the handler never replied");
  cr_assert(ia_conn_is_connected(f.conn), "the late reply closed the connection");
  Sum__SumTask sreq = SUM__SUM_TASK__INIT;
  sreq.has_a = sreq.has_b = 1;
  sreq.a = 20;
  sreq.b = 22;
  Sum__SumResult *sum = NULL;
  const ia_call_opts wait = {.timeout_ms = TU_WAIT_MS};
  TU_ASSERT_OK(sum_adder_sum(f.conn, &sreq, &sum, &wait, &err), &err);
  cr_assert_eq(sum->sum, 42);
  sum__sum_result__free_unpacked(sum, NULL);
  fixture_free(&f);
  tu_flag_destroy(&late_replied);
}

/* ---- how close to its timeout a call returns ---- */

/* Waits until the slave's slot is free again (a Sum is answered, not 601). */
static void wait_slot_free(ia_conn *conn) {
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  for (;;) {
    ia_error err = IA_ERROR_INIT;
    int64_t sum = 0;
    ia_code rc = tu_call_sum(conn, 1, 2, &sum, &err);
    ia_error_clear(&err);
    if (rc == IA_OK) return;
    cr_assert_eq(rc, IA_TASK_ALREADY_EXIST, "a Sum after a timed-out call: %d %s", rc, ia_code_name(rc));
    cr_assert_lt(tu_now_ms(), deadline, "the slot stayed busy");
    tu_sleep_ms(5);
  }
}

/* Defect 12a (fix I): a blocking caller read its reply with recv() and a
 * 50 ms receive tick, and looked at its deadline only between ticks, so
 * ia_call returned up to ~56 ms after its timeout. A 20 ms timeout against a
 * 500 ms handler must come back as IA_TIMEOUT within 20 + 15 ms. Several
 * rounds: after the first long handler the slave answers Accepted within a
 * millisecond or two, which is what left the caller in a whole tick. */
Test(call_timeouts, call_returns_within_15_ms_of_its_timeout, .timeout = 60) {
  fixture f = fixture_default(CHANNEL);
  size_t len;
  uint8_t *req = tu_sleep_task(500, &len);
  cr_assert_not_null(req);
  for (int round = 0; round < 6; round++) {
    void *reply = NULL;
    size_t reply_len = 0;
    ia_error err = IA_ERROR_INIT;
    uint64_t t0 = tu_now_ms();
    ia_code rc = ia_call(f.conn, SUM_METHOD_SLEEP, req, len, &reply, &reply_len, 20, &err);
    uint64_t took = tu_now_ms() - t0;
    free(reply);
    ia_error_clear(&err);
    cr_assert_eq(rc, IA_TIMEOUT, "round %d: %d %s", round, rc, ia_code_name(rc));
    if (!tu_valgrind())
      cr_assert_leq(took, 35, "round %d: a 20 ms timeout returned after %llu ms", round,
                    (unsigned long long)took);
    wait_slot_free(f.conn);
  }
  free(req);
  fixture_free(&f);
}

/* ---- the slave's deadline answer, read by another caller ---- */

#define EARLY_TIMEOUT_MS 200 /* the call's bound, which the slave hears as its deadline */
#define HOLD_MS 600          /* how long the log handler holds the thread that finishes that call's task */

typedef struct early_args {
  tu_flag slow_sent; /* the fake has read the other caller's task */
  bool answered;     /* written by the fake's thread, read after tu_fake_join() */
} early_args;

/* Reads the slow call's task (and says so), then the early call's, which it
 * answers at once as a slave does that stopped it at its deadline: TaskFail
 * 607. The slow call's result goes out once the early call is over. */
static void early_script(tu_fake *fake, int fd) {
  early_args *a = fake->user;
  if (!tu_raw_welcome(fd)) return;
  uint64_t slow = tu_raw_next_task(fd, "dl.Slow");
  if (!slow) return;
  tu_flag_raise(&a->slow_sent);
  uint64_t early = tu_raw_next_task(fd, "dl.Early");
  if (!early) return;
  if (!tu_raw_send_status(fd, early, INTERACTION__V1__FRAME__BODY_FAIL, true, IA_DEADLINE_EXCEEDED,
                          "the task's deadline passed"))
    return;
  tu_sleep_ms(HOLD_MS + 200);
  a->answered = tu_raw_send_empty(fd, slow, INTERACTION__V1__FRAME__BODY_RESULT); /* an empty result */
  uint32_t code;
  (void)tu_raw_await_goodbye(fd, TU_WAIT_MS, &code);
}

/* Holds the thread that finishes the early call's task (its line is logged
 * before the task ends): the call's own bound passes meanwhile. */
static void hold_log(ia_log_level level, const char *message, void *user) {
  (void)level;
  (void)user;
  if (strstr(message, "(dl.Early)")) tu_sleep_ms(HOLD_MS);
}

typedef struct slow_call {
  ia_conn *conn;
  ia_code rc;
} slow_call;

static void *slow_main(void *arg) {
  slow_call *s = arg;
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  s->rc = ia_call(s->conn, "dl.Slow", "x", 1, &reply, &reply_len, TU_WAIT_MS, &err);
  free(reply);
  ia_error_clear(&err);
  return NULL;
}

/* A call's bound reaches the slave as the task's deadline, and a slave that
 * stops the task there answers 607: the caller must hear TIMEOUT either way.
 * When another caller held the read side, read the 607 and was still
 * finishing the task as the call's own bound passed, the call found its
 * task off the pending list, waited for it, and returned its code as it
 * was: DEADLINE_EXCEEDED (stress_land met it under ASan in CI). */
Test(call_timeouts, a_deadline_answer_read_by_another_caller_is_a_timeout, .timeout = 60) {
  early_args a = {0};
  tu_flag_init(&a.slow_sent);
  fake_fixture r;
  fake_fixture_start(&r, early_script, &a, CHANNEL, "early");
  ia_log_level level = ia_log_get_level();
  ia_log_set_handler(hold_log, NULL);
  ia_log_set_level(IA_LOG_INFO);
  slow_call s = {.conn = r.conn};
  pthread_t slow;
  cr_assert_eq(pthread_create(&slow, NULL, slow_main, &s), 0);
  cr_assert(tu_flag_wait(&a.slow_sent, 1, TU_WAIT_MS), "the slow call's task never reached the fake slave");
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_call(r.conn, "dl.Early", "y", 1, &reply, &reply_len, EARLY_TIMEOUT_MS, &err);
  cr_assert_eq(rc, IA_TIMEOUT, "the early call returned %s (%s), not TIMEOUT", ia_code_name(rc), err.message);
  cr_assert_null(reply);
  ia_error_clear(&err);
  pthread_join(slow, NULL);
  cr_assert_eq(s.rc, IA_OK, "the slow call returned %s", ia_code_name(s.rc));
  ia_log_set_handler(NULL, NULL);
  ia_log_set_level(level);
  fake_fixture_free(&r);
  cr_assert(a.answered, "the fake slave did not get to answer the slow call");
  tu_flag_destroy(&a.slow_sent);
}
