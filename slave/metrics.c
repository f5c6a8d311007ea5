/*
 * The slave's HTTP face for operators, on its own loop with libevent's
 * evhttp: /metrics in Prometheus's text exposition format (0.0.4), and
 * /healthz for a Kubernetes probe (200 "ok" while the slave serves, 503 once
 * it shuts down). The metric names are a contract (dashboards are built on
 * them): interaction_slave_tasks_total{method,outcome},
 * interaction_slave_refusals_total{reason}, interaction_slave_tasks_running,
 * interaction_slave_tasks_queued, interaction_slave_connections,
 * interaction_slave_task_duration_seconds{method} (a histogram),
 * interaction_slave_received_bytes_total, interaction_slave_sent_bytes_total.
 *
 * Never: block the loop (a scrape renders a snapshot into memory and is
 * sent by evhttp), or serve anything but GET and HEAD of these two paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "runtime/sock.h"
#include "slave/slave-internal.h"

/* A label value, escaped as the format wants (backslash, quote, newline). */
static void put_label(struct evbuffer *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      evbuffer_add_printf(b, "\\%c", *v);
    else if (*v == '\n')
      evbuffer_add(b, "\\n", 2);
    else
      evbuffer_add(b, v, 1);
  }
}

static void head(struct evbuffer *b, const char *name, const char *type, const char *help) {
  evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render(const ia_slave_stats *st, struct evbuffer *b) {
  head(b, "interaction_slave_tasks_total", "counter", "Tasks the slave ended, by method and outcome.");
  for (size_t m = 0; m < st->n_methods; m++)
    for (int o = 0; o < IA_STATS_OUTCOMES; o++) {
      evbuffer_add_printf(b, "interaction_slave_tasks_total{method=\"");
      put_label(b, st->methods[m].method);
      evbuffer_add_printf(b, "\",outcome=\"%s\"} %llu\n", ia_stats_outcome_name(o),
                          (unsigned long long)st->methods[m].tasks[o]);
    }
  head(b, "interaction_slave_refusals_total", "counter", "Tasks the slave refused, by reason.");
  for (int r = 0; r < IA_STATS_REFUSALS; r++)
    evbuffer_add_printf(b, "interaction_slave_refusals_total{reason=\"%s\"} %llu\n", ia_stats_refusal_name(r),
                        (unsigned long long)st->refusals[r]);
  head(b, "interaction_slave_tasks_running", "gauge", "Tasks running now.");
  evbuffer_add_printf(b, "interaction_slave_tasks_running %u\n", st->running);
  head(b, "interaction_slave_tasks_queued", "gauge", "Tasks waiting in the queue now.");
  evbuffer_add_printf(b, "interaction_slave_tasks_queued %u\n", st->queued);
  head(b, "interaction_slave_connections", "gauge", "Handshaken connections now: the master and observers.");
  evbuffer_add_printf(b, "interaction_slave_connections %u\n", st->connections);
  head(b, "interaction_slave_task_duration_seconds", "histogram", "How long handlers ran, by method.");
  for (size_t m = 0; m < st->n_methods; m++) {
    const ia_method_stats *ms = &st->methods[m];
    uint64_t cum = 0;
    for (int k = 0; k <= IA_STATS_BUCKETS; k++) {
      cum += ms->durations[k];
      evbuffer_add_printf(b, "interaction_slave_task_duration_seconds_bucket{method=\"");
      put_label(b, ms->method);
      if (k < IA_STATS_BUCKETS)
        evbuffer_add_printf(b, "\",le=\"%g\"} %llu\n", ia_stats_bucket_le(k), (unsigned long long)cum);
      else
        evbuffer_add_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    evbuffer_add_printf(b, "interaction_slave_task_duration_seconds_sum{method=\"");
    put_label(b, ms->method);
    evbuffer_add_printf(b, "\"} %.9f\n", ms->duration_sum_s);
    evbuffer_add_printf(b, "interaction_slave_task_duration_seconds_count{method=\"");
    put_label(b, ms->method);
    evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)cum);
  }
  head(b, "interaction_slave_received_bytes_total", "counter", "Bytes read from every connection.");
  evbuffer_add_printf(b, "interaction_slave_received_bytes_total %llu\n",
                      (unsigned long long)st->received_bytes);
  head(b, "interaction_slave_sent_bytes_total", "counter", "Bytes of frames handed to every connection.");
  evbuffer_add_printf(b, "interaction_slave_sent_bytes_total %llu\n", (unsigned long long)st->sent_bytes);
}

static bool readable(struct evhttp_request *req) {
  enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
  if (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) return true;
  evhttp_send_error(req, 405, "only GET and HEAD");
  return false;
}

static void metrics_cb(struct evhttp_request *req, void *arg) {
  ia_slave *s = arg;
  if (!readable(req)) return;
  ia_slave_stats st;
  struct evbuffer *b = evbuffer_new();
  if (!b || ia_slave_stats_get(s, &st) != IA_OK) {
    if (b) evbuffer_free(b);
    evhttp_send_error(req, 500, "out of memory");
    return;
  }
  render(&st, b);
  ia_slave_stats_clear(&st);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
  evhttp_send_reply(req, 200, "OK", b);
  evbuffer_free(b);
}

static void healthz_cb(struct evhttp_request *req, void *arg) {
  ia_slave *s = arg;
  if (!readable(req)) return;
  bool up = !atomic_load(&s->shutting_down);
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

ia_code ia__metrics_start(ia_slave *s, ia_error *err) {
  const char *addr = s->cfg.metrics_addr;
  if (!addr) return IA_OK;
  char host[256];
  uint16_t port;
  if (!split_addr(addr, host, sizeof host, &port))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "metrics_addr '%s' is not HOST:PORT", addr);
  s->http = evhttp_new(s->base);
  if (!s->http) return ia__error_set(err, IA_NO_MEMORY, "no memory for the metrics server");
  evhttp_set_allowed_methods(s->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_timeout(s->http, 10); /* a scraper that stalls is dropped */
  struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(s->http, host, port);
  if (!bound) {
    ia__metrics_free(s);
    return ia__error_set(err, IA_IO_ERROR, "cannot serve metrics on %s", addr);
  }
  atomic_store(&s->metrics_port, ia__sock_port(evhttp_bound_socket_get_fd(bound)));
  if (evhttp_set_cb(s->http, "/metrics", metrics_cb, s) != 0 ||
      evhttp_set_cb(s->http, "/healthz", healthz_cb, s) != 0) {
    ia__metrics_free(s);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the metrics server");
  }
  IA__INFO("slave: metrics on %s:%u", host, (unsigned)atomic_load(&s->metrics_port));
  return IA_OK;
}

void ia__metrics_free(ia_slave *s) {
  if (s->http) evhttp_free(s->http);
  s->http = NULL;
}

uint16_t ia_slave_metrics_port(const ia_slave *s) {
  return s ? atomic_load(&((ia_slave *)s)->metrics_port) : 0;
}
