/*
 * The command line of the `interaction` tool: its exit statuses, its help
 * texts and the parsing of a command's arguments. Running the commands is
 * interaction_cli.c's.
 *
 * Never: exit or print anything but the usage and a usage error's reason.
 */
#ifndef CLI_ARGS_H
#define CLI_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "interaction/interaction.h"

/* Exit statuses; the help text below documents them and scripts rely on
 * them, so never renumber. */
enum {
  CLI_OK = 0,
  CLI_LOCAL = 1,        /* cannot read the request or write the reply, no memory */
  CLI_USAGE = 2,        /* bad command line */
  CLI_UNREACHABLE = 3,  /* cannot reach the slave: resolve, connect, I/O or timeout in the handshake */
  CLI_CONN_REFUSED = 4, /* the slave answered the handshake with a refusal */
  CLI_TASK_FAILED = 5,  /* the task ran and failed, or gave no answer in time */
  CLI_TASK_REFUSED = 6, /* the slave did not run the task */
  CLI_LOST = 7,         /* the connection went away after the handshake */
};

#define CLI_DEFAULT_NAME "interaction-cli"
#define CLI_PING_TIMEOUT_MS 5000u
#define CLI_COUNT_MAX 1000000ul
/* The protocol's hard cap on a frame; a request can never be larger. */
#define CLI_INPUT_MAX (1ul << 30)
/* The most -I DIR options of one call. */
#define CLI_PROTO_PATHS_MAX 64

typedef enum command { CMD_PING, CMD_CALL, CMD_STATS } command;

typedef struct cli_args {
  const char *address; /* HOST:PORT as given, for messages */
  char host[256];
  uint16_t port;
  uint32_t channel;
  uint32_t timeout_ms;
  uint32_t heartbeat_ms, heartbeat_tolerance_ms;
  const char *name;
  unsigned long count;     /* ping */
  const char *in;          /* call: NULL or "-" means stdin */
  const char *method;      /* call */
  bool json;               /* stats */
  const char *secret_file; /* NULL: IA_SECRET, if set */
  const char *tls_ca;      /* TLS against this CA; NULL: plain */
  const char *tls_cert;    /* the client certificate for mutual TLS, or NULL */
  const char *tls_key;
  /* call --proto: text format through protoc (cli_proto.h). */
  const char *proto;                            /* the .proto; NULL: raw bytes */
  const char *proto_paths[CLI_PROTO_PATHS_MAX]; /* -I DIR, in order */
  size_t n_proto_paths;
  const char *text;      /* --text: the request, instead of --in */
  const char *fail_type; /* --fail-type: a TaskFail result's message type */
  const char *protoc;    /* --protoc; NULL: protoc on PATH */
} cli_args;

/* The top-level usage (no command, or --help). */
void cli_usage_main(FILE *out);

/* Fills `args` from a command's arguments (argv[0] is the command name).
 * Returns -1 to go on, or the exit status (0 after --help, 2 after a usage
 * error, with the usage on stderr). */
int cli_parse_args(command cmd, int argc, char **argv, cli_args *args);

#endif
