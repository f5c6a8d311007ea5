/* The hand-written parser of the envelope and of the frequent bodies: see
 * wire.h. It reads only inside the slice it is given and decides as
 * protobuf-c and Google's protobuf do on every input they reject (keys of
 * more than 5 bytes, field number 0, groups, truncated fields). */
#include <string.h>

#include "runtime/wire.h"

/* A loop, not unrolled: on the fan-out path every call starts with cold
 * caches, and what costs there is the lines of code a call touches, not
 * the few instructions a loop adds (bench/ANALYSIS.md). */
bool ia__get_varint_slow(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  const uint8_t *p = *pp;
  size_t avail = (size_t)(end - p);
  if (avail > 10) avail = 10; /* at most ten bytes */
  uint64_t r = 0;
  for (size_t i = 0; i < avail; i++) {
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
  if (!ia__get_key(pp, end, &key) || (key >> 3) == 0) return -1;
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
    if (!ia__get_len(pp, end, &n) || n > (uint64_t)(end - *pp)) return -1;
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
  /* A one-byte key: bodies 2-15. The later ones (16 on) have two-byte keys
   * and take the general parser; a byte with the high bit set is only the
   * first of a longer key. */
  unsigned key = *p++, kind = key >> 3;
  if ((key & 0x87) != 2 || kind < IA__BODY_FIRST || kind > IA__BODY_LAST) return false;
  if (!ia__get_len(&p, end, &len) || len != (uint64_t)(end - p)) return false;
  env->id = id;
  env->kind = kind;
  env->body = (ia__slice){p, (size_t)len};
  return true;
}

/* The general parsers below are kept out of line: inlined, their code
 * would sit between the fast path's blocks and spread it over more cache
 * lines (bench/ANALYSIS.md). */
static __attribute__((noinline)) bool env_parse_general(const uint8_t *p, size_t n, ia__env *env) {
  const uint8_t *end = p + n;
  env->id = 0;
  env->kind = 0;
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if (f.no == 1) {
      if (f.wt != 0) return false;
      env->id = f.v;
    } else if (f.no >= IA__BODY_FIRST && f.no <= IA__BODY_LAST) {
      if (f.wt != 2) return false;
      env->kind = f.no; /* the last member of a oneof wins */
      env->body = f.s;
    }
  }
  return r == 0 && env->kind != 0;
}

bool ia__env_parse(const uint8_t *p, size_t n, ia__env *env) {
  return env_parse_fast(p, n, env) || env_parse_general(p, n, env);
}

/* A field of wire type 2 with a one-byte key at *pp: its slice. */
static bool take_bytes(const uint8_t **pp, const uint8_t *end, uint8_t key, ia__slice *s) {
  const uint8_t *p = *pp;
  uint64_t len;
  if (p >= end || *p != key) return false;
  p++;
  if (!ia__get_len(&p, end, &len) || len > (uint64_t)(end - p)) return false;
  *s = (ia__slice){p, (size_t)len};
  *pp = p + len;
  return true;
}

/* One metadata entry (a map<string,string> entry: key = 1, value = 2); false
 * if it is not one, as protobuf-c decides. */
static bool md_entry(ia__slice entry, ia__slice *key, ia__slice *value) {
  const uint8_t *q = entry.p, *qend = entry.p + entry.n;
  *key = *value = (ia__slice){(const uint8_t *)"", 0};
  field g = {0};
  int r;
  while ((r = next_field(&q, qend, &g)) > 0) {
    if ((g.no == 1 || g.no == 2) && g.wt != 2) return false;
    if (g.no == 1)
      *key = g.s;
    else if (g.no == 2)
      *value = g.s;
  }
  return r == 0;
}

/* The shape our masters send: method, the deadline if any, then the
 * payload or nothing. Anything else goes through the general parser, which
 * gives the same answer for this shape. */
static bool task_parse_fast(const uint8_t *p, const uint8_t *end, ia__task_view *t) {
  if (!take_bytes(&p, end, 0x0a, &t->method)) return false;
  if (p < end && *p == 0x18) {
    p++;
    if (!ia__get_varint(&p, end, &t->deadline_ms)) return false;
  }
  return p == end || (take_bytes(&p, end, 0x12, &t->payload) && p == end);
}

static __attribute__((noinline)) bool task_parse_general(const uint8_t *p, const uint8_t *end,
                                                         ia__task_view *t) {
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
    else if (f.no == 4) {
      ia__slice k, v;
      if (!md_entry(f.s, &k, &v)) return false; /* what no protobuf library decodes is not run */
      t->has_metadata = true;
    }
  }
  return r == 0;
}

bool ia__task_parse(ia__slice body, ia__task_view *t) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  memset(t, 0, sizeof *t);
  return task_parse_fast(p, end, t) || task_parse_general(p, end, t);
}

bool ia__status_parse(ia__slice body, bool data, ia__status_view *s) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  memset(s, 0, sizeof *s);
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if (f.no == 1) {
      if (f.wt != 0) return false;
      s->has_code = true;
      s->code = (uint32_t)f.v;
    } else if (f.no == 2 || (f.no == 3 && data)) {
      if (f.wt != 2) return false;
      if (f.no == 2)
        s->message = f.s;
      else
        s->data = f.s;
    }
  }
  return r == 0;
}

static __attribute__((noinline)) bool result_parse_general(ia__slice body, ia__slice *payload) {
  const uint8_t *p = body.p, *end = body.p + body.n;
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

bool ia__result_parse(ia__slice body, ia__slice *payload) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  return (take_bytes(&p, end, 0x0a, payload) && p == end) || result_parse_general(body, payload);
}

bool ia__result_head(const uint8_t *p, size_t avail, size_t n, uint64_t *id, size_t *payload_at) {
  const uint8_t *start = p, *end = p + (avail < n ? avail : n);
  uint64_t len;
  if (p >= end || *p++ != 0x08 || !ia__get_varint(&p, end, id)) return false;
  /* The result body, then its payload (field 1), each to the frame's end. */
  if (p >= end || *p++ != ((INTERACTION__V1__FRAME__BODY_RESULT << 3) | 2)) return false;
  if (!ia__get_len(&p, end, &len) || len != n - (size_t)(p - start)) return false;
  if (p >= end || *p++ != 0x0a) return false;
  if (!ia__get_len(&p, end, &len) || len != n - (size_t)(p - start)) return false;
  *payload_at = (size_t)(p - start);
  return true;
}

bool ia__task_metadata(ia__slice body, bool (*fn)(ia__slice key, ia__slice value, void *user), void *user) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  field f = {0};
  int r;
  while ((r = next_field(&p, end, &f)) > 0) {
    if (f.no != 4) continue;
    ia__slice key, value;
    if (f.wt != 2 || !md_entry(f.s, &key, &value)) return false;
    if (!fn(key, value, user)) return true;
  }
  return r == 0;
}
