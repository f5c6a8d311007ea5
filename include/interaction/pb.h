/*
 * Protobuf glue: calls and handlers whose payloads are protobuf-c messages.
 *
 * These functions pack and unpack with protobuf-c and otherwise do exactly
 * what the byte-level API of master.h and slave.h does. (Flat messages --
 * every field a singular number, bool or enum -- go through a faster codec
 * of the library's own that makes the same bytes and the same structs.) The typed stubs that
 * protoc-gen-interaction generates are thin wrappers around them; a program
 * that has a message descriptor but no generated stub can call them directly.
 *
 * Ownership, everywhere below: messages passed in are only read (packed) and
 * stay the caller's. Messages handed out (`*reply`, `*req`, `*out`) are
 * allocated by protobuf-c with its default allocator and belong to the caller,
 * who releases each with protobuf_c_message_free_unpacked(msg, NULL) or with
 * the generated <type>__free_unpacked(msg, NULL). On failure nothing is handed
 * out and the out-pointer is set to NULL.
 *
 * Including this header requires libprotobuf-c, which libinteraction links
 * publicly.
 */
#ifndef INTERACTION_PB_H
#define INTERACTION_PB_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "interaction/master.h"
#include "interaction/slave.h"
#include "interaction/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Decodes `len` bytes at `data` (NULL allowed when len is 0) as a message of
 * type `desc`. Returns IA_OK with *out set, IA_PROTOCOL_ERROR if the bytes are
 * not such a message (or lack one of its required fields), IA_INVALID_ARGUMENT
 * for NULL arguments. The caller frees *out. Useful for the result that a
 * TaskFail carries in ia_error.data. Thread-safe.
 */
IA_MUST_CHECK ia_code ia_pb_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                                   ProtobufCMessage **out);

/* ---- master ---- */

/*
 * One blocking typed call: packs `req`, runs ia_call() on `conn` with the
 * timeout of `opts` (NULL: the default) and decodes the reply as `reply_desc`.
 * Returns IA_OK with *reply set (the caller frees it), or the code of what
 * happened instead with details in `err` (may be NULL): for a TaskFail the
 * code, message and the encoded result in err->data (decode it with
 * ia_pb_decode()). A reply that does not decode is IA_PROTOCOL_ERROR. `req`
 * is not modified and may be freed as soon as the call returns. The caller
 * clears `err` with ia_error_clear(). Blocking; thread-safe.
 */
IA_MUST_CHECK ia_code ia_pb_call(ia_conn *conn, const char *method, const ProtobufCMessage *req,
                                 const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                                 const ia_call_opts *opts, ia_error *err);

/*
 * A new task in IDLE carrying `req` packed (ia_conn_new_task() with the
 * packed bytes; `method` is copied, `req` is only read). Attach callbacks,
 * then ia_task_start(). Free the task with ia_task_free(). NULL if out of
 * memory or an argument is NULL. Thread-safe.
 */
IA_MUST_CHECK ia_task *ia_pb_task_new(ia_conn *conn, const char *method, const ProtobufCMessage *req);

/*
 * Decodes the result of a task as `desc`. For a COMPLETED task: IA_OK with
 * *reply set (the caller frees it, independently of the task), or
 * IA_PROTOCOL_ERROR if the result is not such a message. For a task that
 * ended any other way: its error code (details in ia_task_error()). For a
 * task not yet terminal: IA_INVALID_ARGUMENT. Call after ia_task_join() or
 * from a callback. The task is not modified.
 */
IA_MUST_CHECK ia_code ia_pb_task_reply(const ia_task *task, const ProtobufCMessageDescriptor *desc,
                                       ProtobufCMessage **reply);

/* ---- slave: inside a handler ---- */

/*
 * Decodes the task's payload as `desc`. IA_OK with *req set (the caller
 * frees it; it may outlive the handler), IA_PROTOCOL_ERROR if the payload is
 * not such a message. Does not touch the task's outcome: the handler decides
 * how to fail.
 */
IA_MUST_CHECK ia_code ia_pb_request(const ia_task_ctx *task, const ProtobufCMessageDescriptor *desc,
                                    ProtobufCMessage **req);

/*
 * Ends the task with `reply` packed as its result (the bytes are copied:
 * `reply` stays the caller's and may be freed at once). If memory runs out
 * while packing, the task is failed with IA_TASK_ERROR instead and
 * IA_NO_MEMORY is returned, so the master still gets an outcome. Returns
 * IA_INVALID_ARGUMENT if `reply` is NULL or the task already has an outcome.
 */
IA_MUST_CHECK ia_code ia_pb_reply(ia_task_ctx *task, const ProtobufCMessage *reply);

/*
 * Fails the task on purpose (TaskFail) with `code` (non-zero), `message`
 * (copied; may be NULL) and `result` packed (copied; may be NULL for no
 * result). If memory runs out while packing, the failure still goes out
 * without its result and IA_NO_MEMORY is returned. Returns what
 * ia_task_ctx_fail() returns otherwise.
 */
IA_MUST_CHECK ia_code ia_pb_fail(ia_task_ctx *task, ia_code code, const char *message, const ProtobufCMessage *result);

/*
 * A decoded request whose large bytes fields (singular, not in a oneof, 4 KiB
 * or more) point into the received frame instead of into copies. The
 * generated trampolines use it: a handler's request is valid until the
 * handler returns, and its bytes fields are read-only. Release with
 * ia_pb_view_release(), never with protobuf-c's free.
 */
#define IA_PB_VIEW_MAX 8
typedef struct ia_pb_view {
  ProtobufCMessage *msg;
  ProtobufCAllocator *alloc; /* what msg was decoded with (the task's) */
  bool flat;                 /* msg is one block (a flat message) */
  unsigned n;
  const ProtobufCFieldDescriptor *aliased[IA_PB_VIEW_MAX];
} ia_pb_view;

/* Decodes the task's request as `desc` into `view` (see above): IA_OK,
 * IA_PROTOCOL_ERROR if it is not such a message, IA_NO_MEMORY. Only inside
 * the handler of that task. */
IA_MUST_CHECK ia_code ia_pb_request_view(const ia_task_ctx *task, const ProtobufCMessageDescriptor *desc,
                                         ia_pb_view *view);
/* Frees what ia_pb_request_view() decoded. NULL and an empty view are allowed. */
void ia_pb_view_release(ia_pb_view *view);

#ifdef __cplusplus
}
#endif
#endif
