/*
 * The code generator proper: turns one FileDescriptorProto into the text of
 * `<name>.ia.h` and `<name>.ia.c`. It knows nothing of protoc's plugin
 * protocol (protoc-gen-interaction.c does that) and writes no files.
 */
#ifndef IA__GEN_EMIT_H
#define IA__GEN_EMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "descriptors.h"

/* One generated file: its name relative to the output directory and its
 * contents, both malloc'd (release with gen_output_free()). */
typedef struct gen_output {
  char *name;
  char *content;
} gen_output;

void gen_output_free(gen_output *out);

/*
 * Generates the stubs of `file`, one of `files` (all the files of the
 * request, where the messages its methods name are looked up). A file with services gets a header and a
 * source (*n_out = 2, out[0] the header); a file without services gets
 * nothing (*n_out = 0) unless `always` is set, in which case it gets a header
 * that only includes its codecs and a source with no functions, so that a
 * build system can name the outputs of every .proto before it runs protoc.
 * Returns false with *error (malloc'd, free it) when the file cannot yield
 * correct C: generated names that collide, a streaming method (Interaction
 * has none), a file name that cannot be #included. Nothing is in `out` then.
 */
bool gen_emit_file(gen_file_proto *const *files, size_t n_files, const gen_file_proto *file, bool always,
                   gen_output out[2], size_t *n_out, char **error);

#endif
