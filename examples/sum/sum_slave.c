/*
 * sum-slave: serves the sum example's typed handlers (sum.Adder, see
 * sum_handlers.h) until SIGINT or SIGTERM. Any other method is refused with
 * 606 UNKNOWN_METHOD.
 *
 *   sum-slave --host H --port P --channel C [--grace-ms N] [--name NAME]
 *
 * Once it accepts connections it prints exactly one line, `listening on H:P`
 * with the port actually bound (useful with --port 0), and flushes stdout, so
 * that a script can wait for that line before it starts a master.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interaction/interaction.h"
#include "sum_handlers.h"

static void usage(FILE *out) {
  fprintf(out, "usage: sum-slave [--host H] [--port P] [--channel C] [--grace-ms N] [--name NAME]\n"
               "\n"
               "  --host H       address to bind (default 127.0.0.1)\n"
               "  --port P       port to bind; 0 picks a free one (default 0)\n"
               "  --channel C    channel a master must present (default 0)\n"
               "  --grace-ms N   shutdown grace for a running task (default 2000)\n"
               "  --name NAME    name sent to the master (default \"sum-slave\")\n"
               "  --help         this text\n"
               "\n"
               "Prints `listening on H:P` once it accepts connections; serves until SIGINT or SIGTERM.\n");
}

/* Parses a whole decimal number in [0, max]; false on anything else. */
static bool parse_uint(const char *text, unsigned long max, unsigned long *out) {
  if (text == NULL || *text == '\0' || *text == '-' || *text == '+') return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}

static int fail(const char *what, ia_code code, const ia_error *err) {
  fprintf(stderr, "sum-slave: %s: %s", what, ia_strerror(code));
  if (err != NULL && err->message[0] != '\0') fprintf(stderr, " (%s)", err->message);
  fputc('\n', stderr);
  return 1;
}

/* Fills `config` from the command line. Returns -1 to go on, or the exit
 * status (0 after --help, 2 after a usage error). */
static int parse_args(int argc, char **argv, ia_slave_config *config) {
  static const struct option options[] = {
      {"host", required_argument, NULL, 'h'},
      {"port", required_argument, NULL, 'p'},
      {"channel", required_argument, NULL, 'c'},
      {"grace-ms", required_argument, NULL, 'g'},
      {"name", required_argument, NULL, 'n'},
      {"help", no_argument, NULL, 'H'},
      {NULL, 0, NULL, 0},
  };
  int opt;
  unsigned long v;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'h':
      config->host = optarg;
      break;
    case 'p':
      if (!parse_uint(optarg, UINT16_MAX, &v)) goto bad_value;
      config->port = (uint16_t)v;
      break;
    case 'c':
      if (!parse_uint(optarg, UINT32_MAX, &v)) goto bad_value;
      config->channel = (uint32_t)v;
      break;
    case 'g':
      if (!parse_uint(optarg, UINT32_MAX, &v)) goto bad_value;
      config->grace_ms = (uint32_t)v;
      break;
    case 'n':
      config->name = optarg;
      break;
    case 'H':
      usage(stdout);
      return 0;
    default: /* getopt_long already said what was wrong */
      usage(stderr);
      return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "sum-slave: unexpected argument '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  return -1;

bad_value:
  fprintf(stderr, "sum-slave: invalid number '%s'\n", optarg);
  usage(stderr);
  return 2;
}

int main(int argc, char **argv) {
  ia_slave_config config;
  ia_slave_config_init(&config);
  config.host = "127.0.0.1";
  config.name = "sum-slave";
  int rc = parse_args(argc, argv, &config);
  if (rc >= 0) return rc;

  /* Block SIGINT and SIGTERM before the slave starts its threads, which
   * inherit this mask: ia_slave_run() then receives both with sigtimedwait()
   * on this thread, and a signal that arrives while it shuts down (or before
   * it runs) cannot fall on another thread and kill the process by default. */
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  ia_code code = ia_slave_new(&config, &slave, &err);
  if (code != IA_OK) {
    rc = fail("cannot create the slave", code, &err);
    ia_error_clear(&err);
    return rc;
  }
  /* The generated sum_adder_serve() registers one handler per method. */
  code = sum_serve(slave);
  if (code != IA_OK) {
    rc = fail("cannot register the handlers", code, NULL);
    ia_slave_free(slave);
    return rc;
  }
  code = ia_slave_start(slave, &err);
  if (code != IA_OK) {
    rc = fail("cannot start", code, &err);
    ia_error_clear(&err);
    ia_slave_free(slave);
    return rc;
  }
  printf("listening on %s:%" PRIu16 "\n", config.host, ia_slave_port(slave));
  fflush(stdout);

  /* ia_slave_run() sees the slave already started and serves until SIGINT or
   * SIGTERM, then shuts down (cancelling a task after the grace) and joins. */
  code = ia_slave_run(slave, &err);
  rc = code == IA_OK ? 0 : fail("stopped with an error", code, &err);
  ia_error_clear(&err);
  ia_slave_free(slave);
  return rc;
}
