/*
 * Statistics on the master: a slave's counters as the master reads them
 * over the wire (a StatsRequest on the connection, an observer's or the
 * master's own, and the Stats it answers, decoded into the ia_slave_stats of
 * interaction/slave.h); the master's own counters per connection (tasks by
 * outcome, a latency histogram); and its /metrics and /healthz
 * (runtime/http.h serves them): interaction_master_tasks_total{slave,outcome},
 * interaction_master_task_latency_seconds{slave}, and
 * interaction_master_connections{state} -- names dashboards are built on.
 *
 * Never: trust the slave's arrays to have the lengths this version expects
 * (what is missing reads 0, what is more is dropped), or take a lock to
 * count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "interaction/slave.h"
#include "master/master-internal.h"

/* n values of `from` (it has `have`) into `to`, zero-filled. */
static void take_u64(uint64_t *to, size_t n, const uint64_t *from, size_t have) {
  for (size_t i = 0; i < n; i++)
    to[i] = i < have ? from[i] : 0;
}

static ia_code decode(const uint8_t *body, size_t len, ia_slave_stats *out, ia_error *err) {
  Interaction__V1__Stats *m = interaction__v1__stats__unpack(NULL, len, body);
  if (!m) return ia__error_set(err, IA_PROTOCOL_ERROR, "the slave's Stats do not decode");
  out->methods = m->n_methods ? calloc(m->n_methods, sizeof *out->methods) : NULL;
  if (m->n_methods && !out->methods) {
    interaction__v1__stats__free_unpacked(m, NULL);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the stats");
  }
  out->n_methods = m->n_methods;
  for (size_t i = 0; i < m->n_methods; i++) {
    const Interaction__V1__MethodStats *ms = m->methods[i];
    ia_method_stats *o = &out->methods[i];
    snprintf(o->method, sizeof o->method, "%s", ms->method ? ms->method : "");
    take_u64(o->tasks, IA_STATS_OUTCOMES, ms->tasks, ms->n_tasks);
    take_u64(o->durations, IA_STATS_BUCKETS + 1, ms->durations, ms->n_durations);
    o->duration_sum_s = ms->duration_sum_s;
  }
  take_u64(out->refusals, IA_STATS_REFUSALS, m->refusals, m->n_refusals);
  out->running = m->running;
  out->queued = m->queued;
  out->connections = m->connections;
  out->received_bytes = m->received_bytes;
  out->sent_bytes = m->sent_bytes;
  interaction__v1__stats__free_unpacked(m, NULL);
  return IA_OK;
}

ia_code ia_conn_slave_stats(ia_conn *c, uint32_t timeout_ms, struct ia_slave_stats *out, ia_error *err) {
  if (!c || !out) return ia__error_set(err, IA_INVALID_ARGUMENT, "conn and out are required");
  memset(out, 0, sizeof *out);
  ia_task *t = NULL;
  ia_code rc = ia__conn_internal_call(c, IA__TASK_STATS, NULL, 0, timeout_ms, &t, err);
  if (rc == IA_OK) {
    size_t len = 0;
    const uint8_t *body = ia_task_result(t, &len);
    rc = decode(body, len, out, err);
  }
  ia_task_free(t);
  return rc;
}

/* ---- the master's own counters ---- */

static const char *const outcome_names[IA_OUTCOMES] = {"completed", "failed",    "lost",
                                                       "timed_out", "cancelled", "refused"};

const char *ia_conn_outcome_name(int i) {
  return i >= 0 && i < IA_OUTCOMES ? outcome_names[i] : NULL;
}

static int outcome_of(ia_status st) {
  switch (st) {
  case IA_STATUS_COMPLETED:
    return IA_OUTCOME_COMPLETED;
  case IA_STATUS_FAILED:
    return IA_OUTCOME_FAILED;
  case IA_STATUS_LOST:
    return IA_OUTCOME_LOST;
  case IA_STATUS_TIMED_OUT:
    return IA_OUTCOME_TIMED_OUT;
  case IA_STATUS_CANCELLED:
    return IA_OUTCOME_CANCELLED;
  default:
    return IA_OUTCOME_REFUSED;
  }
}

void ia__stats_task_end(ia_task *t, ia_status status) {
  ia__cstats *st = &t->conn->st;
  int outcome = outcome_of(status);
  ia__count(&st->tasks[outcome], 1);
  /* One line per task that did not complete; none for those that did. */
  if (outcome != IA_OUTCOME_COMPLETED)
    IA__INFO("master: task %llu (%s) on %s at %s ended %s: %s (%s)", (unsigned long long)t->id, t->method,
             t->conn->name, t->conn->addr, outcome_names[outcome], t->error.message, ia_code_name(t->error.code));
  if (!t->start_ticks || status == IA_STATUS_START_FAILED) return;
  uint64_t ns = ia__ticks_ns(t->start_ticks, ia__ticks());
  ia__histo_add(st->lat, &st->lat_sum_ns, ns);
  uint64_t max = ia__load(&st->lat_max_ns);
  while (ns > max && !atomic_compare_exchange_weak_explicit(&st->lat_max_ns, &max, ns, memory_order_relaxed,
                                                            memory_order_relaxed))
    ;
}

/* The upper bound of the bucket holding the q-quantile (0..1). */
static double quantile(const ia_conn_stats *s, double q) {
  uint64_t n = 0;
  for (int k = 0; k <= IA_STATS_BUCKETS; k++)
    n += s->latency[k];
  if (!n) return 0;
  uint64_t rank = (uint64_t)(q * (double)n + 0.999999), cum = 0;
  if (rank == 0) rank = 1;
  for (int k = 0; k < IA_STATS_BUCKETS; k++) {
    cum += s->latency[k];
    if (cum >= rank) {
      double le = ia_stats_bucket_le(k);
      return le < s->latency_max_s ? le : s->latency_max_s;
    }
  }
  return s->latency_max_s;
}

static void snapshot_locked(ia_conn *c, ia_conn_stats *out) {
  memset(out, 0, sizeof *out);
  for (ia_task *t = c->pending; t; t = t->next)
    out->in_flight += t->kind == IA__TASK_USER;
  for (int i = 0; i < IA_OUTCOMES; i++)
    out->tasks[i] = ia__load(&c->st.tasks[i]);
  for (int k = 0; k <= IA_STATS_BUCKETS; k++)
    out->latency[k] = ia__load(&c->st.lat[k]);
  out->latency_sum_s = (double)ia__load(&c->st.lat_sum_ns) / 1e9;
  out->latency_max_s = (double)ia__load(&c->st.lat_max_ns) / 1e9;
  out->latency_p50_s = quantile(out, 0.50);
  out->latency_p99_s = quantile(out, 0.99);
}

ia_code ia_conn_stats_get(ia_conn *c, ia_conn_stats *out) {
  if (!c || !out) return IA_INVALID_ARGUMENT;
  pthread_mutex_lock(&c->m->mu);
  snapshot_locked(c, out);
  pthread_mutex_unlock(&c->m->mu);
  return IA_OK;
}

/* ---- /metrics and /healthz ---- */

typedef struct conn_row {
  char name[128];
  ia_conn_state state;
  ia_conn_stats st;
} conn_row;

static bool render(void *arg, struct evbuffer *b) {
  ia_master *m = arg;
  pthread_mutex_lock(&m->mu);
  size_t n = 0;
  for (ia_conn *c = m->conns; c; c = c->next)
    n++;
  conn_row *rows = n ? calloc(n, sizeof *rows) : NULL;
  if (n && !rows) {
    pthread_mutex_unlock(&m->mu);
    return false;
  }
  size_t i = 0;
  for (ia_conn *c = m->conns; c; c = c->next, i++) {
    snprintf(rows[i].name, sizeof rows[i].name, "%s", c->name);
    rows[i].state = c->state;
    snapshot_locked(c, &rows[i].st);
  }
  pthread_mutex_unlock(&m->mu);
  ia__prom_family(b, "interaction_master_tasks_total", "counter",
                  "Tasks the master ended, by slave and outcome.");
  for (i = 0; i < n; i++)
    for (int o = 0; o < IA_OUTCOMES; o++) {
      evbuffer_add_printf(b, "interaction_master_tasks_total{slave=\"");
      ia__prom_label(b, rows[i].name);
      evbuffer_add_printf(b, "\",outcome=\"%s\"} %llu\n", outcome_names[o],
                          (unsigned long long)rows[i].st.tasks[o]);
    }
  ia__prom_family(b, "interaction_master_task_latency_seconds", "histogram",
                  "From a task's start to its end, by slave.");
  for (i = 0; i < n; i++)
    ia__prom_histogram(b, "interaction_master_task_latency_seconds", "slave", rows[i].name,
                       rows[i].st.latency, rows[i].st.latency_sum_s);
  unsigned by_state[3] = {0, 0, 0};
  for (i = 0; i < n; i++)
    if ((unsigned)rows[i].state < 3) by_state[rows[i].state]++;
  static const char *const states[3] = {"connected", "lost", "closed"}; /* ia_conn_state's order */
  ia__prom_family(b, "interaction_master_connections", "gauge", "The master's connections, by state.");
  for (int s = 0; s < 3; s++)
    evbuffer_add_printf(b, "interaction_master_connections{state=\"%s\"} %u\n", states[s], by_state[s]);
  free(rows);
  return true;
}

static bool healthy(void *arg) {
  ia_master *m = arg;
  return !atomic_load(&m->shutting_down);
}

ia_code ia__master_metrics_start(ia_master *m, ia_error *err) {
  if (!m->cfg.metrics_addr) return IA_OK;
  m->face = (ia__http_face){render, healthy, m};
  uint16_t port = 0;
  ia_code rc = ia__http_start(m->base, m->cfg.metrics_addr, &m->face, &m->http, &port, err);
  if (rc == IA_OK) atomic_store(&m->metrics_port, port);
  return rc;
}

uint16_t ia_master_metrics_port(const ia_master *m) {
  return m ? atomic_load(&((ia_master *)m)->metrics_port) : 0;
}
