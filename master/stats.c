/*
 * A slave's counters as the master reads them over the wire: a
 * StatsRequest on the connection (an observer's, or the master's own) and
 * the Stats it answers, decoded into the ia_slave_stats of
 * interaction/slave.h.
 *
 * Never: trust the slave's arrays to have the lengths this version
 * expects: what is missing reads 0, what is more is dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
