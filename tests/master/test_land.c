/* Large typed replies whose last field is a blob are received into the
 * decoded reply's own block (master/land.c, pb/land.c). A fake slave (raw
 * sockets, tu_fake) answers typed calls with TaskFail messages (code,
 * message, then the `result` bytes) of chosen sizes, written at once or in
 * small pieces with pauses, or cut off, or late. Each reply must decode
 * exactly as protobuf-c decodes it whole; a blob must leave no buffer of
 * its size behind; a connection lost or a call timed out half-way through
 * a blob must end that call only, and keep the stream in step. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "interaction/pb.h"
#include "interaction.pb-c.h"
#include "sum.pb-c.h"

#define CHANNEL 131
#define MAX_REPLIES 16

typedef enum how {
  AT_ONCE,  /* each reply in one write */
  TRICKLED, /* 3 bytes, 60 bytes, then pieces of 4,000 with a pause after every few */
  CUT_OFF,  /* the first reply's head and a third of its blob, then close */
  LATE,     /* the first reply's head and a tenth of its blob, a pause past the call's timeout, the rest */
} how;

typedef enum shape {
  BLOB_LAST,   /* code, message, result: what the encoder writes */
  BLOB_FIRST,  /* result, then code: valid protobuf, the blob not last */
  STRING_LAST, /* code, then a message of the size, no result */
} shape;

typedef struct script_args {
  how how;
  shape shape;
  size_t sizes[MAX_REPLIES];
  int n;
  int served; /* written by the fake's thread, read after tu_fake_join() */
} script_args;

static uint8_t pattern(size_t i, size_t n) {
  return (uint8_t)(i * 131u + n * 7u + (i >> 11));
}

/* The TaskFail payload of reply k. */
static uint8_t *payload_of(const script_args *a, size_t n, size_t *len) {
  uint8_t *blob = malloc(n + 1);
  if (!blob) return NULL;
  for (size_t i = 0; i < n; i++)
    blob[i] = pattern(i, n);
  Interaction__V1__TaskFail tf = INTERACTION__V1__TASK_FAIL__INIT;
  tf.has_code = 1;
  tf.code = 7;
  uint8_t *out = NULL;
  if (a->shape == STRING_LAST) {
    for (size_t i = 0; i < n; i++)
      blob[i] = (uint8_t)('a' + pattern(i, n) % 26);
    blob[n] = 0;
    tf.message = (char *)blob;
    *len = interaction__v1__task_fail__get_packed_size(&tf);
    out = malloc(*len);
    if (out) interaction__v1__task_fail__pack(&tf, out);
  } else if (a->shape == BLOB_LAST) {
    tf.message = "before the blob";
    tf.has_result = 1;
    tf.result = (ProtobufCBinaryData){n, blob};
    *len = interaction__v1__task_fail__get_packed_size(&tf);
    out = malloc(*len);
    if (out) interaction__v1__task_fail__pack(&tf, out);
  } else { /* the blob's field first, the code's after it */
    Interaction__V1__TaskFail code_only = INTERACTION__V1__TASK_FAIL__INIT;
    code_only.has_code = 1;
    code_only.code = 7;
    Interaction__V1__TaskFail blob_only = INTERACTION__V1__TASK_FAIL__INIT;
    blob_only.has_result = 1;
    blob_only.result = (ProtobufCBinaryData){n, blob};
    size_t a_len = interaction__v1__task_fail__get_packed_size(&blob_only);
    size_t b_len = interaction__v1__task_fail__get_packed_size(&code_only);
    *len = a_len + b_len;
    out = malloc(*len);
    if (out) {
      interaction__v1__task_fail__pack(&blob_only, out);
      interaction__v1__task_fail__pack(&code_only, out + a_len);
    }
  }
  free(blob);
  return out;
}

/* The whole frame (length prefix included) of a TaskResult for `id`. */
static uint8_t *frame_of(uint64_t id, const uint8_t *payload, size_t plen, size_t *len) {
  Interaction__V1__TaskResult result = INTERACTION__V1__TASK_RESULT__INIT;
  result.has_payload = 1;
  result.payload = (ProtobufCBinaryData){plen, (uint8_t *)payload};
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = id;
  frame.body_case = INTERACTION__V1__FRAME__BODY_RESULT;
  frame.result = &result;
  size_t body = interaction__v1__frame__get_packed_size(&frame);
  uint8_t *out = malloc(4 + body);
  if (!out) return NULL;
  out[0] = (uint8_t)(body >> 24);
  out[1] = (uint8_t)(body >> 16);
  out[2] = (uint8_t)(body >> 8);
  out[3] = (uint8_t)body;
  interaction__v1__frame__pack(&frame, out + 4);
  *len = 4 + body;
  return out;
}

static bool write_trickled(int fd, const uint8_t *p, size_t n) {
  size_t first[] = {3, 60};
  size_t at = 0;
  for (int i = 0; i < 2 && at < n; i++) {
    size_t k = first[i] < n - at ? first[i] : n - at;
    if (!tu_raw_write(fd, p + at, k)) return false;
    at += k;
    usleep(2000);
  }
  for (int piece = 0; at < n; piece++) {
    size_t k = n - at < 4000 ? n - at : 4000;
    if (!tu_raw_write(fd, p + at, k)) return false;
    at += k;
    if (piece % 16 == 0) usleep(500);
  }
  return true;
}

static void blob_script(tu_fake *fake, int fd) {
  script_args *a = fake->user;
  if (!tu_raw_welcome(fd)) return;
  for (int k = 0; k < a->n; k++) {
    uint64_t id = tu_raw_next_task(fd, NULL);
    if (!id) return;
    size_t plen, flen;
    uint8_t *payload = payload_of(a, a->sizes[k], &plen);
    uint8_t *frame = payload ? frame_of(id, payload, plen, &flen) : NULL;
    free(payload);
    if (!frame) return;
    bool ok;
    if (k == 0 && (a->how == CUT_OFF || a->how == LATE)) {
      size_t part = flen - a->sizes[k] + a->sizes[k] / (a->how == CUT_OFF ? 3 : 10);
      ok = tu_raw_write(fd, frame, part);
      if (ok && a->how == CUT_OFF) {
        free(frame);
        a->served = k + 1;
        return; /* closed with the rest unsent */
      }
      usleep(600 * 1000);
      ok = ok && tu_raw_write(fd, frame + part, flen - part);
    } else {
      ok = a->how == TRICKLED ? write_trickled(fd, frame, flen) : tu_raw_write(fd, frame, flen);
    }
    free(frame);
    if (!ok) return;
    a->served = k + 1;
  }
  uint32_t code;
  (void)tu_raw_await_goodbye(fd, TU_WAIT_MS, &code);
}

/* One typed call whose reply is a TaskFail: the code of the call. */
static ia_code call(fake_fixture *r, uint32_t timeout_ms, Interaction__V1__TaskFail **reply, ia_error *err) {
  Sum__SumTask req = SUM__SUM_TASK__INIT;
  const ia_call_opts opts = {.timeout_ms = timeout_ms};
  *reply = NULL;
  return ia_pb_call(r->conn, "land.Blob", &req.base, &interaction__v1__task_fail__descriptor,
                    (ProtobufCMessage **)reply, &opts, err);
}

/* The reply is what the fake sent, field by field and byte by byte. */
static void assert_reply(const script_args *a, const Interaction__V1__TaskFail *tf, size_t n) {
  cr_assert(tf->has_code && tf->code == 7, "code %u", tf->code);
  if (a->shape == STRING_LAST) {
    cr_assert_not_null(tf->message);
    cr_assert_eq(strlen(tf->message), n);
    for (size_t i = 0; i < n; i++)
      cr_assert_eq((uint8_t)tf->message[i], (uint8_t)('a' + pattern(i, n) % 26), "message byte %zu of %zu", i,
                   n);
    cr_assert(!tf->has_result);
    return;
  }
  if (a->shape == BLOB_LAST)
    cr_assert_str_eq(tf->message, "before the blob");
  else
    cr_assert(tf->message == NULL || !*tf->message, "a message that was never sent: %s", tf->message);
  cr_assert(tf->has_result);
  cr_assert_eq(tf->result.len, n, "a blob of %zu came back as %zu bytes", n, tf->result.len);
  for (size_t i = 0; i < n; i++)
    if (tf->result.data[i] != pattern(i, n)) cr_assert_fail("byte %zu of a %zu-byte blob is wrong", i, n);
}

static void serve_and_check(how how, shape shape) {
  script_args a = {.how = how,
                   .shape = shape,
                   .sizes = {100, (256u << 10) - 200, 256u << 10, (1u << 20) + 7, 300001, (4u << 20) + 3},
                   .n = 6};
  fake_fixture r;
  fake_fixture_start(&r, blob_script, &a, CHANNEL, "lands");
  for (int k = 0; k < a.n; k++) {
    Interaction__V1__TaskFail *tf = NULL;
    ia_error err = IA_ERROR_INIT;
    TU_ASSERT_OK(call(&r, TU_WAIT_MS, &tf, &err), &err);
    assert_reply(&a, tf, a.sizes[k]);
    interaction__v1__task_fail__free_unpacked(tf, NULL);
  }
  fake_fixture_free(&r);
  cr_assert_eq(a.served, a.n);
}

Test(land, blob_replies_decode_as_protobuf_c_decodes_them, .timeout = 60) {
  serve_and_check(AT_ONCE, BLOB_LAST);
}

Test(land, blob_replies_in_small_pieces_decode_the_same, .timeout = 60) {
  serve_and_check(TRICKLED, BLOB_LAST);
}

Test(land, a_reply_whose_blob_is_not_last_decodes_whole, .timeout = 60) {
  serve_and_check(TRICKLED, BLOB_FIRST);
}

Test(land, a_reply_whose_last_field_is_a_string_decodes_whole, .timeout = 60) {
  serve_and_check(AT_ONCE, STRING_LAST);
}

/* Without the landing, the reader's buffer grew to the size of the reply
 * and was kept for the next (up to 64 MiB): a 16 MiB blob left 16 MiB
 * behind it once its reply was freed. */
Test(land, a_blob_reply_leaves_no_buffer_of_its_size_behind, .timeout = 60) {
  script_args a = {.how = AT_ONCE, .shape = BLOB_LAST, .sizes = {1000, 16u << 20}, .n = 2};
  fake_fixture r;
  fake_fixture_start(&r, blob_script, &a, CHANNEL, "lands");
  Interaction__V1__TaskFail *tf = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(call(&r, TU_WAIT_MS, &tf, &err), &err); /* the small one: buffers made */
  interaction__v1__task_fail__free_unpacked(tf, NULL);
  size_t before = tu_heap_in_use();
  TU_ASSERT_OK(call(&r, TU_WAIT_MS, &tf, &err), &err);
  assert_reply(&a, tf, a.sizes[1]);
  interaction__v1__task_fail__free_unpacked(tf, NULL);
  size_t after = tu_heap_in_use();
  size_t growth = after > before ? after - before : 0;
  if (!tu_valgrind()) /* valgrind's allocator keeps no glibc counts */
    cr_assert_lt(growth, 2u << 20, "a 16 MiB reply left %zu bytes on the heap once freed", growth);
  fake_fixture_free(&r);
}

Test(land, a_connection_lost_in_a_blob_ends_the_call, .timeout = 60) {
  script_args a = {.how = CUT_OFF, .shape = BLOB_LAST, .sizes = {1u << 20}, .n = 1};
  fake_fixture r;
  fake_fixture_start(&r, blob_script, &a, CHANNEL, "lands");
  Interaction__V1__TaskFail *tf = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = call(&r, TU_WAIT_MS, &tf, &err);
  cr_assert_eq(rc, IA_CONNECTION_LOST, "a blob cut off: %d %s: %s", rc, ia_code_name(rc), err.message);
  cr_assert_null(tf);
  ia_error_clear(&err);
  fake_fixture_free(&r);
}

/* The first call gives up while its blob is half in; the rest of it comes
 * later and is dropped, and the next reply on the same connection is read
 * from where it begins. */
Test(land, a_call_timed_out_in_a_blob_leaves_the_stream_in_step, .timeout = 60) {
  script_args a = {.how = LATE, .shape = BLOB_LAST, .sizes = {2u << 20, 300001}, .n = 2};
  fake_fixture r;
  fake_fixture_start(&r, blob_script, &a, CHANNEL, "lands");
  Interaction__V1__TaskFail *tf = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = call(&r, 200, &tf, &err);
  cr_assert_eq(rc, IA_TIMEOUT, "%d %s: %s", rc, ia_code_name(rc), err.message);
  cr_assert_null(tf);
  ia_error_clear(&err);
  TU_ASSERT_OK(call(&r, TU_WAIT_MS, &tf, &err), &err);
  assert_reply(&a, tf, a.sizes[1]);
  interaction__v1__task_fail__free_unpacked(tf, NULL);
  cr_assert(ia_conn_is_connected(r.conn));
  fake_fixture_free(&r);
}
