/*
 * The write side of one connection. Frames handed to it from any thread go
 * out whole and in the order they were handed over, and a thread that must
 * not block (an I/O loop, ia_task_start) never does:
 *
 *  - ia__ws_send_nb() never blocks. What the socket does not take at once is
 *    copied into the stream's queue; the caller then has its loop watch the
 *    socket for POLLOUT and call ia__ws_flush() (the IA__WS_FLUSH result).
 *  - ia__ws_send() may wait for the socket until a deadline, on a thread
 *    that may block (a caller's, a slave's worker). While it waits it owns
 *    the stream without holding the lock: non-blocking senders queue behind
 *    it instead of waiting, and it writes what they queued when it is done.
 *
 * The common case -- an idle stream and a socket with room -- is one
 * sendmsg() under the lock, as a plain send would be. The queue is bounded:
 * a peer that stops reading makes the stream fail (IA__WS_FAILED) once
 * `limit` bytes wait, instead of growing without end.
 *
 * Never: hold the lock while waiting for the socket, or call anything
 * outside this file with it held. The owner of the connection keeps the
 * lock order: its own mutex may be held around ia__ws_send_nb() and
 * ia__ws_flush(), never around ia__ws_send().
 */
#ifndef IA__WSTREAM_H
#define IA__WSTREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/wire.h"

typedef struct ia__ws {
  pthread_mutex_t mu;
  bool owned; /* a blocking sender writes outside the lock */
  int error;  /* errno of the first failure (sticky); 0 while healthy */
  uint8_t *q; /* queued bytes, q[head..tail) */
  size_t head, tail, cap;
  _Atomic size_t queued;    /* tail - head, readable without the lock */
  size_t limit;             /* no more is appended once this much waits */
  _Atomic uint64_t drained; /* writes of bytes that had to wait for the peer (ia__ws_drained) */
  bool sealed;              /* the last frame is in (ia__ws_send_last): later ones are dropped */
  struct ia__tls *tls;      /* set once before the stream's first TLS frame: its bytes go through it */
  pthread_cond_t idle;      /* signalled when the owner lets go (after what every send reads) */
} ia__ws;

typedef enum ia__ws_rc {
  IA__WS_DONE = 0,    /* out, or queued behind an owner who writes it */
  IA__WS_FLUSH = 1,   /* bytes wait in the queue: have the loop flush on POLLOUT */
  IA__WS_FAILED = -1, /* the stream is broken (ia__ws_error): close the connection */
  IA__WS_TIMEOUT = -2 /* ia__ws_send: the deadline passed; the rest is queued as for FLUSH */
} ia__ws_rc;

void ia__ws_init(ia__ws *ws, size_t limit);
void ia__ws_destroy(ia__ws *ws);

/* Hands a whole frame to the stream without blocking. */
IA_MUST_CHECK ia__ws_rc ia__ws_send_nb(ia__ws *ws, int fd, const ia__wframe *w);
/* Sends a whole frame, waiting for the socket until deadline_ms (UINT64_MAX:
 * no limit) or, when deadline_ms is 0, for at most bound_ms from when it
 * first has to wait (the common case then reads no clock). May return
 * IA__WS_FLUSH for bytes others queued meanwhile. */
IA_MUST_CHECK ia__ws_rc ia__ws_send(ia__ws *ws, int fd, const ia__wframe *w, uint64_t deadline_ms,
                                    uint32_t bound_ms);
/* Sends the stream's last frame (a Goodbye): without blocking when `nb`,
 * else as ia__ws_send with deadline_ms and bound_ms. Every frame handed to
 * the stream after it is dropped (IA__WS_DONE): nothing follows a Goodbye,
 * whichever thread would send it. */
IA_MUST_CHECK ia__ws_rc ia__ws_send_last(ia__ws *ws, int fd, const ia__wframe *w, bool nb,
                                         uint64_t deadline_ms, uint32_t bound_ms);
/* Writes what is queued without blocking: IA__WS_DONE once the queue is
 * empty (or an owner will write it), IA__WS_FLUSH while bytes wait. */
IA_MUST_CHECK ia__ws_rc ia__ws_flush(ia__ws *ws, int fd);
/* The errno of the failure, or 0. */
int ia__ws_error(ia__ws *ws);
/* Bytes waiting in the queue now, read without the lock: a thread that
 * queues bytes updates it before it lets go of the lock, so a reader that
 * then takes a lock the queuing thread takes next sees them. */
size_t ia__ws_queued(const ia__ws *ws);
/* How many times bytes that had waited for the socket went out: the peer's
 * end took what it had not taken before, a sign of life while a frame of
 * ours is stuck behind its reading (runtime/beat.h). Any thread. */
uint64_t ia__ws_drained(const ia__ws *ws);

#endif
