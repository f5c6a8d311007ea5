/*
 * The fast codec for flat messages (runtime/pb_flat.c) against protobuf-c on
 * field keys (tags) encoded in more bytes than they need. protobuf-c reads a
 * key of at most 5 bytes and rejects the message otherwise; the fast path
 * must decline such input or decode it exactly as protobuf-c does, and the
 * library's decoder (ia_pb_decode) must accept exactly what protobuf-c
 * accepts. Every field of every flat test message, every key length.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "flat2.pb-c.h"
#include "flat3.pb-c.h"
#include "interaction/pb.h"
#include "flat_compare.h"
#include "pb/flat.h"

#define BUF 128

static const ProtobufCMessageDescriptor *const flat_descs[] = {
    &flat__flat2__descriptor, &flat__required2__descriptor, &flat3__flat3__descriptor};

/* Writes `key` as a varint of exactly n bytes (1..10): continuation bytes
 * padded with zero bits, then `last` or-ed into the final byte. */
static size_t put_key(uint8_t *p, uint64_t key, int n, uint8_t last) {
  for (int i = 0; i < n - 1; i++) {
    p[i] = (uint8_t)(key & 0x7f) | 0x80;
    key >>= 7;
  }
  p[n - 1] = (uint8_t)(key & 0x7f) | last;
  return (size_t)n;
}

static unsigned wire_type(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
    return 5;
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 1;
  default:
    return 0;
  }
}

/* A value of wire type wt: the varint 1, or little-endian 1. */
static size_t put_value(uint8_t *p, unsigned wt) {
  size_t n = wt == 5 ? 4 : wt == 1 ? 8 : 1;
  memset(p, 0, n);
  p[0] = 1;
  return n;
}

/* The required fields of d, properly encoded (so that only the key under
 * test can make protobuf-c refuse). */
static size_t put_required(uint8_t *p, const ProtobufCMessageDescriptor *d, unsigned except) {
  size_t len = 0;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->label != PROTOBUF_C_LABEL_REQUIRED || i == except) continue;
    unsigned wt = wire_type(f);
    len += put_key(p + len, (uint64_t)f->id << 3 | wt, 1, 0);
    len += put_value(p + len, wt);
  }
  return len;
}

/* The fast path declines buf or decodes it as protobuf-c does, and the
 * library's decoder agrees with protobuf-c on whether it is a message. */
static void check(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, const char *what) {
  ProtobufCMessage *theirs = protobuf_c_message_unpack(d, NULL, len, buf);
  ProtobufCMessage *fast = NULL;
  if (ia__pb_flat_unpack(d, NULL, len, buf, &fast)) {
    cr_assert_not_null(theirs, "%s: the fast path decodes a %s that protobuf-c rejects", what, d->name);
    const ProtobufCFieldDescriptor *f;
    cr_assert(flat_compare(d, fast, theirs, &f) == FLAT_SAME,
              "%s: the fast path decodes a %s differently from protobuf-c", what, d->name);
    protobuf_c_message_free_unpacked(fast, NULL);
  }
  ProtobufCMessage *lib = NULL;
  ia_code rc = ia_pb_decode(d, buf, len, &lib);
  cr_assert_eq(rc == IA_OK, theirs != NULL, "%s: ia_pb_decode says %d %s, protobuf-c %s", what, rc,
               ia_code_name(rc), theirs ? "decodes it" : "rejects it");
  if (lib) protobuf_c_message_free_unpacked(lib, NULL);
  if (theirs) protobuf_c_message_free_unpacked(theirs, NULL);
}

/* Defect 11: ia__pb_flat_unpack read a field's key as any varint of up to
 * 10 bytes, so keys encoded in 6 to 10 bytes decoded as valid fields,
 * though protobuf-c (and so the rest of the library, and any peer using
 * protobuf-c) rejects them: the typed hot path accepted what the wire format
 * does not. Every field of every flat message, its key first or last, in
 * 5 bytes (protobuf-c's limit: padded, or with bits in the high part of the
 * fifth byte, which name field numbers over 2^28) and in 6 to 10 bytes
 * (zero padding, and a tenth byte with bits past 64). */
Test(pb_flat_tags, over_long_keys_are_declined_or_decoded_as_protobuf_c_does) {
  const uint8_t highs5[] = {0x00, 0x01, 0x08, 0x10, 0x20, 0x40, 0x70};
  const uint8_t lasts10[] = {0x00, 0x01, 0x7e};
  for (size_t k = 0; k < sizeof flat_descs / sizeof flat_descs[0]; k++) {
    const ProtobufCMessageDescriptor *d = flat_descs[k];
    for (unsigned i = 0; i < d->n_fields; i++) {
      const ProtobufCFieldDescriptor *f = &d->fields[i];
      unsigned wt = wire_type(f);
      for (int n = 5; n <= 10; n++) {
        const uint8_t *lasts = n == 5 ? highs5 : lasts10;
        size_t n_lasts = n == 5 ? sizeof highs5 : n == 10 ? sizeof lasts10 : 1;
        for (size_t l = 0; l < n_lasts; l++) {
          for (int at_end = 0; at_end < 2; at_end++) {
            uint8_t buf[BUF];
            size_t len = at_end ? put_required(buf, d, i) : 0;
            len += put_key(buf + len, (uint64_t)f->id << 3 | wt, n, lasts[l]);
            len += put_value(buf + len, wt);
            if (!at_end) len += put_required(buf + len, d, i);
            char what[96];
            snprintf(what, sizeof what, "field %s, a %d-byte key with 0x%02x in its last byte, %s", f->name,
                     n, lasts[l], at_end ? "last" : "first");
            check(d, buf, len, what);
          }
        }
      }
    }
  }
}
