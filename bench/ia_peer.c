/*
 * The seam between the benchmark and Interaction's typed API (see
 * ia_peer.h). Requests are packed with protobuf-c and sent with ia_call() or
 * ia_conn_new_task(); replies are unpacked with protobuf-c, exactly the work
 * a generated stub does on the user's behalf, so the benchmark charges it to
 * Interaction like a user's program would.
 */
#include "ia_peer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Small messages are packed on the stack: a sum call should not pay a
 * malloc for its 20-byte request. */
#define SMALL_PACK 128

/* protobuf-c wants a non-NULL pointer even for an empty buffer. */
static const uint8_t empty_buf[1];

/* Packs `msg` into `small` when it fits, into a malloc'd buffer otherwise.
 * Returns the buffer (== small, or free() it) or NULL if out of memory. */
static uint8_t *pack(const ProtobufCMessage *msg, uint8_t small[SMALL_PACK], size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = *len <= SMALL_PACK ? small : malloc(*len);
  if (buf != NULL) protobuf_c_message_pack(msg, buf);
  return buf;
}

static ia_code call_typed(ia_conn *conn, const char *method, const ProtobufCMessage *req,
                          const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                          const ia_call_opts *opts, ia_error *err) {
  *reply = NULL;
  uint8_t small[SMALL_PACK];
  size_t len;
  uint8_t *buf = pack(req, small, &len);
  if (buf == NULL) return IA_NO_MEMORY;
  void *out = NULL;
  size_t out_len = 0;
  ia_code rc = ia_call(conn, method, buf, len, &out, &out_len, ia_call_opts_timeout(opts), err);
  if (buf != small) free(buf);
  if (rc != IA_OK) return rc;
  *reply = protobuf_c_message_unpack(reply_desc, NULL, out_len, out_len ? out : empty_buf);
  free(out);
  if (*reply == NULL) {
    if (err != NULL) {
      ia_error_clear(err);
      err->code = IA_PROTOCOL_ERROR;
      strcpy(err->message, "the reply does not decode as the method's reply type");
    }
    return IA_PROTOCOL_ERROR;
  }
  return IA_OK;
}

ia_code bench_ia_sum(ia_conn *conn, const Bench__SumRequest *req, Bench__SumReply **reply,
                     const ia_call_opts *opts, ia_error *err) {
  return call_typed(conn, BENCH_IA_METHOD_SUM, &req->base, &bench__sum_reply__descriptor,
                    (ProtobufCMessage **)reply, opts, err);
}

ia_code bench_ia_echo(ia_conn *conn, const Bench__Blob *req, Bench__Blob **reply, const ia_call_opts *opts,
                      ia_error *err) {
  return call_typed(conn, BENCH_IA_METHOD_ECHO, &req->base, &bench__blob__descriptor,
                    (ProtobufCMessage **)reply, opts, err);
}

ia_code bench_ia_stats(ia_conn *conn, const Bench__StatsRequest *req, Bench__StatsReply **reply,
                       const ia_call_opts *opts, ia_error *err) {
  return call_typed(conn, BENCH_IA_METHOD_STATS, &req->base, &bench__stats_reply__descriptor,
                    (ProtobufCMessage **)reply, opts, err);
}

static ia_task *new_task(ia_conn *conn, const char *method, const ProtobufCMessage *req) {
  uint8_t small[SMALL_PACK];
  size_t len;
  uint8_t *buf = pack(req, small, &len);
  if (buf == NULL) return NULL;
  ia_task *t = ia_conn_new_task(conn, method, buf, len);
  if (buf != small) free(buf);
  return t;
}

ia_task *bench_ia_sum_task(ia_conn *conn, const Bench__SumRequest *req) {
  return new_task(conn, BENCH_IA_METHOD_SUM, &req->base);
}

ia_task *bench_ia_hold_task(ia_conn *conn, const Bench__HoldRequest *req) {
  return new_task(conn, BENCH_IA_METHOD_HOLD, &req->base);
}

Bench__SumReply *bench_ia_sum_task_reply(const ia_task *task) {
  size_t len;
  const uint8_t *data = ia_task_result(task, &len);
  if (data == NULL) return NULL;
  return bench__sum_reply__unpack(NULL, len, len ? data : empty_buf);
}

/* ---- slave side ---- */

/* Decodes the task's payload as `desc`; on failure the task is failed. */
static ProtobufCMessage *decode_request(ia_task_ctx *task, const ProtobufCMessageDescriptor *desc) {
  size_t len;
  const uint8_t *data = ia_task_ctx_payload(task, &len);
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, len ? data : empty_buf);
  if (msg == NULL) ia_task_ctx_fail(task, IA_TASK_ERROR, "the payload does not decode", NULL, 0);
  return msg;
}

/* Ends the task with `msg` packed as its result. */
static void reply_with(ia_task_ctx *task, const ProtobufCMessage *msg) {
  uint8_t small[SMALL_PACK];
  size_t len;
  uint8_t *buf = pack(msg, small, &len);
  if (buf == NULL) {
    ia_task_ctx_fail(task, IA_TASK_ERROR, "out of memory packing the result", NULL, 0);
    return;
  }
  ia_task_ctx_reply(task, buf, len);
  if (buf != small) free(buf);
}

static void handle_sum(ia_task_ctx *task, void *user) {
  (void)user;
  Bench__SumRequest *req = (Bench__SumRequest *)decode_request(task, &bench__sum_request__descriptor);
  if (req == NULL) return;
  if (!req->has_a || !req->has_b) {
    ia_task_ctx_fail(task, IA_TASK_FAILED, "A or B not found in task data.", NULL, 0);
  } else {
    Bench__SumReply res = BENCH__SUM_REPLY__INIT;
    res.has_sum = 1;
    res.sum = (int64_t)((uint64_t)req->a + (uint64_t)req->b);
    reply_with(task, &res.base);
  }
  bench__sum_request__free_unpacked(req, NULL);
}

static void handle_echo(ia_task_ctx *task, void *user) {
  (void)user;
  Bench__Blob *req = (Bench__Blob *)decode_request(task, &bench__blob__descriptor);
  if (req == NULL) return;
  Bench__Blob res = BENCH__BLOB__INIT;
  res.has_data = req->has_data;
  res.data = req->data;
  reply_with(task, &res.base);
  bench__blob__free_unpacked(req, NULL);
}

static void handle_hold(ia_task_ctx *task, void *user) {
  (void)user;
  Bench__HoldRequest *req = (Bench__HoldRequest *)decode_request(task, &bench__hold_request__descriptor);
  if (req == NULL) return;
  uint32_t ms = req->has_ms ? req->ms : 0;
  bench__hold_request__free_unpacked(req, NULL);
  if (!ia_task_ctx_sleep(task, ms)) {
    ia_task_ctx_fail(task, IA_CANCELLED, "cancelled", NULL, 0);
    return;
  }
  Bench__HoldReply res = BENCH__HOLD_REPLY__INIT;
  res.has_held_ms = 1;
  res.held_ms = ms;
  reply_with(task, &res.base);
}

static void handle_stats(ia_task_ctx *task, void *user) {
  (void)user;
  Bench__StatsRequest *req = (Bench__StatsRequest *)decode_request(task, &bench__stats_request__descriptor);
  if (req == NULL) return;
  bench__stats_request__free_unpacked(req, NULL);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  Bench__StatsReply res = BENCH__STATS_REPLY__INIT;
  res.has_user_us = res.has_sys_us = res.has_maxrss_kb = 1;
  res.user_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
  res.sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
  res.maxrss_kb = (uint64_t)ru.ru_maxrss;
  reply_with(task, &res.base);
}

ia_code bench_ia_serve(ia_slave *slave) {
  static const struct {
    const char *method;
    ia_handler_fn fn;
  } table[] = {
      {BENCH_IA_METHOD_SUM, handle_sum},
      {BENCH_IA_METHOD_ECHO, handle_echo},
      {BENCH_IA_METHOD_HOLD, handle_hold},
      {BENCH_IA_METHOD_STATS, handle_stats},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    ia_code rc = ia_slave_register(slave, table[i].method, table[i].fn, NULL);
    if (rc != IA_OK) return rc;
  }
  return IA_OK;
}
