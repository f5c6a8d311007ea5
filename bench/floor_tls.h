/*
 * The TLS floor: the floor's wire (floor.h) over plain OpenSSL, TLS 1.3 on
 * blocking sockets, one SSL_read/SSL_write per floor_io call. The master
 * verifies the slave's certificate against a CA file and an IP address, as
 * Interaction's master does with ia_master_config.tls_ca.
 *
 * floor_tls.c implements all of it and is linked only into bench-run and
 * bench-floor-tls-slave; floor_tls_none.c stands in for its slave side in
 * bench-floor-slave, which so never maps libssl (a plain slave's RSS is
 * the floor's).
 *
 * Never: use TLS versions below 1.3, or accept a certificate that was not
 * verified.
 */
#ifndef BENCH_FLOOR_TLS_H
#define BENCH_FLOOR_TLS_H

#include <stddef.h>

#include "floor.h"

/* An SSL_CTX for one end; kept for the process's lifetime by the slave. */
typedef struct floor_tls floor_tls;

/* The slave's context from its certificate chain and key (PEM files).
 * NULL with a reason in err on failure. */
floor_tls *floor_tls_server_new(const char *cert, const char *key, char *err, size_t errlen);
/* The TLS handshake on l->fd, just accepted; on success l->io and
 * l->session are set and floor_link_close() ends the session. -1 on
 * failure (the link is left as it was). */
int floor_tls_accept(floor_tls *t, floor_link *l);

/* The master's context: slaves must present a certificate that the CA file
 * (PEM) signed. NULL with a reason in err on failure. */
floor_tls *floor_tls_client_new(const char *ca_file, char *err, size_t errlen);
/* The TLS handshake on l->fd, just connected; the certificate must be
 * valid for the IP address `ip`. As floor_tls_accept() otherwise. */
int floor_tls_connect(floor_tls *t, floor_link *l, const char *ip, char *err, size_t errlen);
void floor_tls_free(floor_tls *t);

#endif
