/*
 * Shared harness code for the libFuzzer targets in tests/fuzz: reading a
 * fuzzer's input as typed values, growing byte buffers, splitting a stream
 * into length-prefixed frames, spotting encodings on which protobuf-c and
 * the library's hand-written parsers are known to differ, and reporting
 * findings (fatal invariants, or divergences that are only counted).
 *
 * Nothing here may call into the library's internals: the targets do that,
 * each in one place, so that a moved internal header touches one file per
 * target. It must never write files, or connect anywhere but to the
 * target's own slave on 127.0.0.1.
 */
#ifndef IA_FUZZ_COMMON_H
#define IA_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "interaction/interaction.h"

/* ---- reading the input ---- */

/* The part of the fuzzer's input not consumed yet. Reads past the end give
 * zeros (and empty byte strings), so that every input is a valid script. */
typedef struct fz_reader {
  const uint8_t *p;
  size_t n;
} fz_reader;

uint8_t fz_u8(fz_reader *r);
uint16_t fz_u16(fz_reader *r);
uint32_t fz_u32(fz_reader *r);
uint64_t fz_u64(fz_reader *r);
/* Up to `want` bytes in place (fewer at the end); *len says how many. */
const uint8_t *fz_bytes(fz_reader *r, size_t want, size_t *len);

/* ---- byte buffers ---- */

typedef struct fz_buf {
  uint8_t *p;
  size_t n, cap;
} fz_buf;

void fz_buf_put(fz_buf *b, const void *p, size_t n);
void fz_buf_byte(fz_buf *b, uint8_t v);
void fz_buf_varint(fz_buf *b, uint64_t v);
void fz_buf_be32(fz_buf *b, uint32_t v);
/* The 4-byte big-endian length of DESIGN.md and the packed message. */
void fz_buf_frame(fz_buf *b, const ProtobufCMessage *frame);
/* A framed valid Hello (version 1, `channel`, master "fuzz") with frame id
 * `id`; with a fixed 32-byte auth nonce when `nonce`. */
void fz_buf_hello(fz_buf *b, uint64_t id, uint32_t channel, bool nonce);
void fz_buf_free(fz_buf *b);

/* A write size from a schedule entry's low 6 bits: 1..48 bytes, or 256..4096
 * in steps of 256 (the targets that cut a stream into chosen pieces). */
size_t fz_chunk_size(uint8_t e);

/* ---- time ---- */

uint64_t fz_now_us(void); /* CLOCK_MONOTONIC */
void fz_sleep_us(uint64_t us);

/* ---- the reference framing ---- */

typedef enum fz_split {
  FZ_SPLIT_READY,    /* a whole frame at `at` (header included), body length `len` */
  FZ_SPLIT_PARTIAL,  /* the rest is the beginning of a frame */
  FZ_SPLIT_OVERSIZE, /* the header at `at` declares more than max_frame */
  FZ_SPLIT_END,      /* nothing left */
} fz_split;

/* The simplest reading of DESIGN.md's framing: the frame that starts at
 * stream[at], for a receiver whose limit is max_frame. */
fz_split fz_split_next(const uint8_t *stream, size_t n, size_t at, uint32_t max_frame, uint32_t *len);

/* ---- protobuf-c's reading of encodings ---- */

/* A varint of up to ten bytes at *pp (before end), *pp moved past it;
 * false if it is cut short or longer. The harness's own reader, so that
 * walking an input never depends on the library's. */
bool fz_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v);

/* What fz_pbc_quirks() saw in an encoding, walked as protobuf-c 1.4 walks
 * it (every field at each level, known submessage fields recursively). */
#define FZ_Q_LONG_TAG 1u  /* a tag of 6-10 bytes: protobuf-c takes at most 5 */
#define FZ_Q_LONG_LEN 2u  /* a length prefix of 6-10 bytes: protobuf-c takes at most 5 */
#define FZ_Q_TAG0 4u      /* field number 0 in a multi-byte tag: protobuf-c skips it as unknown */
#define FZ_Q_MALFORMED 8u /* truncated or unterminated: everybody rejects it */
/* d NULL: the top level only. */
unsigned fz_pbc_quirks(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n);
/* How many times field `no` occurs at the top level of an encoding. */
unsigned fz_field_count(const uint8_t *p, size_t n, uint32_t no);

/* ---- findings ---- */

/* The input being run: what findings print. Each target calls it first. */
void fz_input(const uint8_t *data, size_t size);

/*
 * A violated invariant: prints "fuzz: INVARIANT <kind>: <message>" and
 * aborts, so that libFuzzer keeps the input. A kind listed in the
 * environment variable IA_FUZZ_ALLOW (comma-separated; "all" for every
 * kind) is counted instead, its first input printed in hex with the time
 * and execution it came at, so that a long run can go on past a known
 * defect. fz_summary() lists the counts.
 */
void fz_fail(const char *kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A divergence that is understood and not a defect of its own: counted, its
 * first input printed as above, never fatal. */
void fz_note(const char *kind);
/* Prints "fuzz-summary: kind=count ..." for every kind seen; called at exit. */
void fz_summary(void);

/* ---- connections ---- */

/* A non-blocking TCP connection to 127.0.0.1:port (TCP_NODELAY). The
 * connect is waited for with poll(), at most 2 s, because a blocking
 * connect() fails with EINTR when libFuzzer's timer signal (-timeout) comes
 * in. A failure is the finding slave_not_listening. */
int fz_dial(uint16_t port);

/* Writes p[0..n) to fd (non-blocking), reading what comes back into `in`
 * meanwhile; false once the peer has closed. Taking nothing for 2 s is the
 * finding slave_not_reading. */
bool fz_send_all(int fd, const uint8_t *p, size_t n, fz_buf *in);
/* Everything the peer sends until it closes: within wait_ms (else the
 * finding slave_keeps_open) and at most `max` bytes (else slave_flood). */
void fz_read_to_eof(int fd, fz_buf *in, unsigned wait_ms, size_t max);

/*
 * The probe after an input: `m` connects to the slave on 127.0.0.1:port,
 * calls `method` with the payload "x", wants a reply of reply_len bytes,
 * and disconnects (the slave frees its seat before it answers, so the next
 * connection is never ALREADY_CONNECTED). ALREADY_CONNECTED (a seat freed
 * a moment late) and TIMEOUT (a hello timeout under load) are retried for
 * up to 3 s; any other failure is the finding `kind`.
 */
void fz_probe(ia_master *m, uint16_t port, const char *method, size_t reply_len, const char *kind);

/* Log level and the at-exit summary; call once from LLVMFuzzerInitialize. */
void fz_init(void);

/* Writes `text` into a fresh file TAG-XXXXXX in $TMPDIR (else /tmp), its
 * path into path; exits the fuzzer if it cannot (nothing could be fuzzed). */
void fz_temp_file(char *path, size_t cap, const char *tag, const char *text);

#endif
