/*
 * make_corpus: writes the seed corpus of every fuzz target into
 * <dir>/<target>/<name> (`cmake --build build-fuzz --target fuzz-corpus`
 * passes tests/fuzz/corpus). Frames and flat messages are packed with
 * protobuf-c, scripts for fuzz_slave follow fuzz_slave_script.h, fuzz_tls's
 * plaintext is frames for fuzz_slave's methods. The seeds
 * are small (a few KB per target) and deterministic.
 *
 * It must never write anywhere but under <dir>, and never seed a known
 * defect: the fuzzers are meant to find those themselves.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "flat2.pb-c.h"
#include "flat3.pb-c.h"
#include "fuzz_common.h"
#include "fuzz_slave_script.h"
#include "interaction.pb-c.h"

static const char *root;

static void mkdirs(const char *target) {
  char path[4096];
  snprintf(path, sizeof path, "%s", root);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) exit(1);
  snprintf(path, sizeof path, "%s/%s", root, target);
  if (mkdir(path, 0755) != 0 && errno != EEXIST) exit(1);
}

static void save(const char *target, const char *name, const void *p, size_t n) {
  char path[4096];
  mkdirs(target);
  snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
    fprintf(stderr, "make_corpus: cannot write %s\n", path);
    exit(1);
  }
}

/* ---- frames ---- */

/* Frame{id, body} packed (without the length prefix) into b. */
static void frame(fz_buf *b, uint64_t id, Interaction__V1__Frame__BodyCase kind, ProtobufCMessage *body) {
  Interaction__V1__Frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = kind;
  const ProtobufCFieldDescriptor *fd =
      protobuf_c_message_descriptor_get_field(&interaction__v1__frame__descriptor, kind);
  *(ProtobufCMessage **)((uint8_t *)&f + fd->offset) = body;
  size_t n = protobuf_c_message_get_packed_size(&f.base);
  uint8_t *tmp = malloc(n + 1);
  if (!tmp) exit(1);
  protobuf_c_message_pack(&f.base, tmp);
  fz_buf_put(b, tmp, n);
  free(tmp);
}

/* One frame of every body kind, as fuzz_envelope's seeds and as pieces of
 * fuzz_inbuf's streams. */
static void every_kind(fz_buf out[13]) {
  static uint8_t blob[] = {1, 2, 3, 4, 5};
  Interaction__V1__Hello hello = INTERACTION__V1__HELLO__INIT;
  hello.has_version = hello.has_channel = hello.has_data = 1;
  hello.version = 1, hello.channel = 7, hello.master_name = "m", hello.data = (ProtobufCBinaryData){2, blob};
  Interaction__V1__Welcome welcome = INTERACTION__V1__WELCOME__INIT;
  welcome.has_version = welcome.has_max_frame = welcome.has_capacity = 1;
  welcome.version = 1, welcome.slave_name = "s", welcome.capacity = 1, welcome.max_frame = 65536;
  Interaction__V1__Task task = INTERACTION__V1__TASK__INIT;
  Interaction__V1__Task__MetadataEntry md = INTERACTION__V1__TASK__METADATA_ENTRY__INIT, *mds[1] = {&md};
  md.key = "k", md.value = "v";
  task.method = "sum.Adder/Sum", task.has_payload = task.has_deadline_ms = 1;
  task.payload = (ProtobufCBinaryData){sizeof blob, blob}, task.deadline_ms = 500;
  task.n_metadata = 1, task.metadata = mds;
  Interaction__V1__Accepted accepted = INTERACTION__V1__ACCEPTED__INIT;
  Interaction__V1__TaskResult result = INTERACTION__V1__TASK_RESULT__INIT;
  result.has_payload = 1, result.payload = (ProtobufCBinaryData){3, blob};
  Interaction__V1__TaskFail fail = INTERACTION__V1__TASK_FAIL__INIT;
  fail.has_code = fail.has_result = 1, fail.code = 603, fail.message = "failed",
  fail.result = (ProtobufCBinaryData){1, blob};
  Interaction__V1__Refusal refusal = INTERACTION__V1__REFUSAL__INIT;
  refusal.has_code = refusal.has_data = 1, refusal.code = 601, refusal.message = "busy",
  refusal.data = (ProtobufCBinaryData){2, blob};
  Interaction__V1__Ping ping = INTERACTION__V1__PING__INIT;
  Interaction__V1__Pong pong = INTERACTION__V1__PONG__INIT;
  Interaction__V1__Disconnect disconnect = INTERACTION__V1__DISCONNECT__INIT;
  disconnect.has_data = 1, disconnect.data = (ProtobufCBinaryData){1, blob};
  Interaction__V1__Cancel cancel = INTERACTION__V1__CANCEL__INIT;
  Interaction__V1__Goodbye goodbye = INTERACTION__V1__GOODBYE__INIT;
  goodbye.has_code = 1, goodbye.code = 704, goodbye.message = "bad";
  ProtobufCMessage *bodies[13] = {
      NULL,       NULL,          &hello.base, &welcome.base, &task.base,       &accepted.base, &result.base,
      &fail.base, &refusal.base, &ping.base,  &pong.base,    &disconnect.base, &cancel.base};
  for (unsigned k = INTERACTION__V1__FRAME__BODY_HELLO; k <= INTERACTION__V1__FRAME__BODY_CANCEL; k++)
    frame(&out[k - 2], 40 + k, k, bodies[k]);
  frame(&out[11], 0, INTERACTION__V1__FRAME__BODY_GOODBYE, &goodbye.base);
}

static void envelope_seeds(void) {
  fz_buf kinds[13] = {{0}};
  every_kind(kinds);
  static const char *names[12] = {"hello",   "welcome", "task", "accepted",   "result", "fail",
                                  "refusal", "ping",    "pong", "disconnect", "cancel", "goodbye"};
  for (int i = 0; i < 12; i++)
    save("fuzz_envelope", names[i], kinds[i].p, kinds[i].n);
  /* The largest id, and a task with its fields out of the usual order. */
  fz_buf b = {0};
  Interaction__V1__Ping ping = INTERACTION__V1__PING__INIT;
  frame(&b, UINT64_MAX, INTERACTION__V1__FRAME__BODY_PING, &ping.base);
  save("fuzz_envelope", "ping_max_id", b.p, b.n);
  fz_buf_free(&b);
  static const uint8_t odd_task[] = {0x22, 0x0a, 0x18, 0x05, 0x12, 0x01, 0x07,
                                     0x0a, 0x01, 'm',  0x28, 0x01, 0x08, 0x09};
  save("fuzz_envelope", "task_reordered", odd_task, sizeof odd_task);
  for (int i = 0; i < 13; i++)
    fz_buf_free(&kinds[i]);
}

/* ---- fuzz_inbuf ---- */

static void inbuf_seeds(void) {
  fz_buf kinds[13] = {{0}};
  every_kind(kinds);
  /* max_frame 4096; schedule: 5 bytes, 6 bytes coalesced, split + 2 bytes. */
  fz_buf b = {0};
  static const uint8_t head[] = {5, 3, 0x04, 0x45, 0x81};
  fz_buf_put(&b, head, sizeof head);
  for (int i = 0; i < 12; i++) {
    fz_buf_be32(&b, (uint32_t)kinds[i].n);
    fz_buf_put(&b, kinds[i].p, kinds[i].n);
  }
  save("fuzz_inbuf", "every_kind", b.p, b.n);
  /* Then an unfinished frame at the end. */
  fz_buf_be32(&b, 100);
  fz_buf_put(&b, "abc", 3);
  save("fuzz_inbuf", "tail", b.p, b.n);
  b.n = 0;
  /* max_frame 64: two frames, then a header over it. */
  static const uint8_t over[] = {3, 1, 0x02, 0, 0, 0, 2, 0x08, 0x01, 0, 0, 0, 0, 0, 0, 0, 65, 'x'};
  save("fuzz_inbuf", "oversize", over, sizeof over);
  /* max_frame 0: empty frames only. */
  static const uint8_t empty[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 9};
  save("fuzz_inbuf", "max0", empty, sizeof empty);
  fz_buf_free(&b);
  for (int i = 0; i < 13; i++)
    fz_buf_free(&kinds[i]);
}

/* ---- fuzz_flat ---- */

static void flat_one(const char *name, uint8_t sel, const ProtobufCMessage *m) {
  uint8_t buf[512];
  buf[0] = sel;
  size_t n = protobuf_c_message_pack(m, buf + 1);
  save("fuzz_flat", name, buf, n + 1);
}

static void flat_seeds(void) {
  Flat__Flat2 f2 = FLAT__FLAT2__INIT;
  f2.has_i32 = f2.has_i64 = f2.has_u32 = f2.has_u64 = f2.has_s32 = f2.has_s64 = f2.has_f32 = f2.has_f64 = 1;
  f2.has_sf32 = f2.has_sf64 = f2.has_fl = f2.has_db = f2.has_b = f2.has_e = f2.has_dflt = f2.has_far = 1;
  f2.i32 = -1, f2.i64 = INT64_MIN, f2.u32 = 300, f2.u64 = UINT64_MAX, f2.s32 = -2, f2.s64 = 3, f2.f32 = 7;
  f2.f64 = 8, f2.sf32 = -9, f2.sf64 = -10, f2.fl = 1.5f, f2.db = -0.0, f2.b = 1, f2.e = FLAT__COLOR__BLUE;
  f2.dflt = 42, f2.far = 1ull << 40;
  flat_one("flat2_all", 0, &f2.base);
  Flat__Flat2 few = FLAT__FLAT2__INIT;
  few.has_u32 = 1, few.u32 = 5;
  flat_one("flat2_one", 8, &few.base); /* the counting allocator */
  Flat__Required2 r2 = FLAT__REQUIRED2__INIT;
  r2.need = 1, r2.also = -1, r2.has_maybe = 1, r2.maybe = 127;
  flat_one("required2", 1, &r2.base);
  Flat3__Flat3 f3 = FLAT3__FLAT3__INIT;
  f3.i32 = 1, f3.i64 = -2, f3.u32 = 128, f3.u64 = 16384, f3.s32 = -64, f3.s64 = 1ll << 50, f3.f32 = 1;
  f3.f64 = 2, f3.sf32 = -3, f3.sf64 = 4, f3.fl = 0.25f, f3.db = 1e300, f3.b = 1, f3.e = FLAT3__SHADE__LIGHT;
  flat_one("flat3_all", 2, &f3.base);
  Flat__NotFlat nf = FLAT__NOT_FLAT__INIT;
  nf.has_n = 1, nf.n = 7, nf.s = "x";
  flat_one("notflat", 3, &nf.base);
  /* Struct mode: the struct's contents as bytes, all the room. */
  uint8_t st[200];
  for (size_t i = 0; i < sizeof st; i++)
    st[i] = (uint8_t)(i * 37 + 11);
  st[0] = 0x04 | 0xf0;
  save("fuzz_flat", "struct_flat2", st, sizeof st);
  st[0] = 0x06 | 0xf0;
  save("fuzz_flat", "struct_flat3", st, sizeof st);
  st[0] = 0x05 | 0x30; /* too little room: declined */
  save("fuzz_flat", "struct_required2_small", st, 40);
}

/* ---- fuzz_slave ---- */

#define HELLO_OK FZ_OP_HELLO, 1, FZ_HELLO_VALID, 0
#define TASK(id, m, flags, ...) FZ_OP_TASK, id, m, flags, sizeof((uint8_t[]){__VA_ARGS__}), __VA_ARGS__

static void slave_seeds(void) {
  static const uint8_t sum[] = {HELLO_OK, TASK(2, FZ_M_SUM, 0, 1, 2, 3)};
  static const uint8_t cancel[] = {
      HELLO_OK, TASK(2, FZ_M_SLEEP, 0, 3), FZ_OP_PAUSE, 5, FZ_OP_CANCEL, 2, FZ_OP_PING, 3};
  static const uint8_t disconnect[] = {HELLO_OK, TASK(2, FZ_M_SLEEP, 0, 2), FZ_OP_DISCONNECT, 4, 2, 'h', 'i'};
  static const uint8_t channel[] = {FZ_OP_HELLO, 1, FZ_HELLO_CHANNEL, 0};
  static const uint8_t version[] = {FZ_OP_HELLO, 1, FZ_HELLO_VERSION, 1, 'd'};
  static const uint8_t no_hello[] = {TASK(2, FZ_M_SUM, 0, 9)};
  static const uint8_t big[] = {HELLO_OK, FZ_OP_BIG, 0, 1};
  static const uint8_t goodbye[] = {HELLO_OK, FZ_OP_PING, 9, FZ_OP_GOODBYE, 0};
  static const uint8_t methods[] = {HELLO_OK,
                                    TASK(2, FZ_M_FAIL, 0, 5),
                                    TASK(3, FZ_M_NOTHING, 1, 0),
                                    TASK(4, FZ_M_UNKNOWN, 0, 1),
                                    TASK(5, FZ_M_EMPTY, 0, 1),
                                    TASK(6, FZ_M_META, 6, 1)};
  static const uint8_t hold[] = {
      FZ_OP_HOLD, HELLO_OK, TASK(2, FZ_M_SUM, 0, 4), TASK(3, FZ_M_SUM, 0, 5), FZ_OP_PING, 4, FZ_OP_HOLD};
  static const uint8_t busy[] = {HELLO_OK, TASK(2, FZ_M_SLEEP, 0, 3), TASK(3, FZ_M_SUM, 0, 1), FZ_OP_WAIT,
                                 10};
  static const uint8_t split[] = {FZ_OP_SPLIT, 0, 3, 10, HELLO_OK,
                                  FZ_OP_SPLIT, 0, 9, 0,  TASK(2, FZ_M_SUM, 0, 7, 8)};
  static const uint8_t slow[] = {FZ_OP_SLOW, 1, 1, HELLO_OK, FZ_OP_SLOW, 2, 0, TASK(2, FZ_M_SUM, 0, 1)};
  static const uint8_t garbage[] = {HELLO_OK, FZ_OP_RAW, 6, 0, 0, 0, 2, 0xff, 0xff};
  static const uint8_t frames[] = {HELLO_OK, FZ_OP_FRAME, 10,   5,           0, FZ_OP_FRAME, 12, 6,
                                   2,        0x08,        0x01, FZ_OP_FRAME, 0, 7,           0};
  static const uint8_t two_hellos[] = {HELLO_OK, HELLO_OK};
  static const uint8_t same_id[] = {HELLO_OK, TASK(2, FZ_M_SLEEP, 0, 3), TASK(2, FZ_M_SUM, 0, 1),
                                    FZ_OP_CANCEL, 2};
  static const uint8_t long_wait[] = {HELLO_OK,
                                      TASK(2, FZ_M_SLEEP, 0, 3),
                                      FZ_OP_WAIT,
                                      19,
                                      FZ_OP_CANCEL,
                                      2,
                                      FZ_OP_WAIT,
                                      19,
                                      FZ_OP_PING,
                                      0xff,
                                      0,
                                      0,
                                      0,
                                      0,
                                      0,
                                      0,
                                      1,
                                      0};
  static const uint8_t silent[] = {FZ_OP_PAUSE, 255};
  /* A long task: the loop takes the socket (Accepted), answers a Ping and
   * refuses a second task (601) meanwhile, then sees the Cancel. */
  static const uint8_t long_cancel[] = {HELLO_OK, TASK(2, FZ_M_LONG, 0, 20), FZ_OP_WAIT,   19, FZ_OP_PING,
                                        3,        TASK(4, FZ_M_SUM, 0, 1),   FZ_OP_CANCEL, 2,  FZ_OP_WAIT,
                                        10};
  static const uint8_t long_disconnect[] = {
      HELLO_OK, TASK(2, FZ_M_LONG, 0, 5), FZ_OP_WAIT, 19, FZ_OP_DISCONNECT, 3, 0};
  static const uint8_t long_eof[] = {HELLO_OK, TASK(2, FZ_M_LONG, 0, 0), FZ_OP_WAIT, 15,
                                     TASK(3, FZ_M_SLEEP, 0, 3)};
  /* A long task puts the watchdog on its 1 ms tick: the short tasks after
   * it are taken over by the loop too, each with its Accepted. */
  static const uint8_t long_then_short[] = {HELLO_OK,
                                            TASK(2, FZ_M_LONG, 0, 10),
                                            FZ_OP_WAIT,
                                            19,
                                            FZ_OP_WAIT,
                                            19,
                                            TASK(3, FZ_M_SLEEP, 0, 2),
                                            FZ_OP_WAIT,
                                            19,
                                            TASK(4, FZ_M_SLEEP, 0, 1),
                                            FZ_OP_WAIT,
                                            19,
                                            TASK(5, FZ_M_SLEEP, 0, 3),
                                            FZ_OP_WAIT,
                                            19,
                                            TASK(6, FZ_M_SLEEP, 0, 2),
                                            FZ_OP_WAIT,
                                            19,
                                            TASK(7, FZ_M_SLEEP, 0, 1),
                                            FZ_OP_WAIT,
                                            19,
                                            FZ_OP_PING,
                                            8};
  struct {
    const char *name;
    const uint8_t *p;
    size_t n;
  } seeds[] = {
#define S(x) {#x, x, sizeof x}
      S(sum),
      S(cancel),
      S(disconnect),
      S(channel),
      S(version),
      S(no_hello),
      S(big),
      S(goodbye),
      S(methods),
      S(hold),
      S(busy),
      S(split),
      S(slow),
      S(garbage),
      S(frames),
      S(two_hellos),
      S(same_id),
      S(long_wait),
      S(silent),
      S(long_cancel),
      S(long_disconnect),
      S(long_eof),
      S(long_then_short),
#undef S
  };
  for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
    save("fuzz_slave", seeds[i].name, seeds[i].p, seeds[i].n);
}

/* fuzz_auth: a prefix selector (0 none, 1 a Hello with a nonce, 2 one
 * without), then frames of a peer without the secret. */
static void auth_one(const char *name, uint8_t prefix, Interaction__V1__Frame__BodyCase kind,
                     ProtobufCMessage *body) {
  fz_buf f = {0}, b = {0};
  frame(&f, 2, kind, body);
  fz_buf_byte(&b, prefix);
  fz_buf_be32(&b, (uint32_t)f.n);
  fz_buf_put(&b, f.p, f.n);
  save("fuzz_auth", name, b.p, b.n);
  fz_buf_free(&f);
  fz_buf_free(&b);
}

static void auth_seeds(void) {
  uint8_t zeros[32] = {0};
  Interaction__V1__AuthProof proof = INTERACTION__V1__AUTH_PROOF__INIT;
  proof.has_proof = 1;
  proof.proof = (ProtobufCBinaryData){sizeof zeros, zeros};
  auth_one("proof_zeros", 1, INTERACTION__V1__FRAME__BODY_AUTH_PROOF, &proof.base);
  Interaction__V1__Ping ping = INTERACTION__V1__PING__INIT;
  auth_one("ping_after_hello", 1, INTERACTION__V1__FRAME__BODY_PING, &ping.base);
  Interaction__V1__Task task = INTERACTION__V1__TASK__INIT;
  task.method = (char *)"sum";
  task.has_payload = 1;
  task.payload = (ProtobufCBinaryData){1, (uint8_t *)"x"};
  auth_one("task_after_hello", 1, INTERACTION__V1__FRAME__BODY_TASK, &task.base);
  auth_one("task_after_hello_without_nonce", 2, INTERACTION__V1__FRAME__BODY_TASK, &task.base);
  auth_one("task_first", 0, INTERACTION__V1__FRAME__BODY_TASK, &task.base);
  Interaction__V1__Hello hello = INTERACTION__V1__HELLO__INIT;
  hello.has_version = hello.has_channel = hello.has_auth_nonce = 1;
  hello.version = 1;
  hello.channel = 5;
  hello.auth_nonce = (ProtobufCBinaryData){sizeof zeros, zeros};
  auth_one("second_hello", 1, INTERACTION__V1__FRAME__BODY_HELLO, &hello.base);
  auth_one("own_hello", 0, INTERACTION__V1__FRAME__BODY_HELLO, &hello.base);
}

/* ---- fuzz_tls ---- */

/* Frame{id, body} with its length prefix, appended to b. */
static void framed(fz_buf *b, uint64_t id, Interaction__V1__Frame__BodyCase kind, ProtobufCMessage *body) {
  fz_buf f = {0};
  frame(&f, id, kind, body);
  fz_buf_be32(b, (uint32_t)f.n);
  fz_buf_put(b, f.p, f.n);
  fz_buf_free(&f);
}

static void task(fz_buf *b, uint64_t id, unsigned method, const char *payload) {
  Interaction__V1__Task t = INTERACTION__V1__TASK__INIT;
  t.method = (char *)fz_methods[method];
  t.has_payload = 1;
  t.payload = (ProtobufCBinaryData){strlen(payload), (uint8_t *)payload};
  framed(b, id, INTERACTION__V1__FRAME__BODY_TASK, &t.base);
}

/* A TLS 1.3 ClientHello record as OpenSSL's client sends one, cut down
 * (fixed random, session id and X25519 share; TLS_AES_128_GCM_SHA256 only):
 * the slave answers it with its ServerHello and first flight. */
static void client_hello(fz_buf *b) {
  static const uint8_t head[] = {0x16, 0x03, 0x01, 0x00, 0x00, /* record; length patched below */
                                 0x01, 0x00, 0x00, 0x00,       /* ClientHello; length patched below */
                                 0x03, 0x03};                  /* legacy_version */
  size_t at = b->n;
  fz_buf_put(b, head, sizeof head);
  for (int i = 0; i < 32; i++)
    fz_buf_byte(b, (uint8_t)(0xa0 + i)); /* random */
  fz_buf_byte(b, 32);
  for (int i = 0; i < 32; i++)
    fz_buf_byte(b, (uint8_t)i); /* legacy_session_id */
  static const uint8_t rest[] = {
      0x00, 0x02, 0x13, 0x01,                         /* cipher_suites */
      0x01, 0x00,                                     /* legacy_compression_methods */
      0x00, 0x41,                                     /* extensions: 65 bytes */
      0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04,       /* supported_versions: TLS 1.3 */
      0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x1d, /* supported_groups: x25519 */
      0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03, /* signature_algorithms: ecdsa_secp256r1_sha256 */
      0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20}; /* key_share: x25519, 32 bytes */
  fz_buf_put(b, rest, sizeof rest);
  for (int i = 0; i < 32; i++)
    fz_buf_byte(b, (uint8_t)(9 + 7 * i));
  size_t rec = b->n - at - 5, hs = rec - 4;
  b->p[at + 3] = (uint8_t)(rec >> 8), b->p[at + 4] = (uint8_t)rec;
  b->p[at + 7] = (uint8_t)(hs >> 8), b->p[at + 8] = (uint8_t)hs;
}

static void tls_seeds(void) {
  fz_buf b = {0};
  /* (a) raw: a plain master's Hello, a plain Task, a ClientHello whole, cut
   * short, and followed by plain frames, a lone handshake byte. */
  fz_buf_byte(&b, 0);
  fz_buf_hello(&b, 1, FZ_CHANNEL, false);
  save("fuzz_tls", "raw_plain_hello", b.p, b.n);
  b.n = 1;
  task(&b, 2, FZ_M_SUM, "abc");
  save("fuzz_tls", "raw_plain_task", b.p, b.n);
  b.n = 1;
  client_hello(&b);
  save("fuzz_tls", "raw_client_hello", b.p, b.n);
  size_t whole = b.n;
  fz_buf_hello(&b, 1, FZ_CHANNEL, false);
  save("fuzz_tls", "raw_client_hello_then_plain", b.p, b.n);
  save("fuzz_tls", "raw_client_hello_cut", b.p, whole / 2);
  save("fuzz_tls", "raw_handshake_byte", b.p, 2);
  /* (b) TLS: a Hello, two Sums, a Ping, a Disconnect -- in one record;
   * in records of 3, 5 (held back) and 2 bytes, the last sent a byte at a
   * time; and byte by byte in pieces of one. */
  static const uint8_t modes[][6] = {{1, 0}, {1, 4, 0x02, 0x44, 0x81, 0x3f}, {5, 1, 0x80}};
  static const char *names[] = {"tls_session", "tls_session_split", "tls_session_bytes"};
  for (int m = 0; m < 3; m++) {
    b.n = 0;
    fz_buf_put(&b, modes[m], 2 + modes[m][1]);
    fz_buf_hello(&b, 1, FZ_CHANNEL, false);
    task(&b, 2, FZ_M_SUM, "\x01\x02\x03");
    task(&b, 3, FZ_M_SUM, "xyz");
    Interaction__V1__Ping ping = INTERACTION__V1__PING__INIT;
    framed(&b, 4, INTERACTION__V1__FRAME__BODY_PING, &ping.base);
    Interaction__V1__Disconnect d = INTERACTION__V1__DISCONNECT__INIT;
    framed(&b, 5, INTERACTION__V1__FRAME__BODY_DISCONNECT, &d.base);
    save("fuzz_tls", names[m], b.p, b.n);
  }
  /* The Hello put in front (bit 1) and close_notify (bit 2): a long task
   * cancelled, every other method; a frame over max_frame. */
  b.n = 0;
  fz_buf_put(&b, (const uint8_t[]){7, 0}, 2);
  task(&b, 2, FZ_M_LONG, "\x05");
  Interaction__V1__Cancel cancel = INTERACTION__V1__CANCEL__INIT;
  framed(&b, 2, INTERACTION__V1__FRAME__BODY_CANCEL, &cancel.base);
  task(&b, 3, FZ_M_FAIL, "f");
  task(&b, 4, FZ_M_META, "");
  task(&b, 5, FZ_M_UNKNOWN, "u");
  save("fuzz_tls", "tls_prefix_methods", b.p, b.n);
  b.n = 2;
  fz_buf_be32(&b, FZ_MAX_FRAME + 1);
  fz_buf_put(&b, "over", 4);
  save("fuzz_tls", "tls_prefix_oversize", b.p, b.n);
  fz_buf_free(&b);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_corpus DIR\n");
    return 2;
  }
  root = argv[1];
  envelope_seeds();
  inbuf_seeds();
  flat_seeds();
  slave_seeds();
  auth_seeds();
  tls_seeds();
  return 0;
}
