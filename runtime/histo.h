/*
 * The statistics both ends keep: a histogram with the bounds of
 * IA_STATS_BUCKETS (status.h), counted with relaxed atomics; and the
 * Prometheus text format those counters are served in (prom.c).
 *
 * Never: take a lock, or allocate, to count.
 */
#ifndef IA__HISTO_H
#define IA__HISTO_H

#include <stdatomic.h>
#include <stdint.h>

#include "interaction/status.h"

static inline void ia__count(_Atomic uint64_t *c, uint64_t n) {
  atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t ia__load(_Atomic uint64_t *c) {
  return atomic_load_explicit(c, memory_order_relaxed);
}

/* Counts one value of `ns` nanoseconds into buckets[IA_STATS_BUCKETS + 1]
 * (not cumulative) and *sum_ns. */
void ia__histo_add(_Atomic uint64_t *buckets, _Atomic uint64_t *sum_ns, uint64_t ns);

/* ---- Prometheus text (0.0.4), into a libevent buffer ---- */

struct evbuffer;
/* # HELP and # TYPE of a family. */
void ia__prom_family(struct evbuffer *b, const char *name, const char *type, const char *help);
/* A label value, escaped as the format wants. */
void ia__prom_label(struct evbuffer *b, const char *value);
/* The samples of one histogram `name` whose one label is label=value:
 * buckets (not cumulative, IA_STATS_BUCKETS + 1 of them) and the sum. */
void ia__prom_histogram(struct evbuffer *b, const char *name, const char *label, const char *value,
                        const uint64_t *buckets, double sum_s);

#endif
