/* A handler that returns no outcome, or fails with IA_OK, is reported as
 * TASK_ERROR (604): never a hang (the original's join() hung forever), and the
 * slot is released for the next task. */
#include <stdlib.h>

#include "fixture.h"

#define CHANNEL 41

static void assert_task_error_then_sum(const char *method) {
  fixture f = fixture_default(CHANNEL);
  ia_task *t = ia_conn_new_task(f.conn, method, NULL, 0);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "%s: the task never ended", method);
  TU_ASSERT_STATUS(t, IA_STATUS_FAILED);
  cr_assert_eq(ia_task_error(t)->code, IA_TASK_ERROR, "%s: error %d %s", method, (int)ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code));
  cr_assert_eq(tu_handler_calls(), 1);
  ia_task_free(t);

  /* The same through ia_call. */
  ia_error err = IA_ERROR_INIT;
  void *reply = NULL;
  size_t reply_len = 0;
  ia_code rc = ia_call(f.conn, method, NULL, 0, &reply, &reply_len, TU_WAIT_MS, &err);
  free(reply);
  cr_assert_eq(rc, IA_TASK_ERROR, "%s via ia_call: %d %s (%s)", method, rc, ia_code_name(rc), err.message);
  ia_error_clear(&err);

  /* The slot was released: the next task on the same slave completes. */
  assert_sum_works(f.conn, 20, 22);
  fixture_free(&f);
}

Test(handler_errors, no_reply_is_604_and_the_next_task_completes, .timeout = 30) {
  assert_task_error_then_sum(TU_METHOD_NO_REPLY);
}

Test(handler_errors, fail_with_ok_is_604_and_the_next_task_completes, .timeout = 30) {
  assert_task_error_then_sum(TU_METHOD_FAIL_OK);
}
