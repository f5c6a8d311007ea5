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

Test(busy, a_second_task_while_one_runs_is_601, .timeout = 30) {
  fixture f = fixture_default(CHANNEL);
  ia_task *sleep = tu_sleep_task_new(f.conn, 800);
  cr_assert_not_null(sleep);
  cr_assert_eq(ia_task_start(sleep), IA_OK);
  /* STARTED means the slave holds the slot: the Sum below must meet it busy. */
  ia_status s = tu_wait_status(sleep, IA_STATUS_STARTED, TU_WAIT_MS);
  cr_assert_eq(s, IA_STATUS_STARTED, "the Sleep task is %s", ia_status_name(s));

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
