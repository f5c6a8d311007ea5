/* The /metrics and /healthz server of either end: see http.h. */
#include "runtime/http.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "runtime/sock.h"

static bool readable(struct evhttp_request *req) {
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) return true;
  evhttp_send_error(req, 405, "only GET and HEAD");
  return false;
}

static void metrics_cb(struct evhttp_request *req, void *arg) {
  const ia__http_face *face = arg;
  if (!readable(req)) return;
  struct evbuffer *b = evbuffer_new();
  if (!b || !face->render(face->arg, b)) {
    if (b) evbuffer_free(b);
    evhttp_send_error(req, 500, "out of memory");
    return;
  }
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void healthz_cb(struct evhttp_request *req, void *arg) {
  const ia__http_face *face = arg;
  if (!readable(req)) return;
  bool up = face->healthy(face->arg);
  struct evbuffer *b = evbuffer_new();
  if (b) evbuffer_add_printf(b, up ? "ok\n" : "shutting down\n");
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain");
  evhttp_send_reply(req, up ? 200 : 503, up ? "OK" : "Service Unavailable", b);
  if (b) evbuffer_free(b);
}

/* HOST:PORT into host (cap bytes) and port; false if it is not that. */
static bool split_addr(const char *addr, char *host, size_t cap, uint16_t *port) {
  const char *colon = strrchr(addr, ':');
  if (!colon || colon == addr || (size_t)(colon - addr) >= cap || !colon[1]) return false;
  char *end;
  unsigned long p = strtoul(colon + 1, &end, 10);
  if (*end || p > 65535) return false;
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  *port = (uint16_t)p;
  return true;
}

ia_code ia__http_start(struct event_base *base, const char *addr, const ia__http_face *face,
                       struct evhttp **out, uint16_t *port, ia_error *err) {
  char host[256];
  uint16_t want;
  *out = NULL;
  if (!split_addr(addr, host, sizeof host, &want))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "metrics_addr '%s' is not HOST:PORT", addr);
  struct evhttp *http = evhttp_new(base);
  if (!http) return ia__error_set(err, IA_NO_MEMORY, "no memory for the metrics server");
  evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_timeout(http, 10); /* a scraper that stalls is dropped */
  struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, host, want);
  if (!bound) {
    evhttp_free(http);
    return ia__error_set(err, IA_IO_ERROR, "cannot serve metrics on %s", addr);
  }
  if (evhttp_set_cb(http, "/metrics", metrics_cb, (void *)face) != 0 ||
      evhttp_set_cb(http, "/healthz", healthz_cb, (void *)face) != 0) {
    evhttp_free(http);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the metrics server");
  }
  *port = ia__sock_port(evhttp_bound_socket_get_fd(bound));
  *out = http;
  IA__INFO("metrics on %s:%u", host, (unsigned)*port);
  return IA_OK;
}

void ia__http_free(struct evhttp *http) {
  if (http) evhttp_free(http);
}
