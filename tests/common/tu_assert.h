/* Criterion assertions shared by the test files (only tests include this;
 * the helper library itself never asserts). */
#ifndef IA_TESTS_TU_ASSERT_H
#define IA_TESTS_TU_ASSERT_H

#include <criterion/criterion.h>

#include "tu.h"

/* Asserts that `call` returned IA_OK, printing the code and err's message. */
#define TU_ASSERT_OK(call, err)                                                                              \
  do {                                                                                                       \
    ia_code tu_rc_ = (call);                                                                                 \
    cr_assert_eq(tu_rc_, IA_OK, "%s returned %d %s: %s", #call, (int)tu_rc_, ia_code_name(tu_rc_),           \
                 (err)->message);                                                                            \
  } while (0)

/* Asserts that a task ended in `want`, printing its error otherwise. */
#define TU_ASSERT_STATUS(task, want)                                                                         \
  do {                                                                                                       \
    ia_status tu_s_ = ia_task_status(task);                                                                  \
    const ia_error *tu_e_ = ia_task_error(task);                                                             \
    cr_assert_eq(tu_s_, (want), "task status %s, expected %s (error %d %s: %s)", ia_status_name(tu_s_),      \
                 ia_status_name(want), tu_e_ ? (int)tu_e_->code : -1,                                        \
                 tu_e_ ? ia_code_name(tu_e_->code) : "", tu_e_ ? tu_e_->message : "");                       \
  } while (0)

#endif
