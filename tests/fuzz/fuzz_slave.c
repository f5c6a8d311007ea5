/*
 * fuzz_slave: the slave's connection state machine fed whole byte streams.
 *
 * One slave runs in this process for the whole run (public API only:
 * ia_slave_new, ia_slave_register, ia_slave_start; freed at exit so that
 * LeakSanitizer sees what it leaks). Each input is a script
 * (fuzz_slave_script.h) played on a fresh TCP connection to it: Hellos,
 * Tasks for handlers (fuzz_slave_handlers.c) that reply, fail, return
 * nothing or sleep while polling for cancellation, Cancel, Ping, Disconnect, Goodbye, garbage,
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
 * anywhere but its own slave on 127.0.0.1.
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
#include <unistd.h>

#include "fuzz_slave.h"
#include "fuzz_slave_script.h"
#include "interaction.pb-c.h"
#include "interaction/interaction.h"

#define PAUSE_BUDGET_MS 400 /* all pauses and waits of one script together */
#define EOF_WAIT_MS 5000    /* the slave must close within this after our EOF */
#define PROBE_WAIT_MS 3000  /* ... and welcome a new master within this */
#define MAX_REPLY (4u << 20)

static ia_slave *slave;
static uint16_t port;
static bool trace; /* IA_FUZZ_TRACE set: every frame from the slave on stderr, to read a finding */

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
  if (ia_slave_new(&c, &slave, &err) != IA_OK || fzs_register(slave) != IA_OK ||
      ia_slave_start(slave, &err) != IA_OK) {
    fprintf(stderr, "fuzz_slave: cannot start the slave: %s\n", err.message);
    exit(1);
  }
  port = ia_slave_port(slave);
  trace = getenv("IA_FUZZ_TRACE") != NULL;
  atexit(stop_slave);
  return 0;
}

/* ---- one connection ---- */

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
  uint64_t deadline = fz_now_us() + 2000000u;
  while (!c->dead && c->written < upto) {
    ssize_t w = send(c->fd, c->stream.p + c->written, upto - c->written, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      c->written += (size_t)w;
      uint64_t mark[2] = {c->written, fz_now_us()};
      fz_buf_put(&c->times, mark, sizeof mark);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      c->dead = true; /* EPIPE, ECONNRESET: the slave closed */
      break;
    }
    if (fz_now_us() > deadline) fz_fail("slave_not_reading", "the slave took nothing for 2 s");
    struct pollfd p = {c->fd, POLLOUT | POLLIN, 0};
    poll(&p, 1, 10);
    pull(c);
  }
  pull(c);
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
  if (us) fz_sleep_us(us);
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
      uint64_t start = fz_now_us(), want = (fz_u8(r) % 20) * 1000u;
      uint64_t until = start + (want < left ? want : left);
      while (c->in.n == had && !c->eof && fz_now_us() < until)
        wait_in(c, 1);
      pl.slept += fz_now_us() - start;
      break;
    }
    }
    if (!hold) flush(c, &pl);
  }
  flush(c, &pl);
}

/* ---- after the script: the slave must still take a master ---- */

/* The first frame from fd within ms (NULL if none). */
static Interaction__V1__Frame *read_frame(conn *c, int ms) {
  uint64_t until = fz_now_us() + (uint64_t)ms * 1000u;
  uint32_t len;
  while (fz_split_next(c->in.p, c->in.n, 0, FZ_MAX_FRAME, &len) != FZ_SPLIT_READY && !c->eof &&
         fz_now_us() < until)
    wait_in(c, 5);
  if (fz_split_next(c->in.p, c->in.n, 0, FZ_MAX_FRAME, &len) != FZ_SPLIT_READY) return NULL;
  return interaction__v1__frame__unpack(NULL, len, c->in.p + 4);
}

static void probe(void) {
  uint64_t until = fz_now_us() + (uint64_t)PROBE_WAIT_MS * 1000u;
  for (int tries = 0;; tries++) {
    conn c = {.fd = fz_dial(port)};
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
      uint64_t end = fz_now_us() + (uint64_t)EOF_WAIT_MS * 1000u;
      while (!c.eof && fz_now_us() < end)
        wait_in(&c, 10);
      if (!c.eof) fz_fail("slave_keeps_probe", "the slave did not close after a Disconnect");
    }
    close(c.fd);
    fz_buf_free(&c.in);
    fz_buf_free(&c.stream);
    fz_buf_free(&c.times);
    if (welcome) return;
    /* 501 while the slave notices the close; a hello timeout under load. */
    if ((code != IA_ALREADY_CONNECTED && code != IA_TIMEOUT) || fz_now_us() > until)
      fz_fail("slave_wedged", "a fresh Hello got %d after %d tries instead of a Welcome", code, tries + 1);
    fz_sleep_us(1000);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input(data, size);
  fz_reader r = {data, size};
  conn c = {.fd = fz_dial(port), .hello_timeout_ms = HELLO_TIMEOUT_MS};
  c.t0 = fz_now_us();
  play(&c, &r);
  /* Our EOF: the slave must finish what it does, send it, and close. */
  shutdown(c.fd, SHUT_WR);
  uint64_t until = fz_now_us() + (uint64_t)EOF_WAIT_MS * 1000u;
  while (!c.eof && fz_now_us() < until)
    wait_in(&c, 10);
  if (!c.eof) fz_fail("slave_keeps_connection", "the slave did not close %d ms after our EOF", EOF_WAIT_MS);
  if (trace)
    fprintf(stderr, "fuzz_slave: -> %zu of %zu bytes written in %llu us\n", c.written, c.stream.n,
            (unsigned long long)(fz_now_us() - c.t0));
  close(c.fd);
  fzs_check(&c, trace);
  fz_buf_free(&c.in);
  fz_buf_free(&c.stream);
  fz_buf_free(&c.times);
  probe();
  return 0;
}
