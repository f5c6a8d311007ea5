/*
 * The slave's counters (see stats.h): what each ended task counts as, the
 * refusals, and the snapshot of ia_slave_stats_get().
 *
 * Never: take a lock to count; the snapshot takes the slave's mutex only
 * for the gauges (running, queued, connections).
 */
#include <stdlib.h>
#include <string.h>

#include "slave/slave-internal.h"

static const char *const outcome_names[IA_STATS_OUTCOMES] = {"completed", "failed", "error", "cancelled",
                                                             "deadline_exceeded"};
static const char *const refusal_names[IA_STATS_REFUSALS] = {"busy", "queue_full", "unknown_method", "hook",
                                                             "shutting_down"};
const char *ia_stats_outcome_name(int i) {
  return i >= 0 && i < IA_STATS_OUTCOMES ? outcome_names[i] : NULL;
}

const char *ia_stats_refusal_name(int i) {
  return i >= 0 && i < IA_STATS_REFUSALS ? refusal_names[i] : NULL;
}


static ia__mstats *mstats_of(ia_task_ctx *ctx) {
  return ctx->handler ? &((ia__method *)ctx->handler)->st : &ctx->slave->stats.other;
}

/* The outcome index of an ended task, as the master hears it. */
static int outcome_of(const ia_task_ctx *t) {
  ia_code why = (ia_code)atomic_load(&t->cancel_why);
  bool stopped = atomic_load(&t->cancelled) && (why == IA_DEADLINE_EXCEEDED || why == IA_SHUTTING_DOWN) &&
                 (t->outcome == IA__OUTCOME_NONE || t->outcome == IA__OUTCOME_INVALID ||
                  (t->outcome == IA__OUTCOME_FAIL && t->fail_code == IA_CANCELLED));
  if (stopped) return why == IA_DEADLINE_EXCEEDED ? IA_STATS_DEADLINE_EXCEEDED : IA_STATS_CANCELLED;
  switch (t->outcome) {
  case IA__OUTCOME_RESULT:
    return IA_STATS_COMPLETED;
  case IA__OUTCOME_FAIL:
    return t->fail_code == IA_CANCELLED           ? IA_STATS_CANCELLED
           : t->fail_code == IA_DEADLINE_EXCEEDED ? IA_STATS_DEADLINE_EXCEEDED
                                                  : IA_STATS_FAILED;
  default:
    return IA_STATS_ERROR;
  }
}

void ia__stats_task(ia_task_ctx *ctx, uint64_t ran_ns) {
  ia__mstats *m = mstats_of(ctx);
  int outcome = outcome_of(ctx);
  ia__count(&m->tasks[outcome], 1);
  /* One line per task that did not complete; none for those that did. */
  if (outcome != IA_STATS_COMPLETED)
    IA__INFO("slave: task %llu (%s) of %s ended %s", (unsigned long long)ctx->id, ctx->method, ctx->conn->label,
             outcome_names[outcome]);
  if (ran_ns) ia__histo_add(m->buckets, &m->sum_ns, ran_ns);
}

void ia__stats_refused(ia__sconn *c, uint64_t id, int reason) {
  ia__count(&c->slave->stats.refusals[reason], 1);
  IA__INFO("slave: task %llu of %s refused: %s", (unsigned long long)id, c->label, refusal_names[reason]);
}


static void copy_method(ia_method_stats *out, const char *name, ia__mstats *m) {
  memset(out, 0, sizeof *out);
  size_t n = strlen(name);
  if (n >= sizeof out->method) n = sizeof out->method - 1;
  memcpy(out->method, name, n);
  for (int i = 0; i < IA_STATS_OUTCOMES; i++)
    out->tasks[i] = ia__load(&m->tasks[i]);
  for (int i = 0; i <= IA_STATS_BUCKETS; i++)
    out->durations[i] = ia__load(&m->buckets[i]);
  out->duration_sum_s = (double)ia__load(&m->sum_ns) / 1e9;
}

ia_code ia_slave_stats_get(ia_slave *s, ia_slave_stats *out) {
  if (!s || !out) return IA_INVALID_ARGUMENT;
  memset(out, 0, sizeof *out);
  /* The method table is fixed once the slave runs: read without a lock. */
  out->methods = calloc(s->n_methods + 1, sizeof *out->methods);
  if (!out->methods) return IA_NO_MEMORY;
  out->n_methods = s->n_methods + 1;
  for (size_t i = 0; i < s->n_methods; i++)
    copy_method(&out->methods[i], s->methods[i].method, &s->methods[i].st);
  copy_method(&out->methods[s->n_methods], "", &s->stats.other);
  for (int i = 0; i < IA_STATS_REFUSALS; i++)
    out->refusals[i] = ia__load(&s->stats.refusals[i]);
  out->received_bytes = ia__load(&s->stats.rx_bytes);
  out->sent_bytes = ia__load(&s->stats.tx_bytes);
  pthread_mutex_lock(&s->mu);
  out->running = s->pool.on ? s->pool.n_running : (s->slot && s->slot->started ? 1u : 0u);
  out->queued = s->pool.n_waiting;
  out->connections = s->n_conns;
  pthread_mutex_unlock(&s->mu);
  return IA_OK;
}

void ia__stats_answer(ia__sconn *c, uint64_t id, ia__reader who) {
  ia_slave_stats st;
  if (ia_slave_stats_get(c->slave, &st) != IA_OK) {
    ia__sconn_status(c, id, INTERACTION__V1__FRAME__BODY_REFUSAL, IA_NO_MEMORY, "no memory for the stats",
                     NULL, who);
    return;
  }
  Interaction__V1__MethodStats *ms = calloc(st.n_methods, sizeof *ms);
  Interaction__V1__MethodStats **mp = calloc(st.n_methods, sizeof *mp);
  double le[IA_STATS_BUCKETS];
  for (int k = 0; k < IA_STATS_BUCKETS; k++)
    le[k] = ia_stats_bucket_le(k);
  bool built = false;
  ia__wframe w;
  if (ms && mp) {
    for (size_t i = 0; i < st.n_methods; i++) {
      interaction__v1__method_stats__init(&ms[i]);
      ms[i].method = st.methods[i].method;
      ms[i].n_tasks = IA_STATS_OUTCOMES;
      ms[i].tasks = st.methods[i].tasks;
      ms[i].n_durations = IA_STATS_BUCKETS + 1;
      ms[i].durations = st.methods[i].durations;
      ms[i].has_duration_sum_s = 1;
      ms[i].duration_sum_s = st.methods[i].duration_sum_s;
      mp[i] = &ms[i];
    }
    Interaction__V1__Stats m = INTERACTION__V1__STATS__INIT;
    m.n_methods = st.n_methods;
    m.methods = mp;
    m.n_refusals = IA_STATS_REFUSALS;
    m.refusals = st.refusals;
    m.has_running = m.has_queued = m.has_connections = m.has_received_bytes = m.has_sent_bytes = 1;
    m.running = st.running;
    m.queued = st.queued;
    m.connections = st.connections;
    m.received_bytes = st.received_bytes;
    m.sent_bytes = st.sent_bytes;
    m.n_bucket_le = IA_STATS_BUCKETS;
    m.bucket_le = le;
    built = ia__wframe_message(&w, id, INTERACTION__V1__FRAME__BODY_STATS, &m.base);
  }
  free(ms);
  free(mp);
  ia_slave_stats_clear(&st);
  if (!built) {
    ia__sconn_status(c, id, INTERACTION__V1__FRAME__BODY_REFUSAL, IA_NO_MEMORY, "no memory for the stats",
                     NULL, who);
    return;
  }
  (void)ia__sconn_send(c, &w, who);
  ia__wframe_release(&w);
}

void ia_slave_stats_clear(ia_slave_stats *st) {
  if (!st) return;
  free(st->methods);
  memset(st, 0, sizeof *st);
}
