/*
 * The sum example's handler. Each method decodes its request with protobuf-c,
 * does its work and ends the task with exactly one ia_task_ctx_reply() or
 * ia_task_ctx_fail(), as every Interaction handler must.
 */
#include "sum_handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sum.pb-c.h"

/* Packs `msg` into a fresh malloc'd buffer (free() it); NULL if out of memory. */
static uint8_t *pack_message(const ProtobufCMessage *msg, size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(*len ? *len : 1);
  if (buf != NULL) protobuf_c_message_pack(msg, buf);
  return buf;
}

/* Replies with `msg`. A failure to allocate is still reported to the master
 * rather than leaving the task without an outcome. */
static void reply_message(ia_task_ctx *task, const ProtobufCMessage *msg) {
  size_t len;
  uint8_t *buf = pack_message(msg, &len);
  if (buf == NULL) {
    ia_task_ctx_fail(task, IA_TASK_ERROR, "out of memory packing the result", NULL, 0);
    return;
  }
  ia_task_ctx_reply(task, buf, len);
  free(buf);
}

/* protobuf-c wants a non-NULL pointer even for an empty message. */
static const uint8_t *payload_of(ia_task_ctx *task, size_t *len) {
  static const uint8_t empty[1];
  const uint8_t *data = ia_task_ctx_payload(task, len);
  return data != NULL ? data : empty;
}

static void handle_sum(ia_task_ctx *task) {
  size_t len;
  const uint8_t *data = payload_of(task, &len);
  Sum__SumTask *req = sum__sum_task__unpack(NULL, len, data);
  if (req == NULL) {
    ia_task_ctx_fail(task, IA_TASK_ERROR, "payload is not a sum.SumTask", NULL, 0);
    return;
  }
  if (req->has_a && req->has_b) {
    Sum__SumResult res = SUM__SUM_RESULT__INIT;
    res.has_sum = 1;
    /* Wrap on overflow like the two's-complement int64 a user would expect,
     * without signed-overflow undefined behaviour. */
    res.sum = (int64_t)((uint64_t)req->a + (uint64_t)req->b);
    reply_message(task, &res.base);
  } else {
    Sum__FailInfo info = SUM__FAIL_INFO__INIT;
    info.message = "ab not found";
    size_t info_len = 0;
    uint8_t *buf = pack_message(&info.base, &info_len);
    /* Without memory for FailInfo the failure itself still goes out. */
    ia_task_ctx_fail(task, IA_TASK_FAILED, "A or B not found in task data.", buf, buf ? info_len : 0);
    free(buf);
  }
  sum__sum_task__free_unpacked(req, NULL);
}

static void handle_sleep(ia_task_ctx *task) {
  size_t len;
  const uint8_t *data = payload_of(task, &len);
  Sum__SleepTask *req = sum__sleep_task__unpack(NULL, len, data);
  if (req == NULL) {
    ia_task_ctx_fail(task, IA_TASK_ERROR, "payload is not a sum.SleepTask", NULL, 0);
    return;
  }
  uint32_t ms = req->has_ms ? req->ms : 0;
  sum__sleep_task__free_unpacked(req, NULL);

  if (!ia_task_ctx_sleep(task, ms)) {
    ia_task_ctx_fail(task, IA_CANCELLED, "cancelled", NULL, 0);
    return;
  }
  Sum__SleepResult res = SUM__SLEEP_RESULT__INIT;
  res.has_slept_ms = 1;
  res.slept_ms = ms;
  reply_message(task, &res.base);
}

void sum_handler(ia_task_ctx *task, void *user) {
  (void)user;
  const char *method = ia_task_ctx_method(task);
  if (strcmp(method, SUM_METHOD_SUM) == 0) {
    handle_sum(task);
  } else if (strcmp(method, SUM_METHOD_SLEEP) == 0) {
    handle_sleep(task);
  } else {
    char message[IA_ERROR_MESSAGE_MAX];
    snprintf(message, sizeof message, "unknown method %s", method);
    ia_task_ctx_fail(task, IA_UNKNOWN_METHOD, message, NULL, 0);
  }
}
