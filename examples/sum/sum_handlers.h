/*
 * The task handler of the sum example: the seed's `MySlave`, written against
 * the public slave API. sum-slave serves it; tests run it in-process.
 *
 *   "sum.Adder/Sum"    SumTask{a, b}  -> SumResult{sum = a + b}, or TASK_FAILED
 *                      "A or B not found in task data." with FailInfo{"ab not found"}
 *   "sum.Adder/Sleep"  SleepTask{ms}  -> holds the slot for ms, SleepResult{slept_ms},
 *                      or CANCELLED if cancelled or the slave shuts down meanwhile
 *   anything else      UNKNOWN_METHOD
 */
#ifndef SUM_HANDLERS_H
#define SUM_HANDLERS_H

#include "interaction/slave.h"

#define SUM_METHOD_SUM "sum.Adder/Sum"
#define SUM_METHOD_SLEEP "sum.Adder/Sleep"

/* An ia_handler_fn: dispatches on ia_task_ctx_method(). `user` is unused. */
void sum_handler(ia_task_ctx *task, void *user);

#endif
