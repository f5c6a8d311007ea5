/*
 * The handlers of the sum example: the seed's `MySlave`, written against the
 * typed stubs generated from sum.proto (sum.ia.h). sum-slave serves them;
 * tests run them in-process.
 *
 *   sum.Adder/Sum    SumTask{a, b} -> SumResult{sum = a + b}, or TASK_FAILED
 *                    "A or B not found in task data." with FailInfo{"ab not found"}
 *   sum.Adder/Sleep  SleepTask{ms} -> holds the slot for ms, SleepResult{slept_ms},
 *                    or CANCELLED if cancelled or the slave shuts down meanwhile
 */
#ifndef SUM_HANDLERS_H
#define SUM_HANDLERS_H

#include "interaction/slave.h"
#include "sum.ia.h"

/* The full method names, as they travel on the wire. */
#define SUM_METHOD_SUM SUM_ADDER_SUM_METHOD
#define SUM_METHOD_SLEEP SUM_ADDER_SLEEP_METHOD

/* The typed handlers, as sum_adder_serve() takes them. `user` is unused. */
extern const sum_adder_handlers sum_handlers;

/* Registers sum_handlers on `slave` (sum_adder_serve()); call before
 * ia_slave_start(). A slave with no catch-all handler then refuses any other
 * method with IA_UNKNOWN_METHOD. Returns what sum_adder_serve() returns. */
IA_MUST_CHECK ia_code sum_serve(ia_slave *slave);

/*
 * The same handlers as one catch-all ia_handler_fn, for a slave that
 * dispatches on the method itself (the test suite's handler wraps this one):
 * decodes the request for Sum or Sleep and runs the typed handler; a payload
 * that does not decode is IA_TASK_ERROR, any other method IA_UNKNOWN_METHOD.
 * `user` is passed on to the typed handler.
 */
void sum_handler(ia_task_ctx *task, void *user);

#endif
