/* Building frames: a head with the envelope and every field but the last
 * bytes field, and that field's bytes referenced where they lie (see
 * wire.h). Small frames are built whole in the frame's own buffer. */
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "runtime/wire.h"

static size_t varint_size(uint64_t v) {
  return 1 + (size_t)(63 - __builtin_clzll(v | 1)) / 7;
}

/* The length prefix, the id and the body's key and length. */
static uint8_t *put_env_head(uint8_t *p, size_t env, uint64_t id, unsigned kind, size_t body) {
  p[0] = (uint8_t)(env >> 24);
  p[1] = (uint8_t)(env >> 16);
  p[2] = (uint8_t)(env >> 8);
  p[3] = (uint8_t)env;
  p += 4;
  *p++ = 0x08; /* id = 1, varint */
  p = ia__put_varint(p, id);
  p = ia__put_varint(p, (uint64_t)kind << 3 | 2);
  return ia__put_varint(p, body);
}

static size_t field_len(const ia__field *f) {
  if (f->niov <= 0) return f->n;
  size_t n = 0;
  for (int i = 0; i < f->niov; i++)
    n += f->iov[i].iov_len;
  return n;
}

/* Copies n bytes; the short pieces of a small frame (a method name, a
 * small payload) without a call into libc's memcpy. */
static inline uint8_t *put_bytes(uint8_t *p, const void *src, size_t n) {
  const uint8_t *s = src;
  if (n > 16) {
    memcpy(p, s, n);
  } else if (n >= 8) { /* two fixed-size moves that may overlap */
    memcpy(p, s, 8);
    memcpy(p + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    memcpy(p, s, 4);
    memcpy(p + n - 4, s + n - 4, 4);
  } else if (n > 0) {
    p[0] = s[0];
    p[n / 2] = s[n / 2];
    p[n - 1] = s[n - 1];
  }
  return p + n;
}

#define WFRAME_MAX_FIELDS 8
#define SMALL_HEAD 18 /* the most a small frame's head takes: prefix, id, key, a 2-byte body length */

/* One pass for a frame that fits w->small whole (the usual task, result and
 * status frames): the body is written first, after room for the head, and
 * the head then in front of it. False, with nothing to undo, if it does not fit. */
static bool build_small(ia__wframe *w, uint64_t id, unsigned kind, const ia__field *fields, size_t n) {
  uint8_t *const body = w->small + SMALL_HEAD, *const limit = w->small + sizeof w->small;
  uint8_t *p = body;
  for (size_t i = 0; i < n; i++) {
    const ia__field *f = &fields[i];
    if (f->raw) {
      if (f->n > (size_t)(limit - p)) return false;
      p = put_bytes(p, f->p, f->n);
      continue;
    }
    if (f->no >= 16 || limit - p < 11) return false; /* one-byte keys; room for key and a varint */
    if (f->varint) {
      *p++ = (uint8_t)(f->no << 3);
      p = ia__put_varint(p, f->v);
      continue;
    }
    size_t len = field_len(f);
    if (len > (size_t)(limit - p) - 3) return false; /* key, a 2-byte length, then the bytes */
    *p++ = (uint8_t)(f->no << 3 | 2);
    p = ia__put_varint(p, len);
    if (f->niov > 0) {
      for (int k = 0; k < f->niov; k++)
        p = put_bytes(p, f->iov[k].iov_base, f->iov[k].iov_len);
    } else {
      p = put_bytes(p, f->p, len);
    }
  }
  size_t blen = (size_t)(p - body);
  /* The head goes right in front of the body: its length is known now. */
  size_t inner = 1 + varint_size(id) + varint_size((uint64_t)kind << 3) + varint_size(blen);
  size_t hlen = IA__FRAME_HEADER + inner;
  w->head = body - hlen;
  put_env_head(w->head, inner + blen, id, kind, blen);
  w->head_len = hlen + blen;
  w->ntail = 0;
  w->tail_len = 0;
  return true;
}

bool ia__wframe_small(ia__wframe *w, uint64_t id, unsigned kind, const ia__small_body *f) {
  /* One-byte keys and lengths: a body under 128 bytes. */
  size_t blen = 2 + f->n1 + (f->vno ? 1 + varint_size(f->v) : 0) + (f->no2 ? 2 + f->n2 : 0);
  if (f->n1 > 125 || f->n2 > 125 || blen > 127 || f->no1 >= 16 || f->vno >= 16 || f->no2 >= 16 || kind >= 16)
    return false;
  uint8_t *const body = w->small + SMALL_HEAD;
  uint8_t *p = body;
  *p++ = (uint8_t)(f->no1 << 3 | 2);
  *p++ = (uint8_t)f->n1;
  /* libc's memcpy, whose lines the task touches anyway; an empty field may
   * come with no pointer at all (a handler's empty result). */
  if (f->n1) memcpy(p, f->d1, f->n1);
  p += f->n1;
  if (f->vno) {
    *p++ = (uint8_t)(f->vno << 3);
    p = ia__put_varint(p, f->v);
  }
  if (f->no2) {
    *p++ = (uint8_t)(f->no2 << 3 | 2);
    *p++ = (uint8_t)f->n2;
    if (f->n2) memcpy(p, f->d2, f->n2);
  }
  size_t inner = 1 + varint_size(id) + 2;
  w->head = body - IA__FRAME_HEADER - inner;
  put_env_head(w->head, inner + blen, id, kind, blen);
  w->head_len = IA__FRAME_HEADER + inner + blen;
  w->ntail = 0;
  w->tail_len = 0;
  return true;
}

bool ia__wframe_build(ia__wframe *w, uint64_t id, unsigned kind, const ia__field *fields, size_t n) {
  if (build_small(w, id, kind, fields, n)) return true;
  size_t lens[WFRAME_MAX_FIELDS];
  if (n > WFRAME_MAX_FIELDS) return false;
  size_t body = 0;
  for (size_t i = 0; i < n; i++) {
    const ia__field *f = &fields[i];
    if (f->raw) {
      body += f->n;
      continue;
    }
    body += varint_size((uint64_t)f->no << 3);
    if (f->varint) {
      body += varint_size(f->v);
    } else {
      lens[i] = field_len(f);
      body += varint_size(lens[i]) + lens[i];
    }
  }
  bool has_tail = n > 0 && !fields[n - 1].varint && !fields[n - 1].raw;
  size_t tail = has_tail ? lens[n - 1] : 0;
  if (has_tail && fields[n - 1].niov > IA__WFRAME_MAX_IOV) return false;
  size_t env = 1 + varint_size(id) + varint_size((uint64_t)kind << 3) + varint_size(body) + body;
  size_t head = IA__FRAME_HEADER + env - tail;
  w->head = head <= sizeof w->small ? w->small : malloc(head);
  if (!w->head) return false;
  uint8_t *p = put_env_head(w->head, env, id, kind, body);
  for (size_t i = 0; i < n; i++) {
    const ia__field *f = &fields[i];
    if (f->raw) {
      memcpy(p, f->p, f->n);
      p += f->n;
      continue;
    }
    p = ia__put_varint(p, (uint64_t)f->no << 3 | (f->varint ? 0 : 2));
    if (f->varint) {
      p = ia__put_varint(p, f->v);
      continue;
    }
    p = ia__put_varint(p, lens[i]);
    if (i + 1 < n && f->n) {
      memcpy(p, f->p, f->n);
      p += f->n;
    }
  }
  w->ntail = 0;
  w->tail_len = tail;
  w->head_len = (size_t)(p - w->head);
  if (has_tail && fields[n - 1].niov > 0) {
    for (int i = 0; i < fields[n - 1].niov; i++)
      if (fields[n - 1].iov[i].iov_len) w->tail[w->ntail++] = fields[n - 1].iov[i];
  } else if (tail) {
    w->tail[w->ntail++] = (struct iovec){(void *)fields[n - 1].p, tail};
  }
  return true;
}

void ia__wframe_release(ia__wframe *w) {
  if (w->head && (w->head < w->small || w->head >= w->small + sizeof w->small)) free(w->head);
  w->head = NULL;
}

int ia__wframe_iov(const ia__wframe *w, struct iovec *iov) {
  iov[0] = (struct iovec){w->head, w->head_len};
  for (int i = 0; i < w->ntail; i++)
    iov[i + 1] = w->tail[i];
  return w->ntail + 1;
}

bool ia__wframe_status(ia__wframe *w, uint64_t id, unsigned kind, ia_code code, const char *message,
                       const void *data, size_t len) {
  const char *msg = message ? message : ia_strerror(code);
  ia__field f[3] = {{.no = 1, .varint = true, .v = (uint64_t)code},
                    {.no = 2, .p = msg, .n = strlen(msg)},
                    {.no = 3, .p = data, .n = len}};
  return ia__wframe_build(w, id, kind, f, data && len ? 3 : 2);
}

void ia__wframe_empty(ia__wframe *w, uint64_t id, unsigned kind) {
  /* Cannot fail: an empty body always fits the small buffer. */
  bool built = ia__wframe_build(w, id, kind, NULL, 0);
  (void)built;
}

bool ia__wframe_message(ia__wframe *w, uint64_t id, unsigned kind, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return false;
  protobuf_c_message_pack(msg, buf);
  size_t env = 1 + varint_size(id) + varint_size((uint64_t)kind << 3) + varint_size(n) + n;
  size_t total = IA__FRAME_HEADER + env;
  w->head = total <= sizeof w->small ? w->small : malloc(total);
  if (!w->head) {
    free(buf);
    return false;
  }
  uint8_t *p = put_env_head(w->head, env, id, kind, n);
  memcpy(p, buf, n);
  p += n;
  free(buf);
  w->head_len = (size_t)(p - w->head);
  w->ntail = 0;
  w->tail_len = 0;
  return true;
}
