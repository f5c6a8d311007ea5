/* The hot path's wire: see wire.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "runtime/wire.h"

#define INBUF_MIN (64u * 1024u)
#define INBUF_KEEP_MAX                                                                                       \
  (64u << 20) /* larger buffers are given back once empty; smaller ones are                                  \
                 reused, so that a stream of big frames faults no pages */

/*
 * The hot path's socket calls, made as plain syscalls. libc's recv() and
 * send() are thread cancellation points and spend ~60 instructions each
 * marking themselves so; no thread of ours is ever cancelled, and at two
 * calls per task on each end it adds up. Same arguments, result and errno.
 */
static ssize_t sys_recv(int fd, void *buf, size_t n, int flags) {
  return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
}

static ssize_t sys_send(int fd, const void *buf, size_t n, int flags) {
  return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
}

static ssize_t sys_sendmsg(int fd, const struct msghdr *mh, int flags) {
  return syscall(SYS_sendmsg, fd, mh, flags);
}

/* ---- input ---- */

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ia__frame_next_result ia__inbuf_next(const ia__inbuf *b, uint32_t max_frame, const uint8_t **body,
                                     uint32_t *len) {
  size_t have = b->end - b->start;
  if (have < IA_FRAME_HEADER) return IA_FRAME_NEED_MORE;
  uint32_t l = be32(b->buf + b->start);
  if (l > max_frame) return IA_FRAME_OVERSIZE;
  if (have < IA_FRAME_HEADER + (size_t)l) return IA_FRAME_NEED_MORE;
  *body = b->buf + b->start + IA_FRAME_HEADER;
  *len = l;
  return IA_FRAME_READY;
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

ssize_t ia__inbuf_recv(ia__inbuf *b, int fd, uint32_t max_frame, int flags) {
  size_t have = b->end - b->start;
  size_t need = INBUF_MIN;
  if (have >= IA_FRAME_HEADER) {
    uint32_t l = be32(b->buf + b->start);
    if (l <= max_frame && IA_FRAME_HEADER + (size_t)l > need) need = IA_FRAME_HEADER + (size_t)l;
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
  ssize_t r;
  do
    r = sys_recv(fd, b->buf + b->end, b->cap - b->end, flags);
  while (r < 0 && errno == EINTR);
  if (r > 0) b->end += (size_t)r;
  return r;
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

/* ---- parsing ---- */

bool ia__get_varint_slow(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  const uint8_t *p = *pp;
  size_t avail = (size_t)(end - p);
  uint64_t r = 0;
  /* Up to ten bytes; the common two- and three-byte cases leave early. */
  for (size_t i = 0; i < 10 && i < avail; i++) {
    uint64_t c = p[i];
    r |= (c & 0x7f) << (7 * i);
    if (c < 0x80) {
      *pp = p + i + 1;
      *v = r;
      return true;
    }
  }
  return false;
}

/* One field: its number, wire type, varint value or length-delimited slice. */
typedef struct field {
  uint32_t no;
  unsigned wt;
  uint64_t v;
  ia__slice s;
} field;

/* Reads the next field; 1 ok, 0 at the end, -1 malformed. */
static int next_field(const uint8_t **pp, const uint8_t *end, field *f) {
  if (*pp >= end) return 0;
  uint64_t key;
  if (!ia__get_varint(pp, end, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return -1;
  f->no = (uint32_t)(key >> 3);
  f->wt = key & 7;
  switch (f->wt) {
  case 0:
    return ia__get_varint(pp, end, &f->v) ? 1 : -1;
  case 1:
    if (end - *pp < 8) return -1;
    *pp += 8;
    return 1;
  case 5:
    if (end - *pp < 4) return -1;
    *pp += 4;
    return 1;
  case 2: {
    uint64_t n;
    if (!ia__get_varint(pp, end, &n) || n > (uint64_t)(end - *pp)) return -1;
    f->s.p = *pp;
    f->s.n = (size_t)n;
    *pp += n;
    return 1;
  }
  default:
    return -1; /* groups are not protobuf we speak */
  }
}

/* The shape every frame of ours has: the id, then one body that runs to
 * the end. Anything else goes through the general parser, which gives the
 * same answer for this shape. */
static bool env_parse_fast(const uint8_t *p, size_t n, ia__env *env) {
  const uint8_t *end = p + n;
  uint64_t id, len;
  if (n < 3 || p[0] != 0x08) return false;
  p++;
  if (!ia__get_varint(&p, end, &id) || p >= end) return false;
  unsigned key = *p++, kind = key >> 3;
  if ((key & 7) != 2 || kind < INTERACTION__V1__FRAME__BODY_HELLO || kind > INTERACTION__V1__FRAME__BODY_GOODBYE)
    return false;
  if (!ia__get_varint(&p, end, &len) || len != (uint64_t)(end - p)) return false;
  env->id = id;
  env->kind = kind;
  env->body = (ia__slice){p, (size_t)len};
  return true;
}

bool ia__env_parse(const uint8_t *p, size_t n, ia__env *env) {
  if (env_parse_fast(p, n, env)) return true;
  const uint8_t *end = p + n;
  env->id = 0;
  env->kind = 0;
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if (f.no == 1) {
      if (f.wt != 0) return false;
      env->id = f.v;
    } else if (f.no >= INTERACTION__V1__FRAME__BODY_HELLO && f.no <= INTERACTION__V1__FRAME__BODY_GOODBYE) {
      if (f.wt != 2) return false;
      env->kind = f.no; /* the last member of a oneof wins */
      env->body = f.s;
    }
  }
  return r == 0 && env->kind != 0;
}

/* A field of wire type 2 with a one-byte key at *pp: its slice. */
static bool take_bytes(const uint8_t **pp, const uint8_t *end, uint8_t key, ia__slice *s) {
  const uint8_t *p = *pp;
  uint64_t len;
  if (p >= end || *p != key) return false;
  p++;
  if (!ia__get_varint(&p, end, &len) || len > (uint64_t)(end - p)) return false;
  *s = (ia__slice){p, (size_t)len};
  *pp = p + len;
  return true;
}

bool ia__task_parse(ia__slice body, ia__task_view *t) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  memset(t, 0, sizeof *t);
  /* The common shape: method, then payload (or none), nothing else. */
  if (take_bytes(&p, end, 0x0a, &t->method) && (p == end || (take_bytes(&p, end, 0x12, &t->payload) && p == end)))
    return true;
  p = body.p;
  memset(t, 0, sizeof *t);
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if ((f.no == 1 || f.no == 2 || f.no == 4) && f.wt != 2) return false;
    if (f.no == 3 && f.wt != 0) return false;
    if (f.no == 1)
      t->method = f.s;
    else if (f.no == 2)
      t->payload = f.s;
    else if (f.no == 3)
      t->deadline_ms = f.v;
    else if (f.no == 4)
      t->has_metadata = true;
  }
  return r == 0;
}

bool ia__status_parse(ia__slice body, ia__status_view *s) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  memset(s, 0, sizeof *s);
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if (f.no == 1) {
      if (f.wt != 0) return false;
      s->has_code = true;
      s->code = (uint32_t)f.v;
    } else if (f.no == 2 || f.no == 3) {
      if (f.wt != 2) return false;
      if (f.no == 2)
        s->message = f.s;
      else
        s->data = f.s;
    }
  }
  return r == 0;
}

bool ia__result_parse(ia__slice body, ia__slice *payload) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  if (take_bytes(&p, end, 0x0a, payload) && p == end) return true;
  p = body.p;
  payload->p = NULL;
  payload->n = 0;
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0)
    if (f.no == 1) {
      if (f.wt != 2) return false;
      *payload = f.s;
    }
  return r == 0;
}

bool ia__task_metadata(ia__slice body, bool (*fn)(ia__slice key, ia__slice value, void *user), void *user) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if (f.no != 4 || f.wt != 2) continue;
    const uint8_t *q = f.s.p, *qend = f.s.p + f.s.n;
    ia__slice key = {(const uint8_t *)"", 0}, value = {(const uint8_t *)"", 0};
    field g = {0};
    int r2;
    while ((r2 = next_field(&q, qend, &g)) > 0)
      if (g.wt == 2 && g.no == 1)
        key = g.s;
      else if (g.wt == 2 && g.no == 2)
        value = g.s;
    if (r2 < 0) return false;
    if (!fn(key, value, user)) return true;
  }
  return r == 0;
}

/* ---- building ---- */

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
      for (int k = 0; k < f->niov; k++) {
        memcpy(p, f->iov[k].iov_base, f->iov[k].iov_len);
        p += f->iov[k].iov_len;
      }
    } else if (len) {
      memcpy(p, f->p, len);
      p += len;
    }
  }
  size_t blen = (size_t)(p - body);
  uint8_t tmp[SMALL_HEAD];
  size_t env = 1 + varint_size(id) + varint_size((uint64_t)kind << 3) + varint_size(blen) + blen;
  size_t hlen = (size_t)(put_env_head(tmp, env, id, kind, blen) - tmp);
  w->head = body - hlen;
  memcpy(w->head, tmp, hlen);
  w->head_len = hlen + blen;
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
    body += varint_size((uint64_t)f->no << 3);
    if (f->varint) {
      body += varint_size(f->v);
    } else {
      lens[i] = field_len(f);
      body += varint_size(lens[i]) + lens[i];
    }
  }
  bool has_tail = n > 0 && !fields[n - 1].varint;
  size_t tail = has_tail ? lens[n - 1] : 0;
  if (has_tail && fields[n - 1].niov > IA_WFRAME_MAX_IOV) return false;
  size_t env = 1 + varint_size(id) + varint_size((uint64_t)kind << 3) + varint_size(body) + body;
  size_t head = IA_FRAME_HEADER + env - tail;
  w->head = head <= sizeof w->small ? w->small : malloc(head);
  if (!w->head) return false;
  uint8_t *p = put_env_head(w->head, env, id, kind, body);
  for (size_t i = 0; i < n; i++) {
    const ia__field *f = &fields[i];
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

int ia__wframe_send(int fd, const ia__wframe *w, int flags) {
  if (w->ntail == 0) return ia__send_all(fd, w->head, w->head_len, flags);
  struct iovec iov[IA_WFRAME_MAX_IOV + 1];
  iov[0] = (struct iovec){w->head, w->head_len};
  for (int i = 0; i < w->ntail; i++)
    iov[i + 1] = w->tail[i];
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)w->ntail + 1};
  size_t left = ia__wframe_len(w);
  while (left > 0) {
    ssize_t r = sys_sendmsg(fd, &mh, flags | MSG_NOSIGNAL);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    left -= (size_t)r;
    /* Advance the iovecs past what went out. */
    while (r > 0 && mh.msg_iovlen > 0) {
      if ((size_t)r >= mh.msg_iov->iov_len) {
        r -= (ssize_t)mh.msg_iov->iov_len;
        mh.msg_iov++;
        mh.msg_iovlen--;
      } else {
        mh.msg_iov->iov_base = (uint8_t *)mh.msg_iov->iov_base + r;
        mh.msg_iov->iov_len -= (size_t)r;
        r = 0;
      }
    }
  }
  return 0;
}

int ia__send_all(int fd, const void *p, size_t n, int flags) {
  const uint8_t *q = p;
  while (n > 0) {
    ssize_t r = sys_send(fd, q, n, flags | MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    q += r;
    n -= (size_t)r;
  }
  return 0;
}

bool ia__wframe_status(ia__wframe *w, uint64_t id, unsigned kind, ia_code code, const char *message,
                       const void *data, size_t len) {
  const char *msg = message ? message : ia_strerror(code);
  ia__field f[3] = {{.no = 1, .varint = true, .v = (uint64_t)code},
                    {.no = 2, .p = msg, .n = strlen(msg)},
                    {.no = 3, .p = data, .n = len}};
  return ia__wframe_build(w, id, kind, f, data && len ? 3 : 2);
}

bool ia__wframe_empty(ia__wframe *w, uint64_t id, unsigned kind) {
  return ia__wframe_build(w, id, kind, NULL, 0);
}

bool ia__wframe_message(ia__wframe *w, uint64_t id, unsigned kind, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return false;
  protobuf_c_message_pack(msg, buf);
  size_t env = 1 + varint_size(id) + varint_size((uint64_t)kind << 3) + varint_size(n) + n;
  size_t total = IA_FRAME_HEADER + env;
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
