/*
 * Names for generated code.
 *
 * Two families live here. The protoc-c family reproduces, character for
 * character, how protoc-c 1.4 names the C types and functions of a message
 * (its FullNameToC and FullNameToLower), because the stubs must refer to the
 * codecs protoc-c generated. The Interaction family derives the stubs' own
 * identifiers: snake_case words, package dots as `_`, and a trailing `_` on
 * anything that would collide with a C or C++ keyword or a standard macro.
 *
 * Every function returns a malloc'd string that the caller frees.
 */
#ifndef IA__GEN_NAMES_H
#define IA__GEN_NAMES_H

#include <stdbool.h>

/* protoc-c's C type of a message or enum: ".a.b.Outer.Inner" (or without the
 * leading dot) -> "A__B__Outer__Inner"; each component CamelCased from
 * snake_case ("my_msg" -> "MyMsg"). */
char *gen_protoc_c_type(const char *full_name);

/* protoc-c's lower-case function prefix: ".a.b.SumTask" -> "a__b__sum_task",
 * used as <prefix>__descriptor, <prefix>__free_unpacked, ... */
char *gen_protoc_c_lower(const char *full_name);

/* protoc-c's file name stem: "dir/x.proto" -> "dir/x" (".protodevel" too). */
char *gen_strip_proto(const char *file_name);

/* snake_case of one proto identifier: "DoIt" -> "do_it", "HTTPServer" ->
 * "http_server", "GetV2" -> "get_v2", "snake_name" stays. Runs of `_` are
 * collapsed and leading/trailing `_` dropped, so the result never starts with
 * `_` (which C reserves at file scope). "" if nothing is left. */
char *gen_snake(const char *name);

/* The snake_case of a dotted package, components joined by `_`:
 * "a.bC.d" -> "a_b_c_d". "" for no package. */
char *gen_snake_package(const char *package);

/* Upper-cases ASCII letters: "a_b_do_it" -> "A_B_DO_IT". */
char *gen_upper(const char *s);

/* True if `ident` cannot be used as a C identifier in code that may also be
 * read by a C++ compiler or follow standard headers: C and C++ keywords and
 * the macros those headers define in lower case (errno, assert, true, ...),
 * plus the predefined `linux`/`unix`/`i386` of GNU C modes. */
bool gen_is_reserved(const char *ident);

/* `ident`, with a trailing `_` appended while gen_is_reserved() says so. */
char *gen_escape(const char *ident);

/* `s` made safe inside a C comment: control characters become `?` and the
 * two-character sequences that open or close a comment are broken up. */
char *gen_comment_text(const char *s);

/* True if `s` can stand between the quotes of an #include or a string literal
 * as it is: printable ASCII without `"`, `\` or `?` (no escapes needed, no
 * trigraphs possible). */
bool gen_is_plain_text(const char *s);

/* An identifier fragment for include guards: ASCII letters and digits upper
 * cased, anything else as `_` plus its hex code ("a/b.proto" ->
 * "A_2FB_2EPROTO"). */
char *gen_file_identifier(const char *file_name);

#endif
