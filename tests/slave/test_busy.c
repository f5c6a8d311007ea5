/* The non-blocking single slot: a second task while one runs is refused with
 * TASK_ALREADY_EXIST, and the slot is free again before a reply reaches the
 * master (the original cleared it too late or too early). */
#include <stdlib.h>

#include "fixture.h"
#include "sum_handlers.h"

#define CHANNEL 31

Test(busy, a_long_task_reports_started, .timeout = 30) {
  fixture f = fixture_default(CHANNEL);
  ia_task *t = tu_sleep_task_new(f.conn, 1500);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  ia_status s = tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS);
  cr_assert_eq(s, IA_STATUS_STARTED, "a 1500 ms task is %s, never STARTED (no Accepted frame?)",
               ia_status_name(s));
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  ia_task_free(t);
  fixture_free(&f);
}

/* Starts a Sleep of `ms` and waits until it is STARTED: the slave then
 * holds the slot with it. */
static ia_task *start_holding(ia_conn *conn, uint32_t ms) {
  ia_task *t = tu_sleep_task_new(conn, ms);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  ia_status s = tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS);
  cr_assert_eq(s, IA_STATUS_STARTED, "the Sleep task is %s", ia_status_name(s));
  return t;
}

Test(busy, a_second_task_while_one_runs_is_601, .timeout = 30) {
  fixture f = fixture_default(CHANNEL);
  /* STARTED means the slave holds the slot: the Sum below must meet it busy. */
  ia_task *sleep = start_holding(f.conn, 800);

  ia_task *sum = tu_sum_task_new(f.conn, 1, 2);
  cr_assert_not_null(sum);
  cr_assert_eq(ia_task_start(sum), IA_OK, "the task could not even be sent");
  cr_assert_eq(ia_task_join(sum, TU_WAIT_MS), IA_OK, "the refused task never ended");
  TU_ASSERT_STATUS(sum, IA_STATUS_START_FAILED);
  cr_assert_eq(ia_task_error(sum)->code, IA_TASK_ALREADY_EXIST, "error %d %s", (int)ia_task_error(sum)->code,
               ia_code_name(ia_task_error(sum)->code));

  cr_assert_eq(ia_task_join(sleep, TU_WAIT_MS), IA_OK, "the Sleep task never ended");
  TU_ASSERT_STATUS(sleep, IA_STATUS_COMPLETED);
  size_t len = 0;
  const uint8_t *res = ia_task_result(sleep, &len);
  uint32_t slept = 0;
  cr_assert(res != NULL && tu_sleep_result(res, len, &slept), "no SleepResult");
  cr_assert_eq(slept, 800);
  cr_assert_eq(tu_handler_calls(), 1, "the refused task reached the handler");

  /* The slot is free again. */
  assert_sum_works(f.conn, 3, 4);
  ia_task_free(sum);
  ia_task_free(sleep);
  fixture_free(&f);
}

/* Regression guard for the original's busy flag: the slot must be released
 * before the reply is sent, so the next task, sent the moment the reply
 * arrives, never meets a busy slave. Alternates both call forms. */
Test(busy, sequential_sums_never_meet_a_busy_slot, .timeout = 60) {
  fixture f = fixture_default(CHANNEL);
  for (int i = 0; i < 200; i++) {
    int64_t sum = 0;
    ia_code rc;
    ia_error err = IA_ERROR_INIT;
    if (i % 2 == 0) {
      rc = tu_call_sum(f.conn, i, 1000, &sum, &err);
    } else {
      ia_task *t = tu_sum_task_new(f.conn, i, 1000);
      cr_assert_not_null(t);
      rc = ia_task_start(t);
      if (rc == IA_OK) rc = ia_task_join(t, TU_WAIT_MS);
      if (rc == IA_OK && ia_task_status(t) != IA_STATUS_COMPLETED) rc = ia_task_error(t)->code;
      size_t len = 0;
      const uint8_t *res = ia_task_result(t, &len);
      if (rc == IA_OK && (res == NULL || !tu_sum_result(res, len, &sum))) rc = IA_PROTOCOL_ERROR;
      ia_task_free(t);
    }
    cr_assert_eq(rc, IA_OK, "sum %d (%s form): %d %s %s", i, i % 2 ? "task" : "ia_call", rc, ia_code_name(rc),
                 err.message);
    cr_assert_eq(sum, i + 1000, "sum %d", i);
    ia_error_clear(&err);
  }
  fixture_free(&f);
}

/* A Sum while the slot is held: refused with 601, without reaching the handler. */
static void assert_refused_busy(ia_conn *conn) {
  ia_task *sum = tu_sum_task_new(conn, 5, 6);
  cr_assert_not_null(sum);
  cr_assert_eq(ia_task_start(sum), IA_OK);
  cr_assert_eq(ia_task_join(sum, TU_WAIT_MS), IA_OK, "the refused task never ended");
  TU_ASSERT_STATUS(sum, IA_STATUS_START_FAILED);
  cr_assert_eq(ia_task_error(sum)->code, IA_TASK_ALREADY_EXIST, "error %s",
               ia_code_name(ia_task_error(sum)->code));
  ia_task_free(sum);
}

/* While a long task runs, its master's socket is read by another thread
 * than the handler's (the relief worker, or the loop). Each long task
 * below is read by the thread that read for the one before, so the two
 * workers trade places every round: each round must still refuse, answer
 * a ping and see a Cancel, and no task may run twice or be lost. */
Test(busy, long_tasks_in_a_row_are_each_guarded_while_they_run, .timeout = 60) {
  fixture f = fixture_default(CHANNEL);
  const int rounds = 4;
  for (int r = 0; r < rounds; r++) {
    bool cancel = r % 2 == 1;
    ia_task *sleep = start_holding(f.conn, cancel ? 20000 : 400);
    assert_refused_busy(f.conn);
    ia_error err = IA_ERROR_INIT;
    TU_ASSERT_OK(ia_conn_ping(f.conn, TU_WAIT_MS, NULL, &err), &err);
    assert_refused_busy(f.conn);
    if (cancel) {
      uint64_t t0 = tu_now_ms();
      cr_assert_eq(ia_task_cancel(sleep), IA_OK);
      cr_assert_eq(ia_task_join(sleep, TU_WAIT_MS), IA_OK, "round %d: the cancelled Sleep never ended", r);
      if (!tu_valgrind())
        cr_assert_lt(tu_now_ms() - t0, 5000, "round %d: the Cancel was not seen while the task ran", r);
      TU_ASSERT_STATUS(sleep, IA_STATUS_CANCELLED);
    } else {
      cr_assert_eq(ia_task_join(sleep, TU_WAIT_MS), IA_OK, "round %d: the Sleep never ended", r);
      TU_ASSERT_STATUS(sleep, IA_STATUS_COMPLETED);
    }
    ia_task_free(sleep);
    cr_assert_eq(tu_handler_calls(), r + 1, "round %d: %d handler calls", r, tu_handler_calls());
  }
  assert_sum_works(f.conn, 7, 8);
  cr_assert_eq(tu_handler_calls(), rounds + 1);
  fixture_free(&f);
}

/* The master goes while a long task runs and another thread reads for it:
 * the handler is cancelled, and the next master finds the slot free. */
Test(busy, a_master_lost_during_a_long_task_frees_the_slot_for_the_next, .timeout = 60) {
  fixture f = fixture_default(CHANNEL);
  ia_task *sleep = start_holding(f.conn, 20000);
  assert_refused_busy(f.conn); /* read by the other thread: the hand-over is done */
  ia_conn_free(f.conn);
  ia_task_free(sleep);
  ia_error err = IA_ERROR_INIT;
  uint64_t t0 = tu_now_ms();
  f.conn = NULL;
  TU_ASSERT_OK(tu_connect(f.master, "next", ia_slave_port(f.slave), &f.conn, &err), &err);
  /* The cancelled Sleep lets go of the slot within its handler's poll. */
  int64_t sum = 0;
  ia_code rc;
  do {
    ia_error_clear(&err);
    rc = tu_call_sum(f.conn, 2, 3, &sum, &err);
  } while (rc == IA_TASK_ALREADY_EXIST && tu_now_ms() - t0 < 5000);
  cr_assert_eq(rc, IA_OK, "%s %s", ia_code_name(rc), err.message);
  cr_assert_eq(sum, 5);
  ia_error_clear(&err);
  fixture_free(&f);
}

/* Regression: the watchdog found a task long in the same look that
 * cancelled it at its deadline; the task behind it, already buffered,
 * started before the loop ran the take-over, and the take-over took that
 * one instead. When the watchdog then found *it* long, the loop took it
 * over a second time, splitting the buffer of the worker that read the
 * socket by then (a crash under ASan in test_call_timeouts). Each round
 * here lines that up: a Sleep past a short deadline, and a Sleep sent
 * right behind it. */
/* Ended as it may in a round: `done` (with 607 for TIMED_OUT), or refused
 * 601 because the slot was still held -- the master sees a deadline pass
 * on its own, a moment before the slave's handler has let go. */
static bool ended_as(ia_task *t, ia_status done) {
  ia_status st = ia_task_status(t);
  return st == done || (st == IA_STATUS_START_FAILED && ia_task_error(t)->code == IA_TASK_ALREADY_EXIST);
}

Test(busy, a_task_taken_over_is_never_taken_over_again, .timeout = 120) {
  fixture f = fixture_default(CHANNEL);
  int timed_out = 0, rounds = tu_valgrind() ? 40 : 300;
  for (int r = 0; r < rounds; r++) {
    ia_task *a = tu_sleep_task_new(f.conn, 1000), *b = tu_sleep_task_new(f.conn, 30);
    cr_assert(a && b);
    cr_assert_eq(ia_task_set_deadline(a, 1 + (uint32_t)(r % 4)), IA_OK);
    cr_assert_eq(ia_task_start(a), IA_OK);
    cr_assert_eq(ia_task_start(b), IA_OK);
    cr_assert_eq(ia_task_join(a, TU_WAIT_MS), IA_OK, "round %d: the Sleep past its deadline never ended", r);
    cr_assert_eq(ia_task_join(b, TU_WAIT_MS), IA_OK, "round %d: the Sleep behind it never ended", r);
    cr_assert(ended_as(a, IA_STATUS_TIMED_OUT), "round %d: the Sleep past its deadline is %s (%s)", r,
              ia_status_name(ia_task_status(a)), ia_code_name(ia_task_error(a)->code));
    cr_assert(ended_as(b, IA_STATUS_COMPLETED), "round %d: the Sleep behind it is %s (%s)", r,
              ia_status_name(ia_task_status(b)), ia_code_name(ia_task_error(b)->code));
    timed_out += ia_task_status(a) == IA_STATUS_TIMED_OUT;
    ia_task_free(a);
    ia_task_free(b);
  }
  /* Under valgrind the rounds overlap more: how many meet their deadline is timing. */
  if (!tu_valgrind())
    cr_assert_geq(timed_out, rounds / 3, "only %d of %d rounds ran their first Sleep to its deadline",
                  timed_out, rounds);
  assert_sum_works(f.conn, 1, 2);
  fixture_free(&f);
}
