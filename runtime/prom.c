/*
 * The histogram bounds, counting into a histogram, and the Prometheus text
 * helpers both ends' /metrics use (see histo.h).
 *
 * Never: read a clock or take a lock.
 */
#include "runtime/histo.h"

#include <event2/buffer.h>

/* Upper bounds in nanoseconds. */
static const uint64_t bucket_ns[IA_STATS_BUCKETS] = {100000u,     500000u,     1000000u,     5000000u,
                                                     10000000u,   50000000u,   100000000u,   500000000u,
                                                     1000000000u, 5000000000u, 10000000000u, 60000000000u};

double ia_stats_bucket_le(int i) {
  return i >= 0 && i < IA_STATS_BUCKETS ? (double)bucket_ns[i] / 1e9 : 0;
}

void ia__histo_add(_Atomic uint64_t *buckets, _Atomic uint64_t *sum_ns, uint64_t ns) {
  int k = 0;
  while (k < IA_STATS_BUCKETS && ns > bucket_ns[k])
    k++;
  ia__count(&buckets[k], 1);
  ia__count(sum_ns, ns);
}

void ia__prom_family(struct evbuffer *b, const char *name, const char *type, const char *help) {
  evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void ia__prom_label(struct evbuffer *b, const char *v) {
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      evbuffer_add_printf(b, "\\%c", *v);
    else if (*v == '\n')
      evbuffer_add(b, "\\n", 2);
    else
      evbuffer_add(b, v, 1);
  }
}

void ia__prom_histogram(struct evbuffer *b, const char *name, const char *label, const char *value,
                        const uint64_t *buckets, double sum_s) {
  uint64_t cum = 0;
  for (int k = 0; k <= IA_STATS_BUCKETS; k++) {
    cum += buckets[k];
    evbuffer_add_printf(b, "%s_bucket{%s=\"", name, label);
    ia__prom_label(b, value);
    if (k < IA_STATS_BUCKETS)
      evbuffer_add_printf(b, "\",le=\"%g\"} %llu\n", ia_stats_bucket_le(k), (unsigned long long)cum);
    else
      evbuffer_add_printf(b, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
  }
  evbuffer_add_printf(b, "%s_sum{%s=\"", name, label);
  ia__prom_label(b, value);
  evbuffer_add_printf(b, "\"} %.9f\n%s_count{%s=\"", sum_s, name, label);
  ia__prom_label(b, value);
  evbuffer_add_printf(b, "\"} %llu\n", (unsigned long long)cum);
}
