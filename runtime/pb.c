/*
 * Protobuf glue (interaction/pb.h): packs protobuf-c messages into the
 * byte-level calls of master.h and slave.h and unpacks what comes back. It
 * holds no state and owns no thread; every function is a thin, synchronous
 * adapter, so the typed stubs generated in gen/ stay a few lines each.
 *
 * It must never assert on what a peer sent: a payload that does not decode is
 * a status code, not a crash.
 */
#include "interaction/pb.h"

#include <stdint.h>
#include <stdlib.h>

#include "runtime/runtime-internal.h"

/* Small messages (the common case for control tasks) are packed on the
 * stack: the byte-level API copies the bytes anyway, so a heap buffer would
 * only add a malloc/free pair per call. */
#define PB_STACK_BYTES 512

/* A packed message: `data` points either at the caller's stack buffer or at
 * `heap`, which pb_packed_release() frees. */
typedef struct pb_packed {
  const uint8_t *data;
  size_t len;
  uint8_t *heap;
} pb_packed;

/* Packs `msg` into `stack` if it fits, else into a malloc'd buffer. False if
 * out of memory. */
static bool pb_pack(const ProtobufCMessage *msg, uint8_t *stack, size_t cap, pb_packed *out) {
  out->len = protobuf_c_message_get_packed_size(msg);
  out->heap = NULL;
  uint8_t *buf = stack;
  if (out->len > cap) {
    out->heap = malloc(out->len);
    if (out->heap == NULL) return false;
    buf = out->heap;
  }
  protobuf_c_message_pack(msg, buf);
  out->data = buf;
  return true;
}

static void pb_packed_release(pb_packed *p) {
  free(p->heap);
  p->heap = NULL;
}

ia_code ia_pb_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                     ProtobufCMessage **out) {
  if (out != NULL) *out = NULL;
  if (desc == NULL || out == NULL || (data == NULL && len > 0)) return IA_INVALID_ARGUMENT;
  /* protobuf-c reads nothing when len is 0, but give it a valid pointer
   * anyway rather than rely on that. */
  static const uint8_t empty[1];
  *out = protobuf_c_message_unpack(desc, NULL, len, data != NULL ? data : empty);
  return *out != NULL ? IA_OK : IA_PROTOCOL_ERROR;
}

ia_code ia_pb_call(ia_conn *conn, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                   const ia_call_opts *opts, ia_error *err) {
  if (reply != NULL) *reply = NULL;
  if (conn == NULL || method == NULL || req == NULL || reply_desc == NULL || reply == NULL)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "conn, method, req, reply_desc and reply are required");

  uint8_t stack[PB_STACK_BYTES];
  pb_packed packed;
  if (!pb_pack(req, stack, sizeof stack, &packed))
    return ia__error_set(err, IA_NO_MEMORY, "no memory to pack the request of %s", method);
  void *buf = NULL;
  size_t len = 0;
  ia_code rc = ia_call(conn, method, packed.data, packed.len, &buf, &len, ia_call_opts_timeout(opts), err);
  pb_packed_release(&packed);
  if (rc != IA_OK) return rc;

  rc = ia_pb_decode(reply_desc, buf, len, reply);
  free(buf);
  if (rc != IA_OK)
    return ia__error_set(err, IA_PROTOCOL_ERROR, "the reply to %s (%zu bytes) is not a %s", method, len,
                         reply_desc->name);
  return IA_OK;
}

ia_task *ia_pb_task_new(ia_conn *conn, const char *method, const ProtobufCMessage *req) {
  if (conn == NULL || method == NULL || req == NULL) return NULL;
  uint8_t stack[PB_STACK_BYTES];
  pb_packed packed;
  if (!pb_pack(req, stack, sizeof stack, &packed)) return NULL;
  ia_task *task = ia_conn_new_task(conn, method, packed.data, packed.len);
  pb_packed_release(&packed);
  return task;
}

ia_code ia_pb_task_reply(const ia_task *task, const ProtobufCMessageDescriptor *desc,
                         ProtobufCMessage **reply) {
  if (reply != NULL) *reply = NULL;
  if (task == NULL || desc == NULL || reply == NULL) return IA_INVALID_ARGUMENT;
  ia_status status = ia_task_status(task);
  if (status == IA_STATUS_COMPLETED) {
    size_t len = 0;
    const uint8_t *data = ia_task_result(task, &len);
    return ia_pb_decode(desc, data, len, reply);
  }
  if (!ia_status_is_terminal(status)) return IA_INVALID_ARGUMENT;
  /* Every terminal status but COMPLETED records why; a zero code would
   * read as success, so it never passes through. */
  ia_code code = ia_task_error(task)->code;
  return code != IA_OK ? code : IA_TASK_ERROR;
}

ia_code ia_pb_request(const ia_task_ctx *task, const ProtobufCMessageDescriptor *desc,
                      ProtobufCMessage **req) {
  if (req != NULL) *req = NULL;
  if (task == NULL || desc == NULL || req == NULL) return IA_INVALID_ARGUMENT;
  size_t len = 0;
  const uint8_t *data = ia_task_ctx_payload(task, &len);
  return ia_pb_decode(desc, data, len, req);
}

ia_code ia_pb_reply(ia_task_ctx *task, const ProtobufCMessage *reply) {
  if (task == NULL || reply == NULL) return IA_INVALID_ARGUMENT;
  uint8_t stack[PB_STACK_BYTES];
  pb_packed packed;
  if (!pb_pack(reply, stack, sizeof stack, &packed)) {
    /* The master must still learn that this task ended. */
    ia_task_ctx_fail(task, IA_TASK_ERROR, "out of memory packing the result", NULL, 0);
    return IA_NO_MEMORY;
  }
  ia_code rc = ia_task_ctx_reply(task, packed.data, packed.len);
  pb_packed_release(&packed);
  return rc;
}

ia_code ia_pb_fail(ia_task_ctx *task, ia_code code, const char *message, const ProtobufCMessage *result) {
  if (task == NULL) return IA_INVALID_ARGUMENT;
  if (result == NULL) return ia_task_ctx_fail(task, code, message, NULL, 0);
  uint8_t stack[PB_STACK_BYTES];
  pb_packed packed;
  if (!pb_pack(result, stack, sizeof stack, &packed)) {
    ia_code rc = ia_task_ctx_fail(task, code, message, NULL, 0);
    return rc != IA_OK ? rc : IA_NO_MEMORY;
  }
  ia_code rc = ia_task_ctx_fail(task, code, message, packed.data, packed.len);
  pb_packed_release(&packed);
  return rc;
}
