/*
 * The HTTP face either end can show operators (libevent's evhttp, on the
 * end's own loop): /metrics, Prometheus text that a render callback writes,
 * and /healthz, 200 "ok" while a healthy callback says so and 503 after.
 *
 * Never: block the loop, or serve anything but GET and HEAD of these two.
 */
#ifndef IA__HTTP_H
#define IA__HTTP_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/runtime-internal.h"

struct event_base;
struct evbuffer;
struct evhttp;

typedef struct ia__http_face {
  /* Writes the metrics into b; false if out of memory. */
  bool (*render)(void *arg, struct evbuffer *b);
  bool (*healthy)(void *arg);
  void *arg;
} ia__http_face;

/* Binds "HOST:PORT" (port 0 picks one) on base and serves `face`
 * (which must outlive the server). IA_OK with *out and *port. */
IA_MUST_CHECK ia_code ia__http_start(struct event_base *base, const char *addr, const ia__http_face *face,
                                     struct evhttp **out, uint16_t *port, ia_error *err);
void ia__http_free(struct evhttp *http);

#endif
