/*
 * The input buffer of a connection: bytes read from its socket, owned by
 * whichever thread holds the read side, from which whole frames are taken
 * where they lie (the hot path decodes in place; nothing is copied out).
 *
 * The buffer grows to the size of the head frame only once its length
 * prefix has been read and checked against the reader's max_frame, so a
 * peer can never make anyone allocate more than the limit that applies to
 * it (before its Hello, IA__PREAUTH_MAX_FRAME).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sock.h"
#include "runtime/tls.h"
#include "runtime/wire.h"

#define INBUF_MIN (64u * 1024u)
/* Larger buffers are given back once empty; smaller ones are reused, so
 * that a stream of big frames faults no pages. */
#define INBUF_KEEP_MAX (64u << 20)

uint32_t ia__max_frame(uint32_t configured) {
  if (configured == 0) return IA__MAX_FRAME_DEFAULT;
  return configured > IA__MAX_FRAME_CAP ? IA__MAX_FRAME_CAP : configured;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The head frame with its tail in a landing. */
static __attribute__((noinline)) ia__next landed(const ia__inbuf *b, uint32_t l, const uint8_t **body,
                                                 uint32_t *len) {
  if (b->land_have < b->land_len || b->end - b->start < IA__FRAME_HEADER + (size_t)l - b->land_len)
    return IA__NEXT_MORE;
  *body = b->buf + b->start + IA__FRAME_HEADER;
  *len = l;
  return IA__NEXT_LANDED;
}

ia__next ia__inbuf_next(const ia__inbuf *b, uint32_t max_frame, const uint8_t **body, uint32_t *len) {
  size_t have = b->end - b->start;
  if (have < IA__FRAME_HEADER) return IA__NEXT_MORE;
  uint32_t l = be32(b->buf + b->start);
  if (l > max_frame) return IA__NEXT_OVERSIZE;
  if (b->land) return landed(b, l, body, len);
  if (have < IA__FRAME_HEADER + (size_t)l) return IA__NEXT_MORE;
  *body = b->buf + b->start + IA__FRAME_HEADER;
  *len = l;
  return IA__NEXT_READY;
}

uint32_t ia__inbuf_head_len(const ia__inbuf *b) {
  return b->end - b->start >= IA__FRAME_HEADER ? be32(b->buf + b->start) : 0;
}

void ia__inbuf_land(ia__inbuf *b, uint8_t *block, size_t len) {
  size_t at = b->start + IA__FRAME_HEADER + ia__inbuf_head_len(b) - len; /* where the tail begins */
  size_t in = b->end > at ? b->end - at : 0;
  if (in) memcpy(block, b->buf + at, in);
  if (b->end > at) b->end = at;
  b->land = block;
  b->land_len = len;
  b->land_have = in;
}

void ia__inbuf_consume_landed(ia__inbuf *b) {
  size_t l = ia__inbuf_head_len(b);
  size_t head = IA__FRAME_HEADER + l - b->land_len;
  b->land = NULL;
  b->land_len = b->land_have = 0;
  ia__inbuf_consume(b, head);
}

void ia__inbuf_consume(ia__inbuf *b, size_t n) {
  b->start += n;
  if (b->start >= b->end) {
    b->start = b->end = 0;
    if (b->cap > INBUF_KEEP_MAX) {
      free(b->buf);
      b->buf = NULL;
      b->cap = 0;
    }
  }
}

bool ia__inbuf_grow(ia__inbuf *b, size_t room) {
  if (b->cap - b->end >= room) return true;
  size_t cap = b->cap ? b->cap : INBUF_MIN;
  while (cap - b->end < room)
    cap *= 2;
  uint8_t *nb = realloc(b->buf, cap);
  if (!nb) return false;
  b->buf = nb;
  b->cap = cap;
  return true;
}

/* One recv() into the `room` bytes at p (at most `most`), EINTR retried;
 * *got grows by what came. */
static inline ssize_t recv_at(int fd, uint8_t *p, size_t room, size_t most, int flags, bool *full,
                              size_t *got) {
  if (room > most) room = most;
  ssize_t r;
  do
    r = ia__sys_recv(fd, p, room, flags);
  while (r < 0 && errno == EINTR);
  if (r > 0) *got += (size_t)r;
  if (full) *full = r > 0 && (size_t)r == room;
  return r;
}

ssize_t ia__inbuf_recv_most(ia__inbuf *b, int fd, struct ia__tls *tls, uint32_t max_frame, size_t most,
                            int flags, bool *full) {
  if (b->land && b->land_have < b->land_len) /* never past the head frame's end */
    return recv_at(fd, b->land + b->land_have, b->land_len - b->land_have, most, flags, full, &b->land_have);
  size_t have = b->end - b->start;
  size_t need = INBUF_MIN;
  if (have >= IA__FRAME_HEADER) {
    uint32_t l = be32(b->buf + b->start);
    if (b->land) l -= (uint32_t)b->land_len; /* only the head stays here */
    if (l <= max_frame && IA__FRAME_HEADER + (size_t)l > need) need = IA__FRAME_HEADER + (size_t)l;
  }
  if (b->cap - b->start < need) {
    /* Move what is unread to the front, then grow if that is not enough. */
    if (b->start > 0) {
      memmove(b->buf, b->buf + b->start, have);
      b->start = 0;
      b->end = have;
    }
    if (b->cap < need) {
      uint8_t *nb = realloc(b->buf, need);
      if (!nb) {
        errno = ENOMEM;
        return -1;
      }
      b->buf = nb;
      b->cap = need;
    }
  }
  if (tls) return ia__tls_recv(tls, b, flags, most != SIZE_MAX, full);
  return recv_at(fd, b->buf + b->end, b->cap - b->end, most, flags, full, &b->end);
}

ssize_t ia__inbuf_recv(ia__inbuf *b, int fd, struct ia__tls *tls, uint32_t max_frame, int flags, bool *full) {
  return ia__inbuf_recv_most(b, fd, tls, max_frame, SIZE_MAX, flags, full);
}

size_t ia__inbuf_missing(const ia__inbuf *b) {
  size_t have = b->end - b->start;
  if (have < IA__FRAME_HEADER) return IA__FRAME_HEADER - have;
  size_t whole = IA__FRAME_HEADER + (size_t)be32(b->buf + b->start) - b->land_len;
  return (whole > have ? whole - have : 0) + (b->land_len - b->land_have);
}

bool ia__inbuf_split(ia__inbuf *b, size_t keep, ia__inbuf *to) {
  size_t rest = b->end - b->start - keep;
  memset(to, 0, sizeof *to);
  if (rest > 0) {
    size_t cap = rest > INBUF_MIN ? rest : INBUF_MIN;
    to->buf = malloc(cap);
    if (!to->buf) return false;
    to->cap = cap;
    memcpy(to->buf, b->buf + b->start + keep, rest);
    to->end = rest;
  }
  b->end = b->start + keep;
  return true;
}

void ia__inbuf_free(ia__inbuf *b) {
  free(b->buf);
  memset(b, 0, sizeof *b);
}
