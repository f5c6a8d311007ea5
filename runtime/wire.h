/*
 * The hot path's wire: a reader-owned input buffer, a hand-rolled parser of
 * the envelope and of the frequent bodies, and frames built as a small head
 * plus a payload that is sent where it lies (never copied). Everything here
 * is plain protobuf; rare bodies (Hello, Welcome, Disconnect) still go
 * through protobuf-c.
 */
#ifndef IA_WIRE_H
#define IA_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "runtime/runtime-internal.h"

typedef struct ia__slice {
  const uint8_t *p;
  size_t n;
} ia__slice;

/* ---- input ---- */

/* Bytes read from a socket, owned by whichever thread holds the read side. */
typedef struct ia__inbuf {
  uint8_t *buf;
  size_t start, end, cap;
} ia__inbuf;

/* The frame at the head of the buffer, as ia__frame_next(). */
ia__frame_next_result ia__inbuf_next(const ia__inbuf *b, uint32_t max_frame, const uint8_t **body,
                                     uint32_t *len);
/* Drops n bytes from the head. */
void ia__inbuf_consume(ia__inbuf *b, size_t n);
/* One recv() into the buffer, with room for the whole frame at the head
 * when its length is known (never more than max_frame). Returns what recv
 * returned (-1 with errno, 0 at EOF). */
ssize_t ia__inbuf_recv(ia__inbuf *b, int fd, uint32_t max_frame, int flags);
/* Moves the unread bytes after the first `keep` bytes into a new buffer
 * `to`, leaving `b`'s storage (with its first `keep` bytes) to the caller. */
bool ia__inbuf_split(ia__inbuf *b, size_t keep, ia__inbuf *to);
void ia__inbuf_free(ia__inbuf *b);

/* ---- parsing ---- */

typedef struct ia__env {
  uint64_t id;
  unsigned kind; /* the body's field number (Interaction__V1__Frame__BodyCase) */
  ia__slice body;
} ia__env;

/* Reads one varint at *p (before end) and moves *p past it; false if
 * truncated or longer than 10 bytes. One-byte varints (keys, small
 * lengths, ids) are read inline: they are nearly every varint on the hot path. */
bool ia__get_varint_slow(const uint8_t **p, const uint8_t *end, uint64_t *v);
static inline bool ia__get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  if (*p < end && **p < 0x80) {
    *v = *(*p)++;
    return true;
  }
  return ia__get_varint_slow(p, end, v);
}

/* Writes v as a varint at p (room for 10 bytes); returns the byte after it. */
static inline uint8_t *ia__put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* Parses a Frame's envelope; false if malformed or without a body. */
bool ia__env_parse(const uint8_t *p, size_t n, ia__env *env);

typedef struct ia__task_view {
  ia__slice method, payload;
  uint64_t deadline_ms;
  bool has_metadata;
} ia__task_view;
bool ia__task_parse(ia__slice body, ia__task_view *t);

/* TaskFail, Refusal and Goodbye share a shape: code = 1, message = 2, and
 * bytes (result / data) = 3. TaskResult's payload is field 1. */
typedef struct ia__status_view {
  bool has_code;
  uint32_t code;
  ia__slice message, data;
} ia__status_view;
bool ia__status_parse(ia__slice body, ia__status_view *s);
bool ia__result_parse(ia__slice body, ia__slice *payload);
/* Calls fn for each metadata entry of a Task body; stops when fn returns false. */
bool ia__task_metadata(ia__slice body, bool (*fn)(ia__slice key, ia__slice value, void *user), void *user);

/* ---- building and sending ---- */

/* One field to encode. A bytes field is `p`/`n`, or, for the last field
 * only, the concatenation of `iov` (then `n` is ignored). */
typedef struct ia__field {
  uint8_t no;
  bool varint;
  uint64_t v;
  const void *p;
  size_t n;
  const struct iovec *iov;
  int niov;
} ia__field;

#define IA_WFRAME_MAX_IOV 32
#define IA_REPLY_MAX_IOV 8 /* pieces of a handler's packed result */

/* A frame as a head (length prefix, envelope and every field but the last
 * bytes field) and a tail (that field's bytes, referenced, not copied, as
 * one or more pieces). A frame that fits `small` whole is all head: a
 * small tail is copied, and the frame goes out with one send(). */
typedef struct ia__wframe {
  uint8_t small[256];
  uint8_t *head;
  size_t head_len;
  struct iovec tail[IA_WFRAME_MAX_IOV];
  int ntail;
  size_t tail_len;
} ia__wframe;

/* Builds a frame with body `kind` made of `fields` (in field order). */
bool ia__wframe_build(ia__wframe *w, uint64_t id, unsigned kind, const ia__field *fields, size_t n);
void ia__wframe_release(ia__wframe *w);
/* Total bytes on the wire. */
static inline size_t ia__wframe_len(const ia__wframe *w) {
  return w->head_len + w->tail_len;
}
/* Sends the whole frame on a blocking socket (flags as send(); MSG_NOSIGNAL
 * is added). 0, or -1 with errno. */
int ia__wframe_send(int fd, const ia__wframe *w, int flags);
/* Sends a whole buffer on a blocking socket. */
int ia__send_all(int fd, const void *p, size_t n, int flags);

/* Convenience builders for the frames every part sends. */
bool ia__wframe_status(ia__wframe *w, uint64_t id, unsigned kind, ia_code code, const char *message,
                       const void *data, size_t len);
bool ia__wframe_empty(ia__wframe *w, uint64_t id, unsigned kind);
/* An encoded protobuf-c submessage as a frame body. */
bool ia__wframe_message(ia__wframe *w, uint64_t id, unsigned kind, const ProtobufCMessage *msg);

#endif
