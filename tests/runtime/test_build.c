/*
 * The frame builder (runtime/build.c): the short writer of the usual small
 * frames (ia__wframe_small2, the slave's results and the master's tasks)
 * must give the same bytes as the general builder, and decline what needs
 * more than one-byte keys and lengths.
 */
#include <stdint.h>
#include <string.h>

#include <criterion/criterion.h>

#include "interaction.pb-c.h"
#include "runtime/wire.h"

static const uint64_t ids[] = {0, 1, 127, 128, 16383, 16384, 2097151, 2097152, (uint64_t)1 << 35, UINT64_MAX};

/* The two builders' frames for one case -- bytes field 1 of n1 bytes, the
 * varint field 3 if `deadline`, bytes field 2 of n2 bytes if `two` -- the
 * same bytes, unless the short writer declined it. True if it built it. */
static bool same_frame(uint64_t id, unsigned kind, size_t n1, uint64_t deadline, size_t n2, bool two) {
  uint8_t d1[200], d2[200];
  for (size_t i = 0; i < sizeof d1; i++) {
    d1[i] = (uint8_t)(i * 7 + 1);
    d2[i] = (uint8_t)(i * 13 + 5);
  }
  ia__field f[3];
  size_t n = 0;
  f[n++] = (ia__field){.no = 1, .p = d1, .n = n1};
  if (deadline) f[n++] = (ia__field){.no = 3, .varint = true, .v = deadline};
  if (two) f[n++] = (ia__field){.no = 2, .p = d2, .n = n2};
  ia__small_body sb = {.no1 = 1,
                       .d1 = d1,
                       .n1 = n1,
                       .vno = deadline ? 3 : 0,
                       .v = deadline,
                       .no2 = two ? 2 : 0,
                       .d2 = d2,
                       .n2 = n2};
  ia__wframe a, b;
  cr_assert(ia__wframe_build(&a, id, kind, f, n));
  bool built = ia__wframe_small(&b, id, kind, &sb);
  if (built) {
    cr_assert_eq(b.ntail, 0);
    cr_assert_eq(a.ntail, 0);
    cr_assert_eq(ia__wframe_len(&b), ia__wframe_len(&a), "id %llu, %zu and %zu bytes", (unsigned long long)id,
                 n1, n2);
    cr_assert(memcmp(a.head, b.head, a.head_len) == 0, "id %llu, %zu and %zu bytes: different bytes",
              (unsigned long long)id, n1, n2);
    ia__wframe_release(&b);
  }
  ia__wframe_release(&a);
  return built;
}

Test(build, the_short_writer_gives_the_general_builders_bytes) {
  size_t built = 0;
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
    for (size_t n1 = 0; n1 <= 130; n1++)
      for (size_t n2 = 0; n2 <= 130; n2 += 3) {
        built += same_frame(ids[i], INTERACTION__V1__FRAME__BODY_TASK, n1, 0, n2, true);
        built += same_frame(ids[i], INTERACTION__V1__FRAME__BODY_TASK, n1, 30000, n2, true);
        built += same_frame(ids[i], INTERACTION__V1__FRAME__BODY_TASK, n1, UINT32_MAX - 1, n2, true);
        if (n2 == 0) built += same_frame(ids[i], INTERACTION__V1__FRAME__BODY_RESULT, n1, 0, 0, false);
      }
  cr_assert_gt(built, 1000, "the short writer built only %zu frames", built);
}

Test(build, the_short_writer_declines_a_body_of_128_bytes_or_more) {
  uint8_t d[200] = {0};
  ia__wframe w;
  const unsigned result = INTERACTION__V1__FRAME__BODY_RESULT, task = INTERACTION__V1__FRAME__BODY_TASK;
  cr_assert(ia__wframe_small(&w, 1, result, &(ia__small_body){.no1 = 1, .d1 = d, .n1 = 125}));
  ia__wframe_release(&w);
  cr_assert_not(ia__wframe_small(&w, 1, result, &(ia__small_body){.no1 = 1, .d1 = d, .n1 = 126}));
  ia__small_body two = {.no1 = 1, .d1 = d, .n1 = 60, .no2 = 2, .d2 = d, .n2 = 63};
  cr_assert(ia__wframe_small(&w, 1, task, &two));
  ia__wframe_release(&w);
  two.n2 = 64;
  cr_assert_not(ia__wframe_small(&w, 1, task, &two));
  two.n2 = 60, two.vno = 3, two.v = 300; /* a three-byte varint field */
  cr_assert(ia__wframe_small(&w, 1, task, &two));
  ia__wframe_release(&w);
  two.v = 1u << 14; /* four bytes */
  cr_assert_not(ia__wframe_small(&w, 1, task, &two));
  /* Bodies 16 on have two-byte keys. */
  cr_assert_not(ia__wframe_small(&w, 1, 16, &(ia__small_body){.no1 = 1, .d1 = d, .n1 = 1}));
}

Test(build, an_empty_field_may_come_without_a_pointer) {
  /* A handler's empty result has no bytes and no pointer: UBSan holds
   * memcpy(p, NULL, 0) undefined. */
  ia__wframe w;
  cr_assert(ia__wframe_small(&w, 7, INTERACTION__V1__FRAME__BODY_RESULT, &(ia__small_body){.no1 = 1}));
  const uint8_t want[] = {0, 0, 0, 6, 0x08, 7, INTERACTION__V1__FRAME__BODY_RESULT << 3 | 2, 2, 0x0a, 0};
  cr_assert_eq(w.head_len, sizeof want);
  cr_assert(memcmp(w.head, want, sizeof want) == 0);
  ia__wframe_release(&w);
  ia__small_body two = {.no1 = 1, .d1 = "m", .n1 = 1, .no2 = 2};
  cr_assert(ia__wframe_small(&w, 7, INTERACTION__V1__FRAME__BODY_TASK, &two));
  ia__wframe_release(&w);
}

Test(build, a_short_frame_reads_back_as_protobuf_c_reads_it) {
  const char method[] = "bench.Bench/Sum";
  const uint8_t payload[] = {0x08, 0x96, 0x01, 0x10, 0x2a};
  ia__wframe w;
  ia__small_body b = {.no1 = 1,
                      .d1 = method,
                      .n1 = strlen(method),
                      .vno = 3,
                      .v = 30000,
                      .no2 = 2,
                      .d2 = payload,
                      .n2 = sizeof payload};
  cr_assert(ia__wframe_small(&w, 300, INTERACTION__V1__FRAME__BODY_TASK, &b));
  const uint8_t *p = w.head;
  uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  cr_assert_eq(len + IA__FRAME_HEADER, w.head_len);
  Interaction__V1__Frame *f = interaction__v1__frame__unpack(NULL, len, p + IA__FRAME_HEADER);
  cr_assert_not_null(f);
  cr_assert_eq(f->id, 300);
  cr_assert_eq(f->body_case, INTERACTION__V1__FRAME__BODY_TASK);
  cr_assert_str_eq(f->task->method, method);
  cr_assert(f->task->has_deadline_ms);
  cr_assert_eq(f->task->deadline_ms, 30000);
  cr_assert_eq(f->task->payload.len, sizeof payload);
  cr_assert(memcmp(f->task->payload.data, payload, sizeof payload) == 0);
  interaction__v1__frame__free_unpacked(f, NULL);
  ia__wframe_release(&w);
}
