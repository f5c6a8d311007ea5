/*
 * The slave side of floor_tls.h for bench-floor-slave, which has no TLS:
 * it refuses a certificate, so that the plain floor slave never links
 * libssl (mapped and relocated, OpenSSL alone would add ~1.8 MB to its
 * RSS, the baseline of every plain workload's slave_rss ratio).
 * bench-floor-tls-slave is the same program linked with floor_tls.c.
 *
 * Never: pretend to be TLS, or fall back to plain TCP when TLS is asked for.
 */
#include "floor_tls.h"

#include <stdio.h>

floor_tls *floor_tls_server_new(const char *cert, const char *key, char *err, size_t errlen) {
  (void)cert;
  (void)key;
  snprintf(err, errlen, "this program has no TLS: bench-floor-tls-slave does");
  return NULL;
}

int floor_tls_accept(floor_tls *t, floor_link *l) {
  (void)t;
  (void)l;
  return -1;
}
