/*
 * The slave's counters (stats.c): tasks by method and outcome, their
 * durations, refusals by reason, bytes in and out. Relaxed atomics that the
 * threads that do the work add to; a snapshot (ia_slave_stats_get) and the
 * Prometheus text (/metrics, metrics.c) read them.
 *
 * Never: take a lock to count, or read a clock other than the two around a
 * handler.
 */
#ifndef IA__SLAVE_STATS_H
#define IA__SLAVE_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "interaction/slave.h"
#include "runtime/histo.h"

/* One method's counters (or the catch-all handler's). */
typedef struct ia__mstats {
  /* What every task counts first, then its bucket: in that order, a short
   * task's counting touches two cache lines, not three. */
  _Atomic uint64_t tasks[IA_STATS_OUTCOMES];
  _Atomic uint64_t sum_ns;
  _Atomic uint64_t buckets[IA_STATS_BUCKETS + 1]; /* not cumulative; the last is over every bound */
} ia__mstats;

/* The slave's own. */
typedef struct ia__sstats {
  _Atomic uint64_t refusals[IA_STATS_REFUSALS];
  _Atomic uint64_t rx_bytes, tx_bytes;
  ia__mstats other; /* tasks run by the config's handler: method "" */
} ia__sstats;

struct ia_task_ctx;
/* The task ended (ran or not): its outcome, and how long its handler ran
 * (0: it never ran). */
void ia__stats_task(struct ia_task_ctx *ctx, uint64_t ran_ns);
/* Task `id` of c refused for `reason` (an IA_STATS_REFUSED_* index). */
struct ia__sconn;
void ia__stats_refused(struct ia__sconn *c, uint64_t id, int reason);

#endif
