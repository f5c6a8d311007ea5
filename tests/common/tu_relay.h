/* A relay on its own thread that accepts one connection on 127.0.0.1
 * port 0, relays it to 127.0.0.1:`to` and records every byte both ways:
 * for the tests that look at what crosses the wire (tests/auth, tests/tls).
 * No criterion here. */
#ifndef IA_TESTS_TU_RELAY_H
#define IA_TESTS_TU_RELAY_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tu_capture {
  uint8_t *p;
  size_t n, cap;
} tu_capture;

typedef struct tu_relay {
  int listen_fd;
  uint16_t port, to;
  pthread_t thread;
  bool started;
  bool failed;         /* out of memory: the capture is incomplete */
  tu_capture up, down; /* master -> slave, slave -> master: read after the join */
} tu_relay;

/* Listens (the port in relay->port) and starts the thread, which waits up
 * to TU_WAIT_MS for the connection and relays it until either side closes,
 * at most 4 * TU_WAIT_MS. False if it could not start. */
bool tu_relay_start(tu_relay *relay, uint16_t to);
/* Joins the thread and closes the listening socket. */
void tu_relay_join(tu_relay *relay);
/* Releases the captures. */
void tu_relay_free(tu_relay *relay);

#endif
