/*
 * The raw-TCP floor's wire: a 4-byte big-endian length L, then L bytes whose
 * first is a kind and the rest a hand-packed payload. Shared by the floor's
 * slave (floor_slave.c) and master (run_floor.c). Blocking sockets only,
 * plain or under a TLS session (floor_tls.h), through one floor_link.
 *
 * Never: call OpenSSL here. The plain floor slave links this file without
 * libssl, so that its footprint stays that of plain TCP.
 */
#ifndef BENCH_FLOOR_H
#define BENCH_FLOOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum floor_kind {
  FLOOR_SUM = 1,     /* a, b (8 bytes BE each) -> sum (8 bytes BE) */
  FLOOR_ECHO = 2,    /* data -> the same frame back, byte for byte */
  FLOOR_STATS = 3,   /* -> user_us, sys_us, maxrss_kb (8 bytes BE each) */
  FLOOR_HOLD = 4,    /* sets the hold flag -> ack */
  FLOOR_RELEASE = 5, /* clears it -> ack */
  FLOOR_BUSY = 6,    /* the answer to SUM while the flag is set */
  FLOOR_HELLO = 7,   /* -> ack: the floor's handshake */
};

/* The largest frame either end accepts: a 16 MiB blob with room to spare. */
#define FLOOR_MAX_FRAME (64u << 20)

/* How a TLS session moves bytes (floor_tls.c). Each call is one blocking
 * SSL_read/SSL_write: > 0 bytes moved, 0 at the peer's close, -1 on error
 * (errno set). */
typedef struct floor_io {
  long (*recv)(void *session, void *buf, size_t len);
  long (*send)(void *session, const void *buf, size_t len);
  void (*end)(void *session); /* close_notify, then frees the session */
} floor_io;

/* One end of a floor connection: the blocking socket, and the TLS session
 * on it when the workload runs over TLS. */
typedef struct floor_link {
  int fd;             /* -1: not open */
  const floor_io *io; /* NULL: plain TCP, recv()/send() on fd */
  void *session;      /* io's state (an SSL *) */
} floor_link;

/* Ends the TLS session if there is one and closes the socket; the link is
 * then closed (fd -1). Closing a closed link does nothing. */
void floor_link_close(floor_link *l);

/* A receive buffer. A frame is read into it whole, header included, so an
 * echo can be written back from the same bytes without a copy. */
typedef struct floor_reader {
  uint8_t *buf;
  size_t cap;  /* bytes allocated */
  size_t have; /* bytes received */
  size_t used; /* bytes of the frame returned last, dropped at the next read */
} floor_reader;

/* Allocates `cap` bytes (grown on demand up to 4 + FLOOR_MAX_FRAME). */
int floor_reader_init(floor_reader *r, size_t cap);
void floor_reader_free(floor_reader *r);

/* Reads one whole frame. On success returns 0 and sets *frame to its first
 * byte (the length prefix) and *len to L; both stay valid until the next
 * call. Returns -1 on EOF, error or a frame over FLOOR_MAX_FRAME. */
int floor_read_frame(floor_link *l, floor_reader *r, uint8_t **frame, uint32_t *len);
/* True if a whole frame after the one returned last is already buffered
 * (floor_read_frame then returns it without a recv). Bytes a TLS session
 * holds decrypted but not yet handed over are not counted. */
bool floor_frame_buffered(const floor_reader *r);

/* Sends everything; -1 on error. Over TLS each iovec entry is written in
 * turn (SSL_write has no gather form; copying a 16 MiB blob behind its
 * header would cost more than the header's own record). */
int floor_write_all(floor_link *l, const void *buf, size_t len);
int floor_writev_all(floor_link *l, struct iovec *iov, int iovcnt);

static inline void floor_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

static inline uint32_t floor_get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void floor_put64(uint8_t *p, uint64_t v) {
  floor_put32(p, (uint32_t)(v >> 32));
  floor_put32(p + 4, (uint32_t)v);
}

static inline uint64_t floor_get64(const uint8_t *p) {
  return (uint64_t)floor_get32(p) << 32 | floor_get32(p + 4);
}

#endif
