/* Small helpers shared by the benchmark's programs (common.h): number
 * parsing, the slave programs' command line, the stop signals. Never: any
 * I/O of a peer's wire, or a library beyond libc and pthreads. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

bool bench_parse_uint(const char *text, unsigned long max, unsigned long *out) {
  if (text == NULL || *text < '0' || *text > '9') return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}

int bench_slave_parse_args(const char *prog, int argc, char **argv, bench_slave_args *out) {
  static const struct option options[] = {
      {"port", required_argument, NULL, 'p'},
      {"count", required_argument, NULL, 'c'},
      {"workers", required_argument, NULL, 'w'},
      {"tls-cert", required_argument, NULL, 'C'},
      {"tls-key", required_argument, NULL, 'K'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  out->port = 0;
  out->count = 1;
  out->workers = 1;
  out->tls_cert = out->tls_key = NULL;
  unsigned long v;
  int opt;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'p':
      if (!bench_parse_uint(optarg, 65535, &v)) goto usage;
      out->port = (uint16_t)v;
      break;
    case 'c':
      if (!bench_parse_uint(optarg, BENCH_MAX_PER_PROC, &v) || v == 0) goto usage;
      out->count = (unsigned)v;
      break;
    case 'w':
      if (!bench_parse_uint(optarg, 256, &v) || v == 0) goto usage;
      out->workers = (unsigned)v;
      break;
    case 'C':
      out->tls_cert = optarg;
      break;
    case 'K':
      out->tls_key = optarg;
      break;
    case 'h':
      printf("usage: %s [--port P] [--count K] [--workers N] [--tls-cert PATH --tls-key PATH]\n"
             "  K slaves on 127.0.0.1, ports P, P+1, ... (P = 0: each picks a free one).\n"
             "  N > 1: each runs N tasks at once (non-blocking multi; the floor ignores it).\n"
             "  --tls-cert/--tls-key: TLS 1.3 with this certificate chain and key (PEM).\n"
             "  Prints one `listening on 127.0.0.1:PORT` line per slave, serves until SIGTERM.\n",
             prog);
      return 0;
    default:
      goto usage;
    }
  }
  if (optind == argc && (out->tls_cert == NULL) == (out->tls_key == NULL)) return -1;
usage:
  fprintf(
      stderr,
      "usage: %s [--port P] [--count K (1..%d)] [--workers N (1..256)] [--tls-cert PATH --tls-key PATH]\n",
      prog, BENCH_MAX_PER_PROC);
  return 2;
}

void bench_block_stop_signals(sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, set, NULL);
}
