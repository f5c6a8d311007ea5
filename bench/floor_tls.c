/*
 * The TLS floor with OpenSSL (floor_tls.h): TLS 1.3 contexts for both
 * ends, the handshakes, and the floor_io that floor.c's framing reads and
 * writes through. Everything is OpenSSL's defaults (cipher suites, groups,
 * session tickets) except the protocol version and the verification, so
 * the floor does what any OpenSSL program does and no more.
 *
 * Never: retry a failed handshake, or leave a session without a verified
 * certificate on the master's side.
 */
#include "floor_tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct floor_tls {
  SSL_CTX *ctx;
};

/* Writes `what` and OpenSSL's first queued error into err, clearing the
 * queue. */
static void ssl_reason(char *err, size_t errlen, const char *what) {
  char detail[256] = "no detail";
  unsigned long e = ERR_get_error();
  if (e != 0) ERR_error_string_n(e, detail, sizeof detail);
  ERR_clear_error();
  snprintf(err, errlen, "%s: %s", what, detail);
}

/* -1 with errno EINTR (floor.c retries), ETIMEDOUT (a socket time-out) or
 * EPROTO (anything else): SSL_read_ex/SSL_write_ex failed with `ret`. */
static long io_error(SSL *ssl, int ret) {
  int saved = errno;
  int e = SSL_get_error(ssl, ret);
  ERR_clear_error();
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
    errno = saved == EINTR ? EINTR : ETIMEDOUT;
  else if (e == SSL_ERROR_SYSCALL && saved != 0)
    errno = saved;
  else
    errno = EPROTO;
  return -1;
}

static long tls_recv(void *session, void *buf, size_t len) {
  size_t n = 0;
  int ret = SSL_read_ex(session, buf, len, &n);
  return ret == 1 ? (long)n : io_error(session, ret);
}

static long tls_send(void *session, const void *buf, size_t len) {
  size_t n = 0;
  int ret = SSL_write_ex(session, buf, len, &n);
  return ret == 1 ? (long)n : io_error(session, ret);
}

static void tls_end(void *session) {
  /* One close_notify and no wait for the peer's: the socket closes next. */
  (void)SSL_shutdown(session);
  ERR_clear_error();
  SSL_free(session);
}

static const floor_io tls_io = {tls_recv, tls_send, tls_end};

static floor_tls *ctx_new(const SSL_METHOD *method, char *err, size_t errlen) {
  floor_tls *t = calloc(1, sizeof *t);
  if (t == NULL) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  t->ctx = SSL_CTX_new(method);
  if (t->ctx == NULL || !SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION)) {
    ssl_reason(err, errlen, "SSL_CTX_new");
    floor_tls_free(t);
    return NULL;
  }
  return t;
}

floor_tls *floor_tls_server_new(const char *cert, const char *key, char *err, size_t errlen) {
  floor_tls *t = ctx_new(TLS_server_method(), err, errlen);
  if (t == NULL) return NULL;
  if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1 ||
      SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(t->ctx) != 1) {
    ssl_reason(err, errlen, "loading the certificate and key");
    floor_tls_free(t);
    return NULL;
  }
  return t;
}

floor_tls *floor_tls_client_new(const char *ca_file, char *err, size_t errlen) {
  floor_tls *t = ctx_new(TLS_client_method(), err, errlen);
  if (t == NULL) return NULL;
  if (SSL_CTX_load_verify_locations(t->ctx, ca_file, NULL) != 1) {
    ssl_reason(err, errlen, "loading the CA file");
    floor_tls_free(t);
    return NULL;
  }
  SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
  return t;
}

void floor_tls_free(floor_tls *t) {
  if (t == NULL) return;
  SSL_CTX_free(t->ctx);
  free(t);
}

/* A session on l->fd, not yet shaken hands. */
static SSL *session_new(floor_tls *t, const floor_link *l) {
  SSL *ssl = SSL_new(t->ctx);
  if (ssl != NULL && SSL_set_fd(ssl, l->fd) == 1) return ssl;
  SSL_free(ssl);
  return NULL;
}

static void attach(floor_link *l, SSL *ssl) {
  l->io = &tls_io;
  l->session = ssl;
}

int floor_tls_accept(floor_tls *t, floor_link *l) {
  SSL *ssl = session_new(t, l);
  if (ssl == NULL || SSL_accept(ssl) != 1) {
    ERR_clear_error();
    SSL_free(ssl);
    return -1;
  }
  attach(l, ssl);
  return 0;
}

int floor_tls_connect(floor_tls *t, floor_link *l, const char *ip, char *err, size_t errlen) {
  SSL *ssl = session_new(t, l);
  if (ssl == NULL || X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip) != 1) {
    ssl_reason(err, errlen, "SSL_new");
    SSL_free(ssl);
    return -1;
  }
  if (SSL_connect(ssl) != 1) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
      ERR_clear_error();
      snprintf(err, errlen, "TLS handshake: certificate of %s: %s", ip, X509_verify_cert_error_string(v));
    } else {
      ssl_reason(err, errlen, "TLS handshake");
    }
    SSL_free(ssl);
    return -1;
  }
  attach(l, ssl);
  return 0;
}
