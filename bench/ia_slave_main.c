/*
 * bench-ia-slave: K Interaction slaves serving bench.Bench in one process.
 *
 *   bench-ia-slave --port 0 --count K [--workers N] [--tls-cert PATH --tls-key PATH]
 *
 * Each slave listens on its own 127.0.0.1 port; one `listening on
 * 127.0.0.1:PORT` line per slave is printed and flushed once all accept
 * connections. Serves until SIGINT or SIGTERM. With a certificate and key
 * every slave requires TLS (ia_slave_config.tls_cert, tls_key).
 *
 * Never: link OpenSSL itself (the library loads it when TLS or a secret
 * asks for it; a plain slave's RSS is a target).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"
#include "ia_peer.h"

static int fail(const char *what, ia_code rc, const ia_error *err) {
  fprintf(stderr, "bench-ia-slave: %s: %s%s%s\n", what, ia_strerror(rc), err && err->message[0] ? ": " : "",
          err ? err->message : "");
  return 1;
}

int main(int argc, char **argv) {
  bench_slave_args args;
  int st = bench_slave_parse_args("bench-ia-slave", argc, argv, &args);
  if (st >= 0) return st;
  if (getenv("IA_LOG") == NULL) ia_log_set_level(IA_LOG_WARN);
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop;
  /* Before any slave thread exists, so none of them takes the signal. */
  bench_block_stop_signals(&stop);

  ia_slave *slaves[BENCH_MAX_PER_PROC] = {0};
  ia_error err = IA_ERROR_INIT;
  int status = 0;
  for (unsigned i = 0; i < args.count && status == 0; i++) {
    ia_slave_config cfg;
    ia_slave_config_init(&cfg);
    cfg.host = "127.0.0.1";
    cfg.port = args.port ? (uint16_t)(args.port + i) : 0;
    cfg.name = "bench-ia-slave";
    cfg.grace_ms = 200;
    cfg.tls_cert = args.tls_cert;
    cfg.tls_key = args.tls_key;
    if (args.workers > 1) {
      cfg.mode = IA_MODE_NONBLOCKING_MULTI;
      cfg.workers = args.workers;
    }
    ia_code rc = ia_slave_new(&cfg, &slaves[i], &err);
    if (rc != IA_OK) {
      status = fail("ia_slave_new", rc, &err);
    } else if ((rc = bench_bench_serve(slaves[i], &bench_ia_handlers, NULL)) != IA_OK) {
      status = fail("register", rc, NULL);
    } else if ((rc = ia_slave_start(slaves[i], &err)) != IA_OK) {
      status = fail("ia_slave_start", rc, &err);
    }
  }
  if (status == 0) {
    for (unsigned i = 0; i < args.count; i++)
      printf("listening on 127.0.0.1:%u\n", ia_slave_port(slaves[i]));
    fflush(stdout);
    if (args.count == 1) {
      ia_code rc = ia_slave_run(slaves[0], &err);
      if (rc != IA_OK) status = fail("ia_slave_run", rc, &err);
    } else {
      int sig;
      sigwait(&stop, &sig);
      for (unsigned i = 0; i < args.count; i++)
        ia_slave_shutdown(slaves[i]);
    }
  }
  for (unsigned i = 0; i < args.count; i++)
    ia_slave_free(slaves[i]);
  ia_error_clear(&err);
  return status;
}
