/* Small helpers shared by the benchmark's programs. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* The most slaves one slave process serves (shared/BENCH.md: 16 per process,
 * plus one for Stats). */
#define BENCH_MAX_PER_PROC 64

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Parses a whole decimal number in [0, max]; false on anything else. */
bool bench_parse_uint(const char *text, unsigned long max, unsigned long *out);

/* The command line of the slave programs: `--port P --count K [--workers N]
 * [--tls-cert PATH --tls-key PATH]` (N > 1: bench-ia-slave runs non-blocking
 * multi with N workers; the floor's slave is single-threaded whatever N
 * says. With a certificate every slave speaks TLS 1.3 only).
 * Returns -1 to go on, or an exit status (0 after --help, 2 on misuse). */
typedef struct bench_slave_args {
  uint16_t port;                  /* first port; 0 lets every slave pick its own */
  unsigned count;                 /* slaves in this process */
  unsigned workers;               /* tasks each slave runs at once (1: the default mode) */
  const char *tls_cert, *tls_key; /* PEM files, both or neither (argv's strings); NULL: plain TCP */
} bench_slave_args;
int bench_slave_parse_args(const char *prog, int argc, char **argv, bench_slave_args *out);

/* Blocks SIGINT and SIGTERM in the calling thread (threads created later
 * inherit it) and fills `set` with them, for sigwait(). */
void bench_block_stop_signals(sigset_t *set);

#endif
