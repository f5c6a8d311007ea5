/*
 * The fast codec for flat messages (runtime/pb_flat.c) against protobuf-c
 * itself: for every scalar type, proto2 and proto3, random and edge values,
 * the bytes it packs and the structs it unpacks must be protobuf-c's, and on
 * input it does not handle byte for byte it must decline (the library then
 * asks protobuf-c). Every loop has a fixed count and a fixed seed.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "flat2.pb-c.h"
#include "flat3.pb-c.h"
#include "interaction/pb.h"
#include "flat_compare.h"
#include "pb/flat.h"

#define ROUNDS 20000
#define BUF 1024

static uint64_t rng_state;

static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* Mostly edge values, sometimes any bits. */
static uint64_t rnd_bits(void) {
  static const uint64_t edges[] = {0,
                                   1,
                                   2,
                                   127,
                                   128,
                                   16383,
                                   16384,
                                   0x7fffffff,
                                   0x80000000,
                                   0xffffffff,
                                   0x100000000ull,
                                   INT64_MAX,
                                   (uint64_t)INT64_MIN,
                                   UINT64_MAX,
                                   UINT64_MAX - 1};
  uint64_t r = rnd();
  if (r % 3 == 0) return edges[(r >> 8) % (sizeof edges / sizeof edges[0])];
  if (r % 3 == 1) return rnd() >> (rnd() % 64); /* any length */
  return rnd();
}

/* A message of type d with random fields: present or not, edge values,
 * float specials (NaN, -0.0, infinities come out of random bits too). */
static ProtobufCMessage *random_msg(const ProtobufCMessageDescriptor *d) {
  ProtobufCMessage *m = malloc(d->sizeof_message);
  cr_assert_not_null(m);
  d->message_init(m);
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    uint8_t *v = (uint8_t *)m + f->offset;
    bool zero = rnd() % 4 == 0;
    uint64_t bits = zero ? 0 : rnd_bits();
    if (f->type == PROTOBUF_C_TYPE_FLOAT && rnd() % 5 == 0) {
      float x = rnd() % 2 ? -0.0f : NAN;
      memcpy(v, &x, 4);
    } else if (f->type == PROTOBUF_C_TYPE_DOUBLE && rnd() % 5 == 0) {
      double x = rnd() % 2 ? -0.0 : NAN;
      memcpy(v, &x, 8);
    } else if (f->type == PROTOBUF_C_TYPE_BOOL) {
      protobuf_c_boolean b = (protobuf_c_boolean)(bits % 3); /* 2: any true int */
      memcpy(v, &b, sizeof b);
    } else if (f->type == PROTOBUF_C_TYPE_ENUM && rnd() % 2) {
      static const int32_t known[] = {0, 1, 2, -5};
      memcpy(v, &known[rnd() % 4], 4);
    } else {
      memcpy(v, &bits, flat_member_size(f)); /* little-endian: the low bytes */
    }
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
      *(protobuf_c_boolean *)((uint8_t *)m + f->quantifier_offset) = rnd() % 2;
  }
  return m;
}

/* Field by field: presence and the value's bytes. */
static void assert_same(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
                        const ProtobufCMessage *b, const char *what) {
  const ProtobufCFieldDescriptor *f;
  flat_diff diff = flat_compare(d, a, b, &f);
  cr_assert_neq(diff, FLAT_UNKNOWN_FIELDS, "%s: unknown fields differ", what);
  cr_assert_neq(diff, FLAT_PRESENCE, "%s: has_%s differs", what, f ? f->name : "?");
  cr_assert_neq(diff, FLAT_VALUE, "%s: %s.%s differs", what, d->name, f ? f->name : "?");
}

static const ProtobufCMessageDescriptor *const flat_descs[] = {
    &flat__flat2__descriptor, &flat__required2__descriptor, &flat3__flat3__descriptor};

Test(pb_flat, packs_exactly_like_protobuf_c) {
  rng_state = 0x9E3779B97F4A7C15ull;
  for (size_t k = 0; k < sizeof flat_descs / sizeof flat_descs[0]; k++) {
    const ProtobufCMessageDescriptor *d = flat_descs[k];
    for (int r = 0; r < ROUNDS; r++) {
      ProtobufCMessage *m = random_msg(d);
      uint8_t mine[BUF], theirs[BUF];
      size_t len = 0;
      cr_assert(ia__pb_flat_pack(m, mine, sizeof mine, &len), "%s: the fast path declined a flat message",
                d->name);
      size_t want = protobuf_c_message_pack(m, theirs);
      cr_assert_eq(len, want, "%s round %d: %zu bytes, protobuf-c packs %zu", d->name, r, len, want);
      cr_assert(memcmp(mine, theirs, len) == 0, "%s round %d: the bytes differ from protobuf-c's", d->name,
                r);
      free(m);
    }
  }
}

Test(pb_flat, unpacks_exactly_like_protobuf_c) {
  rng_state = 0xD1B54A32D192ED03ull;
  for (size_t k = 0; k < sizeof flat_descs / sizeof flat_descs[0]; k++) {
    const ProtobufCMessageDescriptor *d = flat_descs[k];
    for (int r = 0; r < ROUNDS; r++) {
      ProtobufCMessage *m = random_msg(d);
      uint8_t buf[BUF];
      size_t len = protobuf_c_message_pack(m, buf);
      free(m);
      ProtobufCMessage *mine = NULL;
      ProtobufCAllocator *a = r % 2 ? &flat_counting : NULL;
      cr_assert(ia__pb_flat_unpack(d, a, len, buf, &mine),
                "%s round %d: the fast path declined protobuf-c's own bytes", d->name, r);
      ProtobufCMessage *theirs = protobuf_c_message_unpack(d, NULL, len, buf);
      cr_assert_not_null(theirs);
      assert_same(d, mine, theirs, "unpack");
      protobuf_c_message_free_unpacked(mine, a);
      protobuf_c_message_free_unpacked(theirs, NULL);
      cr_assert_eq(flat_live_blocks, 0, "a block of the caller's allocator was not returned");
    }
  }
}

/* Decoding through the library (fast path, else protobuf-c) must agree
 * with protobuf-c on anything: damaged encodings and random bytes. */
Test(pb_flat, damaged_input_decodes_as_protobuf_c_decides) {
  rng_state = 0x94D049BB133111EBull;
  int both_fail = 0, both_ok = 0;
  for (size_t k = 0; k < sizeof flat_descs / sizeof flat_descs[0]; k++) {
    const ProtobufCMessageDescriptor *d = flat_descs[k];
    for (int r = 0; r < ROUNDS; r++) {
      uint8_t buf[BUF];
      size_t len;
      if (r % 8 == 7) {
        len = rnd() % 40;
        for (size_t i = 0; i < len; i++)
          buf[i] = (uint8_t)rnd();
      } else {
        ProtobufCMessage *m = random_msg(d);
        len = protobuf_c_message_pack(m, buf);
        free(m);
        switch (rnd() % 5) {
        case 0: /* truncated */
          if (len) len = rnd() % len;
          break;
        case 1: /* a byte changed */
          if (len) buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
          break;
        case 2: { /* a field of another wire type, or an unknown one, appended */
          uint8_t key = (uint8_t)(((rnd() % 20) << 3) | (rnd() % 6));
          buf[len++] = key;
          for (int i = 0; i < 9; i++)
            buf[len++] = (uint8_t)rnd();
          break;
        }
        case 3:                 /* a varint of ten bytes with bits past 64 */
          buf[len++] = 13 << 3; /* b (bool), or i32 etc. in the other messages */
          for (int i = 0; i < 9; i++)
            buf[len++] = 0x80;
          buf[len++] = (uint8_t)(rnd() % 4);
          break;
        default: /* the encoding twice: later fields win */
          memcpy(buf + len, buf, len);
          len *= 2;
          break;
        }
      }
      ProtobufCMessage *mine = NULL;
      ia_code rc = ia_pb_decode(d, buf, len, &mine);
      ProtobufCMessage *theirs = protobuf_c_message_unpack(d, NULL, len, buf);
      cr_assert_eq(rc == IA_OK, theirs != NULL, "%s round %d: the library says %d, protobuf-c %s", d->name, r,
                   rc, theirs ? "decodes it" : "does not");
      if (theirs) {
        assert_same(d, mine, theirs, "damaged");
        both_ok++;
      } else {
        cr_assert_eq(rc, IA_PROTOCOL_ERROR);
        both_fail++;
      }
      protobuf_c_message_free_unpacked(mine, NULL);
      protobuf_c_message_free_unpacked(theirs, NULL);
    }
  }
  /* Both kinds of outcome were exercised. */
  cr_assert_gt(both_ok, 1000);
  cr_assert_gt(both_fail, 1000);
}

Test(pb_flat, declines_what_it_does_not_handle) {
  uint8_t buf[BUF];
  size_t len = 0;
  ProtobufCMessage *m = NULL;

  /* A message with a string field. */
  Flat__NotFlat nf = FLAT__NOT_FLAT__INIT;
  nf.has_n = 1;
  nf.n = 7;
  nf.s = "x";
  cr_assert_not(ia__pb_flat_pack(&nf.base, buf, sizeof buf, &len));
  len = protobuf_c_message_pack(&nf.base, buf);
  cr_assert_not(ia__pb_flat_unpack(&flat__not_flat__descriptor, NULL, len, buf, &m));
  cr_assert_null(m);

  /* An unknown field: protobuf-c keeps it, so the fast path leaves it. */
  Flat__Flat2 f2 = FLAT__FLAT2__INIT;
  f2.has_i32 = 1;
  f2.i32 = -3;
  len = protobuf_c_message_pack(&f2.base, buf);
  buf[len++] = 0x98; /* field 99: the key 792 as a two-byte varint, wire type 0 */
  buf[len++] = 6;
  buf[len++] = 1;
  cr_assert_not(ia__pb_flat_unpack(&flat__flat2__descriptor, NULL, len, buf, &m));
  /* ... and a message that holds unknown fields is packed by protobuf-c. */
  Flat__Flat2 *u = flat__flat2__unpack(NULL, len, buf);
  cr_assert_not_null(u);
  cr_assert_eq(u->base.n_unknown_fields, 1);
  cr_assert_not(ia__pb_flat_pack(&u->base, buf, sizeof buf, &len));
  flat__flat2__free_unpacked(u, NULL);

  /* A required field missing: protobuf-c refuses it, the fast path leaves it. */
  Flat__Required2 r2 = FLAT__REQUIRED2__INIT;
  r2.need = 1;
  r2.also = -1;
  len = protobuf_c_message_pack(&r2.base, buf);
  cr_assert(ia__pb_flat_unpack(&flat__required2__descriptor, NULL, len, buf, &m));
  protobuf_c_message_free_unpacked(m, NULL);
  m = NULL;
  cr_assert_eq(buf[0], 1 << 3); /* need comes first: drop it */
  cr_assert_not(ia__pb_flat_unpack(&flat__required2__descriptor, NULL, len - 2, buf + 2, &m));
  cr_assert_null(protobuf_c_message_unpack(&flat__required2__descriptor, NULL, len - 2, buf + 2));

  /* No room for the largest encoding: declined before writing. */
  cr_assert_not(ia__pb_flat_pack(&f2.base, buf, 15 * 15, &len)); /* Flat2 has 16 fields */
  cr_assert(ia__pb_flat_pack(&f2.base, buf, 16 * 15, &len));
  cr_assert_null(m);
}

/* The default of an absent field is the descriptor's, as protobuf-c sets it. */
Test(pb_flat, absent_fields_keep_their_defaults) {
  uint8_t buf[16];
  Flat__Flat2 in = FLAT__FLAT2__INIT;
  in.has_u32 = 1;
  in.u32 = 5;
  size_t len = protobuf_c_message_pack(&in.base, buf);
  ProtobufCMessage *m = NULL;
  cr_assert(ia__pb_flat_unpack(&flat__flat2__descriptor, NULL, len, buf, &m));
  Flat__Flat2 *out = (Flat__Flat2 *)m;
  cr_assert_eq(out->u32, 5);
  cr_assert(out->has_u32);
  cr_assert_not(out->has_dflt);
  cr_assert_eq(out->dflt, 42);
  flat__flat2__free_unpacked(out, NULL);
}
