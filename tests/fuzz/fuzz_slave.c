/*
 * fuzz_slave: the slave's connection state machine fed whole byte streams.
 *
 * One slave runs in this process for the whole run (public API only:
 * ia_slave_new, ia_slave_register, ia_slave_start; freed at exit so that
 * LeakSanitizer sees what it leaks). Each input is a script
 * (fuzz_slave_script.h) played on a fresh TCP connection to it: Hellos,
 * Tasks for handlers that reply, fail, return nothing or sleep while
 * polling for cancellation, Cancel, Ping, Disconnect, Goodbye, garbage,
 * oversize prefixes, writes cut at chosen points, pauses. The script then
 * half-closes the connection and reads everything the slave sends until it
 * closes too (bounded), and a probe connection checks that the slave still
 * welcomes a master.
 *
 * Invariants (on the bytes the slave sent, against the bytes written):
 * every frame parses with protobuf-c and none is cut short; each reply has
 * an id that was sent in a request it can answer (Goodbye may carry 0);
 * nothing but Welcome, Refusal or Goodbye comes before the handshake, and
 * Welcome only answers a first frame that is a valid Hello; a task id sent
 * once gets at most one outcome (Result, Fail or Refusal), the outcome its
 * method implies, and no Accepted after it; the slave is never
 * ALREADY_CONNECTED for a connection of ours (the previous one is always
 * closed first); it closes after our EOF; a Hello completed long after the
 * hello timeout is not welcomed; and a fresh connection's Hello is welcomed
 * after each script (a bounded wait for 501 to pass).
 *
 * Internal functions called: none (public headers and the generated
 * interaction.pb-c.h only). It must never wait without a bound, connect
 * anywhere but its own slave on 127.0.0.1, or call harness code from the
 * handlers (they run on the slave's worker thread).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "fuzz_slave_script.h"
#include "interaction.pb-c.h"
#include "interaction/interaction.h"

#define HELLO_TIMEOUT_MS 50 /* the slave's; short, so that scripts can outlast it */
#define HELLO_SLACK_MS 100  /* scheduling slack before a late Welcome counts as a finding */
#define PAUSE_BUDGET_MS 400 /* all pauses and waits of one script together */
#define EOF_WAIT_MS 5000    /* the slave must close within this after our EOF */
#define PROBE_WAIT_MS 3000  /* ... and welcome a new master within this */
#define MAX_REPLY (4u << 20)

static ia_slave *slave;
static uint16_t port;
static bool trace; /* IA_FUZZ_TRACE set: every frame from the slave on stderr, to read a finding */

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_us(uint64_t us) {
  struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
  nanosleep(&ts, NULL);
}

/* ---- the slave's handlers (worker thread: no harness state here) ---- */

/* A handler ends a fresh task exactly once: that cannot fail. */
static void ended(ia_code rc) {
  if (rc != IA_OK) fz_fail("handler_end", "ending a task failed: %s", ia_code_name(rc));
}

static void h_sum(ia_task_ctx *t, void *u) {
  (void)u;
  size_t n;
  const uint8_t *p = ia_task_ctx_payload(t, &n);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += p[i];
  uint8_t out[8];
  for (int i = 0; i < 8; i++)
    out[i] = (uint8_t)(sum >> (8 * i));
  ended(ia_task_ctx_reply(t, out, sizeof out));
}

static void h_fail(ia_task_ctx *t, void *u) {
  (void)u;
  size_t n;
  const uint8_t *p = ia_task_ctx_payload(t, &n);
  ended(ia_task_ctx_fail(t, IA_TASK_FAILED, "failed on purpose", p, n));
}

static void h_nothing(ia_task_ctx *t, void *u) {
  (void)t;
  (void)u;
}

/* Sleep: 0-3 ms, Long: 10-30 ms (the payload's first byte picks), polling
 * for cancellation; `u` is the method's index. */
static void h_sleep(ia_task_ctx *t, void *u) {
  size_t n;
  const uint8_t *p = ia_task_ctx_payload(t, &n);
  unsigned b = n ? p[0] : 0;
  uint64_t ms = (uintptr_t)u == FZ_M_LONG ? 10u + b % 21u : b % 4u;
  uint64_t until = now_us() + ms * 1000u;
  while (now_us() < until) {
    if (ia_task_ctx_cancelled(t)) {
      ended(ia_task_ctx_fail(t, IA_CANCELLED, "cancelled", NULL, 0));
      return;
    }
    sleep_us(100);
  }
  ended(ia_task_ctx_reply(t, p, n));
}

static void h_meta(ia_task_ctx *t, void *u) {
  (void)u;
  const char *v = ia_task_ctx_metadata(t, "k");
  ended(ia_task_ctx_reply(t, v ? v : "", v ? strlen(v) : 0));
}

static void stop_slave(void) {
  ia_slave_free(slave);
  slave = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_init();
  ia_slave_config c;
  ia_slave_config_init(&c);
  c.channel = FZ_CHANNEL;
  c.name = "fuzz-slave";
  c.max_frame = FZ_MAX_FRAME;
  c.hello_timeout_ms = HELLO_TIMEOUT_MS;
  c.grace_ms = 100;
  ia_error err = IA_ERROR_INIT;
  if (ia_slave_new(&c, &slave, &err) != IA_OK ||
      ia_slave_register(slave, fz_methods[FZ_M_SUM], h_sum, NULL) ||
      ia_slave_register(slave, fz_methods[FZ_M_FAIL], h_fail, NULL) ||
      ia_slave_register(slave, fz_methods[FZ_M_NOTHING], h_nothing, NULL) ||
      ia_slave_register(slave, fz_methods[FZ_M_SLEEP], h_sleep, (void *)(uintptr_t)FZ_M_SLEEP) ||
      ia_slave_register(slave, fz_methods[FZ_M_LONG], h_sleep, (void *)(uintptr_t)FZ_M_LONG) ||
      ia_slave_register(slave, fz_methods[FZ_M_META], h_meta, NULL) || ia_slave_start(slave, &err) != IA_OK) {
    fprintf(stderr, "fuzz_slave: cannot start the slave: %s\n", err.message);
    exit(1);
  }
  port = ia_slave_port(slave);
  trace = getenv("IA_FUZZ_TRACE") != NULL;
  atexit(stop_slave);
  return 0;
}

/* ---- one connection ---- */

typedef struct conn {
  int fd;
  bool dead;     /* a write failed: the slave closed; what is left is not sent */
  bool eof;      /* the slave closed its side */
  fz_buf in;     /* everything the slave sent */
  uint64_t t0;   /* when connect() returned */
  fz_buf stream; /* every byte the script meant to write, in order */
  size_t written;
  fz_buf times; /* (end offset, time) after each write, as pairs of uint64_t */
} conn;

/* A non-blocking TCP connection to the slave. The connect is waited for
 * with poll(), because a blocking connect() fails with EINTR when
 * libFuzzer's timer signal (-timeout) comes in; every wait is bounded. */
static int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) abort();
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int err = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    err = errno;
    if (err == EINPROGRESS || err == EINTR) {
      struct pollfd p = {fd, POLLOUT, 0};
      uint64_t until = now_us() + 2000000u;
      while (poll(&p, 1, 10) <= 0 && now_us() < until)
        ;
      socklen_t len = sizeof err;
      if (!(p.revents & (POLLOUT | POLLERR | POLLHUP)))
        err = ETIMEDOUT;
      else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    }
  }
  if (err) fz_fail("slave_not_listening", "connect to the slave: %s", strerror(err));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

/* Reads what is there without waiting. */
static void pull(conn *c) {
  uint8_t tmp[16384];
  for (int i = 0; i < 64 && !c->eof; i++) {
    ssize_t r = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (r > 0) {
      fz_buf_put(&c->in, tmp, (size_t)r);
      if (c->in.n > MAX_REPLY) fz_fail("slave_flood", "the slave sent over %u bytes", MAX_REPLY);
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) c->eof = true;
    break;
  }
}

/* Waits up to ms for something to read (or the end), then reads it. */
static void wait_in(conn *c, int ms) {
  struct pollfd p = {c->fd, POLLIN, 0};
  if (!c->eof && poll(&p, 1, ms) > 0) pull(c);
}

/* Writes stream[written, upto) with reads in between, so that neither side
 * can block the other; gives up (dead) when the slave has closed. */
static void write_upto(conn *c, size_t upto) {
  uint64_t deadline = now_us() + 2000000u;
  while (!c->dead && c->written < upto) {
    ssize_t w = send(c->fd, c->stream.p + c->written, upto - c->written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      c->written += (size_t)w;
      uint64_t mark[2] = {c->written, now_us()};
      fz_buf_put(&c->times, mark, sizeof mark);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c->dead = true; /* EPIPE, ECONNRESET: the slave closed */
      break;
    }
    if (now_us() > deadline) fz_fail("slave_not_reading", "the slave took nothing for 2 s");
    struct pollfd p = {c->fd, POLLOUT | POLLIN, 0};
    poll(&p, 1, 10);
    pull(c);
  }
  pull(c);
}

/* When the byte at offset `end` - 1 had been written (0 if it never was). */
static uint64_t written_at(const conn *c, size_t end) {
  const uint64_t *m = (const uint64_t *)c->times.p;
  for (size_t i = 0; i + 1 < c->times.n / sizeof *m; i += 2)
    if (m[i] >= end) return m[i + 1];
  return 0;
}

/* ---- the script ---- */

static uint64_t read_id(fz_reader *r) {
  uint8_t b = fz_u8(r);
  return b == 0xff ? fz_u64(r) : b;
}

/* Appends Frame{id, body} to the stream. */
static void put_frame(conn *c, uint64_t id, Interaction__V1__Frame__BodyCase kind, ProtobufCMessage *body) {
  Interaction__V1__Frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = kind;
  /* Every body is a message pointer at the same place in the oneof. */
  const ProtobufCFieldDescriptor *fd =
      protobuf_c_message_descriptor_get_field(&interaction__v1__frame__descriptor, kind);
  *(ProtobufCMessage **)((uint8_t *)&f + fd->offset) = body;
  fz_buf_frame(&c->stream, &f.base);
}

typedef struct plan {
  size_t cut;         /* SPLIT: where the next write is cut (0: not) */
  uint64_t cut_pause; /* microseconds */
  unsigned pieces;    /* SLOW: parts of the next write (0: not) */
  uint64_t gap;       /* microseconds between them */
  uint64_t slept;     /* the pause budget used */
} plan;

static void pause_us(plan *pl, uint64_t us) {
  if (pl->slept >= (uint64_t)PAUSE_BUDGET_MS * 1000u) return;
  if (pl->slept + us > (uint64_t)PAUSE_BUDGET_MS * 1000u) us = (uint64_t)PAUSE_BUDGET_MS * 1000u - pl->slept;
  pl->slept += us;
  if (us) sleep_us(us);
}

static uint64_t pause_of(uint8_t t) {
  return t < 200 ? (uint64_t)(t % 16) * 200u : (uint64_t)(t - 200) * 1000u;
}

/* Writes what the script added since the last flush, as the plan says. */
static void flush(conn *c, plan *pl) {
  size_t from = c->written, to = c->stream.n;
  if (to == from) return; /* the plan is for the next bytes */
  if (pl->pieces > 1) {
    size_t part = (to - from + pl->pieces - 1) / pl->pieces;
    for (size_t at = from + part; at < to && !c->dead; at += part) {
      write_upto(c, at);
      pause_us(pl, pl->gap);
    }
  } else if (pl->cut) {
    write_upto(c, from + pl->cut % (to - from));
    pause_us(pl, pl->cut_pause);
  }
  write_upto(c, to);
  pl->cut = 0;
  pl->pieces = 0;
}

static void play(conn *c, fz_reader *r) {
  plan pl = {0};
  bool hold = false;
  for (int ops = 0; r->n > 0 && ops < 256 && !c->dead; ops++) {
    size_t len;
    const uint8_t *p;
    switch (fz_u8(r) % FZ_OP_COUNT) {
    case FZ_OP_HELLO: {
      uint64_t id = read_id(r);
      unsigned variant = fz_u8(r) % 5;
      p = fz_bytes(r, fz_u8(r), &len);
      Interaction__V1__Hello h = INTERACTION__V1__HELLO__INIT;
      h.has_version = variant != FZ_HELLO_NO_VERSION;
      h.version = variant == FZ_HELLO_VERSION ? 2 : 1;
      h.has_channel = variant != FZ_HELLO_NO_CHANNEL;
      h.channel = variant == FZ_HELLO_CHANNEL ? FZ_CHANNEL + 1 : FZ_CHANNEL;
      h.master_name = "fuzz-master";
      h.has_data = len > 0;
      h.data = (ProtobufCBinaryData){len, (uint8_t *)p};
      put_frame(c, id, INTERACTION__V1__FRAME__BODY_HELLO, &h.base);
      break;
    }
    case FZ_OP_TASK: {
      uint64_t id = read_id(r);
      unsigned m = fz_u8(r) % FZ_N_METHODS;
      uint8_t flags = fz_u8(r);
      p = fz_bytes(r, fz_u8(r), &len);
      Interaction__V1__Task t = INTERACTION__V1__TASK__INIT;
      t.method = (char *)fz_methods[m];
      t.has_payload = 1;
      t.payload = (ProtobufCBinaryData){len, (uint8_t *)p};
      t.has_deadline_ms = flags & 1;
      t.deadline_ms = 1000;
      Interaction__V1__Task__MetadataEntry e1 = INTERACTION__V1__TASK__METADATA_ENTRY__INIT,
                                           e2 = INTERACTION__V1__TASK__METADATA_ENTRY__INIT;
      e1.key = "k", e1.value = "v1", e2.key = "x", e2.value = "v2";
      Interaction__V1__Task__MetadataEntry *md[2];
      if (flags & 2) md[t.n_metadata++] = &e1;
      if (flags & 4) md[t.n_metadata++] = &e2;
      t.metadata = md;
      put_frame(c, id, INTERACTION__V1__FRAME__BODY_TASK, &t.base);
      break;
    }
    case FZ_OP_CANCEL: {
      Interaction__V1__Cancel x = INTERACTION__V1__CANCEL__INIT;
      put_frame(c, read_id(r), INTERACTION__V1__FRAME__BODY_CANCEL, &x.base);
      break;
    }
    case FZ_OP_PING: {
      Interaction__V1__Ping x = INTERACTION__V1__PING__INIT;
      put_frame(c, read_id(r), INTERACTION__V1__FRAME__BODY_PING, &x.base);
      break;
    }
    case FZ_OP_DISCONNECT: {
      uint64_t id = read_id(r);
      p = fz_bytes(r, fz_u8(r), &len);
      Interaction__V1__Disconnect x = INTERACTION__V1__DISCONNECT__INIT;
      x.has_data = len > 0;
      x.data = (ProtobufCBinaryData){len, (uint8_t *)p};
      put_frame(c, id, INTERACTION__V1__FRAME__BODY_DISCONNECT, &x.base);
      break;
    }
    case FZ_OP_GOODBYE: {
      Interaction__V1__Goodbye x = INTERACTION__V1__GOODBYE__INIT;
      x.has_code = 1;
      x.code = fz_u8(r);
      x.message = "bye";
      put_frame(c, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, &x.base);
      break;
    }
    case FZ_OP_RAW:
      p = fz_bytes(r, fz_u8(r), &len);
      fz_buf_put(&c->stream, p, len);
      break;
    case FZ_OP_BIG:
      fz_buf_be32(&c->stream, FZ_MAX_FRAME + 1u + fz_u16(r));
      break;
    case FZ_OP_SPLIT:
      pl.cut = fz_u16(r);
      pl.cut_pause = pause_of(fz_u8(r));
      break;
    case FZ_OP_PAUSE:
      flush(c, &pl);
      pause_us(&pl, pause_of(fz_u8(r)));
      break;
    case FZ_OP_FRAME: {
      unsigned kind = fz_u8(r) % 16;
      uint64_t id = read_id(r);
      p = fz_bytes(r, fz_u8(r), &len);
      fz_buf frame = {0};
      fz_buf_byte(&frame, 0x08);
      fz_buf_varint(&frame, id);
      if (kind) {
        fz_buf_varint(&frame, (uint64_t)kind << 3 | 2);
        fz_buf_varint(&frame, len);
        fz_buf_put(&frame, p, len);
      }
      fz_buf_be32(&c->stream, (uint32_t)frame.n);
      fz_buf_put(&c->stream, frame.p, frame.n);
      fz_buf_free(&frame);
      break;
    }
    case FZ_OP_HOLD:
      hold = !hold;
      break;
    case FZ_OP_SLOW:
      pl.pieces = 2 + fz_u8(r) % 8;
      pl.gap = (1 + fz_u8(r) % 40) * 1000u;
      break;
    case FZ_OP_WAIT: {
      /* Waiting counts against the pause budget too. */
      flush(c, &pl);
      size_t had = c->in.n;
      uint64_t budget = PAUSE_BUDGET_MS * 1000u, left = pl.slept < budget ? budget - pl.slept : 0;
      uint64_t start = now_us(), want = (fz_u8(r) % 20) * 1000u;
      uint64_t until = start + (want < left ? want : left);
      while (c->in.n == had && !c->eof && now_us() < until)
        wait_in(c, 1);
      pl.slept += now_us() - start;
      break;
    }
    }
    if (!hold) flush(c, &pl);
  }
  flush(c, &pl);
}

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
          (key >> 3) <= INTERACTION__V1__FRAME__BODY_GOODBYE) {
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
  unsigned tasks, pings, hellos, disconnects;
  int method; /* of the one Task frame with this id written by a TASK op; -1 if unknown */
  uint64_t payload_sum;
  /* what came back */
  unsigned accepted, outcomes, pongs;
  bool outcome_seen;
} sent;

typedef struct ledger {
  sent ids[MAX_IDS];
  size_t n;
  bool first_is_valid_hello;
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
      if (first && kind == INTERACTION__V1__FRAME__BODY_HELLO) {
        Interaction__V1__Hello *h = interaction__v1__hello__unpack(NULL, blen, body);
        l->first_is_valid_hello =
            h && h->has_version && h->version == 1 && h->has_channel && h->channel == FZ_CHANNEL;
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

static void check_replies(conn *c, ledger *l) {
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
      if (done && done > c->t0 + (HELLO_TIMEOUT_MS + HELLO_SLACK_MS) * 1000u)
        fz_fail("hello_idle_timer", "Hello finished %llu ms after connect was welcomed (timeout %d ms)",
                (unsigned long long)(done - c->t0) / 1000u, HELLO_TIMEOUT_MS);
      break;
    case INTERACTION__V1__FRAME__BODY_REFUSAL:
      if (!s || !(s->tasks || s->hellos || s->disconnects))
        fz_fail("slave_unknown_id", "Refusal for id %llu, never sent", (unsigned long long)id);
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

/* ---- after the script: the slave must still take a master ---- */

/* The first frame from fd within ms (NULL if none). */
static Interaction__V1__Frame *read_frame(conn *c, int ms) {
  uint64_t until = now_us() + (uint64_t)ms * 1000u;
  uint32_t len;
  while (fz_split_next(c->in.p, c->in.n, 0, FZ_MAX_FRAME, &len) != FZ_SPLIT_READY && !c->eof &&
         now_us() < until)
    wait_in(c, 5);
  if (fz_split_next(c->in.p, c->in.n, 0, FZ_MAX_FRAME, &len) != FZ_SPLIT_READY) return NULL;
  return interaction__v1__frame__unpack(NULL, len, c->in.p + 4);
}

static void probe(void) {
  uint64_t until = now_us() + (uint64_t)PROBE_WAIT_MS * 1000u;
  for (int tries = 0;; tries++) {
    conn c = {.fd = dial()};
    Interaction__V1__Hello h = INTERACTION__V1__HELLO__INIT;
    h.has_version = h.has_channel = 1;
    h.version = 1;
    h.channel = FZ_CHANNEL;
    h.master_name = "fuzz-probe";
    put_frame(&c, 1, INTERACTION__V1__FRAME__BODY_HELLO, &h.base);
    write_upto(&c, c.stream.n);
    Interaction__V1__Frame *f = read_frame(&c, PROBE_WAIT_MS);
    bool welcome = f && f->body_case == INTERACTION__V1__FRAME__BODY_WELCOME;
    int code = !f                                                     ? -1
               : f->body_case == INTERACTION__V1__FRAME__BODY_REFUSAL ? (int)f->refusal->code
               : f->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE ? (int)f->goodbye->code
                                                                      : 0;
    if (f) interaction__v1__frame__free_unpacked(f, NULL);
    if (welcome) {
      /* Leave gracefully: the slave is free again before its Goodbye. */
      Interaction__V1__Disconnect d = INTERACTION__V1__DISCONNECT__INIT;
      put_frame(&c, 2, INTERACTION__V1__FRAME__BODY_DISCONNECT, &d.base);
      write_upto(&c, c.stream.n);
      uint64_t end = now_us() + (uint64_t)EOF_WAIT_MS * 1000u;
      while (!c.eof && now_us() < end)
        wait_in(&c, 10);
      if (!c.eof) fz_fail("slave_keeps_probe", "the slave did not close after a Disconnect");
    }
    close(c.fd);
    fz_buf_free(&c.in);
    fz_buf_free(&c.stream);
    fz_buf_free(&c.times);
    if (welcome) return;
    /* 501 while the slave notices the close; a hello timeout under load. */
    if ((code != IA_ALREADY_CONNECTED && code != IA_TIMEOUT) || now_us() > until)
      fz_fail("slave_wedged", "a fresh Hello got %d after %d tries instead of a Welcome", code, tries + 1);
    sleep_us(1000);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input(data, size);
  fz_reader r = {data, size};
  conn c = {.fd = dial()};
  c.t0 = now_us();
  play(&c, &r);
  /* Our EOF: the slave must finish what it does, send it, and close. */
  shutdown(c.fd, SHUT_WR);
  uint64_t until = now_us() + (uint64_t)EOF_WAIT_MS * 1000u;
  while (!c.eof && now_us() < until)
    wait_in(&c, 10);
  if (!c.eof) fz_fail("slave_keeps_connection", "the slave did not close %d ms after our EOF", EOF_WAIT_MS);
  if (trace)
    fprintf(stderr, "fuzz_slave: -> %zu of %zu bytes written in %llu us\n", c.written, c.stream.n,
            (unsigned long long)(now_us() - c.t0));
  close(c.fd);
  ledger *l = calloc(1, sizeof *l);
  if (!l) abort();
  scan_sent(&c, l);
  check_replies(&c, l);
  free(l);
  fz_buf_free(&c.in);
  fz_buf_free(&c.stream);
  fz_buf_free(&c.times);
  probe();
  return 0;
}
