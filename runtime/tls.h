/*
 * TLS on a connection (OpenSSL, TLS 1.3 only), driven the way the plain
 * path drives its socket: whichever thread holds the read side reads,
 * writers are serialised by the connection's write stream, and nobody
 * blocks while holding anything.
 *
 *  - Reading: the reader recv()s ciphertext itself, exactly as the plain
 *    path recv()s plaintext (blocking with the socket's tick, or
 *    MSG_DONTWAIT), into a buffer of the connection's; then, under the
 *    connection's TLS lock, OpenSSL decrypts all of it into the input
 *    buffer, which grows as needed, so nothing decrypted is ever left
 *    inside OpenSSL where no socket event would come for it.
 *  - Writing: under the same lock, SSL_write() of the frame's bytes
 *    (small pieces gathered into one record), straight to the socket with
 *    MSG_DONTWAIT: "the socket is full" is what it is for a plain send, and
 *    the write stream queues and retries the same bytes, as OpenSSL needs.
 *  - The handshake, and the reads of a connect's first frames, read the
 *    socket one record at a time, so that they never take bytes that
 *    belong to the frames after them.
 *
 * OpenSSL forbids two threads in one SSL object at once: the lock is held
 * only around OpenSSL's calls, which never wait (the socket calls under it
 * are MSG_DONTWAIT). libssl is loaded only by a process that uses TLS
 * (runtime/ossl.h).
 *
 * Never: wait for a socket with the lock held, log a key, or accept a peer
 * whose certificate did not verify.
 */
#ifndef IA__TLS_H
#define IA__TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "interaction/status.h"
#include "runtime/wire.h"

typedef struct ia__tls_ctx ia__tls_ctx;
typedef struct ia__tls ia__tls;

/* A slave's context: its certificate chain and key (PEM, both required);
 * with `ca`, masters must present a certificate that CA signed. */
IA_MUST_CHECK ia_code ia__tls_ctx_server(const char *cert, const char *key, const char *ca, ia__tls_ctx **out,
                                         ia_error *err);
/* A master's: the CA its slaves' certificates are verified against
 * (required), and its own certificate and key for mutual TLS (both or
 * neither). */
IA_MUST_CHECK ia_code ia__tls_ctx_client(const char *ca, const char *cert, const char *key, ia__tls_ctx **out,
                                         ia_error *err);
void ia__tls_ctx_free(ia__tls_ctx *ctx);

/* TLS on the connected socket fd. A client's peer must carry `name` (a DNS
 * name or an IP address) in its certificate. NULL: no memory. */
ia__tls *ia__tls_new(ia__tls_ctx *ctx, int fd, const char *name);
void ia__tls_free(ia__tls *t);

typedef enum ia__tls_step {
  IA__TLS_UP = 0,     /* the handshake is done */
  IA__TLS_WANT_READ,  /* call again once the socket is readable */
  IA__TLS_WANT_WRITE, /* ... writable */
  IA__TLS_PLAIN,      /* server: the peer sent something that is not TLS */
  IA__TLS_FAILED      /* ia__tls_error() says why */
} ia__tls_step;

/* One step of the handshake; never blocks. */
ia__tls_step ia__tls_handshake(ia__tls *t);

/* Like recv() into b's free room, with `flags` for the socket: decrypted
 * bytes are appended to b (grown as needed). Returns the bytes appended,
 * 0 at the end of the stream, -1 with errno: EAGAIN when nothing came,
 * EPROTO when TLS failed (ia__tls_error). `one_record`: read the socket one
 * TLS record at a time and return after the first that holds data (the
 * reads of a connect's first frames). *full (may be NULL) as for
 * ia__inbuf_recv. Only the read side's holder calls it. */
ssize_t ia__tls_recv(ia__tls *t, ia__inbuf *b, int flags, bool one_record, bool *full);
/* Like a sendmsg() with MSG_DONTWAIT: the bytes of iov taken (0 when the
 * socket is full: call again with the same bytes first), -1 with errno. */
ssize_t ia__tls_send(ia__tls *t, const struct iovec *iov, int n);

/* Why the handshake or the stream failed, as a status a connect reports:
 * IA_TOKEN_INVALID when a certificate was not accepted (by either side),
 * IA_TOKEN_NOT_FOUND when the peer asked for a certificate this end does
 * not have, IA_PROTOCOL_ERROR otherwise (the peer does not speak TLS).
 * `peer` names the other end in the message. Returns the code. */
ia_code ia__tls_error(const ia__tls *t, const char *peer, ia_error *err);
/* OpenSSL's reason for the failure, for log lines ("" if none). */
const char *ia__tls_reason(const ia__tls *t);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", once up, for log lines. */
void ia__tls_describe(const ia__tls *t, char *out, size_t cap);

#endif
