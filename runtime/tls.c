/*
 * TLS on a connection: see tls.h. This file owns the SSL objects, the BIO
 * that joins them to the socket, and the ciphertext the reader received
 * but OpenSSL has not yet taken.
 *
 * Never: call OpenSSL on a connection without its lock, or wait for the
 * socket with it held.
 */
#include "runtime/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/ossl.h"
#include "runtime/sock.h"

#define RECORD 16384u          /* the largest plaintext of one record */
#define RX_MIN (64u << 10)     /* ciphertext taken from the socket at once */
#define RX_MAX (1u << 20)      /* ... while a large frame comes in */
#define TLS_HANDSHAKE_BYTE 22u /* the first byte of a TLS handshake record */

struct ia__tls_ctx {
  SSL_CTX *ctx;
  bool server;
};

typedef enum rd_state { RD_OK = 0, RD_EOF, RD_FAILED } rd_state;

struct ia__tls {
  const ia__ossl *o;
  const ia__ossl_ssl *s;
  SSL *ssl;
  int fd;
  bool server;
  bool began; /* server: the peer's first byte was a TLS record's */
  pthread_mutex_t mu;
  /* The reader's: ciphertext received, rx[rx_off..rx_len) not yet taken. */
  uint8_t *rx;
  size_t rx_off, rx_len, rx_cap;
  bool direct;      /* (mu) the BIO reads the socket itself, as OpenSSL asks */
  bool peer_closed; /* (mu) the BIO saw the socket's end */
  int sys_errno;    /* (mu) a socket call's failure */
  rd_state rd;      /* the reader's */
  /* The failure, once there is one (sticky). */
  unsigned long ssl_err;
  long verify;
  char reason[160];
};

/* ---- the BIO: the socket, or the reader's ciphertext ---- */

static BIO_METHOD *bio_method;
static const ia__ossl *bio_o; /* libcrypto, for the callbacks: set before bio_method */
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *bio, char *out, int len) {
  const ia__ossl *o = bio_o;
  ia__tls *t = o->BIO_get_data(bio);
  o->BIO_clear_flags(bio, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
  if (len <= 0) return 0;
  size_t have = t->rx_len - t->rx_off;
  if (have > 0) {
    size_t n = have < (size_t)len ? have : (size_t)len;
    memcpy(out, t->rx + t->rx_off, n);
    t->rx_off += n;
    return (int)n;
  }
  if (t->direct) {
    ssize_t r;
    do
      r = ia__sys_recv(t->fd, out, (size_t)len, MSG_DONTWAIT);
    while (r < 0 && errno == EINTR);
    if (r > 0) return (int)r;
    if (r == 0) {
      t->peer_closed = true;
      return 0;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      t->sys_errno = errno;
      return -1;
    }
  }
  o->BIO_set_flags(bio, BIO_FLAGS_READ | BIO_FLAGS_SHOULD_RETRY);
  return -1;
}

static int bio_write(BIO *bio, const char *in, int len) {
  const ia__ossl *o = bio_o;
  ia__tls *t = o->BIO_get_data(bio);
  o->BIO_clear_flags(bio, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
  ssize_t r;
  do
    r = ia__sys_send(t->fd, in, (size_t)len, MSG_DONTWAIT | MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r >= 0) return (int)r;
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    o->BIO_set_flags(bio, BIO_FLAGS_WRITE | BIO_FLAGS_SHOULD_RETRY);
  } else {
    t->sys_errno = errno;
  }
  return -1;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr) {
  (void)bio, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void make_bio_method(void) {
  const ia__ossl *o = bio_o = ia__ossl_get(NULL);
  BIO_METHOD *m = o->BIO_meth_new(o->BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "interaction");
  if (m && o->BIO_meth_set_read(m, bio_read) && o->BIO_meth_set_write(m, bio_write) &&
      o->BIO_meth_set_ctrl(m, bio_ctrl))
    bio_method = m;
}

/* ---- contexts ---- */

/* The reason OpenSSL queued last, into buf; clears the queue. */
static void ossl_reason(const ia__ossl *o, char *buf, size_t cap) {
  unsigned long e = o->ERR_peek_error();
  const char *r = e ? o->ERR_reason_error_string(e) : NULL;
  snprintf(buf, cap, "%s", r ? r : "unknown reason");
  o->ERR_clear_error();
}

static ia_code ctx_fail(const ia__ossl *o, SSL_CTX *ctx, const ia__ossl_ssl *s, ia_error *err,
                        const char *what, const char *path) {
  char why[160];
  ossl_reason(o, why, sizeof why);
  s->SSL_CTX_free(ctx);
  return ia__error_set(err, IA_INVALID_ARGUMENT, "TLS: %s %s: %s", what, path, why);
}

/* OpenSSL says only "no such file" as "unknown reason", or "system lib". */
static ia_code unreadable(const char *what, const char *path, ia_error *err) {
  if (!path || access(path, R_OK) == 0) return IA_OK;
  return ia__error_set(err, IA_INVALID_ARGUMENT, "TLS: cannot read the %s %s: %s", what, path,
                       strerror(errno));
}

static ia_code ctx_new(bool server, const char *cert, const char *key, const char *ca, ia__tls_ctx **out,
                       ia_error *err) {
  *out = NULL;
  ia_code rc = unreadable("certificate", cert, err);
  if (rc == IA_OK) rc = unreadable("key", key, err);
  if (rc == IA_OK) rc = unreadable("CA file", ca, err);
  if (rc != IA_OK) return rc;
  const ia__ossl_ssl *s = ia__ossl_ssl_get(err);
  if (!s) return IA_INVALID_ARGUMENT;
  const ia__ossl *o = ia__ossl_get(err);
  pthread_once(&bio_once, make_bio_method);
  if (!bio_method) return ia__error_set(err, IA_NO_MEMORY, "TLS: no memory for the socket BIO");
  o->ERR_clear_error();
  SSL_CTX *ctx = s->SSL_CTX_new(server ? s->TLS_server_method() : s->TLS_client_method());
  if (!ctx) return ia__error_set(err, IA_NO_MEMORY, "TLS: no memory for a context");
  s->SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION, NULL);
  /* Partial writes, retried from wherever the write stream keeps the bytes. */
  s->SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
                  NULL);
  /* A close without close_notify is the end of the stream: the Goodbye
   * frame, not TLS, says whether it was orderly. */
  s->SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
  if (cert && s->SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
    return ctx_fail(o, ctx, s, err, "cannot use the certificate", cert);
  if (key && s->SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
    return ctx_fail(o, ctx, s, err, "cannot use the key", key);
  if (cert && s->SSL_CTX_check_private_key(ctx) != 1)
    return ctx_fail(o, ctx, s, err, "the key does not match the certificate", cert);
  if (ca && s->SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
    return ctx_fail(o, ctx, s, err, "cannot load the CA file", ca);
  if (server) {
    s->SSL_CTX_set_num_tickets(ctx, 0); /* no resumption: nothing follows the handshake unasked */
    if (ca) s->SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  } else {
    s->SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  }
  ia__tls_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    s->SSL_CTX_free(ctx);
    return ia__error_set(err, IA_NO_MEMORY, "TLS: no memory for a context");
  }
  c->ctx = ctx;
  c->server = server;
  *out = c;
  return IA_OK;
}

ia_code ia__tls_ctx_server(const char *cert, const char *key, const char *ca, ia__tls_ctx **out,
                           ia_error *err) {
  if (!cert || !key)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "TLS: a slave needs both tls_cert and tls_key");
  return ctx_new(true, cert, key, ca, out, err);
}

ia_code ia__tls_ctx_client(const char *ca, const char *cert, const char *key, ia__tls_ctx **out,
                           ia_error *err) {
  if (!ca) return ia__error_set(err, IA_INVALID_ARGUMENT, "TLS: a master needs tls_ca to verify its slaves");
  if (!cert != !key)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "TLS: a master's tls_cert and tls_key go together");
  return ctx_new(false, cert, key, ca, out, err);
}

void ia__tls_ctx_free(ia__tls_ctx *ctx) {
  if (!ctx) return;
  ia__ossl_ssl_get(NULL)->SSL_CTX_free(ctx->ctx);
  free(ctx);
}

/* ---- connections ---- */

ia__tls *ia__tls_new(ia__tls_ctx *ctx, int fd, const char *name) {
  const ia__ossl_ssl *s = ia__ossl_ssl_get(NULL);
  const ia__ossl *o = ia__ossl_get(NULL);
  ia__tls *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->o = o;
  t->s = s;
  t->fd = fd;
  t->server = ctx->server;
  t->direct = true;
  pthread_mutex_init(&t->mu, NULL);
  o->ERR_clear_error();
  BIO *bio = o->BIO_new(bio_method);
  t->ssl = s->SSL_new(ctx->ctx);
  if (!bio || !t->ssl) goto fail;
  o->BIO_set_data(bio, t);
  o->BIO_set_init(bio, 1);
  s->SSL_set_bio(t->ssl, bio, bio);
  bio = NULL;
  if (t->server) {
    s->SSL_set_accept_state(t->ssl);
  } else {
    s->SSL_set_connect_state(t->ssl);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
    if (is_ip) {
      if (o->X509_VERIFY_PARAM_set1_ip_asc(s->SSL_get0_param(t->ssl), name) != 1) goto fail;
    } else if (s->SSL_set1_host(t->ssl, name) != 1 ||
               s->SSL_ctrl(t->ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)name) !=
                   1) {
      goto fail;
    }
  }
  return t;
fail:
  if (bio) o->BIO_free(bio); /* never handed to an SSL */
  ia__tls_free(t);
  return NULL;
}

void ia__tls_free(ia__tls *t) {
  if (!t) return;
  if (t->ssl) t->s->SSL_free(t->ssl); /* frees the BIO too */
  t->o->ERR_clear_error();
  pthread_mutex_destroy(&t->mu);
  free(t->rx);
  free(t);
}

/* Whether a call that did not succeed only waits for the socket. By the
 * SSL's own state and the BIO's, not the thread's error queue: the hot path never clears
 * that queue (a clear costs more than the rest of a small read), and only
 * a failure, which clears it after, ever fills it. */
static int want(const ia__tls *t) {
  /* A socket call that failed for good leaves OpenSSL "writing" (or
   * "reading") as if it only had to wait: it does not. */
  if (t->sys_errno) return 0;
  int w = t->s->SSL_want(t->ssl);
  if (w == SSL_READING && !t->peer_closed) return SSL_ERROR_WANT_READ;
  return w == SSL_WRITING ? SSL_ERROR_WANT_WRITE : 0;
}

/* Records why OpenSSL failed (sticky); `e` is SSL_get_error()'s. (mu) */
static void failed(ia__tls *t, int e) {
  if (t->reason[0]) {
    t->o->ERR_clear_error();
    return;
  }
  t->verify = t->server ? X509_V_OK : t->s->SSL_get_verify_result(t->ssl);
  if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
    if (t->sys_errno)
      snprintf(t->reason, sizeof t->reason, "%s", strerror(t->sys_errno));
    else
      snprintf(t->reason, sizeof t->reason, "the peer closed the connection");
    t->o->ERR_clear_error();
    return;
  }
  t->ssl_err = t->o->ERR_peek_error();
  ossl_reason(t->o, t->reason, sizeof t->reason);
}

ia__tls_step ia__tls_handshake(ia__tls *t) {
  if (t->server && !t->began) {
    /* A plain master's first frame starts with its length's top byte,
     * never 22: it can be told in plain words why it is refused. */
    uint8_t first;
    ssize_t r = ia__sys_recv(t->fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 1 && first != TLS_HANDSHAKE_BYTE) return IA__TLS_PLAIN;
    if (r != 1 && r != 0) return IA__TLS_WANT_READ; /* nothing yet: only its first byte says */
    t->began = true;
  }
  pthread_mutex_lock(&t->mu);
  t->direct = true;
  t->o->ERR_clear_error();
  int r = t->s->SSL_do_handshake(t->ssl);
  ia__tls_step step = IA__TLS_UP;
  if (r != 1) {
    int e = t->s->SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ && !t->peer_closed) {
      step = IA__TLS_WANT_READ;
    } else if (e == SSL_ERROR_WANT_WRITE) {
      step = IA__TLS_WANT_WRITE;
    } else {
      failed(t, e);
      step = IA__TLS_FAILED;
    }
  }
  t->direct = false;
  pthread_mutex_unlock(&t->mu);
  return step;
}

/* Decrypts what OpenSSL can get into b: the bytes appended; t->rd says
 * whether the stream ended or failed. One record only if `one`. (mu) */
static size_t decrypt(ia__tls *t, ia__inbuf *b, bool one) {
  size_t got = 0;
  for (;;) {
    if (b->cap == b->end && !ia__inbuf_grow(b, RECORD)) {
      t->sys_errno = ENOMEM;
      t->rd = RD_FAILED;
      snprintf(t->reason, sizeof t->reason, "out of memory for decrypted bytes");
      return got;
    }
    size_t n = 0;
    int r = t->s->SSL_read_ex(t->ssl, b->buf + b->end, b->cap - b->end, &n);
    if (r == 1) {
      b->end += n;
      got += n;
      /* OpenSSL reads no further than the record it decrypts: with nothing
       * left of it and no ciphertext waiting, there is nothing more now
       * (and no call that would only say so). */
      if (b->end < b->cap && t->s->SSL_pending(t->ssl) == 0 && (one || t->rx_off == t->rx_len)) return got;
      continue;
    }
    /* WANT_WRITE: an answer OpenSSL owes the peer waits for the socket;
     * the next write sends it first. */
    if (want(t)) return got;
    int e = t->s->SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && !t->sys_errno)) {
      t->rd = RD_EOF;
      t->o->ERR_clear_error();
    } else {
      failed(t, e);
      t->rd = RD_FAILED;
    }
    return got;
  }
}

/* What the reader returns once nothing more was decrypted. */
static ssize_t ended(ia__tls *t) {
  if (t->rd == RD_EOF) return 0;
  errno = t->sys_errno == ENOMEM ? ENOMEM : EPROTO;
  return -1;
}

/* Room after rx_len for the ciphertext of what b still waits for; what
 * OpenSSL has not taken yet (only after a read it stopped to write) moves
 * to the front. */
static bool rx_room(ia__tls *t, const ia__inbuf *b) {
  if (t->rx_off > 0) {
    memmove(t->rx, t->rx + t->rx_off, t->rx_len - t->rx_off);
    t->rx_len -= t->rx_off;
    t->rx_off = 0;
  }
  size_t want = ia__inbuf_missing(b) > RX_MIN ? RX_MAX : RX_MIN;
  if (t->rx_cap >= want && t->rx_cap > t->rx_len) return true;
  if (want <= t->rx_len) want = t->rx_len + RX_MIN;
  uint8_t *rx = realloc(t->rx, want);
  if (!rx) return false;
  t->rx = rx;
  t->rx_cap = want;
  return true;
}

ssize_t ia__tls_recv(ia__tls *t, ia__inbuf *b, int flags, bool one_record, bool *full) {
  if (full) *full = false;
  if (t->rd != RD_OK) return ended(t);
  if (one_record || t->rx_off < t->rx_len) {
    pthread_mutex_lock(&t->mu);
    t->direct = one_record;
    size_t got = decrypt(t, b, one_record);
    t->direct = false;
    pthread_mutex_unlock(&t->mu);
    if (got) return (ssize_t)got;
    if (t->rd != RD_OK) return ended(t);
    if (one_record) {
      errno = EAGAIN;
      return -1;
    }
  }
  /* Every byte received before is decrypted or inside OpenSSL as part of
   * an unfinished record: what comes next is on the socket. */
  for (;;) {
    if (!rx_room(t, b)) {
      errno = ENOMEM;
      return -1;
    }
    ssize_t r;
    do
      r = ia__sys_recv(t->fd, t->rx + t->rx_len, t->rx_cap - t->rx_len, flags);
    while (r < 0 && errno == EINTR);
    if (r <= 0) return r;
    if (full) *full = (size_t)r == t->rx_cap - t->rx_len;
    t->rx_len += (size_t)r;
    pthread_mutex_lock(&t->mu);
    size_t got = decrypt(t, b, false);
    pthread_mutex_unlock(&t->mu);
    if (got) return (ssize_t)got;
    if (t->rd != RD_OK) return ended(t);
    /* Only part of a record, or a record with no data in it: read on. */
  }
}

ssize_t ia__tls_send(ia__tls *t, const struct iovec *iov, int n) {
  uint8_t chunk[RECORD];
  size_t total = 0;
  int i = 0;
  size_t off = 0; /* into iov[i]: the first byte not yet taken */
  pthread_mutex_lock(&t->mu);
  ssize_t rc = 0;
  while (i < n) {
    if (off == iov[i].iov_len) {
      i++;
      off = 0;
      continue;
    }
    /* A large piece goes as it lies; small ones are gathered into one
     * record. Either way a retry after "full" passes at least the bytes
     * of OpenSSL's pending record, and the same ones. */
    const uint8_t *p;
    size_t len;
    if (iov[i].iov_len - off >= RECORD) {
      p = (const uint8_t *)iov[i].iov_base + off;
      len = iov[i].iov_len - off;
    } else {
      len = 0;
      for (int j = i; j < n && len < RECORD; j++) {
        size_t from = j == i ? off : 0, k = iov[j].iov_len - from;
        if (k > RECORD - len) k = RECORD - len;
        memcpy(chunk + len, (const uint8_t *)iov[j].iov_base + from, k);
        len += k;
      }
      p = chunk;
    }
    size_t w = 0;
    int r = t->s->SSL_write_ex(t->ssl, p, len, &w);
    if (r != 1) {
      if (want(t)) break;
      failed(t, t->s->SSL_get_error(t->ssl, r));
      errno = t->sys_errno ? t->sys_errno : EPROTO;
      rc = -1;
      break;
    }
    total += w;
    /* Step over the w bytes taken. */
    while (w > 0 && i < n) {
      size_t k = iov[i].iov_len - off;
      if (w < k) {
        off += w;
        w = 0;
      } else {
        w -= k;
        i++;
        off = 0;
      }
    }
  }
  int e = errno;
  pthread_mutex_unlock(&t->mu);
  errno = e;
  return rc < 0 && total == 0 ? -1 : (ssize_t)total;
}

/* ---- what went wrong ---- */

static bool cert_alert(int reason) {
  switch (reason) {
  case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
  case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
  case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
  case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    return true;
  default:
    return false;
  }
}

ia_code ia__tls_error(const ia__tls *t, const char *peer, ia_error *err) {
  if (t->verify != X509_V_OK)
    return ia__error_set(err, IA_TOKEN_INVALID, "TLS: the certificate of %s was not accepted: %s", peer,
                         t->o->X509_verify_cert_error_string(t->verify));
  int reason = t->ssl_err ? ERR_GET_REASON(t->ssl_err) : 0;
  if (reason == SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED)
    return ia__error_set(err, IA_TOKEN_NOT_FOUND,
                         "TLS: %s asks for a client certificate, and none is configured (tls_cert, tls_key)",
                         peer);
  if (cert_alert(reason))
    return ia__error_set(err, IA_TOKEN_INVALID, "TLS: %s did not accept our certificate: %s", peer,
                         t->reason);
  return ia__error_set(err, IA_PROTOCOL_ERROR, "TLS with %s failed: %s (does it speak TLS?)", peer,
                       t->reason[0] ? t->reason : "unknown reason");
}

const char *ia__tls_reason(const ia__tls *t) {
  return t->reason;
}

void ia__tls_describe(const ia__tls *t, char *out, size_t cap) {
  pthread_mutex_lock((pthread_mutex_t *)&t->mu);
  snprintf(out, cap, "%s %s", t->s->SSL_get_version(t->ssl),
           t->s->SSL_CIPHER_get_name(t->s->SSL_get_current_cipher(t->ssl)));
  pthread_mutex_unlock((pthread_mutex_t *)&t->mu);
}
