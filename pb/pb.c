/*
 * Protobuf glue (interaction/pb.h), the part above both ends: packs
 * protobuf-c messages into the byte-level calls of master.h and slave.h and
 * unpacks what comes back. It holds no state and owns no thread; every
 * function is a thin, synchronous adapter, so the typed stubs generated in
 * gen/ stay a few lines each.
 *
 * It must never assert on what a peer sent: a payload that does not decode is
 * a status code, not a crash.
 */
#include "interaction/pb.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "master/master-pb.h"
#include "pb/flat.h"
#include "pb/land.h"
#include "runtime/runtime-internal.h"
#include "runtime/wire.h"
#include "slave/slave-pb.h"

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
  out->heap = NULL;
  if (ia__pb_flat_pack(msg, stack, cap, &out->len)) {
    out->data = stack;
    return true;
  }
  out->len = protobuf_c_message_get_packed_size(msg);
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

/* ---- packing into pieces, without copying large bytes fields ---- */

/* bytes fields this large are sent from where they lie */
#define PB_REF_MIN 4096

/* A ProtobufCBuffer that keeps what protobuf-c appends as pieces: small
 * appends are copied into `scratch`, large ones (a bytes field's contents)
 * are referenced where they lie, if they lie inside [lo, hi) (or anywhere
 * when `anywhere`). */
typedef struct pb_vec {
  ProtobufCBuffer base;
  bool anywhere;
  const uint8_t *lo, *hi;
  uint8_t *scratch; /* the caller's `first` buffer, or the heap once that is outgrown */
  size_t used, cap;
  bool heap; /* scratch is malloc'd */
  struct {
    const uint8_t *ref; /* NULL: scratch + off */
    size_t off, len;
  } piece[IA__REPLY_MAX_IOV];
  int n;
  bool failed;
} pb_vec;

static void vec_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
  pb_vec *v = (pb_vec *)b;
  if (v->failed || len == 0) return;
  /* Two pieces are kept back: a reference may need a scratch piece after it. */
  bool ref = len >= PB_REF_MIN && v->n < IA__REPLY_MAX_IOV - 2 &&
             (v->anywhere || (data >= v->lo && data + len <= v->hi));
  if (ref) {
    v->piece[v->n].ref = data;
    v->piece[v->n].len = len;
    v->n++;
    return;
  }
  if (v->used + len > v->cap) {
    size_t cap = v->cap ? v->cap : 256;
    while (cap < v->used + len)
      cap *= 2;
    uint8_t *nb = v->heap ? realloc(v->scratch, cap) : malloc(cap);
    if (!nb) {
      v->failed = true;
      return;
    }
    if (!v->heap && v->used) memcpy(nb, v->scratch, v->used);
    v->scratch = nb;
    v->cap = cap;
    v->heap = true;
  }
  memcpy(v->scratch + v->used, data, len);
  if (v->n > 0 && v->piece[v->n - 1].ref == NULL) {
    v->piece[v->n - 1].len += len; /* extends the scratch piece before it */
  } else {
    v->piece[v->n].ref = NULL;
    v->piece[v->n].off = v->used;
    v->piece[v->n].len = len;
    v->n++;
  }
  v->used += len;
}

/* Packs msg into v, starting in `first` (cap bytes, may be NULL); false if
 * out of memory. vec_release() frees what it allocated. Its callers have
 * tried the flat codec already (ia_pb_call, ia_pb_reply). */
static bool vec_pack(pb_vec *v, const ProtobufCMessage *msg, bool anywhere, const uint8_t *lo, size_t n,
                     uint8_t *first, size_t cap) {
  memset(v, 0, sizeof *v);
  v->scratch = first;
  v->cap = first ? cap : 0;
  v->base.append = vec_append;
  v->anywhere = anywhere;
  v->lo = lo;
  v->hi = lo ? lo + n : NULL;
  protobuf_c_message_pack_to_buffer(msg, &v->base);
  return !v->failed;
}

static void vec_release(pb_vec *v) {
  if (v->heap) free(v->scratch);
  v->scratch = NULL;
  v->heap = false;
}

/* The pieces as iovecs (valid while v's scratch is). */
static int vec_iov(const pb_vec *v, struct iovec *iov) {
  for (int i = 0; i < v->n; i++)
    iov[i] = (struct iovec){(void *)(v->piece[i].ref ? v->piece[i].ref : v->scratch + v->piece[i].off),
                            v->piece[i].len};
  return v->n;
}

/* protobuf_c_message_unpack(), by the flat fast path when it can. */
static ProtobufCMessage *unpack(const ProtobufCMessageDescriptor *desc, ProtobufCAllocator *a, size_t len,
                                const uint8_t *data) {
  static const uint8_t empty[1];
  if (!data) data = empty;
  ProtobufCMessage *msg;
  if (ia__pb_flat_unpack(desc, a, len, data, &msg)) return msg;
  return protobuf_c_message_unpack(desc, a, len, data);
}

static void *decode_message(const uint8_t *data, size_t len, const void *desc) {
  return unpack(desc, NULL, len, data);
}

static void release_message(void *msg) {
  protobuf_c_message_free_unpacked(msg, NULL);
}

ia_code ia_pb_decode(const ProtobufCMessageDescriptor *desc, const void *data, size_t len,
                     ProtobufCMessage **out) {
  if (out != NULL) *out = NULL;
  if (desc == NULL || out == NULL || (data == NULL && len > 0)) return IA_INVALID_ARGUMENT;
  *out = unpack(desc, NULL, len, data);
  return *out != NULL ? IA_OK : IA_PROTOCOL_ERROR;
}

/* ia_pb_call() of a request the flat codec does not pack: its large bytes
 * fields go out from where they lie (the call blocks until they are sent),
 * so a blob is copied by the kernel only. Out of line, so that the usual
 * call's stack frame stays small. */
static __attribute__((noinline)) ia_code call_vec(ia_conn *conn, const char *method,
                                                  const ProtobufCMessage *req, const ia_call_opts *opts,
                                                  const ia__decoder *dec, void **msg, ia_error *err) {
  pb_vec v;
  uint8_t first[PB_STACK_BYTES];
  if (!vec_pack(&v, req, true, NULL, 0, first, sizeof first)) {
    vec_release(&v);
    return ia__error_set(err, IA_NO_MEMORY, "no memory to pack the request of %s", method);
  }
  struct iovec iov[IA__REPLY_MAX_IOV];
  int n = vec_iov(&v, iov);
  ia_code rc = ia__call_vec(conn, method, iov, n, opts, dec, msg, err);
  vec_release(&v);
  return rc;
}

ia_code ia_pb_call(ia_conn *conn, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *reply_desc, ProtobufCMessage **reply,
                   const ia_call_opts *opts, ia_error *err) {
  if (reply != NULL) *reply = NULL;
  if (conn == NULL || method == NULL || req == NULL || reply_desc == NULL || reply == NULL)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "conn, method, req, reply_desc and reply are required");

  /* The reply is decoded where it lies in the receive buffer. */
  const ia__decoder dec = {decode_message, release_message, reply_desc, ia__pb_land};
  void *msg = NULL;
  uint8_t first[PB_STACK_BYTES];
  size_t len;
  ia_code rc;
  if (ia__pb_flat_pack(req, first, sizeof first, &len)) { /* the usual request: one piece */
    struct iovec one = {first, len};
    rc = ia__call_vec(conn, method, &one, len > 0, opts, &dec, &msg, err);
  } else {
    rc = call_vec(conn, method, req, opts, &dec, &msg, err);
  }
  if (rc == IA_PROTOCOL_ERROR && err && strstr(err->message, "does not decode"))
    ia__error_set(err, IA_PROTOCOL_ERROR, "the reply to %s is not a %s", method, reply_desc->name);
  if (rc != IA_OK) return rc;
  *reply = msg;
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

/* ---- decoding a request without copying its large bytes fields ---- */

typedef struct alias_field {
  const ProtobufCFieldDescriptor *fd;
  size_t start, end; /* the whole field (key, length, contents) in the encoding */
  const uint8_t *data;
  size_t len;
} alias_field;

/* Finds the top-level, singular, non-oneof, optional bytes fields of at
 * least PB_REF_MIN bytes; false if there is none or the encoding is odd
 * (then the plain decoder decides). */
static bool find_aliases(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                         alias_field *out, unsigned max, unsigned *n) {
  const uint8_t *p = data, *end = data + len;
  *n = 0;
  while (p < end) {
    const uint8_t *field_start = p;
    uint64_t key, v;
    if (!ia__get_key(&p, end, &key)) return false;
    switch (key & 7) {
    case 0:
      if (!ia__get_varint(&p, end, &v)) return false;
      continue;
    case 1:
      if (end - p < 8) return false;
      p += 8;
      continue;
    case 5:
      if (end - p < 4) return false;
      p += 4;
      continue;
    case 2:
      break;
    default:
      return false;
    }
    if (!ia__get_len(&p, end, &v) || v > (uint64_t)(end - p)) return false;
    const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(desc, (unsigned)(key >> 3));
    bool alias = fd && fd->type == PROTOBUF_C_TYPE_BYTES && v >= PB_REF_MIN &&
                 (fd->label == PROTOBUF_C_LABEL_OPTIONAL || fd->label == PROTOBUF_C_LABEL_NONE) &&
                 !(fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
    if (alias) {
      for (unsigned i = 0; i < *n; i++)
        if (out[i].fd == fd) return false; /* repeated occurrences merge: leave it to protobuf-c */
      if (*n == max) return false;
      out[(*n)++] = (alias_field){fd, (size_t)(field_start - data), (size_t)(p - data) + v, p, v};
    }
    p += v;
  }
  return *n > 0;
}

ia_code ia_pb_request_view(const ia_task_ctx *task, const ProtobufCMessageDescriptor *desc,
                           ia_pb_view *view) {
  /* aliased[] is read only below n: its lines are left alone (a cold
   * stack line each on the fan-out path). */
  if (view != NULL) view->msg = NULL, view->alloc = NULL, view->flat = false, view->n = 0;
  if (task == NULL || desc == NULL || view == NULL) return IA_INVALID_ARGUMENT;
  size_t len = 0;
  const uint8_t *data = ia_task_ctx_payload(task, &len);
  /* Decoded into the task's own arena: no malloc for a small request. */
  view->alloc = ia__task_ctx_allocator(task);
  alias_field f[IA_PB_VIEW_MAX];
  unsigned n = 0;
  if (len < PB_REF_MIN || !find_aliases(desc, data, len, f, IA_PB_VIEW_MAX, &n)) {
    view->flat = ia__pb_flat_unpack(desc, view->alloc, len, data, &view->msg);
    if (!view->flat) view->msg = protobuf_c_message_unpack(desc, view->alloc, len, data);
    return view->msg ? IA_OK : IA_PROTOCOL_ERROR;
  }
  /* Decode the encoding without those fields, then point them at the frame. */
  size_t removed = 0;
  for (unsigned i = 0; i < n; i++)
    removed += f[i].end - f[i].start;
  uint8_t *rest = malloc(len - removed + 1);
  if (!rest) return IA_NO_MEMORY;
  size_t at = 0, from = 0;
  for (unsigned i = 0; i < n; i++) {
    memcpy(rest + at, data + from, f[i].start - from);
    at += f[i].start - from;
    from = f[i].end;
  }
  memcpy(rest + at, data + from, len - from);
  at += len - from;
  view->msg = protobuf_c_message_unpack(desc, view->alloc, at, rest);
  free(rest);
  if (!view->msg) return IA_PROTOCOL_ERROR;
  for (unsigned i = 0; i < n; i++) {
    ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((uint8_t *)view->msg + f[i].fd->offset);
    bd->data = (uint8_t *)f[i].data;
    bd->len = f[i].len;
    if (f[i].fd->label == PROTOBUF_C_LABEL_OPTIONAL && f[i].fd->quantifier_offset)
      *(protobuf_c_boolean *)((uint8_t *)view->msg + f[i].fd->quantifier_offset) = 1;
    view->aliased[view->n++] = f[i].fd;
  }
  return IA_OK;
}

void ia_pb_view_release(ia_pb_view *view) {
  if (view == NULL || view->msg == NULL) return;
  if (view->flat) { /* one block, nothing inside it to free */
    view->alloc->free(view->alloc->allocator_data, view->msg);
    view->msg = NULL;
    return;
  }
  for (unsigned i = 0; i < view->n; i++) {
    ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((uint8_t *)view->msg + view->aliased[i]->offset);
    bd->data = NULL; /* the frame's, not protobuf-c's to free */
    bd->len = 0;
  }
  protobuf_c_message_free_unpacked(view->msg, view->alloc);
  view->msg = NULL;
  view->n = 0;
}

/* ia_pb_reply() of a message the flat codec does not pack into the task's
 * buffer; out of line, so that the usual reply's stack frame stays small. */
static __attribute__((noinline)) ia_code reply_vec(ia_task_ctx *task, const ProtobufCMessage *reply,
                                                   uint8_t *first, size_t cap) {
  size_t plen = 0;
  const uint8_t *payload = ia_task_ctx_payload(task, &plen);
  pb_vec v;
  if (!vec_pack(&v, reply, false, payload, plen, first, cap)) {
    vec_release(&v);
    /* The master must still learn that this task ended. */
    ia_code rc = ia_task_ctx_fail(task, IA_TASK_ERROR, "out of memory packing the result", NULL, 0);
    return rc != IA_OK ? rc : IA_NO_MEMORY;
  }
  struct iovec iov[IA__REPLY_MAX_IOV];
  int n = vec_iov(&v, iov);
  return ia__task_ctx_reply_vec(task, v.heap ? v.scratch : NULL, iov, n);
}

ia_code ia_pb_reply(ia_task_ctx *task, const ProtobufCMessage *reply) {
  if (task == NULL || reply == NULL) return IA_INVALID_ARGUMENT;
  /* Large bytes fields that point into the request (an echo, a slice of
   * the input) are sent from there: the request outlives the reply's send.
   * Anything else is copied now, since the handler may free it on return. */
  size_t cap = 0, len;
  uint8_t *first = ia__task_ctx_reply_buf(task, &cap);
  if (!ia__pb_flat_pack(reply, first, cap, &len)) return reply_vec(task, reply, first, cap);
  /* A flat message: one piece in the task's buffer, or none. */
  struct iovec one = {first, len};
  return ia__task_ctx_reply_vec(task, NULL, &one, len > 0);
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
