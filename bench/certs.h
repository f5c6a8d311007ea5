/*
 * The throw-away certificates of the TLS workloads (`sum-tls`,
 * `blob-16M-tls`): a CA, and a slave certificate for IP 127.0.0.1 (and DNS
 * localhost) that it signed, EC P-256 keys, made by the `openssl` command
 * line at run time in a fresh directory under $TMPDIR (else /tmp) and
 * removed at the end, also when the run fails or is interrupted.
 *
 * Never: keep the files past the run, write outside that directory, or
 * wait on openssl without a bound.
 */
#ifndef BENCH_CERTS_H
#define BENCH_CERTS_H

#include <stddef.h>

/* Paths inside the directory; valid until bench_certs_remove(). */
typedef struct bench_certs {
  const char *ca;   /* the CA's certificate (PEM): what the masters verify against */
  const char *cert; /* the slave's certificate (PEM), signed by the CA */
  const char *key;  /* the slave's private key (PEM) */
} bench_certs;

/* Makes the directory and the files, running openssl three times (each
 * bounded to 10 s). One set per process. Returns 0, or -1 with a reason in
 * err and nothing left behind. */
int bench_certs_make(bench_certs *out, char *err, size_t errlen);

/* Kills an openssl still running, then removes every file and the
 * directory; does nothing when there are none. Async-signal-safe: the
 * driver's signal handler calls it. */
void bench_certs_remove(void);

#endif
