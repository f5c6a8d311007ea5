/*
 * interaction: the command-line tool for the people operating a cluster.
 *
 *   interaction ping HOST:PORT [--channel N] [--count K] [--timeout MS] [--name NAME]
 *   interaction call HOST:PORT [--channel N] [--timeout MS] [--in FILE|-] [--name NAME] METHOD
 *       [--proto FILE [-I DIR]... [--text TEXT] [--fail-type TYPE] [--protoc PATH]]
 *   interaction stats HOST:PORT [--json] [--channel N] [--timeout MS] [--name NAME]
 *   (both also take --heartbeat-ms N and --heartbeat-tolerance-ms N)
 *
 * The command line is cli_args.c's; this file runs the commands.
 *
 * Each command is a short-lived master: it starts an ia_master, connects to one
 * slave, does its work and disconnects gracefully, so that the slave is free
 * for its real master again at once. It only uses the public API.
 *
 * What it must never do: write anything but the reply payload (or, with
 * --proto, its text: cli_proto.c's) to stdout in `call` (scripts pipe it
 * into a decoder), hold a slave's only connection while it waits for its own
 * input or for protoc, or leave a failure without a message that names the
 * code, its name and what the peer said, and a distinct exit status.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli_args.h"
#include "cli_proto.h"
#include "cli_stats.h"
#include "interaction/interaction.h"

/* ---- messages ---- */

/* The peer's message, or the code's own sentence when the peer sent none. */
static const char *error_text(const ia_error *err) {
  if (err->message[0] != '\0') return err->message;
  const char *s = ia_strerror(err->code);
  const char *sep = strstr(s, ": ");
  return sep != NULL ? sep + 2 : s;
}

/* One line on stderr: `interaction: <what>: <code> <NAME>: <message>`, then
 * the size of any attached data. `result_data` names it as a TaskFail's
 * result (always shown) rather than a refusal's data (shown when present). */
static void report(const char *what, const ia_error *err, bool result_data) {
  fprintf(stderr, "interaction: %s: %d %s: %s", what, (int)err->code, ia_code_name(err->code),
          error_text(err));
  if (result_data)
    fprintf(stderr, " (%zu bytes of result data)", err->data_len);
  else if (err->data_len > 0)
    fprintf(stderr, " (%zu bytes of data attached)", err->data_len);
  fputc('\n', stderr);
}

/* A failure of the connection itself, as opposed to an answer of the slave. */
static bool is_transport_code(ia_code code) {
  switch (code) {
  case IA_IO_ERROR:
  case IA_TIMEOUT:
  case IA_CONNECTION_LOST:
  case IA_NOT_CONNECTED:
  case IA_PROTOCOL_ERROR:
    return true;
  default:
    return false;
  }
}

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the session: one master, one connection ---- */

typedef struct session {
  ia_master *master;
  ia_conn *conn;
  uint64_t handshake_us;
} session;

/* Starts a master and connects it. Returns CLI_OK, or the exit status after
 * reporting why (nothing is left allocated then). */
static int session_open(const cli_args *args, bool observe, session *s) {
  memset(s, 0, sizeof *s);
  ia_error err = IA_ERROR_INIT;
  ia_master_config config;
  ia_master_config_init(&config);
  config.name = args->name;
  config.channel = args->channel;
  config.heartbeat_ms = args->heartbeat_ms;
  config.secret_file = args->secret_file;
  config.tls_ca = args->tls_ca;
  config.tls_cert = args->tls_cert;
  config.tls_key = args->tls_key;
  config.heartbeat_tolerance_ms = args->heartbeat_tolerance_ms;
  char what[320];
  snprintf(what, sizeof what, "cannot connect to %s", args->address);
  ia_code rc = ia_master_new(&config, &s->master, &err);
  if (rc == IA_OK) rc = ia_master_start(s->master, &err);
  if (rc != IA_OK) {
    report("cannot start the master", &err, false);
    ia_error_clear(&err);
    ia_master_free(s->master);
    s->master = NULL;
    return CLI_LOCAL;
  }
  uint64_t t0 = now_us();
  /* ping only looks: as an observer it works while a master is attached. */
  if (observe)
    rc =
        ia_master_observe(s->master, args->address, args->host, args->port, args->timeout_ms, &s->conn, &err);
  else
    rc = ia_master_connect(s->master, args->address, args->host, args->port, NULL, 0, args->timeout_ms,
                           &s->conn, &err);
  s->handshake_us = now_us() - t0;
  if (rc == IA_OK) return CLI_OK;
  report(what, &err, false);
  ia_error_clear(&err);
  ia_master_free(s->master);
  s->master = NULL;
  if (rc == IA_NO_MEMORY) return CLI_LOCAL;
  return is_transport_code(rc) || rc == IA_FRAME_TOO_LARGE ? CLI_UNREACHABLE : CLI_CONN_REFUSED;
}

/* Disconnects gracefully. A refusal or a failure is only warned about: the
 * work is done, and session_free() closes the socket anyway. */
static void session_disconnect(const cli_args *args, session *s) {
  if (!ia_conn_is_connected(s->conn)) return;
  ia_error err = IA_ERROR_INIT;
  if (ia_conn_disconnect(s->conn, NULL, 0, args->timeout_ms, &err) != IA_OK) {
    char what[320];
    snprintf(what, sizeof what, "warning: graceful disconnect from %s failed", args->address);
    report(what, &err, false);
  }
  ia_error_clear(&err);
}

/* Frees the connection and the master; every task must be freed first. */
static void session_free(session *s) {
  ia_conn_free(s->conn);
  ia_master_free(s->master);
  s->conn = NULL;
  s->master = NULL;
}

/* ---- ping ---- */

static int cmd_ping(const cli_args *args) {
  session s;
  int status = session_open(args, true, &s);
  if (status != CLI_OK) return status;
  printf("connected to %s (channel %" PRIu32 ") in %.2f ms\n", args->address, args->channel,
         (double)s.handshake_us / 1000.0);
  printf("slave %s: mode %s, capacity %" PRIu32 "\n", ia_conn_slave_name(s.conn),
         ia_mode_name(ia_conn_slave_mode(s.conn)), ia_conn_slave_capacity(s.conn));
  fflush(stdout);
  uint64_t min = UINT64_MAX, max = 0, total = 0;
  unsigned long done = 0;
  for (unsigned long seq = 1; seq <= args->count; seq++) {
    ia_error err = IA_ERROR_INIT;
    uint64_t rtt = 0;
    if (ia_conn_ping(s.conn, args->timeout_ms, &rtt, &err) != IA_OK) {
      char what[320];
      snprintf(what, sizeof what, "ping %lu to %s failed", seq, args->address);
      report(what, &err, false);
      ia_error_clear(&err);
      status = CLI_LOST;
      break;
    }
    printf("pong from %s: seq=%lu rtt=%" PRIu64 " us\n", args->address, seq, rtt);
    fflush(stdout);
    done++;
    total += rtt;
    min = rtt < min ? rtt : min;
    max = rtt > max ? rtt : max;
  }
  if (done > 0)
    printf("%lu of %lu pings answered, rtt min/avg/max = %" PRIu64 "/%" PRIu64 "/%" PRIu64 " us\n", done,
           args->count, min, total / done, max);
  session_disconnect(args, &s);
  session_free(&s);
  return status;
}

/* ---- stats ---- */

static int cmd_stats(const cli_args *args) {
  session s;
  int status = session_open(args, true, &s);
  if (status != CLI_OK) return status;
  ia_error err = IA_ERROR_INIT;
  ia_slave_stats st;
  ia_code rc = ia_conn_slave_stats(s.conn, args->timeout_ms, &st, &err);
  if (rc == IA_OK) {
    cli_print_stats(stdout, args->json, ia_conn_slave_name(s.conn), ia_conn_slave_mode(s.conn),
                    ia_conn_slave_capacity(s.conn), &st);
    ia_slave_stats_clear(&st);
  } else {
    char what[320];
    snprintf(what, sizeof what, "stats from %s failed", args->address);
    report(what, &err, false);
    status = rc == IA_NO_MEMORY ? CLI_LOCAL : is_transport_code(rc) ? CLI_LOST : CLI_TASK_REFUSED;
  }
  ia_error_clear(&err);
  session_disconnect(args, &s);
  session_free(&s);
  return status;
}

/* ---- call ---- */

/* Reads all of `path` ("-" or NULL: stdin) into a malloc'd buffer, refusing
 * more than CLI_INPUT_MAX bytes. False with a message on stderr. */
static bool read_input(const char *path, uint8_t **out, size_t *out_len) {
  bool is_stdin = path == NULL || strcmp(path, "-") == 0;
  const char *shown = is_stdin ? "stdin" : path;
  int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "interaction: cannot open %s: %s\n", shown, strerror(errno));
    return false;
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  bool ok = true;
  for (;;) {
    if (len == cap) {
      if (cap >= CLI_INPUT_MAX) {
        fprintf(stderr, "interaction: %s: the request is larger than %lu bytes\n", shown, CLI_INPUT_MAX);
        ok = false;
        break;
      }
      size_t ncap = cap == 0 ? 4096 : cap * 2;
      if (ncap > CLI_INPUT_MAX) ncap = CLI_INPUT_MAX;
      /* One spare byte so that a request of exactly the cap is told apart
       * from a longer one by the next read. */
      uint8_t *nbuf = realloc(buf, ncap + 1);
      if (nbuf == NULL) {
        fprintf(stderr, "interaction: no memory for the request\n");
        ok = false;
        break;
      }
      buf = nbuf;
      cap = ncap;
    }
    ssize_t n = read(fd, buf + len, cap + 1 - len);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      fprintf(stderr, "interaction: cannot read %s: %s\n", shown, strerror(errno));
      ok = false;
      break;
    }
    len += (size_t)n;
    if (len > CLI_INPUT_MAX) {
      fprintf(stderr, "interaction: %s: the request is larger than %lu bytes\n", shown, CLI_INPUT_MAX);
      ok = false;
      break;
    }
  }
  if (!is_stdin) close(fd);
  if (!ok) {
    free(buf);
    return false;
  }
  *out = buf;
  *out_len = len;
  return true;
}

static bool write_all(int fd, const uint8_t *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buf += n;
    len -= (size_t)n;
  }
  return true;
}

/* The exit status of a call that did not return a reply. ia_call() gives
 * the code only, so the code decides: the slave's refusal codes (the task was
 * not run) are 6, a transport failure after the handshake is 7, and every
 * other code, including whatever code a handler fails with, is a failed task.
 * 606 is 6 whether the slave refused the method or a catch-all handler
 * failed with it: an operator's script must not have to know which. */
static int call_outcome(ia_code code) {
  if (code == IA_TIMEOUT) return CLI_TASK_FAILED; /* no answer within --timeout; the task was cancelled */
  if (is_transport_code(code)) return CLI_LOST;
  switch (code) {
  case IA_SHUTTING_DOWN:
  case IA_TASK_ALREADY_EXIST:
  case IA_TASK_REFUSED:
  case IA_QUEUE_FULL:
  case IA_UNKNOWN_METHOD:
    return CLI_TASK_REFUSED;
  case IA_FRAME_TOO_LARGE: /* the master checks the size before it sends: nothing reached the slave */
  case IA_NO_MEMORY:
  case IA_INVALID_ARGUMENT:
    return CLI_LOCAL;
  default: /* 603, 604, 607, 608, a handler's own code */
    return CLI_TASK_FAILED;
  }
}

/* The request payload: the raw bytes of --in/stdin, or with --proto the text
 * of --text or --in/stdin encoded by protoc. Returns CLI_OK with a malloc'd
 * *req, or the exit status after saying why. */
static int call_request(const cli_args *args, const cli_proto *proto, uint8_t **req, size_t *req_len) {
  uint8_t *input = NULL;
  size_t input_len = 0;
  if (args->text == NULL && !read_input(args->in, &input, &input_len)) return CLI_LOCAL;
  if (args->proto == NULL) {
    *req = input;
    *req_len = input_len;
    return CLI_OK;
  }
  const void *text = args->text != NULL ? (const void *)args->text : input;
  size_t text_len = args->text != NULL ? strlen(args->text) : input_len;
  bool ok = cli_proto_encode(proto, text, text_len, req, req_len);
  free(input);
  return ok ? CLI_OK : CLI_LOCAL;
}

/* A TaskFail's result with --proto: on stderr, under a line that says what
 * it is, as text; a result protoc cannot print leaves the exit status as it
 * is (the task failed either way). */
static void print_fail_result(const cli_proto *proto, const ia_error *err) {
  if (err->data_len == 0) return;
  if (proto->fail_type != NULL)
    fprintf(stderr, "interaction: the result data as %s:\n", proto->fail_type);
  else
    fprintf(stderr, "interaction: the result data by field number (--fail-type names its type):\n");
  bool shown =
      cli_proto_print(proto, proto->fail_type, "the result data", err->data, err->data_len, STDERR_FILENO);
  (void)shown; /* if not, protoc's complaint is on stderr already */
}

/* One blocking ia_call(): the path the generated typed stubs take. With
 * --proto, protoc runs before the session and after it, never during it. */
static int cmd_call(const cli_args *args) {
  cli_proto proto = {0};
  int status = args->proto != NULL ? cli_proto_open(args, &proto) : CLI_OK;
  uint8_t *req = NULL;
  size_t req_len = 0;
  /* The whole request first: a slave serves one master at a time, and a
   * slow pipe must not hold its connection. */
  if (status == CLI_OK) status = call_request(args, &proto, &req, &req_len);
  session s;
  if (status == CLI_OK) status = session_open(args, false, &s);
  if (status != CLI_OK) {
    free(req);
    cli_proto_free(&proto);
    return status;
  }
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_call(s.conn, args->method, req, req_len, &reply, &reply_len, args->timeout_ms, &err);
  free(req);
  bool fail_result = false;
  if (rc != IA_OK) {
    status = call_outcome(rc);
    char what[320];
    if (status == CLI_LOST)
      snprintf(what, sizeof what, "connection to %s lost during the call", args->address);
    else
      snprintf(what, sizeof what, "call %s", status == CLI_TASK_REFUSED ? "refused" : "failed");
    /* A TaskFail's result is worth naming as such; a refusal's data too. */
    fail_result = status == CLI_TASK_FAILED && rc != IA_TIMEOUT;
    report(what, &err, fail_result);
  }
  /* Disconnect before writing: the slave is free for others while our
   * reader consumes the reply. */
  session_disconnect(args, &s);
  session_free(&s);
  if (fail_result && args->proto != NULL) print_fail_result(&proto, &err);
  ia_error_clear(&err);
  if (status == CLI_OK && args->proto != NULL) {
    if (!cli_proto_print(&proto, proto.reply_type, "the reply", reply, reply_len, STDOUT_FILENO))
      status = CLI_LOCAL;
  } else if (status == CLI_OK && !write_all(STDOUT_FILENO, reply, reply_len)) {
    fprintf(stderr, "interaction: cannot write the reply to stdout: %s\n", strerror(errno));
    status = CLI_LOCAL;
  }
  free(reply);
  cli_proto_free(&proto);
  return status;
}

int main(int argc, char **argv) {
  /* A vanished reader of stdout becomes EPIPE and a message, not a silent
   * death; the library's sockets never raise SIGPIPE either way. */
  signal(SIGPIPE, SIG_IGN);
  /* Library warnings would interleave with our own messages; IA_LOG still
   * turns them on for debugging. */
  if (getenv("IA_LOG") == NULL) ia_log_set_level(IA_LOG_ERROR);
  if (argc < 2) {
    fputs("interaction: missing command\n\n", stderr);
    cli_usage_main(stderr);
    return CLI_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
    cli_usage_main(stdout);
    return CLI_OK;
  }
  command cmd;
  if (strcmp(name, "ping") == 0) {
    cmd = CMD_PING;
  } else if (strcmp(name, "call") == 0) {
    cmd = CMD_CALL;
  } else if (strcmp(name, "stats") == 0) {
    cmd = CMD_STATS;
  } else {
    fprintf(stderr, "interaction: unknown command '%s'\n\n", name);
    cli_usage_main(stderr);
    return CLI_USAGE;
  }
  cli_args args;
  int status = cli_parse_args(cmd, argc - 1, argv + 1, &args);
  if (status >= 0) return status;
  return cmd == CMD_PING ? cmd_ping(&args) : cmd == CMD_STATS ? cmd_stats(&args) : cmd_call(&args);
}
