/*
 * fuzz_flat: the fast codec for flat messages (pb/flat.h) against
 * protobuf-c, on the flat test messages of tests/runtime/protos (proto2
 * Flat2 and Required2, proto3 Flat3; NotFlat must always be declined).
 *
 * Input: byte 0 picks the message (bits 0-1), the mode (bit 2), the
 * allocator (bit 3: protobuf-c's default or a counting one) and bits 4-7
 * (w); the rest is
 *  - decode mode: an encoding, unpacked by both; whenever the fast path
 *    accepts, protobuf-c must accept too with the same field values,
 *    presence flags and no unknown fields; then both pack what protobuf-c
 *    decoded, byte for byte. With w > 0 the encoding is first re-encoded
 *    with its varints (tags, values, lengths) padded to other widths (the
 *    same numbers in more bytes, up to ten), as another encoder might
 *    write them: the two decoders must still agree;
 *  - struct mode: the raw contents of the message struct (each field's
 *    value and presence flag from the input), packed by both byte for byte,
 *    and the packed bytes unpacked by both again (w sets the room given to
 *    the fast packer: 0..1020 bytes).
 *
 * A fast path that accepts what protobuf-c rejects, with a 6-10-byte tag
 * in the input, is the known defect "flat_long_tag" (protobuf-c reads tags
 * of at most 5 bytes); other disagreements have kinds of their own.
 *
 * Internal functions called: ia__pb_flat_unpack, ia__pb_flat_pack
 * (pb/flat.h). It must never hand the library a descriptor other
 * than the generated ones, or a buffer smaller than it says.
 */
#include <stdlib.h>
#include <string.h>

#include "flat2.pb-c.h"
#include "flat3.pb-c.h"
#include "fuzz_common.h"
#include "../runtime/flat_compare.h"
#include "pb/flat.h"

#define BUF 1024 /* more than 15 bytes for each field of every message here */

static const ProtobufCMessageDescriptor *const descs[] = {
    &flat__flat2__descriptor, &flat__required2__descriptor, &flat3__flat3__descriptor,
    &flat__not_flat__descriptor};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_init();
  return 0;
}

static bool flat(const ProtobufCMessageDescriptor *d) {
  return d != &flat__not_flat__descriptor;
}

/* Field by field: presence flags, the values' bytes, unknown fields. */
static void same_msg(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
                     const ProtobufCMessage *b) {
  const ProtobufCFieldDescriptor *f;
  switch (flat_compare(d, a, b, &f)) {
  case FLAT_UNKNOWN_FIELDS:
    fz_fail("flat_unknown_fields", "%s: unknown fields differ", d->name);
    break;
  case FLAT_PRESENCE:
    fz_fail("flat_presence_differs", "%s.has_%s differs from protobuf-c's", d->name, f->name);
    break;
  case FLAT_VALUE:
    fz_fail("flat_value_differs", "%s.%s differs from protobuf-c's", d->name, f->name);
    break;
  case FLAT_SAME:
    break;
  }
}

/* Both packers on m: the fast one must give protobuf-c's bytes, or
 * decline where its contract says it does. */
static void check_pack(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *m, size_t room) {
  uint8_t mine[BUF], theirs[BUF];
  size_t len = 0, want = protobuf_c_message_get_packed_size(m);
  if (want > sizeof theirs) return; /* not with these messages: 15 bytes a field at most */
  if (protobuf_c_message_pack(m, theirs) != want) fz_fail("flat_pack", "protobuf-c's size and pack differ");
  bool ok = ia__pb_flat_pack(m, mine, room, &len);
  bool may = flat(d) && m->n_unknown_fields == 0 && room / 15 >= d->n_fields;
  if (ok && !may) fz_fail("flat_pack_not_declined", "%s: packed although its contract says decline", d->name);
  if (!ok && may) fz_fail("flat_pack_declined", "%s: declined a flat message with room %zu", d->name, room);
  if (ok && (len != want || memcmp(mine, theirs, len) != 0))
    fz_fail("flat_pack_differs", "%s: %zu bytes, protobuf-c packs %zu (or other bytes)", d->name, len, want);
}

/* Both unpackers on one encoding. Returns protobuf-c's message (or NULL). */
static ProtobufCMessage *check_unpack(const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a,
                                      const uint8_t *p, size_t n) {
  ProtobufCMessage *mine = NULL;
  bool ok = ia__pb_flat_unpack(d, a, n, p, &mine);
  ProtobufCMessage *theirs = protobuf_c_message_unpack(d, NULL, n, p);
  if (!ok && mine) fz_fail("flat_declined_dirty", "declined but handed out a message");
  if (ok && !flat(d)) fz_fail("flat_not_flat", "%s is not flat, yet the fast path decoded it", d->name);
  if (ok && !theirs) {
    if (fz_pbc_quirks(d, p, n) & FZ_Q_LONG_TAG)
      fz_fail("flat_long_tag", "%s: the fast path accepts a 6-10-byte tag that protobuf-c rejects", d->name);
    else
      fz_fail("flat_accepts_rejected", "%s: the fast path accepts what protobuf-c rejects", d->name);
  }
  if (ok && theirs) same_msg(d, mine, theirs);
  if (ok) protobuf_c_message_free_unpacked(mine, a);
  if (flat_live_blocks != 0)
    fz_fail("flat_allocator", "%ld blocks of the caller's allocator are still out", flat_live_blocks);
  return theirs;
}

/* v as a varint of `width` bytes (at least its shortest encoding, at most
 * ten): the extra bytes are continuation bytes that add nothing. */
static void put_wide(fz_buf *b, uint64_t v, unsigned width) {
  unsigned shortest = 1;
  for (uint64_t x = v; x >= 0x80; x >>= 7)
    shortest++;
  if (width < shortest) width = shortest;
  if (width > 10) width = 10;
  for (unsigned i = 0; i + 1 < width; i++) {
    fz_buf_byte(b, (uint8_t)(v | 0x80));
    v >>= 7;
  }
  fz_buf_byte(b, (uint8_t)v);
}

/* The encoding p with its varints widened: w & 1 widens tags, w & 2 values
 * and lengths (both when neither), by amounts that vary from one varint to
 * the next (w >> 2 shifts them). What cannot be walked is copied as is. */
static void widen(fz_buf *out, const uint8_t *p, size_t n, unsigned w) {
  const uint8_t *end = p + n;
  bool tags = (w & 3) != 2, values = (w & 3) != 1;
  unsigned i = w >> 2;
  while (p < end) {
    const uint8_t *at = p;
    uint64_t key, v;
    if (!fz_varint(&p, end, &key)) {
      p = at;
      break;
    }
    unsigned wt = key & 7;
    if ((wt == 0 || wt == 2) && !fz_varint(&p, end, &v)) {
      p = at;
      break;
    }
    if (wt == 2 && v > (uint64_t)(end - p)) {
      p = at;
      break;
    }
    size_t fixed = wt == 1 ? 8 : wt == 5 ? 4 : wt == 2 ? (size_t)v : 0;
    if ((wt != 0 && wt != 1 && wt != 2 && wt != 5) || (size_t)(end - p) < fixed) {
      p = at;
      break;
    }
    put_wide(out, key, tags ? (i++ * 7) % 11 : 0);
    if (wt == 0 || wt == 2) put_wide(out, v, values ? (i++ * 5) % 11 : 0);
    fz_buf_put(out, p, fixed);
    p += fixed;
  }
  fz_buf_put(out, p, (size_t)(end - p));
}

/* A message of type d whose struct contents come from the input. */
static ProtobufCMessage *from_struct(const ProtobufCMessageDescriptor *d, fz_reader *in) {
  ProtobufCMessage *m = malloc(d->sizeof_message);
  if (!m) abort();
  d->message_init(m);
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type > PROTOBUF_C_TYPE_ENUM) continue; /* NotFlat's string stays NULL */
    uint8_t *v = (uint8_t *)m + f->offset;
    uint64_t bits = fz_u64(in);
    if (f->type == PROTOBUF_C_TYPE_BOOL) bits %= 3; /* 2: a true that is not 1 */
    memcpy(v, &bits, flat_member_size(f));          /* little-endian: the low bytes */
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
      protobuf_c_boolean has = fz_u8(in) & 1;
      memcpy((uint8_t *)m + f->quantifier_offset, &has, sizeof has);
    }
  }
  return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input(data, size);
  fz_reader in = {data, size};
  uint8_t sel = fz_u8(&in);
  const ProtobufCMessageDescriptor *d = descs[sel & 3];
  ProtobufCAllocator *a = (sel & 8) ? &flat_counting : NULL;
  if (!(sel & 4)) {
    /* Decode mode: the rest is an encoding (widened when w > 0). */
    fz_buf wide = {0};
    if (sel >> 4) widen(&wide, in.p, in.n, sel >> 4);
    static const uint8_t none[1];
    ProtobufCMessage *theirs =
        sel >> 4 ? check_unpack(d, a, wide.p ? wide.p : none, wide.n) : check_unpack(d, a, in.p, in.n);
    if (theirs) {
      check_pack(d, theirs, BUF);
      protobuf_c_message_free_unpacked(theirs, NULL);
    }
    fz_buf_free(&wide);
    return 0;
  }
  /* Struct mode: the room is 0..1020 bytes, around 15 a field. */
  size_t room = (size_t)(sel >> 4) * 68;
  ProtobufCMessage *m = from_struct(d, &in);
  check_pack(d, m, room);
  uint8_t enc[BUF];
  size_t n = protobuf_c_message_get_packed_size(m);
  if (n <= sizeof enc) {
    protobuf_c_message_pack(m, enc);
    ProtobufCMessage *theirs = check_unpack(d, a, enc, n);
    if (!theirs && flat(d)) fz_fail("flat_roundtrip", "protobuf-c rejects its own packing of %s", d->name);
    if (theirs) protobuf_c_message_free_unpacked(theirs, NULL);
  }
  free(m);
  return 0;
}
