/*
 * The one framing stack of both ends: a reader-owned input buffer
 * (inbuf.c), a hand-written parser of the envelope and of the frequent
 * bodies (parse.c), and frames built as a small head plus a payload that is
 * sent where it lies, never copied (build.c). Everything here is plain
 * protobuf that any protobuf library reads; rare bodies (Hello, Welcome,
 * Disconnect) are encoded and decoded with protobuf-c.
 *
 * Every length from the wire is checked against its limit before anything
 * is allocated for it. Nothing here owns a socket's state or a thread.
 */
#ifndef IA__WIRE_H
#define IA__WIRE_H

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

/* ---- input (inbuf.c) ---- */

/* Bytes read from a socket, owned by whichever thread holds the read side.
 * A landing (ia__inbuf_land) sends the last land_len bytes of the head
 * frame to a block of their own instead of buf: the master receives a
 * large reply's blob straight into the memory its decoded reply keeps. */
typedef struct ia__inbuf {
  uint8_t *buf;
  size_t start, end, cap;
  uint8_t *land;              /* borrowed: its owner frees it */
  size_t land_len, land_have; /* the bytes it takes, and has */
} ia__inbuf;

typedef enum ia__next {
  IA__NEXT_MORE = 0,      /* the head frame is not complete yet */
  IA__NEXT_READY = 1,     /* *body and *len are the head frame's */
  IA__NEXT_LANDED = 2,    /* whole, its tail in the landing: *body holds *len - land_len bytes of it */
  IA__NEXT_OVERSIZE = -1, /* the head frame declares more than max_frame */
} ia__next;

/* The frame at the head of the buffer. */
ia__next ia__inbuf_next(const ia__inbuf *b, uint32_t max_frame, const uint8_t **body, uint32_t *len);
/* Drops n bytes from the head. */
void ia__inbuf_consume(ia__inbuf *b, size_t n);
/* The length the head frame declares, once its prefix is in; else 0. */
uint32_t ia__inbuf_head_len(const ia__inbuf *b);
/* Lands the head frame's last `len` bytes in `block` (room for len; not
 * freed here): those of them already read are moved there, and every later
 * read of this frame goes there too. The head frame must be incomplete,
 * with all of its first (length - len) bytes in. Ends with
 * ia__inbuf_consume_landed(). */
void ia__inbuf_land(ia__inbuf *b, uint8_t *block, size_t len);
/* Drops the landed head frame and ends its landing. */
void ia__inbuf_consume_landed(ia__inbuf *b);
struct ia__tls;
/* One recv() into the buffer (with `tls`, not NULL, of TLS records, whose
 * plaintext is appended: runtime/tls.h), with room for the whole head frame once its
 * length is known (never for more than max_frame: a longer one is left for
 * ia__inbuf_next to call oversize). Returns what recv returned (-1 with
 * errno, ENOMEM included, 0 at EOF); *full (may be NULL) is set when the
 * read filled all the room it was given, so that more may be waiting: an
 * edge-triggered reader must then read again. */
ssize_t ia__inbuf_recv(ia__inbuf *b, int fd, struct ia__tls *tls, uint32_t max_frame, int flags, bool *full);
/* The same, reading at most `most` bytes (with TLS: one record at a time). */
ssize_t ia__inbuf_recv_most(ia__inbuf *b, int fd, struct ia__tls *tls, uint32_t max_frame, size_t most,
                            int flags, bool *full);
/* Makes room for at least `room` more bytes after the end. */
IA_MUST_CHECK bool ia__inbuf_grow(ia__inbuf *b, size_t room);
/* Bytes still missing from the head frame (its length prefix first); 0
 * when it is whole. */
size_t ia__inbuf_missing(const ia__inbuf *b);
/* Moves the unread bytes after the first `keep` bytes into a new buffer
 * `to`, leaving `b`'s storage (with its first `keep` bytes) to the caller. */
IA_MUST_CHECK bool ia__inbuf_split(ia__inbuf *b, size_t keep, ia__inbuf *to);
void ia__inbuf_free(ia__inbuf *b);

/* ---- parsing (parse.c) ---- */

typedef struct ia__env {
  uint64_t id;
  unsigned kind; /* the body's field number (Interaction__V1__Frame__BodyCase) */
  ia__slice body;
} ia__env;

/* Reads one varint at *p (before end) and moves *p past it; false if
 * truncated or longer than 10 bytes. One-byte varints (keys, small
 * lengths, ids) are read inline: they are nearly every varint on the hot path. */
IA_MUST_CHECK bool ia__get_varint_slow(const uint8_t **p, const uint8_t *end, uint64_t *v);
IA_MUST_CHECK static inline bool ia__get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  if (*p < end && **p < 0x80) {
    *v = *(*p)++;
    return true;
  }
  return ia__get_varint_slow(p, end, v);
}

/* A field key (tag and wire type): a varint of at most 5 bytes, as
 * protobuf-c and Google's protobuf read it (they reject longer ones; the
 * field number is then the key's bits 3 to 34, 32 bits, in both). */
IA_MUST_CHECK static inline bool ia__get_key(const uint8_t **p, const uint8_t *end, uint64_t *key) {
  const uint8_t *start = *p;
  return ia__get_varint(p, end, key) && *p - start <= 5;
}

/* A length prefix, read as protobuf-c reads it: at most 5 bytes, and no
 * more than INT32_MAX (protobuf-c rejects larger ones; it does not drop a
 * fifth byte's high bits). */
IA_MUST_CHECK static inline bool ia__get_len(const uint8_t **p, const uint8_t *end, uint64_t *len) {
  return ia__get_key(p, end, len) && *len <= INT32_MAX;
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
IA_MUST_CHECK bool ia__env_parse(const uint8_t *p, size_t n, ia__env *env);

typedef struct ia__task_view {
  ia__slice method, payload;
  uint64_t deadline_ms;
  bool has_metadata;
} ia__task_view;
IA_MUST_CHECK bool ia__task_parse(ia__slice body, ia__task_view *t);

/* TaskFail, Refusal and Goodbye share a shape: code = 1, message = 2, and,
 * but for Goodbye (`data` false: a field 3 there is an unknown field of any
 * type), bytes (result / data) = 3. TaskResult's payload is field 1. */
typedef struct ia__status_view {
  bool has_code;
  uint32_t code;
  ia__slice message, data;
} ia__status_view;
IA_MUST_CHECK bool ia__status_parse(ia__slice body, bool data, ia__status_view *s);
IA_MUST_CHECK bool ia__result_parse(ia__slice body, ia__slice *payload);
/* The head of a frame of `n` bytes of which the first `avail` are in p: a
 * TaskResult (id, then the result, then its payload, each running to the
 * frame's end, as ours are sent) whose payload begins at *payload_at. False
 * for any other frame, or when the head is not all in. What it accepts
 * ia__env_parse and ia__result_parse read the same way, whole. */
IA_MUST_CHECK bool ia__result_head(const uint8_t *p, size_t avail, size_t n, uint64_t *id,
                                   size_t *payload_at);
/* Calls fn for each metadata entry of a Task body; stops when fn returns
 * false. False if the body is malformed (ia__task_parse checks every entry,
 * so a parsed Task's metadata never is). */
IA_MUST_CHECK bool ia__task_metadata(ia__slice body, bool (*fn)(ia__slice key, ia__slice value, void *user),
                                     void *user);

/* ---- building (build.c) ---- */

/* One field to encode. A bytes field is `p`/`n`, or, for the last field
 * only, the concatenation of `iov` (then `n` is ignored). A `raw` field is
 * `p`/`n` copied as they are: fields encoded already (never the last). */
typedef struct ia__field {
  uint8_t no;
  bool varint;
  bool raw;
  uint64_t v;
  const void *p;
  size_t n;
  const struct iovec *iov;
  int niov;
} ia__field;

#define IA__WFRAME_MAX_IOV 32
#define IA__REPLY_MAX_IOV 8 /* pieces of a handler's packed result */

/* A frame as a head (length prefix, envelope and every field but the last
 * bytes field) and a tail (that field's bytes, referenced, not copied, as
 * one or more pieces). A frame that fits `small` whole is all head: a
 * small tail is copied, and the frame goes out with one send(). */
typedef struct ia__wframe {
  uint8_t small[256];
  uint8_t *head;
  size_t head_len;
  struct iovec tail[IA__WFRAME_MAX_IOV];
  int ntail;
  size_t tail_len;
} ia__wframe;

/* Builds a frame with body `kind` made of `fields` (in field order); false
 * if out of memory or the fields are too many. Release with
 * ia__wframe_release(). */
IA_MUST_CHECK bool ia__wframe_build(ia__wframe *w, uint64_t id, unsigned kind, const ia__field *fields,
                                    size_t n);
/* The body of a usual small frame, in its field order: a bytes field, a
 * varint field unless vno is 0, a bytes field unless no2 is 0. */
typedef struct ia__small_body {
  unsigned no1;
  const void *d1;
  size_t n1;
  unsigned vno;
  uint64_t v;
  unsigned no2;
  const void *d2;
  size_t n2;
} ia__small_body;

/* That frame in a few lines of code (a result, a task): the same bytes as
 * ia__wframe_build gives for those fields. False, with nothing to undo, if
 * it needs more than one-byte keys and lengths (then build it). */
IA_MUST_CHECK bool ia__wframe_small(ia__wframe *w, uint64_t id, unsigned kind, const ia__small_body *f);
void ia__wframe_release(ia__wframe *w);
/* Total bytes on the wire, and the frame's length as its prefix says it
 * (what a receiver compares with its max_frame). */
static inline size_t ia__wframe_len(const ia__wframe *w) {
  return w->head_len + w->tail_len;
}
static inline size_t ia__wframe_body_len(const ia__wframe *w) {
  return ia__wframe_len(w) - IA__FRAME_HEADER;
}
/* The frame's pieces as iovecs (head first): n <= IA__WFRAME_MAX_IOV + 1. */
int ia__wframe_iov(const ia__wframe *w, struct iovec *iov);

/* Convenience builders for the frames every part sends. */
IA_MUST_CHECK bool ia__wframe_status(ia__wframe *w, uint64_t id, unsigned kind, ia_code code,
                                     const char *message, const void *data, size_t len);
/* A frame whose body is empty (Ping, Pong, Accepted, Cancel): never fails. */
void ia__wframe_empty(ia__wframe *w, uint64_t id, unsigned kind);
/* An encoded protobuf-c submessage as a frame body. */
IA_MUST_CHECK bool ia__wframe_message(ia__wframe *w, uint64_t id, unsigned kind, const ProtobufCMessage *msg);

#endif
