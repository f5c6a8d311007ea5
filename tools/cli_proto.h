/*
 * `interaction call --proto FILE`: requests and replies in protobuf text
 * format, through protoc. protoc (found on PATH when the call runs, or
 * --protoc) is asked for FILE's descriptors once (--descriptor_set_out with
 * --include_imports, read with protoc-c's codec of descriptor.proto, the one
 * gen/ builds), which name METHOD's request and reply types; then it encodes
 * the text request (--encode) and prints the reply (--decode), and a
 * TaskFail's result as the --fail-type message or, without one, by field
 * number (--decode_raw).
 *
 * Never: run protoc through a shell or without a bound (cli_child.c runs it),
 * run it while the session holds the slave, or print anything on stdout but
 * the reply.
 */
#ifndef CLI_PROTO_H
#define CLI_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cli_args.h"

typedef struct cli_proto {
  char *protoc;     /* the protoc that runs: a path, malloc'd */
  const char *file; /* the .proto, as given */
  char **paths;     /* --proto_path=DIR arguments, malloc'd, n_paths of them */
  size_t n_paths;
  char *request_type; /* METHOD's types, e.g. "sum.SumTask"; malloc'd */
  char *reply_type;
  char *fail_type;     /* --fail-type as a full name, or NULL */
  uint32_t timeout_ms; /* bound on each run of protoc */
} cli_proto;

/* Finds protoc, reads args->proto's descriptors and looks up args->method
 * (SERVICE/METHOD) and args->fail_type in them. Returns CLI_OK, or CLI_LOCAL
 * after saying why on stderr (no such file, no protoc, protoc's complaint,
 * no such method or type); `p` is to be freed with cli_proto_free() either
 * way. Runs protoc: call it before the session starts. */
__attribute__((warn_unused_result)) int cli_proto_open(const cli_args *args, cli_proto *p);

/* Encodes `text` (len bytes of text format) as a request of METHOD into a
 * malloc'd *out (the caller frees it). False after saying why on stderr,
 * protoc's own words included. */
__attribute__((warn_unused_result)) bool cli_proto_encode(const cli_proto *p, const void *text, size_t len,
                                                          uint8_t **out, size_t *out_len);

/* Prints `data` as a `type` message in text format on descriptor `fd`;
 * `type` NULL prints it by field number (protoc --decode_raw). `what` names
 * the data in a message ("the reply"). False after saying why on stderr;
 * protoc writes nothing on `fd` then, for it decodes all before printing. */
__attribute__((warn_unused_result)) bool
cli_proto_print(const cli_proto *p, const char *type, const char *what, const void *data, size_t len, int fd);

/* Frees what cli_proto_open() made; `p` may be zeroed. */
void cli_proto_free(cli_proto *p);

#endif
