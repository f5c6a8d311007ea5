/* `interaction stats`'s output: see cli_stats.h. */
#include "cli_stats.h"

#include <inttypes.h>

/* A JSON string. */
static void json_string(FILE *out, const char *s) {
  fputc('"', out);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(out, "\\%c", c);
    else if (c < 0x20)
      fprintf(out, "\\u%04x", c);
    else
      fputc(c, out);
  }
  fputc('"', out);
}

static uint64_t runs(const ia_method_stats *m) {
  uint64_t n = 0;
  for (int k = 0; k <= IA_STATS_BUCKETS; k++)
    n += m->durations[k];
  return n;
}

static void print_json(FILE *out, const char *slave, uint32_t mode, uint32_t capacity,
                       const ia_slave_stats *st) {
  fputs("{\"slave\":", out);
  json_string(out, slave);
  fprintf(out,
          ",\"mode\":\"%s\",\"capacity\":%" PRIu32 ",\"running\":%" PRIu32 ",\"queued\":%" PRIu32
          ",\"connections\":%" PRIu32 ",\"received_bytes\":%" PRIu64 ",\"sent_bytes\":%" PRIu64
          ",\"refusals\":{",
          ia_mode_name(mode), capacity, st->running, st->queued, st->connections, st->received_bytes,
          st->sent_bytes);
  for (int r = 0; r < IA_STATS_REFUSALS; r++)
    fprintf(out, "%s\"%s\":%" PRIu64, r ? "," : "", ia_stats_refusal_name(r), st->refusals[r]);
  fputs("},\"methods\":[", out);
  for (size_t i = 0; i < st->n_methods; i++) {
    const ia_method_stats *m = &st->methods[i];
    fputs(i ? ",{\"method\":" : "{\"method\":", out);
    json_string(out, m->method);
    fputs(",\"tasks\":{", out);
    for (int o = 0; o < IA_STATS_OUTCOMES; o++)
      fprintf(out, "%s\"%s\":%" PRIu64, o ? "," : "", ia_stats_outcome_name(o), m->tasks[o]);
    fprintf(out, "},\"runs\":%" PRIu64 ",\"run_seconds\":%.9f,\"buckets\":[", runs(m), m->duration_sum_s);
    uint64_t cum = 0;
    for (int k = 0; k <= IA_STATS_BUCKETS; k++) {
      cum += m->durations[k];
      if (k < IA_STATS_BUCKETS)
        fprintf(out, "%s{\"le\":%g,\"count\":%" PRIu64 "}", k ? "," : "", ia_stats_bucket_le(k), cum);
      else
        fprintf(out, ",{\"le\":\"+Inf\",\"count\":%" PRIu64 "}", cum);
    }
    fputs("]}", out);
  }
  fputs("]}\n", out);
}

static void print_text(FILE *out, const char *slave, uint32_t mode, uint32_t capacity,
                       const ia_slave_stats *st) {
  fprintf(out, "slave %s: mode %s, capacity %" PRIu32 "\n", slave, ia_mode_name(mode), capacity);
  fprintf(out, "now: %" PRIu32 " running, %" PRIu32 " queued, %" PRIu32 " connection(s)\n", st->running,
          st->queued, st->connections);
  fprintf(out, "bytes: %" PRIu64 " received, %" PRIu64 " sent\n", st->received_bytes, st->sent_bytes);
  fputs("refused:", out);
  for (int r = 0; r < IA_STATS_REFUSALS; r++)
    fprintf(out, " %s %" PRIu64 "%s", ia_stats_refusal_name(r), st->refusals[r],
            r + 1 < IA_STATS_REFUSALS ? "," : "\n");
  for (size_t i = 0; i < st->n_methods; i++) {
    const ia_method_stats *m = &st->methods[i];
    uint64_t n = runs(m);
    fprintf(out, "%s:", m->method[0] ? m->method : "(catch-all handler)");
    for (int o = 0; o < IA_STATS_OUTCOMES; o++)
      fprintf(out, " %s %" PRIu64 ",", ia_stats_outcome_name(o), m->tasks[o]);
    fprintf(out, " ran %" PRIu64 " time(s)", n);
    if (n) fprintf(out, ", %.3f ms on average", m->duration_sum_s * 1000.0 / (double)n);
    fputc('\n', out);
  }
}

void cli_print_stats(FILE *out, bool json, const char *slave, uint32_t mode, uint32_t capacity,
                     const ia_slave_stats *st) {
  (json ? print_json : print_text)(out, slave, mode, capacity, st);
}
