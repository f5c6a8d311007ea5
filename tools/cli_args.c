/* The command line of the `interaction` tool: see cli_args.h. */
#include "cli_args.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char exit_status_help[] =
    "exit status:\n"
    "  0  success\n"
    "  1  local error: cannot read the request or write the reply, out of memory,\n"
    "     or a request larger than the slave accepts (703 FRAME_TOO_LARGE; not sent);\n"
    "     with --proto also: no such .proto, no protoc, METHOD or --fail-type not in\n"
    "     the .proto, a request protoc cannot encode (nothing sent), or a reply it\n"
    "     cannot decode\n"
    "  2  usage error\n"
    "  3  cannot reach the slave: name resolution, connect, I/O error or timeout\n"
    "     during the handshake (e.g. 706 IO_ERROR, 702 TIMEOUT)\n"
    "  4  the slave refused the connection at the handshake (202 CHANNEL_INVALID,\n"
    "     201 CHANNEL_NOT_FOUND, 301/302 token, 501 ALREADY_CONNECTED,\n"
    "     503 CONNECTION_REFUSED, 705 VERSION_UNSUPPORTED, 101 SHUTTING_DOWN)\n"
    "  5  the task failed: a TaskFail (603 TASK_FAILED or the handler's own code),\n"
    "     604 TASK_ERROR, 607 DEADLINE_EXCEEDED, 608 CANCELLED, or no answer\n"
    "     within --timeout (702 TIMEOUT)\n"
    "  6  the slave refused the task and did not run it (601 TASK_ALREADY_EXIST,\n"
    "     602 TASK_REFUSED, 605 QUEUE_FULL, 101 SHUTTING_DOWN),\n"
    "     or has no such method (606 UNKNOWN_METHOD, refused or failed)\n"
    "  7  the connection was lost after the handshake (701 CONNECTION_LOST), or a\n"
    "     ping got no answer\n";

void cli_usage_main(FILE *out) {
  fprintf(out,
          "usage: interaction <command> [options]\n"
          "\n"
          "Talks to one Interaction slave as a short-lived master.\n"
          "\n"
          "commands:\n"
          "  ping HOST:PORT         handshake, then round trips (Ping/Pong)\n"
          "  call HOST:PORT METHOD  one task: request from a file or stdin, reply to stdout\n"
          "  stats HOST:PORT        the slave's counters (as an observer), as text or --json\n"
          "\n"
          "Run `interaction <command> --help` for the options of a command.\n"
          "\n"
          "%s",
          exit_status_help);
}

/* The options every command has, and the end of its help. */
static void common_options(FILE *out, bool host_note) {
  fprintf(out,
          "  --heartbeat-ms N, --heartbeat-tolerance-ms N\n"
          "                 heartbeat interval and tolerance proposed to the slave;\n"
          "                 0 turns heartbeats off (defaults %u and %u)\n"
          "  --secret-file PATH\n"
          "                 prove the slave's shared secret, read from PATH (default:\n"
          "                 the IA_SECRET environment variable if it is set, else none)\n"
          "  --tls-ca PATH  connect with TLS 1.3, verifying the slave's certificate\n"
          "                 against this CA (PEM) and HOST\n"
          "  --tls-cert PATH, --tls-key PATH\n"
          "                 the client certificate and key (PEM) for a slave that asks\n"
          "                 for one (mutual TLS); with --tls-ca\n"
          "  -h, --help     this text\n"
          "\n"
          "%s"
          "%s",
          IA_HEARTBEAT_DEFAULT_MS, IA_HEARTBEAT_TOLERANCE_DEFAULT_MS,
          host_note ? "HOST is an IPv4 address or a host name ([IPv6] in brackets); PORT is 1..65535.\n\n"
                    : "",
          exit_status_help);
}

static void usage_ping(FILE *out) {
  fprintf(out,
          "usage: interaction ping HOST:PORT [--channel N] [--count K] [--timeout MS] [--name NAME]\n"
          "                                  [--secret-file PATH]\n"
          "                                  [--tls-ca PATH [--tls-cert PATH --tls-key PATH]]\n"
          "\n"
          "Connects to the slave at HOST:PORT (handshake), prints how long that took,\n"
          "sends K pings one after the other and prints each round trip, then\n"
          "disconnects gracefully.\n"
          "\n"
          "  --channel N    channel to present; must match the slave's (default 0)\n"
          "  --count K      number of pings, 1..%lu (default 3)\n"
          "  --timeout MS   bound on the handshake, on each ping and on the disconnect,\n"
          "                 in milliseconds (default %u)\n"
          "  --name NAME    master name sent in the handshake (default \"%s\")\n",
          CLI_COUNT_MAX, CLI_PING_TIMEOUT_MS, CLI_DEFAULT_NAME);
  common_options(out, true);
}

static void usage_call(FILE *out) {
  fprintf(out,
          "usage: interaction call HOST:PORT [--channel N] [--timeout MS] [--in FILE|-] [--name NAME]\n"
          "                                  [--proto FILE [-I DIR]... [--text TEXT] [--fail-type TYPE]\n"
          "                                   [--protoc PATH]]\n"
          "                                  [--secret-file PATH]\n"
          "                                  [--tls-ca PATH [--tls-cert PATH --tls-key PATH]] METHOD\n"
          "\n"
          "Runs one task on the slave at HOST:PORT: METHOD (e.g. sum.Adder/Sum) with\n"
          "the request payload read as raw bytes (an encoded protobuf message) from\n"
          "FILE, or from stdin without --in or with --in -. The whole request is read\n"
          "before connecting. On success the reply payload is written raw to stdout and\n"
          "nothing else is; on failure stdout stays empty and stderr says why, with the\n"
          "code, its name, the slave's message and the size of any data it attached.\n"
          "\n"
          "With --proto, requests and replies are protobuf text format instead, as in\n"
          "  interaction call HOST:PORT --proto sum.proto --text 'a: 2 b: 3' sum.Adder/Sum\n"
          "which prints `sum: 5`. METHOD's request and reply types come from the\n"
          "service in FILE; protoc (on PATH when the call runs, or --protoc) encodes the\n"
          "request before connecting and decodes the reply after disconnecting.\n"
          "\n"
          "  --channel N    channel to present; must match the slave's (default 0)\n"
          "  --timeout MS   bound on the handshake, on the call, on the disconnect and on\n"
          "                 each run of protoc, in milliseconds (default %u)\n"
          "  --in FILE      read the request from FILE; - means stdin (the default)\n"
          "  --name NAME    master name sent in the handshake (default \"%s\")\n"
          "  --proto FILE   the .proto that defines METHOD's service: the request (from\n"
          "                 --text, --in FILE or stdin) is text format, and so is the reply\n"
          "                 on stdout; a TaskFail's result goes to stderr as text too\n"
          "  -I DIR, --proto-path DIR\n"
          "                 where FILE's imports are found, as protoc's -I (repeatable;\n"
          "                 default: FILE's own directory)\n"
          "  --text TEXT    the request in text format, e.g. 'a: 2 b: 3' (with --proto;\n"
          "                 not with --in)\n"
          "  --fail-type TYPE\n"
          "                 the message type of a TaskFail's result data, e.g. sum.FailInfo;\n"
          "                 without it the result is printed by field number\n"
          "  --protoc PATH  the protoc to run (default: protoc, found on PATH)\n",
          IA_CALL_DEFAULT_TIMEOUT_MS, CLI_DEFAULT_NAME);
  common_options(out, true);
}

static void usage_stats(FILE *out) {
  fprintf(out,
          "usage: interaction stats HOST:PORT [--json] [--channel N] [--timeout MS] [--name NAME]\n"
          "                                   [--secret-file PATH]\n"
          "                                   [--tls-ca PATH [--tls-cert PATH --tls-key PATH]]\n"
          "\n"
          "Connects to the slave at HOST:PORT as an observer (beside its master, if it\n"
          "has one), asks for its counters and prints them: tasks by method and\n"
          "outcome, handler durations, refusals by reason, tasks running and queued,\n"
          "connections, bytes in and out.\n"
          "\n"
          "  --json         one JSON object instead of text\n"
          "  --channel N    channel to present; must match the slave's (default 0)\n"
          "  --timeout MS   bound on the handshake, the request and the disconnect,\n"
          "                 in milliseconds (default %u)\n"
          "  --name NAME    name sent in the handshake (default \"%s\")\n",
          CLI_PING_TIMEOUT_MS, CLI_DEFAULT_NAME);
  common_options(out, false);
}

static const char *const cmd_names[] = {"ping", "call", "stats"};
static void (*const usages[])(FILE *) = {usage_ping, usage_call, usage_stats};

/* ---- the command line ---- */

/* Parses a whole decimal number in [min, max]; false on anything else. */
static bool parse_uint(const char *text, unsigned long min, unsigned long max, unsigned long *out) {
  if (text == NULL || *text < '0' || *text > '9') return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || v < min || v > max) return false;
  *out = v;
  return true;
}

/* Splits HOST:PORT (or [V6]:PORT) into args->host and args->port. On failure
 * writes why into `why` and returns false. */
static bool parse_address(const char *text, cli_args *args, char *why, size_t cap) {
  const char *host = text, *colon;
  size_t host_len;
  if (text[0] == '[') {
    const char *close = strchr(text, ']');
    if (close == NULL) {
      snprintf(why, cap, "'%s': missing ']' after the IPv6 address", text);
      return false;
    }
    host = text + 1;
    host_len = (size_t)(close - host);
    colon = close[1] == ':' ? close + 1 : NULL;
    if (close[1] != '\0' && close[1] != ':') {
      snprintf(why, cap, "'%s': expected ':' after ']'", text);
      return false;
    }
  } else {
    colon = strrchr(text, ':');
    if (colon != NULL && memchr(text, ':', (size_t)(colon - text)) != NULL) {
      snprintf(why, cap, "'%s': an IPv6 address needs brackets, as in [::1]:5000", text);
      return false;
    }
    host_len = colon != NULL ? (size_t)(colon - text) : strlen(text);
  }
  if (colon == NULL || colon[1] == '\0') {
    snprintf(why, cap, "'%s': missing port, expected HOST:PORT", text);
    return false;
  }
  if (host_len == 0) {
    snprintf(why, cap, "'%s': missing host, expected HOST:PORT", text);
    return false;
  }
  if (host_len >= sizeof args->host) {
    snprintf(why, cap, "'%.40s...': host name too long", text);
    return false;
  }
  unsigned long port;
  if (!parse_uint(colon + 1, 1, UINT16_MAX, &port)) {
    snprintf(why, cap, "'%s': port must be a number from 1 to 65535", text);
    return false;
  }
  memcpy(args->host, host, host_len);
  args->host[host_len] = '\0';
  args->port = (uint16_t)port;
  args->address = text;
  return true;
}

__attribute__((format(printf, 2, 3))) static int usage_error(command cmd, const char *fmt, ...) {
  fprintf(stderr, "interaction %s: ", cmd_names[cmd]);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\n\n", stderr);
  usages[cmd](stderr);
  return CLI_USAGE;
}

/* Takes one of call's --proto options (the option's getopt value `opt`).
 * False after a usage error. */
static bool proto_option(command cmd, int opt, const char *value, cli_args *args) {
  const char *name = opt == 'P'   ? "--proto"
                     : opt == 'I' ? "-I"
                     : opt == 'T' ? "--text"
                     : opt == 'F' ? "--fail-type"
                                  : "--protoc";
  if (cmd != CMD_CALL) {
    usage_error(cmd, "unknown option '%s'", name);
    return false;
  }
  /* An empty --text is an empty request; the others name something. */
  if (value[0] == '\0' && opt != 'T') {
    usage_error(cmd, "empty %s", name);
    return false;
  }
  switch (opt) {
  case 'P':
    args->proto = value;
    break;
  case 'I':
    if (args->n_proto_paths == CLI_PROTO_PATHS_MAX) {
      usage_error(cmd, "more than %d -I options", CLI_PROTO_PATHS_MAX);
      return false;
    }
    args->proto_paths[args->n_proto_paths++] = value;
    break;
  case 'T':
    args->text = value;
    break;
  case 'F':
    args->fail_type = value;
    break;
  default:
    args->protoc = value;
    break;
  }
  return true;
}

int cli_parse_args(command cmd, int argc, char **argv, cli_args *args) {
  static const struct option options[] = {
      {"channel", required_argument, NULL, 'c'},
      {"count", required_argument, NULL, 'k'},
      {"timeout", required_argument, NULL, 't'},
      {"name", required_argument, NULL, 'n'},
      {"in", required_argument, NULL, 'i'},
      {"heartbeat-ms", required_argument, NULL, 'b'},
      {"heartbeat-tolerance-ms", required_argument, NULL, 'o'},
      {"json", no_argument, NULL, 'j'},
      {"secret-file", required_argument, NULL, 's'},
      {"tls-ca", required_argument, NULL, 'A'},
      {"tls-cert", required_argument, NULL, 'C'},
      {"tls-key", required_argument, NULL, 'K'},
      {"proto", required_argument, NULL, 'P'},
      {"proto-path", required_argument, NULL, 'I'},
      {"text", required_argument, NULL, 'T'},
      {"fail-type", required_argument, NULL, 'F'},
      {"protoc", required_argument, NULL, 'R'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(args, 0, sizeof *args);
  args->name = CLI_DEFAULT_NAME;
  args->count = 3;
  args->heartbeat_ms = IA_HEARTBEAT_DEFAULT_MS;
  args->heartbeat_tolerance_ms = IA_HEARTBEAT_TOLERANCE_DEFAULT_MS;
  args->timeout_ms = cmd == CMD_CALL ? IA_CALL_DEFAULT_TIMEOUT_MS : CLI_PING_TIMEOUT_MS;
  opterr = 0;
  optind = 1;
  int opt;
  unsigned long v;
  /* The leading ':' makes a missing value come back as ':', not '?'. */
  while ((opt = getopt_long(argc, argv, ":hI:", options, NULL)) != -1) {
    switch (opt) {
    case 'c':
      if (!parse_uint(optarg, 0, UINT32_MAX, &v)) return usage_error(cmd, "bad --channel '%s'", optarg);
      args->channel = (uint32_t)v;
      break;
    case 'k':
      if (cmd != CMD_PING) return usage_error(cmd, "unknown option '--count'");
      if (!parse_uint(optarg, 1, CLI_COUNT_MAX, &v))
        return usage_error(cmd, "bad --count '%s' (1 to 1000000)", optarg);
      args->count = v;
      break;
    case 't':
      if (!parse_uint(optarg, 1, UINT32_MAX - 1, &v))
        return usage_error(cmd, "bad --timeout '%s' (milliseconds, at least 1)", optarg);
      args->timeout_ms = (uint32_t)v;
      break;
    case 'n':
      if (optarg[0] == '\0') return usage_error(cmd, "empty --name");
      args->name = optarg;
      break;
    case 'b':
    case 'o':
      if (!parse_uint(optarg, 0, UINT32_MAX, &v))
        return usage_error(cmd, "bad --%s '%s' (milliseconds; 0 turns heartbeats off)",
                           opt == 'b' ? "heartbeat-ms" : "heartbeat-tolerance-ms", optarg);
      *(opt == 'b' ? &args->heartbeat_ms : &args->heartbeat_tolerance_ms) = (uint32_t)v;
      break;
    case 'i':
      if (cmd != CMD_CALL) return usage_error(cmd, "unknown option '--in'");
      args->in = optarg;
      break;
    case 'P':
    case 'I':
    case 'T':
    case 'F':
    case 'R':
      if (!proto_option(cmd, opt, optarg, args)) return CLI_USAGE;
      break;
    case 'j':
      if (cmd != CMD_STATS) return usage_error(cmd, "unknown option '--json'");
      args->json = true;
      break;
    case 's':
      args->secret_file = optarg;
      break;
    case 'A':
      args->tls_ca = optarg;
      break;
    case 'C':
      args->tls_cert = optarg;
      break;
    case 'K':
      args->tls_key = optarg;
      break;
    case 'h':
      usages[cmd](stdout);
      return CLI_OK;
    case ':':
      return usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
    default:
      return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    }
  }
  int want = cmd == CMD_CALL ? 2 : 1;
  int have = argc - optind;
  if (have == 0) return usage_error(cmd, "missing HOST:PORT");
  if (have < want) return usage_error(cmd, "missing METHOD");
  if (have > want) return usage_error(cmd, "unexpected argument '%s'", argv[optind + want]);
  char why[160];
  if (!parse_address(argv[optind], args, why, sizeof why)) return usage_error(cmd, "%s", why);
  if (cmd == CMD_CALL) {
    args->method = argv[optind + 1];
    if (args->method[0] == '\0') return usage_error(cmd, "empty METHOD");
    if (args->proto == NULL && (args->text || args->n_proto_paths || args->fail_type || args->protoc))
      return usage_error(cmd, "--text, -I, --fail-type and --protoc go with --proto");
    if (args->text != NULL && args->in != NULL)
      return usage_error(cmd, "--text and --in both give the request: use one");
  }
  return -1;
}
