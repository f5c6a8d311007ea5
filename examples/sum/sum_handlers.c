/*
 * The sum example's handlers. The typed stubs decode each request and free it
 * after the handler; a handler ends its task with exactly one
 * sum_adder_<method>_reply_ok() or ia_pb_fail(), as every Interaction handler
 * must end with exactly one reply or failure.
 */
#include "sum_handlers.h"

#include <stdio.h>
#include <string.h>

/* Ending a task fails only if it already had an outcome or memory ran out;
 * the master hears of the task either way (as TASK_ERROR at worst), so the
 * handler only reports it. */
static void ended(ia_code rc, const ia_task_ctx *task) {
  if (rc != IA_OK) fprintf(stderr, "sum handler: ending %s: %s\n", ia_task_ctx_method(task), ia_strerror(rc));
}

static void handle_sum(ia_task_ctx *task, const Sum__SumTask *req, void *user) {
  (void)user;
  if (!req->has_a || !req->has_b) {
    Sum__FailInfo info = SUM__FAIL_INFO__INIT;
    info.message = "ab not found";
    /* Without memory for FailInfo the failure itself still goes out. */
    ended(ia_pb_fail(task, IA_TASK_FAILED, "A or B not found in task data.", &info.base), task);
    return;
  }
  Sum__SumResult res = SUM__SUM_RESULT__INIT;
  res.has_sum = 1;
  /* Wrap on overflow like the two's-complement int64 a user would expect,
   * without signed-overflow undefined behaviour. */
  res.sum = (int64_t)((uint64_t)req->a + (uint64_t)req->b);
  ended(sum_adder_sum_reply_ok(task, &res), task);
}

static void handle_sleep(ia_task_ctx *task, const Sum__SleepTask *req, void *user) {
  (void)user;
  uint32_t ms = req->has_ms ? req->ms : 0;
  if (!ia_task_ctx_sleep(task, ms)) {
    ended(ia_task_ctx_fail(task, IA_CANCELLED, "cancelled", NULL, 0), task);
    return;
  }
  Sum__SleepResult res = SUM__SLEEP_RESULT__INIT;
  res.has_slept_ms = 1;
  res.slept_ms = ms;
  ended(sum_adder_sleep_reply_ok(task, &res), task);
}

const sum_adder_handlers sum_handlers = {.sum = handle_sum, .sleep = handle_sleep};

ia_code sum_serve(ia_slave *slave) {
  return sum_adder_serve(slave, &sum_handlers, NULL);
}

/* Decodes the task's payload as `desc`, or fails the task with TASK_ERROR
 * (as the generated stubs do) and returns NULL. */
static ProtobufCMessage *decode_request(ia_task_ctx *task, const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *req = NULL;
  if (ia_pb_request(task, desc, &req) != IA_OK) {
    char message[IA_ERROR_MESSAGE_MAX];
    snprintf(message, sizeof message, "the payload of %s is not an encoded %s", ia_task_ctx_method(task),
             desc->name);
    ended(ia_task_ctx_fail(task, IA_TASK_ERROR, message, NULL, 0), task);
    return NULL;
  }
  return req;
}

void sum_handler(ia_task_ctx *task, void *user) {
  const char *method = ia_task_ctx_method(task);
  ProtobufCMessage *req = NULL;
  if (strcmp(method, SUM_METHOD_SUM) == 0) {
    req = decode_request(task, &sum__sum_task__descriptor);
    if (req != NULL) sum_handlers.sum(task, (const Sum__SumTask *)req, user);
  } else if (strcmp(method, SUM_METHOD_SLEEP) == 0) {
    req = decode_request(task, &sum__sleep_task__descriptor);
    if (req != NULL) sum_handlers.sleep(task, (const Sum__SleepTask *)req, user);
  } else {
    char message[IA_ERROR_MESSAGE_MAX];
    snprintf(message, sizeof message, "unknown method %s", method);
    ended(ia_task_ctx_fail(task, IA_UNKNOWN_METHOD, message, NULL, 0), task);
  }
  if (req != NULL) protobuf_c_message_free_unpacked(req, NULL);
}
