/*
 * fuzz_inbuf: the framing input buffer of runtime/wire.h fed through a
 * socketpair in chunks of fuzzer-chosen sizes.
 *
 * Input: byte 0 picks max_frame from a table; byte 1 is the number k
 * (0..31) of schedule entries that follow, one byte each (cycled); the rest
 * is the byte stream. A schedule entry's low 6 bits give a chunk size, bit
 * 6 says "write the next chunk too before reading", bit 7 says "hand the
 * next ready frame over with ia__inbuf_split() instead of consuming it" (as
 * the slave does when its loop takes the socket over from a long handler).
 *
 * Invariants: the frames come out exactly as fz_split_next() (the simplest
 * reading of the framing) sees them, in order, with their bytes; a declared
 * length over max_frame is reported as IA__NEXT_OVERSIZE when its header
 * is complete, and the buffer never grows beyond what a frame within
 * max_frame needs; what is left at EOF is the unfinished tail.
 *
 * Internal functions called: ia__inbuf_next, ia__inbuf_consume,
 * ia__inbuf_recv, ia__inbuf_split, ia__inbuf_free (runtime/wire.h).
 * It must never block: both ends of the socketpair are non-blocking and
 * every loop is bounded by the input's length.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "runtime/wire.h"

/* wire.c reads at least this much at a time (its INBUF_MIN): the buffer
 * may always be this large, whatever max_frame says. */
#define INBUF_MIN_BOUND (64u * 1024u)

static const uint32_t max_frames[] = {0,     1,     5,     64,     1000,     4096,
                                      65531, 65532, 65536, 100000, 1u << 20, IA__MAX_FRAME_DEFAULT};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_init();
  return 0;
}

typedef struct run {
  const uint8_t *stream;
  size_t n;        /* stream bytes */
  size_t sent;     /* written into the socketpair so far */
  size_t received; /* read out of it by ia__inbuf_recv() */
  size_t at;       /* where the reference splitter stands */
  uint32_t max_frame;
  ia__inbuf b;
  uint8_t *held[64]; /* buffers handed over with ia__inbuf_split, freed at the end */
  size_t n_held;
  bool oversize; /* reported: the stream ends there for a receiver */
} run;

/* The buffer's storage never exceeds what a frame within max_frame needs. */
static void check_cap(const run *r) {
  size_t bound = (size_t)IA__FRAME_HEADER + r->max_frame;
  if (bound < INBUF_MIN_BOUND) bound = INBUF_MIN_BOUND;
  if (r->b.cap > bound) fz_fail("inbuf_overallocates", "cap %zu for max_frame %u", r->b.cap, r->max_frame);
  if (r->b.start > r->b.end || r->b.end > r->b.cap)
    fz_fail("inbuf_state", "start %zu end %zu cap %zu", r->b.start, r->b.end, r->b.cap);
}

/* Takes every frame the buffer has ready, checking each against the
 * reference; `split` hands the first one over instead of consuming it. */
static void drain(run *r, bool split) {
  for (size_t guard = 0; guard <= r->n + 1 && !r->oversize; guard++) {
    const uint8_t *body = NULL;
    uint32_t len = 0, want = 0;
    ia__next got = ia__inbuf_next(&r->b, r->max_frame, &body, &len);
    /* The reference, limited to the bytes the buffer has seen. */
    fz_split ref = fz_split_next(r->stream, r->received, r->at, r->max_frame, &want);
    if (got == IA__NEXT_MORE) {
      if (ref == FZ_SPLIT_READY || ref == FZ_SPLIT_OVERSIZE)
        fz_fail("inbuf_missed", "needs more at %zu, the reference sees a %s", r->at,
                ref == FZ_SPLIT_READY ? "frame" : "too large header");
      return;
    }
    if (got == IA__NEXT_OVERSIZE) {
      if (ref != FZ_SPLIT_OVERSIZE)
        fz_fail("inbuf_false_oversize", "oversize at %zu, the reference disagrees", r->at);
      r->oversize = true;
      return;
    }
    if (got != IA__NEXT_READY || ref != FZ_SPLIT_READY || len != want)
      fz_fail("inbuf_frame_differs", "at %zu: %d/%u, the reference %d/%u", r->at, (int)got, len, (int)ref,
              want);
    if (memcmp(body, r->stream + r->at + IA__FRAME_HEADER, len) != 0)
      fz_fail("inbuf_bytes_differ", "frame at %zu", r->at);
    size_t flen = IA__FRAME_HEADER + (size_t)len;
    r->at += flen;
    if (split && r->n_held < sizeof r->held / sizeof r->held[0]) {
      /* The slave's take-over: the frame stays in the old storage, the rest
       * moves to a new buffer that reading goes on with. */
      ia__inbuf rest;
      if (!ia__inbuf_split(&r->b, flen, &rest)) fz_fail("inbuf_split", "ia__inbuf_split failed");
      if (memcmp(r->b.buf + r->b.start + IA__FRAME_HEADER, r->stream + r->at - len, len) != 0)
        fz_fail("inbuf_split", "the held frame changed");
      r->held[r->n_held++] = r->b.buf;
      r->b = rest;
      split = false;
    } else {
      ia__inbuf_consume(&r->b, flen);
    }
    check_cap(r);
  }
}

/* Reads everything the socket has (non-blocking), then takes the frames. */
static void read_all(run *r, int fd, bool split) {
  for (size_t guard = 0; guard <= r->n + 2 && !r->oversize; guard++) {
    size_t room = r->b.cap - r->b.end;
    bool full = false;
    ssize_t got = ia__inbuf_recv(&r->b, fd, NULL, r->max_frame, MSG_DONTWAIT, &full);
    check_cap(r);
    /* A full read is one that took all the room there was (the buffer may
     * have grown first); an edge-triggered reader reads again after it. */
    if (full && (got <= 0 || (size_t)got < room))
      fz_fail("inbuf_recv", "a read of %zd bytes called full", got);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (got < 0) fz_fail("inbuf_recv", "recv failed: %s", strerror(errno));
    if (got == 0) break; /* EOF: the writer is closed */
    r->received += (size_t)got;
    if (r->received > r->sent) fz_fail("inbuf_recv", "read more than was written");
    drain(r, split);
    split = false;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input(data, size);
  fz_reader in = {data, size};
  run r = {0};
  r.max_frame = max_frames[fz_u8(&in) % (sizeof max_frames / sizeof max_frames[0])];
  size_t k = fz_u8(&in) % 32;
  size_t n_sched;
  const uint8_t *sched = fz_bytes(&in, k, &n_sched);
  r.stream = in.p;
  r.n = in.n;

  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) abort();
  fcntl(sv[0], F_SETFL, O_NONBLOCK);
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  size_t turn = 0;
  /* Each turn writes or reads something, except when the socket is full
   * and reading makes room: a few turns a byte at most. */
  for (size_t guard = 0; r.sent < r.n && !r.oversize && guard < 4 * r.n + 16; guard++) {
    uint8_t e = n_sched ? sched[turn++ % n_sched] : 0x3f;
    size_t want = fz_chunk_size(e);
    if (want > r.n - r.sent) want = r.n - r.sent;
    ssize_t w = write(sv[1], r.stream + r.sent, want);
    if (w < 0 && errno != EAGAIN) abort();
    if (w > 0) r.sent += (size_t)w;
    /* Bit 6: coalesce with the next chunk, unless the socket is full. */
    if ((e & 0x40) && w == (ssize_t)want && r.sent < r.n) continue;
    read_all(&r, sv[0], (e & 0x80) != 0);
  }
  close(sv[1]);
  read_all(&r, sv[0], false);
  close(sv[0]);

  if (!r.oversize) {
    /* At EOF the buffer holds exactly the unfinished tail. */
    uint32_t len;
    fz_split ref = fz_split_next(r.stream, r.n, r.at, r.max_frame, &len);
    if (ref == FZ_SPLIT_READY || ref == FZ_SPLIT_OVERSIZE) fz_fail("inbuf_missed", "a frame is left at EOF");
    if (r.b.end - r.b.start != r.n - r.at)
      fz_fail("inbuf_tail", "%zu bytes left, the reference %zu", r.b.end - r.b.start, r.n - r.at);
    if (r.n > r.at && memcmp(r.b.buf + r.b.start, r.stream + r.at, r.n - r.at) != 0)
      fz_fail("inbuf_tail", "the tail's bytes differ");
  }
  ia__inbuf_free(&r.b);
  for (size_t i = 0; i < r.n_held; i++)
    free(r.held[i]);
  return 0;
}
