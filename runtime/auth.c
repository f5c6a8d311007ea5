/*
 * The shared secret and the handshake's proofs (runtime/auth.h): loading
 * the secret, the nonces, HMAC-SHA256 over the transcript, and the
 * constant-time check.
 *
 * Never: log the secret or a proof, or leave a copy of the secret unwiped.
 */
#include "runtime/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/ossl.h"
#include "runtime/runtime-internal.h"

static const char *const LABELS[] = {"interaction/v1 slave", "interaction/v1 master"};

/* The secret's bytes: a copy of p[0..n), one trailing newline dropped. */
static ia_code keep(const uint8_t *p, size_t n, const char *who, const char *from, ia__secret *out,
                    ia_error *err) {
  if (n && p[n - 1] == '\n') n--;
  if (n && p[n - 1] == '\r') n--;
  if (n == 0) return ia__error_set(err, IA_INVALID_ARGUMENT, "the %s's secret (%s) is empty", who, from);
  out->p = malloc(n);
  if (!out->p) return ia__error_set(err, IA_NO_MEMORY, "no memory for the %s's secret", who);
  memcpy(out->p, p, n);
  out->n = n;
  return IA_OK;
}

static ia_code from_file(const char *file, const char *who, ia__secret *out, ia_error *err) {
  FILE *f = fopen(file, "rb");
  if (!f)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "cannot read the %s's secret file %s: %s", who, file,
                         strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
    IA__WARN("%s: the secret file %s can be read by others than its owner (chmod 600 it)", who, file);
  uint8_t buf[IA__SECRET_MAX + 3]; /* room to see it is too long, past a trailing CR LF */
  size_t n = fread(buf, 1, sizeof buf, f);
  bool failed = ferror(f) != 0;
  fclose(f);
  ia_code rc;
  if (failed)
    rc = ia__error_set(err, IA_INVALID_ARGUMENT, "cannot read the %s's secret file %s", who, file);
  else if (n > IA__SECRET_MAX + 2)
    rc = ia__error_set(err, IA_INVALID_ARGUMENT, "the %s's secret file %s is over %u bytes", who, file,
                       IA__SECRET_MAX);
  else
    rc = keep(buf, n, who, file, out, err);
  explicit_bzero(buf, sizeof buf);
  return rc;
}

ia_code ia__secret_load(const char *file, const char *who, ia__secret *out, ia_error *err) {
  *out = (ia__secret){0};
  const char *env = file ? NULL : getenv("IA_SECRET");
  if (!file && !env) return IA_OK;
  /* Whoever holds a secret needs OpenSSL: said now, not at the first connection. */
  if (!ia__ossl_get(err)) return IA_INVALID_ARGUMENT;
  if (file) return from_file(file, who, out, err);
  size_t n = strlen(env);
  if (n > IA__SECRET_MAX)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "the %s's secret (IA_SECRET) is over %u bytes", who,
                         IA__SECRET_MAX);
  return keep((const uint8_t *)env, n, who, "IA_SECRET", out, err);
}

void ia__secret_free(ia__secret *s) {
  if (s->p) explicit_bzero(s->p, s->n);
  free(s->p);
  *s = (ia__secret){0};
}

bool ia__auth_nonce(uint8_t out[IA__AUTH_NONCE]) {
  const ia__ossl *o = ia__ossl_get(NULL);
  return o && o->RAND_bytes(out, IA__AUTH_NONCE) == 1;
}

bool ia__auth_proof(const ia__secret *k, ia__auth_role role, const uint8_t *hello, size_t hello_n,
                    const uint8_t nonce[IA__AUTH_NONCE], uint8_t out[IA__AUTH_PROOF]) {
  const char *label = LABELS[role];
  const uint8_t len[4] = {(uint8_t)(hello_n >> 24), (uint8_t)(hello_n >> 16), (uint8_t)(hello_n >> 8),
                          (uint8_t)hello_n};
  const ia__ossl *o = ia__ossl_get(NULL);
  EVP_MAC *hmac = o ? o->EVP_MAC_fetch(NULL, "HMAC", NULL) : NULL;
  if (!hmac) return false;
  EVP_MAC_CTX *ctx = o->EVP_MAC_CTX_new(hmac);
  OSSL_PARAM params[] = {o->OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                         OSSL_PARAM_END};
  size_t got = 0;
  bool ok =
      ctx && o->EVP_MAC_init(ctx, k->p, k->n, params) == 1 &&
      o->EVP_MAC_update(ctx, (const uint8_t *)label, strlen(label) + 1) == 1 && /* the label and its NUL */
      o->EVP_MAC_update(ctx, len, sizeof len) == 1 && o->EVP_MAC_update(ctx, hello, hello_n) == 1 &&
      o->EVP_MAC_update(ctx, nonce, IA__AUTH_NONCE) == 1 &&
      o->EVP_MAC_final(ctx, out, &got, IA__AUTH_PROOF) == 1 && got == IA__AUTH_PROOF;
  if (ctx) o->EVP_MAC_CTX_free(ctx);
  o->EVP_MAC_free(hmac);
  return ok;
}

bool ia__auth_check(const ia__secret *k, ia__auth_role role, const uint8_t *hello, size_t hello_n,
                    const uint8_t nonce[IA__AUTH_NONCE], const uint8_t *proof, size_t proof_n) {
  uint8_t want[IA__AUTH_PROOF];
  if (!ia__auth_proof(k, role, hello, hello_n, nonce, want)) return false;
  /* The length is no secret; the bytes are compared in constant time. */
  bool ok = proof_n == IA__AUTH_PROOF && ia__ossl_get(NULL)->CRYPTO_memcmp(want, proof, IA__AUTH_PROOF) == 0;
  explicit_bzero(want, sizeof want);
  return ok;
}
