/*
 * The slave's /metrics and /healthz (runtime/http.h serves them): its
 * counters in Prometheus's text format, and healthy while it is not
 * shutting down. The metric names are a contract (dashboards are built on
 * them): interaction_slave_tasks_total{method,outcome},
 * interaction_slave_refusals_total{reason}, interaction_slave_tasks_running,
 * interaction_slave_tasks_queued, interaction_slave_connections,
 * interaction_slave_task_duration_seconds{method} (a histogram),
 * interaction_slave_received_bytes_total, interaction_slave_sent_bytes_total.
 *
 * Never: block the loop (a scrape renders a snapshot into memory).
 */
#include <event2/buffer.h>

#include "runtime/histo.h"
#include "runtime/http.h"
#include "slave/slave-internal.h"

static void render_stats(const ia_slave_stats *st, struct evbuffer *b) {
  ia__prom_family(b, "interaction_slave_tasks_total", "counter",
                  "Tasks the slave ended, by method and outcome.");
  for (size_t m = 0; m < st->n_methods; m++)
    for (int o = 0; o < IA_STATS_OUTCOMES; o++) {
      evbuffer_add_printf(b, "interaction_slave_tasks_total{method=\"");
      ia__prom_label(b, st->methods[m].method);
      evbuffer_add_printf(b, "\",outcome=\"%s\"} %llu\n", ia_stats_outcome_name(o),
                          (unsigned long long)st->methods[m].tasks[o]);
    }
  ia__prom_family(b, "interaction_slave_refusals_total", "counter", "Tasks the slave refused, by reason.");
  for (int r = 0; r < IA_STATS_REFUSALS; r++)
    evbuffer_add_printf(b, "interaction_slave_refusals_total{reason=\"%s\"} %llu\n", ia_stats_refusal_name(r),
                        (unsigned long long)st->refusals[r]);
  ia__prom_family(b, "interaction_slave_tasks_running", "gauge", "Tasks running now.");
  evbuffer_add_printf(b, "interaction_slave_tasks_running %u\n", st->running);
  ia__prom_family(b, "interaction_slave_tasks_queued", "gauge", "Tasks waiting in the queue now.");
  evbuffer_add_printf(b, "interaction_slave_tasks_queued %u\n", st->queued);
  ia__prom_family(b, "interaction_slave_connections", "gauge",
                  "Handshaken connections now: the master and observers.");
  evbuffer_add_printf(b, "interaction_slave_connections %u\n", st->connections);
  ia__prom_family(b, "interaction_slave_task_duration_seconds", "histogram",
                  "How long handlers ran, by method.");
  for (size_t m = 0; m < st->n_methods; m++)
    ia__prom_histogram(b, "interaction_slave_task_duration_seconds", "method", st->methods[m].method,
                       st->methods[m].durations, st->methods[m].duration_sum_s);
  ia__prom_family(b, "interaction_slave_received_bytes_total", "counter",
                  "Bytes read from every connection.");
  evbuffer_add_printf(b, "interaction_slave_received_bytes_total %llu\n",
                      (unsigned long long)st->received_bytes);
  ia__prom_family(b, "interaction_slave_sent_bytes_total", "counter",
                  "Bytes of frames handed to every connection.");
  evbuffer_add_printf(b, "interaction_slave_sent_bytes_total %llu\n", (unsigned long long)st->sent_bytes);
}

static bool render(void *arg, struct evbuffer *b) {
  ia_slave_stats st;
  if (ia_slave_stats_get(arg, &st) != IA_OK) return false;
  render_stats(&st, b);
  ia_slave_stats_clear(&st);
  return true;
}

static bool healthy(void *arg) {
  ia_slave *s = arg;
  return !atomic_load(&s->shutting_down);
}

ia_code ia__metrics_start(ia_slave *s, ia_error *err) {
  if (!s->cfg.metrics_addr) return IA_OK;
  s->face = (ia__http_face){render, healthy, s};
  uint16_t port = 0;
  ia_code rc = ia__http_start(s->base, s->cfg.metrics_addr, &s->face, &s->http, &port, err);
  if (rc == IA_OK) atomic_store(&s->metrics_port, port);
  return rc;
}

void ia__metrics_free(ia_slave *s) {
  ia__http_free(s->http);
  s->http = NULL;
}

uint16_t ia_slave_metrics_port(const ia_slave *s) {
  return s ? atomic_load(&((ia_slave *)s)->metrics_port) : 0;
}
