/*
 * The driver's shared definitions: one workload of shared/BENCH.md, the
 * environment a peer runs it in, and the four operations every peer
 * (run_ia.c, run_floor.c) implements.
 */
#ifndef BENCH_RUN_H
#define BENCH_RUN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certs.h"
#include "common.h"

typedef enum bench_kind {
  BENCH_SUM,
  BENCH_BLOB,
  BENCH_FANOUT,
  BENCH_BUSY,
  BENCH_CONNECT,
} bench_kind;

typedef struct bench_workload {
  const char *name;
  bench_kind kind;
  size_t blob_len;   /* N for blob workloads */
  unsigned procs;    /* slave processes */
  unsigned per_proc; /* workload slaves per process */
  uint64_t calls, warmup;
  uint64_t quick_calls, quick_warmup;
  unsigned in_flight; /* fan-out: calls kept in flight per work slave (0: 1); > 1 also asks the
                         slave for as many workers (--workers) */
  bool secret;        /* both ends hold a shared secret (IA_SECRET): the handshake authenticates */
  bool tls;           /* TLS 1.3: the slaves present a certificate that the master verifies (certs.h) */
} bench_workload;

static inline unsigned bench_in_flight(const bench_workload *w) {
  return w->in_flight ? w->in_flight : 1;
}

typedef struct bench_env {
  const bench_workload *w;
  uint64_t calls, warmup;
  /* Slaves that run the workload (procs * per_proc), by process. */
  size_t n_work;
  uint16_t *work_ports;
  /* One slave per process whose connection reads the process's Stats. For
   * `busy` and `connect` it is an extra slave of the same process (a held
   * slot refuses Stats too; `connect` keeps no connection open). */
  unsigned n_procs;
  uint16_t *stats_ports;
  bool stats_separate;
  const uint8_t *blob;    /* blob_len bytes, built once */
  const bench_certs *tls; /* TLS workloads: the CA and the slaves' certificate; NULL: plain TCP */
  uint64_t deadline_ns;
  char error[256];
} bench_env;

/* What one slave process reports through Stats. */
typedef struct bench_usage {
  uint64_t cpu_us; /* user + sys */
  uint64_t maxrss_kb;
} bench_usage;

typedef struct bench_peer {
  const char *name;
  const char *slave_prog;
  const char *tls_slave_prog; /* for TLS workloads, if another program (NULL: slave_prog) */
  /* Connects (to the stats slaves, and to the work slaves except for
   * `connect`); for `busy` also takes the work slave's slot. */
  int (*open)(bench_env *env, void **state);
  /* Reads the Stats of process `proc`. */
  int (*usage)(void *state, bench_env *env, unsigned proc, bench_usage *out);
  /* Run calls [first, first + count) of the workload: `sequential` for sum
   * and busy, and one operation for each other kind (run.c picks it). `lat`
   * is NULL in the warm-up (blob replies are then compared in full) and has
   * `count` entries otherwise. */
  int (*sequential)(void *state, bench_env *env, uint64_t first, uint64_t count, uint64_t *lat);
  int (*blob)(void *state, bench_env *env, uint64_t count, uint64_t *lat);
  int (*fanout)(void *state, bench_env *env, uint64_t first, uint64_t count, uint64_t *lat);
  int (*connect)(void *state, bench_env *env, uint64_t count, uint64_t *lat);
  void (*close)(void *state, bench_env *env);
} bench_peer;

extern const bench_peer bench_peer_interaction;
extern const bench_peer bench_peer_floor;

/* Operands of sum call i (warm-up included). */
static inline int64_t bench_sum_a(uint64_t i) {
  return 1000 + (int64_t)i;
}
static inline int64_t bench_sum_b(uint64_t i) {
  return 1000000 + 3 * (int64_t)i;
}

/* Checks an echoed blob: in full, or by length and three 8-byte probes. */
bool bench_blob_ok(const bench_env *env, const uint8_t *data, size_t len, bool full);

/* Records why the run failed (the first reason wins); returns -1. */
int bench_fail(bench_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True once the workload's time bound has passed. */
static inline bool bench_expired(const bench_env *env) {
  return bench_now_ns() > env->deadline_ns;
}

#endif
