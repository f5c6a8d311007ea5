/*
 * A fast decoder and encoder for flat protobuf-c messages: every field a singular
 * scalar (numbers, bools, enums; no strings, bytes, submessages, repeated
 * fields or oneofs). Control messages like {int64 a, int64 b} are of this
 * shape, and protobuf-c's general unpack (two passes, a scratch bitmap,
 * several calls per field) and pack (a size pass, then a pass per field
 * through its buffer interface) cost several times the work itself on the
 * hot path.
 *
 * The result is exactly what protobuf_c_message_unpack() builds: the same
 * struct, initialised by the descriptor's message_init, allocated with the
 * same allocator, freeable with protobuf_c_message_free_unpacked(). Anything
 * this decoder does not handle byte for byte like protobuf-c -- an unknown
 * field (protobuf-c keeps those), a wire type that does not fit, a missing
 * required field, a malformed or over-long varint -- makes it give up
 * before handing anything out, and the caller asks protobuf-c, which then
 * decides. tests/runtime checks it against protobuf-c field by field.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pb/flat.h"
#include "runtime/wire.h"

#define DESC_FLAT 1u     /* every field is one this codec handles */
#define DESC_REQUIRED 2u /* some field is required */

/* What the codec needs to know of d: DESC_* bits. */
static unsigned desc_scan(const ProtobufCMessageDescriptor *d) {
  if (d->n_fields > 64) return 0; /* required fields are tracked in a 64-bit mask */
  unsigned bits = DESC_FLAT;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->label == PROTOBUF_C_LABEL_REPEATED || (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)) return 0;
    if (f->type > PROTOBUF_C_TYPE_ENUM) return 0; /* string, bytes, message */
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset == 0) return 0;
    if (f->label == PROTOBUF_C_LABEL_REQUIRED) bits |= DESC_REQUIRED;
  }
  return bits;
}

/* desc_scan(d), remembered: a typed handler or caller asks about the same
 * few descriptors again and again. Each slot holds a descriptor's address
 * with its bits in the low three (descriptors are 8-byte aligned), in one
 * word, so a racing reader sees a whole entry or another descriptor's. */
#define DESC_CACHE 64
static _Atomic uintptr_t desc_cache[DESC_CACHE];

static unsigned desc_bits(const ProtobufCMessageDescriptor *d) {
  uintptr_t key = (uintptr_t)d;
  _Atomic uintptr_t *slot = &desc_cache[(key >> 4) % DESC_CACHE];
  uintptr_t v = atomic_load_explicit(slot, memory_order_relaxed);
  if ((v & ~(uintptr_t)7) == key) return (unsigned)(v & 7);
  unsigned bits = desc_scan(d);
  if ((key & 7) == 0) atomic_store_explicit(slot, key | bits, memory_order_relaxed);
  return bits;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
  return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* The descriptor's field with number `id` (fields are sorted by number). */
static int field_index(const ProtobufCMessageDescriptor *d, uint64_t id) {
  unsigned lo = 0, hi = d->n_fields;
  while (lo < hi) {
    unsigned mid = (lo + hi) / 2;
    if (d->fields[mid].id == id) return (int)mid;
    if (d->fields[mid].id < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return -1;
}

/* Stores one value read with wire type wt; false if wt does not fit the field. */
static bool store(void *msg, const ProtobufCFieldDescriptor *f, unsigned wt, uint64_t v, const uint8_t *fixed) {
  uint8_t *m = (uint8_t *)msg + f->offset;
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_ENUM: {
    if (wt != 0) return false;
    int32_t x = (int32_t)(uint32_t)v;
    memcpy(m, &x, sizeof x);
    return true;
  }
  case PROTOBUF_C_TYPE_UINT32: {
    if (wt != 0) return false;
    uint32_t x = (uint32_t)v;
    memcpy(m, &x, sizeof x);
    return true;
  }
  case PROTOBUF_C_TYPE_SINT32: {
    if (wt != 0) return false;
    uint32_t u = (uint32_t)v;
    int32_t x = (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
    memcpy(m, &x, sizeof x);
    return true;
  }
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_UINT64:
    if (wt != 0) return false;
    memcpy(m, &v, sizeof v);
    return true;
  case PROTOBUF_C_TYPE_SINT64: {
    if (wt != 0) return false;
    int64_t x = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
    memcpy(m, &x, sizeof x);
    return true;
  }
  case PROTOBUF_C_TYPE_BOOL: {
    if (wt != 0) return false;
    protobuf_c_boolean b = v != 0;
    memcpy(m, &b, sizeof b);
    return true;
  }
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT: {
    if (wt != 5) return false;
    uint32_t x = le32(fixed);
    memcpy(m, &x, sizeof x);
    return true;
  }
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE: {
    if (wt != 1) return false;
    uint64_t x = le64(fixed);
    memcpy(m, &x, sizeof x);
    return true;
  }
  default:
    return false;
  }
}

bool ia__pb_flat_unpack(const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a, size_t len,
                        const uint8_t *data, ProtobufCMessage **out) {
  unsigned bits = desc_bits(d);
  if (!(bits & DESC_FLAT)) return false;
  ProtobufCMessage *msg = a ? a->alloc(a->allocator_data, d->sizeof_message) : malloc(d->sizeof_message);
  if (!msg) return false; /* protobuf-c reports it */
  d->message_init(msg);
  const uint8_t *p = data, *end = data + len;
  uint64_t seen = 0;
  unsigned next = 0; /* the field after the last one read */
  while (p < end) {
    uint64_t key, v = 0;
    if (!ia__get_key(&p, end, &key)) goto give_up;
    unsigned wt = key & 7;
    /* Fields usually come in order: try the next one first. */
    int i = next < d->n_fields && d->fields[next].id == key >> 3 ? (int)next : field_index(d, key >> 3);
    if (i < 0) goto give_up; /* unknown, or field 0: protobuf-c's call */
    const uint8_t *fixed = p;
    if (wt == 0) {
      if (!ia__get_varint(&p, end, &v)) goto give_up;
      if (p - fixed == 10 && p[-1] > 1) goto give_up; /* bits past 64: protobuf-c's bool sees them */
    } else if (wt == 1 || wt == 5) {
      size_t n = wt == 1 ? 8 : 4;
      if ((size_t)(end - p) < n) goto give_up;
      p += n;
    } else {
      goto give_up;
    }
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (!store(msg, f, wt, v, fixed)) goto give_up;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) *(protobuf_c_boolean *)((uint8_t *)msg + f->quantifier_offset) = 1;
    seen |= 1ull << i;
    next = (unsigned)i + 1;
  }
  if (bits & DESC_REQUIRED)
    for (unsigned i = 0; i < d->n_fields; i++)
      if (d->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !(seen & (1ull << i))) goto give_up;
  *out = msg;
  return true;
give_up:
  if (a)
    a->free(a->allocator_data, msg);
  else
    free(msg);
  return false;
}

/* ---- packing ---- */

static uint8_t *put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    *p++ = (uint8_t)(v >> (8 * i));
  return p;
}

static uint8_t *put_le64(uint8_t *p, uint64_t v) {
  return put_le32(put_le32(p, (uint32_t)v), (uint32_t)(v >> 32));
}

/* Whether protobuf-c would leave field f of m out. */
static bool absent(const ProtobufCMessage *m, const ProtobufCFieldDescriptor *f, const uint8_t *v) {
  if (f->label == PROTOBUF_C_LABEL_REQUIRED) return false;
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
    protobuf_c_boolean has;
    memcpy(&has, (const uint8_t *)m + f->quantifier_offset, sizeof has);
    return !has;
  }
  /* LABEL_NONE (proto3): zero values are not sent. */
  switch (f->type) {
  case PROTOBUF_C_TYPE_FLOAT: {
    float x;
    memcpy(&x, v, sizeof x);
    return x == 0;
  }
  case PROTOBUF_C_TYPE_DOUBLE: {
    double x;
    memcpy(&x, v, sizeof x);
    return x == 0;
  }
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64: {
    uint64_t x;
    memcpy(&x, v, sizeof x);
    return x == 0;
  }
  case PROTOBUF_C_TYPE_BOOL: {
    protobuf_c_boolean x;
    memcpy(&x, v, sizeof x);
    return x == 0;
  }
  default: {
    uint32_t x;
    memcpy(&x, v, sizeof x);
    return x == 0;
  }
  }
}

bool ia__pb_flat_pack(const ProtobufCMessage *m, uint8_t *out, size_t cap, size_t *len) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  /* At most a 5-byte key and a 10-byte value per field. */
  if (m->n_unknown_fields || !(desc_bits(d) & DESC_FLAT) || cap / 15 < d->n_fields) return false;
  uint8_t *p = out;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const uint8_t *v = (const uint8_t *)m + f->offset;
    if (absent(m, f, v)) continue;
    uint64_t key = (uint64_t)f->id << 3;
    uint32_t u32;
    uint64_t u64;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_ENUM: {
      int32_t x;
      memcpy(&x, v, sizeof x);
      p = ia__put_varint(ia__put_varint(p, key), (uint64_t)(int64_t)x); /* negative: ten bytes, as protobuf wants */
      break;
    }
    case PROTOBUF_C_TYPE_UINT32:
      memcpy(&u32, v, sizeof u32);
      p = ia__put_varint(ia__put_varint(p, key), u32);
      break;
    case PROTOBUF_C_TYPE_SINT32: {
      int32_t x;
      memcpy(&x, v, sizeof x);
      p = ia__put_varint(ia__put_varint(p, key), ((uint32_t)x << 1) ^ (uint32_t)(x >> 31));
      break;
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_UINT64:
      memcpy(&u64, v, sizeof u64);
      p = ia__put_varint(ia__put_varint(p, key), u64);
      break;
    case PROTOBUF_C_TYPE_SINT64: {
      int64_t x;
      memcpy(&x, v, sizeof x);
      p = ia__put_varint(ia__put_varint(p, key), ((uint64_t)x << 1) ^ (uint64_t)(x >> 63));
      break;
    }
    case PROTOBUF_C_TYPE_BOOL: {
      protobuf_c_boolean b;
      memcpy(&b, v, sizeof b);
      p = ia__put_varint(ia__put_varint(p, key), b ? 1 : 0);
      break;
    }
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
      memcpy(&u32, v, sizeof u32);
      p = put_le32(ia__put_varint(p, key | 5), u32);
      break;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
      memcpy(&u64, v, sizeof u64);
      p = put_le64(ia__put_varint(p, key | 1), u64);
      break;
    default:
      return false;
    }
  }
  *len = (size_t)(p - out);
  return true;
}
