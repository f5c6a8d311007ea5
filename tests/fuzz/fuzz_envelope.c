/*
 * fuzz_envelope: the hand-written parsers of runtime/wire.h on arbitrary
 * bytes, against protobuf-c reading the same bytes.
 *
 * The input is read twice: as one encoded interaction.v1.Frame (the bytes
 * after the length prefix) through ia__env_parse() and the body parser of
 * its kind, and directly as a Task, TaskFail, Refusal, Goodbye and
 * TaskResult body through ia__task_parse(), ia__task_metadata(),
 * ia__status_parse() and ia__result_parse().
 *
 * Invariants: every slice lies inside the input; when both sides accept,
 * they agree on the id, the body case and every field; when only one side
 * accepts, the disagreement must be one of the understood kinds, which are
 * counted (fz_note) and printed once; anything else aborts.
 *
 * Internal functions called: ia__env_parse, ia__task_parse,
 * ia__task_metadata, ia__status_parse, ia__result_parse (runtime/wire.h).
 * It must never write to the input or keep pointers into it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "interaction.pb-c.h"
#include "runtime/wire.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_init();
  return 0;
}

static const ProtobufCFieldDescriptor *body_field(unsigned kind) {
  return protobuf_c_message_descriptor_get_field(&interaction__v1__frame__descriptor, kind);
}

static void check_inside(ia__slice s, const uint8_t *p, size_t n, const char *what) {
  if (s.n == 0) return;
  if (s.p < p || s.p > p + n || s.n > (size_t)(p + n - s.p))
    fz_fail("slice_outside", "%s lies outside its input", what);
}

/* A protobuf-c string or bytes field against the slice our parser gave:
 * the same presence and the same bytes. */
static void same_bytes(ia__slice ours, bool theirs_has, const uint8_t *theirs, size_t theirs_n,
                       const char *what) {
  if ((ours.p != NULL) != theirs_has)
    fz_fail("field_differs", "%s: present %d here, %d in protobuf-c", what, ours.p != NULL, theirs_has);
  if (ours.n != theirs_n || (ours.n && memcmp(ours.p, theirs, ours.n) != 0))
    fz_fail("field_differs", "%s: %zu bytes here, %zu in protobuf-c, or other bytes", what, ours.n, theirs_n);
}

/* Whether protobuf-c's string c holds the bytes of s. c is NUL-terminated
 * but may hold NULs, so it is read only up to its first one: up to there
 * the bytes must be the same, and the NUL must come where s has its first. */
static bool str_matches(ia__slice s, const char *c) {
  const uint8_t *nul = s.n ? memchr(s.p, 0, s.n) : NULL;
  size_t upto = nul ? (size_t)(nul - s.p) : s.n;
  return strlen(c) == upto && memcmp(s.p, c, upto) == 0;
}

static void same_string(ia__slice ours, const char *theirs, const char *what) {
  if ((ours.p != NULL) != (theirs != NULL)) fz_fail("field_differs", "%s: presence differs", what);
  if (theirs && !str_matches(ours, theirs))
    fz_fail("field_differs", "%s: the bytes differ from protobuf-c's", what);
}

/* ---- metadata ---- */

typedef struct md_walk {
  const Interaction__V1__Task *task; /* protobuf-c's entries, in order */
  size_t i;
  ia__slice body;
} md_walk;

static bool md_entry(ia__slice key, ia__slice value, void *user) {
  md_walk *w = user;
  check_inside(key, w->body.p, w->body.n, "a metadata key");
  check_inside(value, w->body.p, w->body.n, "a metadata value");
  if (w->i >= w->task->n_metadata) fz_fail("field_differs", "more metadata entries than protobuf-c sees");
  const Interaction__V1__Task__MetadataEntry *e = w->task->metadata[w->i++];
  /* An absent key or value reads as "" on both sides. */
  const char *k = e->key ? e->key : "", *v = e->value ? e->value : "";
  if (!str_matches(key, k)) fz_fail("field_differs", "metadata key differs");
  if (!str_matches(value, v)) fz_fail("field_differs", "metadata value differs");
  return true;
}

/* The Task body without its metadata entries (field 4), into out. */
static size_t strip_metadata(ia__slice body, uint8_t *out) {
  const uint8_t *p = body.p, *end = body.p + body.n;
  size_t n = 0;
  while (p < end) {
    const uint8_t *start = p;
    uint64_t key, v;
    if (!fz_varint(&p, end, &key)) break;
    unsigned wt = key & 7;
    if (wt == 0 && !fz_varint(&p, end, &v)) break;
    if ((wt == 1 || wt == 5) && (size_t)(end - p) < (wt == 1 ? 8u : 4u)) break;
    if (wt == 1 || wt == 5) p += wt == 1 ? 8 : 4;
    if (wt == 2 && (!fz_varint(&p, end, &v) || v > (uint64_t)(end - p))) break;
    if (wt == 2) p += v;
    if (wt != 0 && wt != 1 && wt != 2 && wt != 5) break;
    if ((key >> 3) != 4) {
      memcpy(out + n, start, (size_t)(p - start));
      n += (size_t)(p - start);
    }
  }
  return n;
}

/* ---- bodies ---- */

/* Our parser of `kind` on body: 1 accepted, 0 rejected, -1 no such parser
 * (the receivers ignore the body, or hand it to protobuf-c). Compares the
 * fields with protobuf-c's when `theirs` accepted too. */
static int ours_body(unsigned kind, ia__slice body, const ProtobufCMessage *theirs) {
  switch (kind) {
  case INTERACTION__V1__FRAME__BODY_TASK: {
    ia__task_view t;
    if (!ia__task_parse(body, &t)) return 0;
    check_inside(t.method, body.p, body.n, "Task.method");
    check_inside(t.payload, body.p, body.n, "Task.payload");
    if (!theirs) return 1;
    const Interaction__V1__Task *pt = (const Interaction__V1__Task *)theirs;
    same_string(t.method, pt->method, "Task.method");
    same_bytes(t.payload, pt->has_payload, pt->payload.data, pt->payload.len, "Task.payload");
    if (t.deadline_ms != (pt->has_deadline_ms ? pt->deadline_ms : 0))
      fz_fail("field_differs", "Task.deadline_ms");
    if (t.has_metadata != (pt->n_metadata > 0)) fz_fail("field_differs", "Task.metadata presence");
    md_walk w = {pt, 0, body};
    if (!ia__task_metadata(body, md_entry, &w)) return 0; /* a reverse disagreement: the caller sorts it */
    if (w.i != pt->n_metadata) fz_fail("field_differs", "fewer metadata entries than protobuf-c sees");
    return 1;
  }
  case INTERACTION__V1__FRAME__BODY_FAIL:
  case INTERACTION__V1__FRAME__BODY_REFUSAL:
  case INTERACTION__V1__FRAME__BODY_GOODBYE: {
    ia__status_view s;
    if (!ia__status_parse(body, kind != INTERACTION__V1__FRAME__BODY_GOODBYE, &s)) return 0;
    check_inside(s.message, body.p, body.n, "status message");
    check_inside(s.data, body.p, body.n, "status data");
    if (!theirs) return 1;
    /* The three messages share code = 1 and message = 2; field 3 is
     * TaskFail.result and Refusal.data, and unknown in Goodbye. */
    bool has_code;
    uint32_t code;
    const char *message;
    bool has_data = false;
    ProtobufCBinaryData data = {0, NULL};
    if (kind == INTERACTION__V1__FRAME__BODY_FAIL) {
      const Interaction__V1__TaskFail *m = (const Interaction__V1__TaskFail *)theirs;
      has_code = m->has_code, code = m->code, message = m->message, has_data = m->has_result,
      data = m->result;
    } else if (kind == INTERACTION__V1__FRAME__BODY_REFUSAL) {
      const Interaction__V1__Refusal *m = (const Interaction__V1__Refusal *)theirs;
      has_code = m->has_code, code = m->code, message = m->message, has_data = m->has_data, data = m->data;
    } else {
      const Interaction__V1__Goodbye *m = (const Interaction__V1__Goodbye *)theirs;
      has_code = m->has_code, code = m->code, message = m->message;
    }
    if (s.has_code != has_code || (has_code && s.code != code)) fz_fail("field_differs", "status code");
    same_string(s.message, message, "status message");
    if (kind != INTERACTION__V1__FRAME__BODY_GOODBYE)
      same_bytes(s.data, has_data, data.data, data.len, "status data");
    return 1;
  }
  case INTERACTION__V1__FRAME__BODY_RESULT: {
    ia__slice payload;
    if (!ia__result_parse(body, &payload)) return 0;
    check_inside(payload, body.p, body.n, "TaskResult.payload");
    if (!theirs) return 1;
    const Interaction__V1__TaskResult *m = (const Interaction__V1__TaskResult *)theirs;
    same_bytes(payload, m->has_payload, m->payload.data, m->payload.len, "TaskResult.payload");
    return 1;
  }
  default:
    return -1;
  }
}

/* One body of `kind`: our parser against protobuf-c's unpack of it.
 * Returns whether protobuf-c accepts it. */
static bool check_body(unsigned kind, ia__slice body) {
  const ProtobufCMessageDescriptor *d = body_field(kind)->descriptor;
  ProtobufCMessage *theirs = protobuf_c_message_unpack(d, NULL, body.n, body.p);
  int ours = ours_body(kind, body, theirs);
  if (ours == 1 && !theirs) {
    unsigned q = fz_pbc_quirks(d, body.p, body.n);
    uint8_t *stripped = kind == INTERACTION__V1__FRAME__BODY_TASK ? malloc(body.n + 1) : NULL;
    ProtobufCMessage *bare = NULL;
    if (stripped) bare = protobuf_c_message_unpack(d, NULL, strip_metadata(body, stripped), stripped);
    /* Both were bugs of 468917a, fixed since (tests/runtime/test_parse.c). */
    if (bare)
      fz_fail("task_metadata_unchecked", "a Task whose metadata entries protobuf-c rejects was accepted");
    else if (q & (FZ_Q_LONG_TAG | FZ_Q_LONG_LEN))
      fz_fail("body_long_varint", "a key or length of more than 5 bytes was accepted in a body");
    else
      fz_fail("body_accepts_malformed", "our %s parser accepts a body protobuf-c rejects", d->name);
    if (bare) protobuf_c_message_free_unpacked(bare, NULL);
    free(stripped);
  } else if (ours == 0 && theirs) {
    unsigned q = fz_pbc_quirks(d, body.p, body.n);
    if (q & FZ_Q_TAG0)
      fz_note("body_tag0");
    else if (kind == INTERACTION__V1__FRAME__BODY_GOODBYE && fz_field_count(body.p, body.n, 3) > 0)
      fz_fail("goodbye_field3_typed", "a Goodbye with an unknown field 3 was rejected"); /* fixed since 468917a */
    else
      fz_fail("body_rejects_valid", "our %s parser rejects a body protobuf-c accepts", d->name);
  }
  if (theirs) protobuf_c_message_free_unpacked(theirs, NULL);
  return theirs != NULL;
}

/* ---- frames ---- */

/* How many body fields (of any kind) a frame's encoding holds. */
static unsigned body_fields(const uint8_t *p, size_t n) {
  unsigned count = 0;
  for (uint32_t k = IA__BODY_FIRST; k <= IA__BODY_LAST; k++)
    count += fz_field_count(p, n, k);
  return count;
}

static void check_frame(const uint8_t *p, size_t n) {
  ia__env env;
  bool ours = ia__env_parse(p, n, &env);
  Interaction__V1__Frame *theirs = interaction__v1__frame__unpack(NULL, n, p);
  if (ours) {
    if (env.kind < IA__BODY_FIRST || env.kind > IA__BODY_LAST)
      fz_fail("bad_kind", "accepted a frame of body kind %u", env.kind);
    check_inside(env.body, p, n, "the body");
    bool body_ok = check_body(env.kind, env.body);
    if (theirs) {
      if (env.id != (theirs->has_id ? theirs->id : 0)) fz_fail("id_differs", "id differs from protobuf-c's");
      if (env.kind != (unsigned)theirs->body_case)
        fz_fail("kind_differs", "body case %u, protobuf-c %u", env.kind, theirs->body_case);
      /* The slice must be exactly the body protobuf-c kept (the last one). */
      const ProtobufCFieldDescriptor *f = body_field(env.kind);
      const ProtobufCMessage *kept = *(ProtobufCMessage *const *)((const uint8_t *)theirs + f->offset);
      ProtobufCMessage *mine = protobuf_c_message_unpack(f->descriptor, NULL, env.body.n, env.body.p);
      if (!mine) fz_fail("body_differs", "protobuf-c takes the frame but not the body slice");
      size_t a = protobuf_c_message_get_packed_size(kept), b = protobuf_c_message_get_packed_size(mine);
      uint8_t *pa = malloc(a + 1), *pb = malloc(b + 1);
      if (!pa || !pb) abort();
      protobuf_c_message_pack(kept, pa);
      protobuf_c_message_pack(mine, pb);
      if (a != b || memcmp(pa, pb, a) != 0)
        fz_fail("body_differs", "the body slice is not the body protobuf-c kept");
      free(pa);
      free(pb);
      protobuf_c_message_free_unpacked(mine, NULL);
    } else {
      /* Sorted from the cause that explains most: a body our own parser
       * rejects too is a consistent rejection (the receiver fails the
       * frame), whatever else is wrong with it. */
      unsigned q = fz_pbc_quirks(NULL, p, n); /* the envelope's own fields, not the bodies' */
      int body_ours = ours_body(env.kind, env.body, NULL);
      bool receiver_unpacks = env.kind == INTERACTION__V1__FRAME__BODY_HELLO ||
                              env.kind == INTERACTION__V1__FRAME__BODY_WELCOME ||
                              env.kind == INTERACTION__V1__FRAME__BODY_DISCONNECT ||
                              env.kind == INTERACTION__V1__FRAME__BODY_STATS ||
                              env.kind == INTERACTION__V1__FRAME__BODY_AUTH_CHALLENGE ||
                              env.kind == INTERACTION__V1__FRAME__BODY_AUTH_PROOF;
      if (!body_ok && (body_ours == 0 || (body_ours == -1 && receiver_unpacks)))
        ; /* rejected by the body's own parser (ours, or protobuf-c's in the receiver) */
      else if (!body_ok && body_ours == 1)
        ; /* our body parser accepts a body protobuf-c rejects: check_body() sorted it */
      else if (q & (FZ_Q_LONG_TAG | FZ_Q_LONG_LEN))
        fz_fail("frame_long_varint", "a key or length of more than 5 bytes was accepted in the envelope");
      else if (!body_ok)
        fz_note("empty_body_unchecked"); /* Ping, Pong, Accepted, Cancel: the body is not read */
      else if (body_fields(p, n) > 1)
        fz_note("earlier_body_unchecked"); /* only the body that counts (the last) is parsed */
      else
        fz_fail("frame_accepts_malformed", "ia__env_parse accepts a frame protobuf-c rejects");
    }
  } else if (theirs) {
    unsigned q = fz_pbc_quirks(&interaction__v1__frame__descriptor, p, n);
    if (theirs->body_case == INTERACTION__V1__FRAME__BODY__NOT_SET)
      fz_note("frame_without_body"); /* wire.h: rejected on purpose */
    else if (q & FZ_Q_TAG0)
      fz_note("frame_tag0");
    else
      fz_fail("frame_rejects_valid", "ia__env_parse rejects a frame protobuf-c accepts");
  }
  if (theirs) interaction__v1__frame__free_unpacked(theirs, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input(data, size);
  check_frame(data, size);
  const ia__slice all = {data, size};
  check_body(INTERACTION__V1__FRAME__BODY_TASK, all);
  check_body(INTERACTION__V1__FRAME__BODY_FAIL, all);
  check_body(INTERACTION__V1__FRAME__BODY_REFUSAL, all);
  check_body(INTERACTION__V1__FRAME__BODY_GOODBYE, all);
  check_body(INTERACTION__V1__FRAME__BODY_RESULT, all);
  return 0;
}
