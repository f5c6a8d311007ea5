/*
 * Questions the generator asks of protoc's descriptors: which file defines a
 * message, what C package protoc-c uses for a file, and the renames protoc-c
 * needs to produce C that compiles.
 */
#ifndef IA__GEN_DESCRIPTORS_H
#define IA__GEN_DESCRIPTORS_H

#include <stdbool.h>
#include <stddef.h>

#include "google/protobuf/descriptor.pb-c.h"

typedef Google__Protobuf__FileDescriptorProto gen_file_proto;

/* The package protoc-c names a file's C types after: the file option
 * `(pb_c_file).c_package` of protobuf-c.proto when set, else the proto
 * package ("" for none). malloc'd. */
char *gen_c_package(const gen_file_proto *file);

/* The full name, as protoc-c sees it, of the message `type_name` (fully
 * qualified, dot-led, as in MethodDescriptorProto.input_type): the package of
 * the defining file replaced by its C package. ".a.b.Outer.Inner" in a file
 * with c_package "x" -> "x.Outer.Inner". *nested tells whether the message is
 * nested in another (protoc-c then makes no <type>__unpack/__free_unpacked
 * helpers for it by default). NULL (with *error set) if no file among `files`
 * defines the message. malloc'd. */
char *gen_c_full_name(gen_file_proto *const *files, size_t n_files, const char *type_name, bool *nested,
                      char **error);

/*
 * Prepares a file's descriptor for protoc-c, whose C does not compile for
 * some names:
 *  - it names the members of its service structs after the methods
 *    (CamelToLower) without escaping: a method `Default` makes a member
 *    `default`;
 *  - it escapes field names only against C++ keywords, so a field `linux`
 *    (a predefined macro in GNU C) or `errno` (a macro of <errno.h>) breaks.
 * Such methods (C/C++ keywords, standard macros, protoc-c's own `base`) and
 * fields (the same but `base`) get a trailing `_` in the descriptor until
 * their C name is free. Only names change, never numbers, so the wire format
 * is untouched (protoc-c's descriptors then carry the new names, which only
 * its by-name lookups see); the Interaction stubs use the original method
 * names. Returns how many names were changed.
 */
size_t gen_prepare_for_protoc_c(gen_file_proto *file);

#endif
