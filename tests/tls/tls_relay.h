/* A relay on its own thread that accepts one connection on 127.0.0.1
 * port 0, relays it to 127.0.0.1:`to` and records every byte both ways:
 * for the tests that look at what crosses the wire. No criterion here (the
 * same shape as tests/auth/test_auth.c's relay, which could move here or to
 * tests/common and serve both). */
#ifndef IA_TESTS_TLS_RELAY_H
#define IA_TESTS_TLS_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tls_capture {
  uint8_t *p;
  size_t n, cap;
} tls_capture;

typedef struct tls_relay {
  int listen_fd;
  uint16_t port, to;
  pthread_t thread;
  bool started;
  bool failed;          /* out of memory: the capture is incomplete */
  tls_capture up, down; /* master -> slave, slave -> master: read after the join */
} tls_relay;

/* Listens (the port in relay->port) and starts the thread, which waits up
 * to TU_WAIT_MS for the connection and relays it until either side closes,
 * at most 4 * TU_WAIT_MS. False if it could not start. */
bool tls_relay_start(tls_relay *relay, uint16_t to);
/* Joins the thread and closes the listening socket. */
void tls_relay_join(tls_relay *relay);
/* Releases the captures. */
void tls_relay_free(tls_relay *relay);

#endif
