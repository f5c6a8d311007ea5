/* Text format through protoc for `interaction call --proto`: see cli_proto.h. */
#define _GNU_SOURCE /* strchrnul */
#include "cli_proto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_child.h"
#include "google/protobuf/descriptor.pb-c.h"

/* Bound on the FileDescriptorSet protoc writes for one .proto and its
 * imports; real ones are kilobytes. */
#define DESCRIPTORS_MAX (64ul << 20)
/* The most arguments a protoc run gets besides the import paths. */
#define FIXED_ARGS 5

typedef Google__Protobuf__FileDescriptorSet descriptor_set;
typedef Google__Protobuf__FileDescriptorProto file_proto;
typedef Google__Protobuf__DescriptorProto message_proto;
typedef Google__Protobuf__MethodDescriptorProto method_proto;

/* ---- running protoc ---- */

/* Says on stderr why protoc did not do `what`, with its own words, each of
 * its lines indented under ours. */
static void protoc_failed(const cli_proto *p, const char *what, const cli_child *c) {
  fprintf(stderr, "interaction: %s: ", what);
  if (c->exec_errno != 0)
    fprintf(stderr, "cannot run %s: %s\n", p->protoc, strerror(c->exec_errno));
  else if (c->timed_out)
    fprintf(stderr, "protoc did not finish within %u ms and was killed (--timeout)\n", p->timeout_ms);
  else if (c->out_overflow)
    fprintf(stderr, "protoc wrote more than %zu bytes (or there was no memory for them)\n", c->out_max);
  else if (c->signal != 0)
    fprintf(stderr, "protoc was killed by signal %d\n", c->signal);
  else
    fprintf(stderr, "protoc exited with status %d%s\n", c->exit_code, c->err[0] != '\0' ? ":" : "");
  for (const char *line = c->err; *line != '\0';) {
    const char *end = strchrnul(line, '\n');
    fprintf(stderr, "  %.*s\n", (int)(end - line), line);
    line = *end == '\n' ? end + 1 : end;
  }
}

/* Runs protoc with `mode` (one or two options, NULL-padded), then the import
 * paths and the .proto unless `with_file` is false. True if it succeeded;
 * else says why, as failing to do `what`. `c` holds its output either way. */
static bool run_protoc(const cli_proto *p, const char *const mode[2], bool with_file, const char *what,
                       cli_child *c) {
  char **argv = calloc(FIXED_ARGS + p->n_paths, sizeof *argv);
  char *file = NULL;
  if (argv == NULL || (with_file && asprintf(&file, "%s%s", p->file[0] == '-' ? "./" : "", p->file) < 0)) {
    fprintf(stderr, "interaction: %s: no memory\n", what);
    free(argv);
    return false;
  }
  size_t n = 0;
  argv[n++] = p->protoc;
  for (size_t i = 0; i < 2 && mode[i] != NULL; i++)
    argv[n++] = (char *)mode[i];
  if (with_file) {
    for (size_t i = 0; i < p->n_paths; i++)
      argv[n++] = p->paths[i];
    argv[n++] = file;
  }
  argv[n] = NULL;
  /* What we wrote so far must come out before what protoc writes. */
  fflush(NULL);
  bool ok = false;
  if (cli_child_run(argv, p->timeout_ms, c) < 0)
    fprintf(stderr, "interaction: %s: cannot start protoc: %s\n", what, strerror(errno));
  else if (!(ok = cli_child_ok(c)))
    protoc_failed(p, what, c);
  free(file);
  free(argv);
  return ok;
}

/* ---- looking things up in the descriptors ---- */

/* `name` with the dot-led package `pkg` of its file stripped, or NULL if it
 * is not in that package ("" is the package of a file without one). */
static const char *in_package(const char *name, const char *pkg) {
  if (pkg == NULL || pkg[0] == '\0') return name;
  size_t len = strlen(pkg);
  return strncmp(name, pkg, len) == 0 && name[len] == '.' ? name + len + 1 : NULL;
}

/* Whether `rest` ("Outer.Inner") names one of `msgs` or a type nested in it. */
static bool has_message(message_proto *const *msgs, size_t n, const char *rest) {
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(msgs[i]->name);
    if (strncmp(rest, msgs[i]->name, len) != 0) continue;
    if (rest[len] == '\0') return true;
    if (rest[len] == '.' && has_message(msgs[i]->nested_type, msgs[i]->n_nested_type, rest + len + 1))
      return true;
  }
  return false;
}

static bool set_has_message(const descriptor_set *set, const char *full) {
  for (size_t f = 0; f < set->n_file; f++) {
    const char *rest = in_package(full, set->file[f]->package);
    if (rest != NULL && has_message(set->file[f]->message_type, set->file[f]->n_message_type, rest))
      return true;
  }
  return false;
}

/* Appends "SERVICE/METHOD" of every method in `set` to `buf`, comma-separated,
 * as far as it fits. */
static void list_methods(const descriptor_set *set, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = '\0';
  for (size_t f = 0; f < set->n_file; f++) {
    const file_proto *file = set->file[f];
    bool pkg = file->package != NULL && file->package[0] != '\0';
    for (size_t s = 0; s < file->n_service; s++)
      for (size_t m = 0; m < file->service[s]->n_method && len < cap; m++) {
        int n = snprintf(buf + len, cap - len, "%s%s%s%s/%s", len > 0 ? ", " : "", pkg ? file->package : "",
                         pkg ? "." : "", file->service[s]->name, file->service[s]->method[m]->name);
        len += n > 0 ? (size_t)n : 0;
      }
  }
  if (len >= cap && cap > 4) strcpy(buf + cap - 4, "...");
}

/* The method `method` ("pkg.Service/Name") in `set`, or NULL. */
static const method_proto *find_method(const descriptor_set *set, const char *method) {
  const char *slash = strrchr(method, '/');
  if (slash == NULL) return NULL;
  size_t service_len = (size_t)(slash - method);
  for (size_t f = 0; f < set->n_file; f++) {
    const file_proto *file = set->file[f];
    for (size_t s = 0; s < file->n_service; s++) {
      const Google__Protobuf__ServiceDescriptorProto *service = file->service[s];
      /* METHOD's service part, package and all, must be this service. */
      char *full = NULL;
      bool pkg = file->package != NULL && file->package[0] != '\0';
      if (asprintf(&full, "%s%s%s", pkg ? file->package : "", pkg ? "." : "", service->name) < 0) return NULL;
      bool same = strlen(full) == service_len && strncmp(full, method, service_len) == 0;
      free(full);
      if (!same) continue;
      for (size_t m = 0; m < service->n_method; m++)
        if (strcmp(service->method[m]->name, slash + 1) == 0) return service->method[m];
    }
  }
  return NULL;
}

/* Looks up METHOD and --fail-type in the descriptors protoc wrote. */
static int resolve_types(const cli_args *args, cli_proto *p, const uint8_t *data, size_t len) {
  descriptor_set *set = google__protobuf__file_descriptor_set__unpack(NULL, len, data);
  if (set == NULL) {
    fprintf(stderr, "interaction: %s: protoc's descriptors do not decode as a FileDescriptorSet\n", p->file);
    return CLI_LOCAL;
  }
  int status = CLI_LOCAL;
  const method_proto *m = find_method(set, args->method);
  if (m == NULL) {
    char known[512];
    list_methods(set, known, sizeof known);
    fprintf(stderr, "interaction: %s (with its imports) has no method %s%s; it has: %s\n", p->file,
            args->method, strchr(args->method, '/') == NULL ? " (METHOD is SERVICE/METHOD)" : "",
            known[0] != '\0' ? known : "no methods");
  } else if (m->client_streaming || m->server_streaming) {
    fprintf(stderr, "interaction: %s is a streaming method; a task has one request and one reply\n",
            args->method);
  } else if (args->fail_type != NULL &&
             !set_has_message(set, args->fail_type + (args->fail_type[0] == '.'))) {
    fprintf(stderr, "interaction: --fail-type %s: %s (with its imports) defines no such message\n",
            args->fail_type, p->file);
  } else {
    /* Descriptor type names are full and dot-led: ".sum.SumTask". */
    p->request_type = strdup(m->input_type + (m->input_type[0] == '.'));
    p->reply_type = strdup(m->output_type + (m->output_type[0] == '.'));
    if (args->fail_type != NULL) p->fail_type = strdup(args->fail_type + (args->fail_type[0] == '.'));
    if (p->request_type != NULL && p->reply_type != NULL && (args->fail_type == NULL || p->fail_type != NULL))
      status = CLI_OK;
    else
      fprintf(stderr, "interaction: no memory\n");
  }
  google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
  return status;
}

/* ---- the interface ---- */

/* The --proto_path arguments: each -I DIR, or the .proto's own directory
 * when there is none, so that `--proto dir/x.proto` just works. */
static bool make_paths(const cli_args *args, cli_proto *p) {
  size_t n = args->n_proto_paths > 0 ? args->n_proto_paths : 1;
  p->paths = calloc(n, sizeof *p->paths);
  if (p->paths == NULL) return false;
  for (; p->n_paths < n; p->n_paths++) {
    const char *dir = args->n_proto_paths > 0 ? args->proto_paths[p->n_paths] : NULL;
    int len = 0;
    if (dir != NULL) {
      len = (int)strlen(dir);
    } else {
      const char *slash = strrchr(args->proto, '/');
      dir = slash == NULL ? "." : slash == args->proto ? "/" : args->proto;
      len = slash == NULL || slash == args->proto ? (int)strlen(dir) : (int)(slash - args->proto);
    }
    if (asprintf(&p->paths[p->n_paths], "--proto_path=%.*s", len, dir) < 0) {
      p->paths[p->n_paths] = NULL;
      return false;
    }
  }
  return true;
}

int cli_proto_open(const cli_args *args, cli_proto *p) {
  memset(p, 0, sizeof *p);
  p->file = args->proto;
  p->timeout_ms = args->timeout_ms;
  /* protoc's own message for a missing file ("Could not make proto path
   * relative") does not say that. */
  if (access(args->proto, R_OK) != 0) {
    fprintf(stderr, "interaction: cannot read the proto file %s: %s\n", args->proto, strerror(errno));
    return CLI_LOCAL;
  }
  const char *protoc = args->protoc != NULL ? args->protoc : "protoc";
  p->protoc = cli_find_program(protoc);
  if (p->protoc == NULL) {
    if (errno == ENOENT)
      fprintf(stderr,
              "interaction: --proto needs protoc, and there is none on PATH (or give --protoc PATH)\n");
    else
      fprintf(stderr, "interaction: no memory\n");
    return CLI_LOCAL;
  }
  if (!make_paths(args, p)) {
    fprintf(stderr, "interaction: no memory\n");
    return CLI_LOCAL;
  }
  const char *const mode[2] = {"--include_imports", "--descriptor_set_out=/dev/stdout"};
  cli_child c = {.out_fd = -1, .out_max = DESCRIPTORS_MAX};
  char what[320];
  snprintf(what, sizeof what, "cannot read the services of %s", p->file);
  int status = run_protoc(p, mode, true, what, &c) ? resolve_types(args, p, c.out, c.out_len) : CLI_LOCAL;
  free(c.out);
  return status;
}

bool cli_proto_encode(const cli_proto *p, const void *text, size_t len, uint8_t **out, size_t *out_len) {
  char encode[320], what[360];
  snprintf(encode, sizeof encode, "--encode=%s", p->request_type);
  snprintf(what, sizeof what, "the request is not a %s in text format", p->request_type);
  const char *const mode[2] = {encode, NULL};
  cli_child c = {.in = text, .in_len = len, .out_fd = -1, .out_max = CLI_INPUT_MAX};
  if (!run_protoc(p, mode, true, what, &c)) {
    free(c.out);
    return false;
  }
  *out = c.out;
  *out_len = c.out_len;
  return true;
}

bool cli_proto_print(const cli_proto *p, const char *type, const char *what, const void *data, size_t len,
                     int fd) {
  char decode[320], why[400];
  snprintf(decode, sizeof decode, "--decode=%s", type != NULL ? type : "");
  if (type != NULL)
    snprintf(why, sizeof why, "cannot print %s as a %s", what, type);
  else
    snprintf(why, sizeof why, "cannot print %s by field number", what);
  const char *const mode[2] = {type != NULL ? decode : "--decode_raw", NULL};
  cli_child c = {.in = data, .in_len = len, .out_fd = fd};
  /* --decode_raw takes no .proto. */
  return run_protoc(p, mode, type != NULL, why, &c);
}

void cli_proto_free(cli_proto *p) {
  for (size_t i = 0; i < p->n_paths; i++)
    free(p->paths[i]);
  free(p->paths);
  free(p->protoc);
  free(p->request_type);
  free(p->reply_type);
  free(p->fail_type);
  memset(p, 0, sizeof *p);
}
