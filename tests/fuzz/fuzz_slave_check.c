/*
 * fuzz_slave's second half: what a connection wrote, read back as the slave
 * can have read it, and every frame the slave sent checked against it (the
 * invariants listed in fuzz_slave.c). Nothing here talks to the slave.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_slave.h"
#include "fuzz_slave_script.h"
#include "interaction.pb-c.h"
#include "interaction/interaction.h"

/* ---- what was sent, as the slave can have read it ---- */

/* A varint of up to ten bytes at *pp; false if cut short or longer. */
static bool lenient_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int i = 0; i < 10 && *pp < end; i++) {
    uint8_t b = *(*pp)++;
    *v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) return true;
  }
  return false;
}

/* A frame's id and (last) body, read as leniently as any parser might:
 * varints of up to ten bytes everywhere, unknown fields skipped. False if
 * it is no protobuf at all; *kind 0 if it has no body. */
static bool lenient_env(const uint8_t *p, size_t n, uint64_t *id, unsigned *kind, const uint8_t **body,
                        size_t *blen) {
  const uint8_t *end = p + n;
  *id = 0;
  *kind = 0;
  while (p < end) {
    uint64_t key, v = 0;
    if (!lenient_varint(&p, end, &key)) return false;
    unsigned wt = key & 7;
    if ((wt == 0 || wt == 2) && !lenient_varint(&p, end, &v)) return false;
    if (wt == 0 && (key >> 3) == 1) *id = v;
    if (wt == 1 || wt == 5) {
      if ((size_t)(end - p) < (wt == 1 ? 8u : 4u)) return false;
      p += wt == 1 ? 8 : 4;
    } else if (wt == 2) {
      if (v > (uint64_t)(end - p)) return false;
      if ((key >> 3) >= INTERACTION__V1__FRAME__BODY_HELLO &&
          (key >> 3) <= INTERACTION__V1__FRAME__BODY_AUTH_PROOF) {
        *kind = (unsigned)(key >> 3);
        *body = p;
        *blen = (size_t)v;
      }
      p += v;
    } else if (wt != 0) {
      return false;
    }
  }
  return true;
}

#define MAX_IDS 512

/* The requests the stream holds, by id. */
typedef struct sent {
  uint64_t id;
  unsigned tasks, pings, hellos, disconnects, stats_requests;
  int method; /* of the one Task frame with this id written by a TASK op; -1 if unknown */
  uint64_t payload_sum;
  /* what came back */
  unsigned accepted, outcomes, pongs, stats;
  bool outcome_seen;
} sent;

typedef struct ledger {
  sent ids[MAX_IDS];
  size_t n;
  bool first_is_valid_hello;
  bool observer; /* that Hello asked to observe: every task is refused 602 */
  uint64_t first_hello_id;
  size_t first_end; /* stream offset after the first frame */
} ledger;

static sent *find(ledger *l, uint64_t id, bool add) {
  for (size_t i = 0; i < l->n; i++)
    if (l->ids[i].id == id) return &l->ids[i];
  if (!add || l->n == MAX_IDS) return NULL;
  sent *s = &l->ids[l->n++];
  memset(s, 0, sizeof *s);
  s->id = id;
  s->method = -1;
  return s;
}

/* What a Task body asks for, when it is one of the methods of the table. */
static void task_method(sent *s, const uint8_t *body, size_t n) {
  Interaction__V1__Task *t = interaction__v1__task__unpack(NULL, n, body);
  s->method = -1;
  if (!t) return;
  for (int m = 0; m < FZ_N_METHODS && t->method; m++)
    if (strcmp(t->method, fz_methods[m]) == 0 && strlen(t->method) == strlen(fz_methods[m])) s->method = m;
  s->payload_sum = 0;
  for (size_t i = 0; i < t->payload.len; i++)
    s->payload_sum += t->payload.data[i];
  if (s->method == FZ_M_SLEEP || s->method == FZ_M_LONG)
    s->payload_sum = t->payload.len; /* the echo's length */
  interaction__v1__task__free_unpacked(t, NULL);
}

static void scan_sent(const conn *c, ledger *l) {
  size_t at = 0;
  uint32_t len;
  bool first = true;
  while (fz_split_next(c->stream.p, c->written, at, FZ_MAX_FRAME, &len) == FZ_SPLIT_READY) {
    const uint8_t *f = c->stream.p + at + 4, *body = NULL;
    size_t blen = 0;
    uint64_t id;
    unsigned kind;
    if (lenient_env(f, len, &id, &kind, &body, &blen) && kind) {
      sent *s = find(l, id, true);
      if (!s) break;
      if (kind == INTERACTION__V1__FRAME__BODY_TASK && s->tasks++ == 0) task_method(s, body, blen);
      if (kind == INTERACTION__V1__FRAME__BODY_PING) s->pings++;
      if (kind == INTERACTION__V1__FRAME__BODY_HELLO) s->hellos++;
      if (kind == INTERACTION__V1__FRAME__BODY_DISCONNECT) s->disconnects++;
      if (kind == INTERACTION__V1__FRAME__BODY_STATS_REQUEST) s->stats_requests++;
      if (first && kind == INTERACTION__V1__FRAME__BODY_HELLO) {
        Interaction__V1__Hello *h = interaction__v1__hello__unpack(NULL, blen, body);
        l->first_is_valid_hello =
            h && h->has_version && h->version == 1 && h->has_channel && h->channel == FZ_CHANNEL;
        l->observer = h && h->has_observe && h->observe;
        l->first_hello_id = id;
        if (h) interaction__v1__hello__free_unpacked(h, NULL);
      }
    }
    if (first) l->first_end = at + 4 + len;
    first = false;
    at += 4 + (size_t)len;
  }
}

/* ---- what came back ---- */

static uint64_t le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* One outcome of a task id that was sent once: the one its method implies. */
static void check_outcome(const sent *s, const Interaction__V1__Frame *f) {
  if (s->tasks != 1 || s->hellos || s->disconnects || s->method < 0) return;
  bool refusal = f->body_case == INTERACTION__V1__FRAME__BODY_REFUSAL;
  uint32_t code = refusal                                             ? f->refusal->code
                  : f->body_case == INTERACTION__V1__FRAME__BODY_FAIL ? f->fail->code
                                                                      : 0;
  if (refusal && code == IA_TASK_ALREADY_EXIST) return; /* busy: any method */
  switch (s->method) {
  case FZ_M_SUM:
    if (f->body_case != INTERACTION__V1__FRAME__BODY_RESULT || f->result->payload.len != 8 ||
        le64(f->result->payload.data) != s->payload_sum)
      fz_fail("slave_wrong_outcome", "task %llu (Sum): not the sum", (unsigned long long)s->id);
    break;
  case FZ_M_FAIL:
    if (code != IA_TASK_FAILED)
      fz_fail("slave_wrong_outcome", "task %llu (Fail): code %u", (unsigned long long)s->id, code);
    break;
  case FZ_M_NOTHING:
    if (code != IA_TASK_ERROR)
      fz_fail("slave_wrong_outcome", "task %llu (Nothing): code %u", (unsigned long long)s->id, code);
    break;
  case FZ_M_SLEEP:
  case FZ_M_LONG:
    if (code != IA_CANCELLED &&
        (f->body_case != INTERACTION__V1__FRAME__BODY_RESULT || f->result->payload.len != s->payload_sum))
      fz_fail("slave_wrong_outcome", "task %llu (Sleep): code %u", (unsigned long long)s->id, code);
    break;
  case FZ_M_META:
    if (f->body_case != INTERACTION__V1__FRAME__BODY_RESULT)
      fz_fail("slave_wrong_outcome", "task %llu (Meta): code %u", (unsigned long long)s->id, code);
    break;
  default:
    if (!refusal || code != IA_UNKNOWN_METHOD)
      fz_fail("slave_wrong_outcome", "task %llu (no handler): kind %d code %u", (unsigned long long)s->id,
              f->body_case, code);
  }
}

static void trace_frame(const conn *c, size_t at, const Interaction__V1__Frame *f) {
  uint32_t code = f->body_case == INTERACTION__V1__FRAME__BODY_REFUSAL   ? f->refusal->code
                  : f->body_case == INTERACTION__V1__FRAME__BODY_FAIL    ? f->fail->code
                  : f->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE ? f->goodbye->code
                                                                         : 0;
  const char *msg = f->body_case == INTERACTION__V1__FRAME__BODY_REFUSAL   ? f->refusal->message
                    : f->body_case == INTERACTION__V1__FRAME__BODY_FAIL    ? f->fail->message
                    : f->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE ? f->goodbye->message
                                                                           : NULL;
  fprintf(stderr, "fuzz_slave: <- @%zu/%zu %s id=%llu code=%u %s\n", at, c->in.n,
          protobuf_c_message_descriptor_get_field(&interaction__v1__frame__descriptor, f->body_case)->name,
          (unsigned long long)(f->has_id ? f->id : 0), code, msg ? msg : "");
}

static void check_replies(const conn *c, ledger *l, bool trace) {
  size_t at = 0;
  uint32_t len;
  bool welcomed = false;
  fz_split sp;
  while ((sp = fz_split_next(c->in.p, c->in.n, at, UINT32_MAX, &len)) == FZ_SPLIT_READY) {
    Interaction__V1__Frame *f = interaction__v1__frame__unpack(NULL, len, c->in.p + at + 4);
    if (!f || f->body_case == INTERACTION__V1__FRAME__BODY__NOT_SET)
      fz_fail("slave_sent_garbage", "a frame from the slave does not parse (offset %zu)", at);
    uint64_t id = f->has_id ? f->id : 0;
    sent *s = find(l, id, false);
    int kind = f->body_case;
    if (trace) trace_frame(c, at, f);
    if (!welcomed && kind != INTERACTION__V1__FRAME__BODY_WELCOME &&
        kind != INTERACTION__V1__FRAME__BODY_REFUSAL && kind != INTERACTION__V1__FRAME__BODY_GOODBYE)
      fz_fail("slave_before_handshake", "frame kind %d before any Welcome", kind);
    switch (kind) {
    case INTERACTION__V1__FRAME__BODY_WELCOME:
      if (welcomed) fz_fail("slave_two_welcomes", "a second Welcome");
      if (!l->first_is_valid_hello || id != l->first_hello_id)
        fz_fail("slave_bad_welcome", "Welcome (id %llu) without a valid first Hello", (unsigned long long)id);
      if (!f->welcome->has_max_frame || f->welcome->max_frame != FZ_MAX_FRAME)
        fz_fail("slave_bad_welcome", "max_frame");
      welcomed = true;
      /* A Hello finished well after the hello timeout must not be welcomed
       * (the timeout runs from the accept, not from the last byte read). */
      uint64_t done = written_at(c, l->first_end);
      if (done && done > c->t0 + (c->hello_timeout_ms + HELLO_SLACK_MS) * 1000ull)
        fz_fail("hello_idle_timer", "Hello finished %llu ms after connect was welcomed (timeout %u ms)",
                (unsigned long long)(done - c->t0) / 1000u, c->hello_timeout_ms);
      break;
    case INTERACTION__V1__FRAME__BODY_REFUSAL:
      if (!s || !(s->tasks || s->hellos || s->disconnects || s->stats_requests))
        fz_fail("slave_unknown_id", "Refusal for id %llu, never sent", (unsigned long long)id);
      if (l->observer && f->refusal->code == IA_TASK_REFUSED) break; /* an observer's task */
      if (f->refusal->code == IA_ALREADY_CONNECTED)
        fz_fail("slave_already_connected", "501 though no master is connected");
      if (s->tasks && !s->hellos && !s->disconnects) {
        if (++s->outcomes > s->tasks)
          fz_fail("slave_two_outcomes", "task %llu: more outcomes than tasks", (unsigned long long)id);
        s->outcome_seen = true;
        check_outcome(s, f);
      }
      break;
    case INTERACTION__V1__FRAME__BODY_ACCEPTED:
    case INTERACTION__V1__FRAME__BODY_RESULT:
    case INTERACTION__V1__FRAME__BODY_FAIL:
      if (!s || !s->tasks)
        fz_fail("slave_unknown_id", "kind %d for id %llu, never sent as a Task", kind,
                (unsigned long long)id);
      if (kind == INTERACTION__V1__FRAME__BODY_ACCEPTED) {
        if (++s->accepted > s->tasks)
          fz_fail("slave_two_accepted", "task %llu: Accepted twice", (unsigned long long)id);
        if (s->tasks == 1 && s->outcome_seen)
          fz_fail("accepted_after_outcome", "task %llu: Accepted after its outcome", (unsigned long long)id);
        break;
      }
      if (++s->outcomes > s->tasks)
        fz_fail("slave_two_outcomes", "task %llu: more outcomes than tasks", (unsigned long long)id);
      s->outcome_seen = true;
      check_outcome(s, f);
      break;
    case INTERACTION__V1__FRAME__BODY_PONG:
      if (!s || ++s->pongs > s->pings)
        fz_fail("slave_unknown_id", "Pong for id %llu, not a Ping's", (unsigned long long)id);
      break;
    case INTERACTION__V1__FRAME__BODY_STATS:
      /* The answer to a StatsRequest of the same id, one each. */
      if (!s || ++s->stats > s->stats_requests)
        fz_fail("slave_unknown_id", "Stats for id %llu, not a StatsRequest's", (unsigned long long)id);
      break;
    case INTERACTION__V1__FRAME__BODY_PING:
      /* The slave's own heartbeat, to a master that proposed none: id 0. */
      if (id != 0)
        fz_fail("slave_ping_id", "the slave sent a Ping with id %llu, not a heartbeat",
                (unsigned long long)id);
      break;
    case INTERACTION__V1__FRAME__BODY_GOODBYE:
      if (id != 0 && (!s || !s->disconnects))
        fz_fail("slave_unknown_id", "Goodbye with id %llu, not a Disconnect's", (unsigned long long)id);
      break;
    default:
      fz_fail("slave_unexpected_kind", "the slave sent body kind %d", kind);
    }
    interaction__v1__frame__free_unpacked(f, NULL);
    at += 4 + (size_t)len;
  }
  if (sp != FZ_SPLIT_END)
    fz_fail("slave_truncated", "the slave's last frame is cut short (%zu bytes left)", c->in.n - at);
}

void fzs_check(const conn *c, bool trace) {
  ledger *l = calloc(1, sizeof *l);
  if (!l) abort();
  scan_sent(c, l);
  check_replies(c, l, trace);
  free(l);
}
