/*
 * The hand-written envelope and body parsers (runtime/parse.c) on inputs
 * where a fuzz run (tests/fuzz/fuzz_envelope, against protobuf-c) found
 * them deciding differently from protobuf-c and Google's protobuf. Each
 * test is named for what it guards; the inputs are the fuzzer's
 * reproducers, decoded by hand in the comments.
 */
#include <string.h>

#include <criterion/criterion.h>

#include "interaction.pb-c.h"
#include "runtime/wire.h"

static ia__slice slice(const uint8_t *p, size_t n) {
  return (ia__slice){p, n};
}

/* protobuf-c's verdict on the same bytes as a Frame. */
static bool protobuf_c_accepts_frame(const uint8_t *p, size_t n) {
  Interaction__V1__Frame *f = interaction__v1__frame__unpack(NULL, n, p);
  if (f) interaction__v1__frame__free_unpacked(f, NULL);
  return f != NULL;
}

/* A key (tag) takes 5 bytes at most, as protobuf-c and Google's protobuf
 * read it: the frame below has an unknown fixed32 field whose tag takes 6
 * bytes (dd dd dd dd dd 00). It used to be accepted. */
Test(parse, keys_over_five_bytes_are_malformed) {
  static const uint8_t frame[] = {0x08, 0x01, 0x42, 0x00, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd, 0x00, 1, 2, 3, 4};
  ia__env env;
  cr_assert_not(ia__env_parse(frame, sizeof frame, &env), "a 6-byte key was accepted");
  cr_assert_not(protobuf_c_accepts_frame(frame, sizeof frame), "the test's input is not what it means to be");
  /* The same unknown field with a 5-byte key is fine for both. */
  static const uint8_t ok[] = {0x08, 0x01, 0x42, 0x00, 0xdd, 0xdd, 0xdd, 0xdd, 0x0d, 1, 2, 3, 4};
  cr_assert(ia__env_parse(ok, sizeof ok, &env));
  cr_assert(protobuf_c_accepts_frame(ok, sizeof ok));
}

/* A length prefix takes 5 bytes at most too: the Refusal body of this frame
 * declares its 2 bytes of data with a 6-byte length (82 80 80 80 80 00). */
Test(parse, length_prefixes_over_five_bytes_are_malformed) {
  static const uint8_t body[] = {0x08, 0x05, 0x1a, 0x82, 0x80, 0x80, 0x80, 0x80, 0x00, 0x01, 0x02};
  ia__status_view v;
  cr_assert_not(ia__status_parse(slice(body, sizeof body), true, &v), "a 6-byte length was accepted");
  Interaction__V1__Refusal *r = interaction__v1__refusal__unpack(NULL, sizeof body, body);
  cr_assert_null(r, "protobuf-c accepts the input");
  static const uint8_t ok[] = {0x08, 0x05, 0x1a, 0x82, 0x00, 0x01, 0x02}; /* the same, in 2 bytes */
  cr_assert(ia__status_parse(slice(ok, sizeof ok), true, &v));
  cr_assert_eq(v.data.n, 2);
}

/* A Task whose metadata entry is malformed (its key claims 40 bytes of 7)
 * is no Task any protobuf library decodes: it is refused as malformed. It
 * used to run, with all of its metadata reading as absent. */
Test(parse, a_task_with_a_malformed_metadata_entry_is_malformed) {
  static const uint8_t body[] = {0x0a, 0x01, 'm', 0x22, 0x07, 0x0a, 0x28, 'k', 'e', 'y', 0x12, 0x00};
  ia__task_view t;
  cr_assert_not(ia__task_parse(slice(body, sizeof body), &t));
  Interaction__V1__Task *pc = interaction__v1__task__unpack(NULL, sizeof body, body);
  cr_assert_null(pc, "protobuf-c accepts the input");
  /* An entry whose value is a varint instead of a string: the same. */
  static const uint8_t typed[] = {0x0a, 0x01, 'm', 0x22, 0x05, 0x0a, 0x01, 'k', 0x10, 0x07};
  cr_assert_not(ia__task_parse(slice(typed, sizeof typed), &t));
}

static bool count_entry(ia__slice key, ia__slice value, void *user) {
  (void)value;
  *(int *)user += key.n == 1 && key.p[0] == 'k';
  return true;
}

/* A well-formed entry with an unknown field of its own is still read. */
Test(parse, metadata_entries_with_unknown_fields_are_read) {
  static const uint8_t body[] = {0x0a, 0x01, 'm', 0x22, 0x08, 0x0a, 0x01, 'k', 0x12, 0x01, 'v', 0x18, 0x01};
  ia__task_view t;
  cr_assert(ia__task_parse(slice(body, sizeof body), &t));
  cr_assert(t.has_metadata);
  int n = 0;
  cr_assert(ia__task_metadata(slice(body, sizeof body), count_entry, &n));
  cr_assert_eq(n, 1);
}

/* Goodbye has no field 3 (TaskFail and Refusal do: bytes). A Goodbye with a
 * field 3 of another type -- a later version's, say -- is an unknown field,
 * skipped as protobuf-c skips it; it used to make the frame malformed. */
Test(parse, a_goodbye_skips_an_unknown_field_3_of_any_type) {
  static const uint8_t body[] = {0x08, 0x13, 0x18, 0x32};
  ia__status_view v;
  cr_assert(ia__status_parse(slice(body, sizeof body), false, &v),
            "a Goodbye with a varint field 3 was refused");
  cr_assert(v.has_code);
  cr_assert_eq(v.code, 19);
  Interaction__V1__Goodbye *g = interaction__v1__goodbye__unpack(NULL, sizeof body, body);
  cr_assert_not_null(g);
  interaction__v1__goodbye__free_unpacked(g, NULL);
  /* As a Refusal, field 3 is its data and must be bytes. */
  cr_assert_not(ia__status_parse(slice(body, sizeof body), true, &v));
}

/* A 5-byte key whose last byte has bits beyond 32 is still a key: protobuf-c
 * and Google's protobuf take field numbers of 32 bits from it, here an
 * unknown field, skipped. (Rejecting it, as a first version of the 5-byte
 * rule did, refused frames protobuf-c accepts: found by fuzz_envelope.) */
Test(parse, a_five_byte_key_with_high_bits_is_an_unknown_field) {
  static const uint8_t frame[] = {0x08, 0x31, 0x4a, 0x00, 0xed, 0xfe, 0xf8,
                                  0xf2, 0x3b, 0x00, 0x00, 0x08, 0x31};
  ia__env env;
  cr_assert(protobuf_c_accepts_frame(frame, sizeof frame), "the test's input is not what it means to be");
  cr_assert(ia__env_parse(frame, sizeof frame, &env), "a 5-byte key with high bits was refused");
  cr_assert_eq(env.id, 49);
  cr_assert_eq(env.kind, INTERACTION__V1__FRAME__BODY_PING);
}

/* A 5-byte length whose value is over 2^31 is no length, even when its
 * low 32 bits are small: protobuf-c reads it whole and rejects it. (A first
 * version of the 5-byte rule kept 32 bits of it, read 80 80 80 80 40 as 0,
 * and accepted this Task: found by fuzz_envelope.) */
Test(parse, a_length_over_two_gib_is_malformed_whatever_its_low_bits) {
  static const uint8_t body[] = {0x0a, 0x01, 'm', 0x22, 0x80, 0x80, 0x80, 0x80, 0x40};
  ia__task_view t;
  cr_assert_not(ia__task_parse(slice(body, sizeof body), &t));
  Interaction__V1__Task *pc = interaction__v1__task__unpack(NULL, sizeof body, body);
  cr_assert_null(pc, "protobuf-c accepts the input");
}

/* The shape our masters send with a deadline (method, deadline_ms, payload)
 * is read as protobuf-c reads it, with or without the payload. */
Test(parse, a_task_with_a_deadline_reads_as_protobuf_c_reads_it) {
  static const uint8_t full[] = {0x0a, 0x01, 'm', 0x18, 0x96, 0x01, 0x12, 0x02, 'a', 'b'};
  static const uint8_t bare[] = {0x0a, 0x01, 'm', 0x18, 0x05};
  const struct {
    const uint8_t *p;
    size_t n;
  } cases[] = {{full, sizeof full}, {bare, sizeof bare}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ia__task_view t;
    cr_assert(ia__task_parse(slice(cases[i].p, cases[i].n), &t), "case %zu refused", i);
    Interaction__V1__Task *pc = interaction__v1__task__unpack(NULL, cases[i].n, cases[i].p);
    cr_assert_not_null(pc, "protobuf-c refuses case %zu", i);
    cr_assert_eq(t.deadline_ms, pc->deadline_ms, "case %zu: deadline %llu, protobuf-c %llu", i,
                 (unsigned long long)t.deadline_ms, (unsigned long long)pc->deadline_ms);
    cr_assert_eq(t.method.n, strlen(pc->method));
    cr_assert_eq(t.payload.n, pc->has_payload ? pc->payload.len : 0, "case %zu: payload %zu bytes", i,
                 t.payload.n);
    cr_assert_not(t.has_metadata);
    interaction__v1__task__free_unpacked(pc, NULL);
  }
}

/* Bodies 16 on (AuthChallenge, AuthProof) have two-byte keys. The fast
 * path read one key byte, so 82 10 -- field 256, an unknown field, cut
 * short -- passed for body 16 (0x82 >> 3) with a length of 0x10 that
 * happened to match what followed (found by fuzz_envelope once 16 and 17
 * were bodies). */
Test(parse, a_two_byte_key_is_never_read_as_one_byte) {
  static const uint8_t frame[] = {0x08, 0x0d, 0x82, 0x10, 0x21, 0x00, 0x00, 0x00, 0xb7, 0x03,
                                  0x01, 0xb5, 0xff, 0xda, 0xff, 0xed, 0xda, 0x02, 0x01, 0x02};
  ia__env env;
  cr_assert_not(protobuf_c_accepts_frame(frame, sizeof frame), "the test's input is not what it means to be");
  cr_assert_not(ia__env_parse(frame, sizeof frame, &env), "field 256, cut short, was read as body 16");
  /* And a real AuthProof (17: key 8a 01) with a 2-byte body parses. */
  static const uint8_t proof[] = {0x08, 0x05, 0x8a, 0x01, 0x02, 0x0a, 0x00};
  cr_assert(protobuf_c_accepts_frame(proof, sizeof proof));
  cr_assert(ia__env_parse(proof, sizeof proof, &env));
  cr_assert_eq(env.id, 5);
  cr_assert_eq(env.kind, INTERACTION__V1__FRAME__BODY_AUTH_PROOF);
  cr_assert_eq(env.body.n, 2);
}

/* The reference: protobuf's varint, at most ten bytes, bits past 64 dropped. */
static bool ref_varint(const uint8_t *p, size_t n, uint64_t *v, size_t *used) {
  uint64_t r = 0;
  for (size_t i = 0; i < n && i < 10; i++) {
    r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (p[i] < 0x80) {
      *v = r;
      *used = i + 1;
      return true;
    }
  }
  return false;
}

Test(parse, varints_of_every_length_read_as_protobuf_reads_them) {
  /* Every length from 1 to 11 bytes, each cut short at every point, with
   * bytes of every shape (0x00, 0x7f, 0x80, 0xff in the continuation bits). */
  static const uint8_t fill[] = {0x80, 0xff, 0x81, 0xfe};
  static const uint8_t last[] = {0x00, 0x01, 0x7f, 0x40};
  for (size_t len = 1; len <= 11; len++)
    for (size_t f = 0; f < sizeof fill; f++)
      for (size_t l = 0; l < sizeof last; l++) {
        uint8_t buf[16];
        for (size_t i = 0; i + 1 < len; i++)
          buf[i] = (uint8_t)(fill[f] ^ (i * 0x15 & 0x7f));
        buf[len - 1] = last[l];
        for (size_t avail = 0; avail <= len; avail++) {
          uint64_t want = 0, got = 0;
          size_t used = 0;
          bool ok = ref_varint(buf, avail, &want, &used);
          const uint8_t *p = buf;
          bool r = ia__get_varint(&p, buf + avail, &got);
          cr_assert_eq(r, ok, "%zu bytes, %zu there: read %d, protobuf %d", len, avail, r, ok);
          if (ok) {
            cr_assert_eq(got, want, "%zu bytes: %llx, protobuf %llx", len, (unsigned long long)got,
                         (unsigned long long)want);
            cr_assert_eq((size_t)(p - buf), used);
          }
        }
      }
}
