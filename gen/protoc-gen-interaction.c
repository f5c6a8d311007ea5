/*
 * protoc-gen-interaction: the protoc plugin that generates Interaction's typed
 * stubs (shared/DESIGN.md, "Typed stubs").
 *
 * protoc runs it with a CodeGeneratorRequest on stdin and reads a
 * CodeGeneratorResponse from stdout; both are decoded and encoded with the
 * protoc-c codecs of protobuf's own plugin.proto and descriptor.proto, made at
 * build time. For every requested .proto that defines a service it emits
 * `<name>.ia.h` and `<name>.ia.c`, which include protoc-c's `<name>.pb-c.h`.
 * protoc-c cannot run plugins, so protoc does:
 *
 *   protoc -I DIR --plugin=protoc-gen-interaction=PATH --interaction_out=OUT a.proto
 *
 * The parameter `always` (`--interaction_out=always:OUT`) emits the two files
 * for every requested .proto, services or not, so that a build system knows
 * the outputs in advance.
 *
 * The codecs come from protoc-c. Its service stubs name struct members after
 * the methods without escaping C keywords (a method `Default` breaks its
 * output), so the build gives protoc-c a descriptor set in which this program
 * renamed those methods (--prepare-for-protoc-c, see usage()).
 * interaction_generate() in InteractionGenerate.cmake runs all three steps.
 *
 * Errors in the .proto that would make incorrect C (names that collide) or
 * that Interaction cannot serve (a streaming method) are returned in the
 * response's `error`, which protoc prints; problems of the
 * plugin itself (unreadable input, no memory, a failed write) go to stderr
 * with exit status 1, as the plugin protocol asks. As a plugin it writes no
 * files itself. It must never emit code whose meaning depends on the order of
 * methods in a .proto (methods travel by full name), nor C that needs a
 * warning silenced.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "google/protobuf/compiler/plugin.pb-c.h"

#include "descriptors.h"
#include "emit.h"
#include "text.h"

typedef Google__Protobuf__Compiler__CodeGeneratorRequest request;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse response;
typedef Google__Protobuf__Compiler__CodeGeneratorResponse__File response_file;

static void usage(FILE *out) {
  fputs("usage: protoc --plugin=protoc-gen-interaction=PATH --interaction_out=[always:]DIR ...\n"
        "\n"
        "protoc-gen-interaction is a protoc plugin: protoc runs it with a CodeGeneratorRequest\n"
        "on stdin. For each .proto with services it writes <name>.ia.h and <name>.ia.c, the\n"
        "typed Interaction stubs, which include protoc-c's <name>.pb-c.h (generate it in the\n"
        "same run with --plugin=protoc-gen-c=$(command -v protoc-gen-c) --c_out=DIR).\n"
        "\n"
        "  always   emit both files for every .proto, even one without services\n"
        "\n"
        "usage: protoc-gen-interaction --prepare-for-protoc-c IN.desc OUT.desc\n"
        "\n"
        "Copies a FileDescriptorSet (protoc --include_imports --descriptor_set_out=IN.desc),\n"
        "renaming the methods whose protoc-c service-struct member would not compile (`Default`\n"
        "-> `Default_`), for `protoc-c --descriptor_set_in=OUT.desc --c_out=DIR`. Messages and\n"
        "the wire are unchanged.\n",
        out);
}

/* Reads all of `in` into a malloc'd buffer. False on a read error. */
static bool read_all(FILE *in, uint8_t **data, size_t *len) {
  size_t cap = 1 << 16, n = 0;
  uint8_t *buf = gen_xmalloc(cap);
  for (;;) {
    if (n == cap) buf = gen_xrealloc(buf, cap *= 2);
    size_t got = fread(buf + n, 1, cap - n, in);
    n += got;
    if (got == 0) break;
  }
  if (ferror(in)) {
    free(buf);
    return false;
  }
  *data = buf;
  *len = n;
  return true;
}

/* The --prepare-for-protoc-c mode (see usage()). Returns the exit status. */
static int prepare_for_protoc_c(const char *in_path, const char *out_path) {
  FILE *in = fopen(in_path, "rb");
  uint8_t *data;
  size_t len;
  if (in == NULL || !read_all(in, &data, &len)) {
    perror(in_path);
    if (in != NULL) fclose(in);
    return 1;
  }
  fclose(in);
  Google__Protobuf__FileDescriptorSet *set = google__protobuf__file_descriptor_set__unpack(NULL, len, data);
  free(data);
  if (set == NULL) {
    fprintf(stderr, "protoc-gen-interaction: %s is not a FileDescriptorSet\n", in_path);
    return 1;
  }
  for (size_t i = 0; i < set->n_file; i++)
    gen_prepare_for_protoc_c(set->file[i]);
  len = google__protobuf__file_descriptor_set__get_packed_size(set);
  data = gen_xmalloc(len);
  google__protobuf__file_descriptor_set__pack(set, data);
  google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
  FILE *out = fopen(out_path, "wb");
  bool ok = out != NULL && fwrite(data, 1, len, out) == len;
  ok = (out != NULL && fclose(out) == 0) && ok;
  free(data);
  if (!ok) {
    perror(out_path);
    return 1;
  }
  return 0;
}

/* Parses the comma-separated parameter; false with *error on an unknown
 * option. */
static bool parse_parameter(const char *parameter, bool *always, char **error) {
  *always = false;
  if (parameter == NULL) return true;
  char *copy = gen_xstrdup(parameter);
  bool ok = true;
  for (char *save = NULL, *opt = strtok_r(copy, ",", &save); ok && opt != NULL;
       opt = strtok_r(NULL, ",", &save)) {
    if (strcmp(opt, "always") == 0) {
      *always = true;
    } else {
      *error = gen_xasprintf("protoc-gen-interaction: unknown option `%s` (known: always)", opt);
      ok = false;
    }
  }
  free(copy);
  return ok;
}

static const Google__Protobuf__FileDescriptorProto *find_file(const request *req, const char *name) {
  for (size_t i = 0; i < req->n_proto_file; i++)
    if (req->proto_file[i]->name != NULL && strcmp(req->proto_file[i]->name, name) == 0)
      return req->proto_file[i];
  return NULL;
}

static void add_file(response *res, gen_output *out) {
  response_file *f = gen_xmalloc(sizeof *f);
  google__protobuf__compiler__code_generator_response__file__init(f);
  f->name = out->name;
  f->content = out->content;
  out->name = NULL;
  out->content = NULL;
  res->file = gen_xrealloc(res->file, (res->n_file + 1) * sizeof *res->file);
  res->file[res->n_file++] = f;
}

/* Fills `res` with the generated files, or with an error. */
static void generate(const request *req, response *res) {
  bool always;
  if (!parse_parameter(req->parameter, &always, &res->error)) return;
  for (size_t i = 0; i < req->n_file_to_generate; i++) {
    const Google__Protobuf__FileDescriptorProto *file = find_file(req, req->file_to_generate[i]);
    if (file == NULL) {
      res->error = gen_xasprintf("%s: not among the request's files", req->file_to_generate[i]);
      return;
    }
    gen_output out[2] = {{0}};
    size_t n = 0;
    if (!gen_emit_file(req->proto_file, req->n_proto_file, file, always, out, &n, &res->error)) return;
    for (size_t j = 0; j < n; j++)
      add_file(res, &out[j]);
  }
}

static void response_release(response *res) {
  for (size_t i = 0; i < res->n_file; i++) {
    free(res->file[i]->name);
    free(res->file[i]->content);
    free(res->file[i]);
  }
  free(res->file);
  free(res->error);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--prepare-for-protoc-c") == 0)
    return prepare_for_protoc_c(argv[2], argv[3]);
  if (argc > 1) {
    bool help = strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0;
    if (!help && strcmp(argv[1], "--version") == 0) {
      puts("protoc-gen-interaction 1");
      return 0;
    }
    usage(help ? stdout : stderr);
    return help ? 0 : 2;
  }
  if (isatty(STDIN_FILENO)) {
    usage(stderr);
    return 2;
  }

  uint8_t *data;
  size_t len;
  if (!read_all(stdin, &data, &len)) {
    perror("protoc-gen-interaction: reading stdin");
    return 1;
  }
  request *req = google__protobuf__compiler__code_generator_request__unpack(NULL, len, data);
  free(data);
  if (req == NULL) {
    fputs("protoc-gen-interaction: stdin is not a CodeGeneratorRequest (run me through protoc)\n", stderr);
    usage(stderr);
    return 1;
  }

  response res = GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__INIT;
  /* The stubs read only service and message names, so proto3 `optional`
   * fields are no concern of this plugin (protoc-c decides about them). */
  res.has_supported_features = 1;
  res.supported_features =
      GOOGLE__PROTOBUF__COMPILER__CODE_GENERATOR_RESPONSE__FEATURE__FEATURE_PROTO3_OPTIONAL;
  generate(req, &res);
  google__protobuf__compiler__code_generator_request__free_unpacked(req, NULL);

  size_t out_len = google__protobuf__compiler__code_generator_response__get_packed_size(&res);
  uint8_t *out = gen_xmalloc(out_len);
  google__protobuf__compiler__code_generator_response__pack(&res, out);
  response_release(&res);
  bool ok = fwrite(out, 1, out_len, stdout) == out_len && fflush(stdout) == 0;
  free(out);
  if (!ok) {
    perror("protoc-gen-interaction: writing stdout");
    return 1;
  }
  return 0;
}
