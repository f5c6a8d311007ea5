/*
 * ia_slave_main(): the whole main() of a slave program (slave.h): its
 * command line, the signal mask, the `listening on H:P` line, and serving
 * until SIGINT or SIGTERM. The flags are the contract every slave program
 * shares (sum-slave's, learner-slave's): --host, --port, --channel, ...,
 * --secret-file, --tls-cert, --tls-key, --tls-ca.
 *
 * Never: exit() or print anything but its usage, that one line (and the
 * metrics line) and its errors; it returns the exit status instead.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interaction/slave.h"

static void slave_usage(FILE *out, const ia_slave_main_spec *spec) {
  fprintf(out,
          "usage: %s [--host H] [--port P] [--channel C] [--grace-ms N] [--name NAME]\n"
          "       [--heartbeat-ms N] [--heartbeat-tolerance-ms N]\n"
          "       [--mode nonblocking-single|nonblocking-multi|blocking-single|blocking-multi]\n"
          "       [--workers N] [--queue N] [--metrics HOST:PORT] [--secret-file PATH]\n"
          "       [--tls-cert PATH --tls-key PATH [--tls-ca PATH]]\n"
          "\n"
          "  --host H       address to bind (default 127.0.0.1)\n"
          "  --port P       port to bind; 0 picks a free one (default 0)\n"
          "  --channel C    channel a master must present (default 0)\n"
          "  --grace-ms N   shutdown grace for a running task (default 2000)\n"
          "  --name NAME    %s (default \"%s\")\n"
          "  --heartbeat-ms N\n"
          "                 heartbeat interval a master may agree to; 0 turns\n"
          "                 heartbeats off (default %u)\n"
          "  --heartbeat-tolerance-ms N\n"
          "                 a master silent this long is dropped; 0 turns\n"
          "                 heartbeats off (default %u)\n"
          "  --mode M       how tasks are taken (default nonblocking-single: one at a\n"
          "                 time, another refused with 601; -multi: --workers at a\n"
          "                 time; blocking-: the others wait in a queue of --queue,\n"
          "                 full: 605)\n"
          "  --workers N    tasks at once in the multi modes (default 4)\n"
          "  --queue N      tasks that may wait in the blocking modes (default 16)\n"
          "  --metrics HOST:PORT\n"
          "                 serve Prometheus /metrics and /healthz over HTTP there\n"
          "                 (port 0 picks one: printed as `metrics on H:P` after\n"
          "                 the `listening on` line)\n"
          "  --secret-file PATH\n"
          "                 admit only masters that prove they hold the secret in\n"
          "                 this file (default: the IA_SECRET environment variable\n"
          "                 if it is set, else none)\n"
          "  --tls-cert PATH, --tls-key PATH\n"
          "                 serve TLS 1.3 with this certificate chain and key (PEM);\n"
          "                 masters must then connect with TLS\n"
          "  --tls-ca PATH  with TLS, admit only masters with a client certificate\n"
          "                 this CA (PEM) signed (mutual TLS)\n"
          "  --help         this text\n"
          "\n"
          "%s",
          spec->program, spec->name_help, spec->default_name, IA_HEARTBEAT_DEFAULT_MS,
          IA_HEARTBEAT_TOLERANCE_DEFAULT_MS, spec->about);
}

static int slave_fail(const ia_slave_main_spec *spec, const char *what, ia_code code, const ia_error *err) {
  fprintf(stderr, "%s: %s: %s", spec->program, what, ia_strerror(code));
  if (err != NULL && err->message[0] != '\0') fprintf(stderr, " (%s)", err->message);
  fputc('\n', stderr);
  return 1;
}

/* A number argument into a 32-bit field; false if it is not one. */
static bool u32_arg(const char *arg, uint32_t *out) {
  unsigned long v;
  if (!ia_parse_uint(arg, UINT32_MAX, &v)) return false;
  *out = (uint32_t)v;
  return true;
}

/* Fills `config` from the command line. Returns -1 to go on, or the exit
 * status (0 after --help, 2 after a usage error). */
static int slave_parse_args(int argc, char **argv, const ia_slave_main_spec *spec, ia_slave_config *config) {
  static const struct option options[] = {
      {"host", required_argument, NULL, 'h'},
      {"port", required_argument, NULL, 'p'},
      {"channel", required_argument, NULL, 'c'},
      {"grace-ms", required_argument, NULL, 'g'},
      {"name", required_argument, NULL, 'n'},
      {"heartbeat-ms", required_argument, NULL, 'b'},
      {"heartbeat-tolerance-ms", required_argument, NULL, 't'},
      {"mode", required_argument, NULL, 'm'},
      {"workers", required_argument, NULL, 'w'},
      {"queue", required_argument, NULL, 'q'},
      {"metrics", required_argument, NULL, 'M'},
      {"secret-file", required_argument, NULL, 'S'},
      {"tls-cert", required_argument, NULL, 'C'},
      {"tls-key", required_argument, NULL, 'K'},
      {"tls-ca", required_argument, NULL, 'A'},
      {"help", no_argument, NULL, 'H'},
      {NULL, 0, NULL, 0},
  };
  int opt;
  unsigned long v;
  optind = 1;
  while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
    switch (opt) {
    case 'h':
      config->host = optarg;
      break;
    case 'p':
      if (!ia_parse_uint(optarg, UINT16_MAX, &v)) goto bad_value;
      config->port = (uint16_t)v;
      break;
    case 'c':
      if (!u32_arg(optarg, &config->channel)) goto bad_value;
      break;
    case 'g':
      if (!u32_arg(optarg, &config->grace_ms)) goto bad_value;
      break;
    case 'n':
      config->name = optarg;
      break;
    case 'b':
      if (!u32_arg(optarg, &config->heartbeat_ms)) goto bad_value;
      break;
    case 't':
      if (!u32_arg(optarg, &config->heartbeat_tolerance_ms)) goto bad_value;
      break;
    case 'm': {
      bool known = false;
      for (uint32_t m = IA_MODE_NONBLOCKING_SINGLE; m <= IA_MODE_BLOCKING_MULTI && !known; m++)
        if (strcmp(optarg, ia_mode_name(m)) == 0) {
          config->mode = (ia_mode)m;
          known = true;
        }
      if (!known) {
        fprintf(stderr, "%s: unknown mode '%s'\n", spec->program, optarg);
        slave_usage(stderr, spec);
        return 2;
      }
      break;
    }
    case 'w':
      if (!u32_arg(optarg, &config->workers)) goto bad_value;
      break;
    case 'q':
      if (!u32_arg(optarg, &config->queue)) goto bad_value;
      break;
    case 'M':
      if (!strchr(optarg, ':')) {
        fprintf(stderr, "%s: --metrics takes HOST:PORT, not '%s'\n", spec->program, optarg);
        slave_usage(stderr, spec);
        return 2;
      }
      config->metrics_addr = optarg;
      break;
    case 'S':
      config->secret_file = optarg;
      break;
    case 'C':
      config->tls_cert = optarg;
      break;
    case 'K':
      config->tls_key = optarg;
      break;
    case 'A':
      config->tls_ca = optarg;
      break;
    case 'H':
      slave_usage(stdout, spec);
      return 0;
    default: /* getopt_long already said what was wrong */
      slave_usage(stderr, spec);
      return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "%s: unexpected argument '%s'\n", spec->program, argv[optind]);
    slave_usage(stderr, spec);
    return 2;
  }
  return -1;

bad_value:
  fprintf(stderr, "%s: invalid number '%s'\n", spec->program, optarg);
  slave_usage(stderr, spec);
  return 2;
}

int ia_slave_main(int argc, char **argv, const ia_slave_main_spec *spec) {
  ia_slave_config config;
  ia_slave_config_init(&config);
  config.host = "127.0.0.1";
  config.name = spec->default_name;
  int rc = slave_parse_args(argc, argv, spec, &config);
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
    rc = slave_fail(spec, "cannot create the slave", code, &err);
    goto out;
  }
  code = spec->serve(slave, &config, spec->user);
  if (code != IA_OK) {
    rc = slave_fail(spec, "cannot register the handlers", code, NULL);
    goto out;
  }
  code = ia_slave_start(slave, &err);
  if (code != IA_OK) {
    rc = slave_fail(spec, "cannot start", code, &err);
    goto out;
  }
  printf("listening on %s:%" PRIu16 "\n", config.host, ia_slave_port(slave));
  if (config.metrics_addr) {
    /* The host as given, the port as bound (0 picks one). */
    const char *colon = strrchr(config.metrics_addr, ':');
    printf("metrics on %.*s:%" PRIu16 "\n", (int)(colon - config.metrics_addr), config.metrics_addr,
           ia_slave_metrics_port(slave));
  }
  fflush(stdout);

  /* ia_slave_run() sees the slave already started and serves until SIGINT or
   * SIGTERM, then shuts down (cancelling a task after the grace) and joins. */
  code = ia_slave_run(slave, &err);
  rc = code == IA_OK ? 0 : slave_fail(spec, "stopped with an error", code, &err);
out:
  ia_error_clear(&err);
  ia_slave_free(slave);
  return rc;
}
