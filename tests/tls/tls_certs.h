/* The certificates of the TLS tests, made at test time with the openssl
 * command (OPENSSL_PATH) in a temporary directory of their own: a test CA
 * and an unrelated one, slave certificates (a good one, an expired one, one
 * from the other CA) and master (client) certificates for mutual TLS. Every
 * key is EC P-256. No criterion here: the helper says what went wrong and
 * the test decides. */
#ifndef IA_TESTS_TLS_CERTS_H
#define IA_TESTS_TLS_CERTS_H

#include <stdbool.h>
#include <stddef.h>

#define TLS_CERTS_PATH_MAX 256

typedef char tls_path[TLS_CERTS_PATH_MAX];

/* Paths of PEM files, all inside `dir`. */
typedef struct tls_certs {
  tls_path dir;
  tls_path ca, other_ca; /* the test CA and an unrelated one */
  tls_path slave_key;    /* the key of every slave certificate below */
  tls_path slave_cert;   /* test CA; subjectAltName IP:127.0.0.1, DNS:localhost */
  tls_path expired_cert; /* the same, but valid only for a day in 2020 */
  tls_path other_slave;  /* the same names, signed by the other CA */
  tls_path client_key;   /* the key of both client certificates */
  tls_path client_cert;  /* test CA, clientAuth */
  tls_path other_client; /* the other CA, clientAuth */
} tls_certs;

/* Makes a directory ia-tls-XXXXXX in $TMPDIR (else /tmp) and every
 * certificate in it, each openssl run bounded. False with `why` (and the
 * directory already removed) on failure. */
bool tls_certs_make(tls_certs *certs, char *why, size_t why_cap);
/* Removes the directory and everything in it; a no-op once removed or if
 * it was never made. */
void tls_certs_remove(tls_certs *certs);

#endif
