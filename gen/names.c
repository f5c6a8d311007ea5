#include "names.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

/* ---- protoc-c 1.4 (protoc-c/c_helpers.cc), reproduced exactly ---- */

/* ToCamel: drops each `_` and upper-cases the letter after it and the first. */
static void to_camel(gen_text *out, const char *piece, size_t n) {
  bool next_upper = true;
  for (size_t i = 0; i < n; i++) {
    char c = piece[i];
    if (c == '_') {
      next_upper = true;
    } else if (next_upper) {
      char s[2] = {(char)toupper((unsigned char)c), 0};
      gen_text_puts(out, s);
      next_upper = false;
    } else {
      char s[2] = {c, 0};
      gen_text_puts(out, s);
    }
  }
}

/* CamelToLower: `_` before an upper-case letter that follows a non-upper one,
 * every letter lower-cased. "SumTask" -> "sum_task", "HTTPReq" -> "httpreq". */
static void camel_to_lower(gen_text *out, const char *piece, size_t n) {
  bool was_upper = true; /* no `_` in front of the first letter */
  for (size_t i = 0; i < n; i++) {
    char c = piece[i];
    bool is_upper = isupper((unsigned char)c) != 0;
    if (is_upper && !was_upper) gen_text_puts(out, "_");
    char s[2] = {is_upper ? (char)tolower((unsigned char)c) : c, 0};
    gen_text_puts(out, s);
    was_upper = is_upper;
  }
}

/* Splits `full_name` at dots, skips empty pieces, converts each with `fn`
 * and joins them with "__" (FullNameToC / FullNameToLower). */
static char *join_pieces(const char *full_name, void (*fn)(gen_text *, const char *, size_t)) {
  gen_text out = GEN_TEXT_INIT;
  bool first = true;
  const char *p = full_name;
  while (*p != '\0') {
    const char *dot = strchr(p, '.');
    size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
    if (n > 0) {
      if (!first) gen_text_puts(&out, "__");
      fn(&out, p, n);
      first = false;
    }
    p += n;
    if (*p == '.') p++;
  }
  return gen_text_take(&out);
}

char *gen_protoc_c_type(const char *full_name) {
  return join_pieces(full_name, to_camel);
}

char *gen_protoc_c_lower(const char *full_name) {
  return join_pieces(full_name, camel_to_lower);
}

static bool has_suffix(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

char *gen_strip_proto(const char *file_name) {
  char *s = gen_xstrdup(file_name);
  if (has_suffix(s, ".protodevel"))
    s[strlen(s) - strlen(".protodevel")] = '\0';
  else if (has_suffix(s, ".proto"))
    s[strlen(s) - strlen(".proto")] = '\0';
  return s;
}

/* ---- Interaction's own names ---- */

char *gen_snake(const char *name) {
  gen_text out = GEN_TEXT_INIT;
  size_t n = strlen(name);
  char last = 0; /* last character written; 0 at the start */
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c == '_') {
      if (last != 0 && last != '_') gen_text_puts(&out, "_"), last = '_';
      continue;
    }
    if (isupper(c)) {
      unsigned char prev = i > 0 ? (unsigned char)name[i - 1] : 0;
      unsigned char next = i + 1 < n ? (unsigned char)name[i + 1] : 0;
      /* A word starts at an upper-case letter after a lower-case letter or a
       * digit ("doIt", "v2Data"), and at the last capital of an acronym that
       * a lower-case word follows ("HTTPServer" -> "http_server"). */
      bool boundary = islower(prev) || isdigit(prev) || (isupper(prev) && islower(next));
      if (boundary && last != 0 && last != '_') gen_text_puts(&out, "_");
      c = (unsigned char)tolower(c);
    }
    char s[2] = {(char)c, 0};
    gen_text_puts(&out, s);
    last = (char)c;
  }
  char *s = gen_text_take(&out);
  size_t len = strlen(s);
  while (len > 0 && s[len - 1] == '_')
    s[--len] = '\0';
  return s;
}

char *gen_snake_package(const char *package) {
  gen_text out = GEN_TEXT_INIT;
  const char *p = package != NULL ? package : "";
  while (*p != '\0') {
    const char *dot = strchr(p, '.');
    size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
    if (n > 0) {
      char *piece = gen_xasprintf("%.*s", (int)n, p);
      char *snake = gen_snake(piece);
      if (snake[0] != '\0') {
        if (out.len > 0) gen_text_puts(&out, "_");
        gen_text_puts(&out, snake);
      }
      free(snake);
      free(piece);
    }
    p += n;
    if (*p == '.') p++;
  }
  return gen_text_take(&out);
}

char *gen_upper(const char *s) {
  char *u = gen_xstrdup(s);
  for (char *p = u; *p != '\0'; p++)
    *p = (char)toupper((unsigned char)*p);
  return u;
}

/* C11/C23 and C++ keywords, then the lower-case macros of standard C and
 * POSIX headers that a user's translation unit may have included before a
 * generated header (object-like ones break any use; function-like ones break
 * a call through a struct member), then what GNU C predefines. */
static const char *const reserved[] = {
    "_Alignas", "_Alignof", "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn",
    "_Static_assert", "_Thread_local", "alignas", "alignof", "and", "and_eq", "asm", "auto", "bitand",
    "bitor", "bool", "break", "case", "catch", "char", "char16_t", "char32_t", "char8_t", "class", "co_await",
    "co_return", "co_yield", "compl", "concept", "const", "const_cast", "consteval", "constexpr", "constinit",
    "continue", "decltype", "default", "delete", "do", "double", "dynamic_cast", "else", "enum", "explicit",
    "export", "extern", "false", "float", "for", "friend", "goto", "if", "inline", "int", "long", "mutable",
    "namespace", "new", "noexcept", "not", "not_eq", "nullptr", "operator", "or", "or_eq", "private",
    "protected", "public", "register", "reinterpret_cast", "requires", "restrict", "return", "short",
    "signed", "sizeof", "static", "static_assert", "static_cast", "struct", "switch", "template", "this",
    "thread_local", "throw", "true", "try", "typedef", "typeid", "typename", "typeof", "typeof_unqual",
    "union", "unsigned", "using", "virtual", "void", "volatile", "wchar_t", "while", "xor", "xor_eq",
    /* standard headers */
    "assert", "complex", "errno", "imaginary", "noreturn", "offsetof", "setjmp", "stderr", "stdin", "stdout",
    "va_arg", "va_copy", "va_end", "va_start", "getc", "putc", "getchar", "putchar", "htonl", "htons",
    "ntohl", "ntohs", "major", "minor", "makedev",
    /* GNU C modes */
    "linux", "unix", "i386"};

bool gen_is_reserved(const char *ident) {
  for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
    if (strcmp(ident, reserved[i]) == 0) return true;
  return false;
}

char *gen_escape(const char *ident) {
  char *s = gen_xstrdup(ident);
  while (gen_is_reserved(s)) {
    char *t = gen_xasprintf("%s_", s);
    free(s);
    s = t;
  }
  return s;
}

char *gen_comment_text(const char *s) {
  gen_text out = GEN_TEXT_INIT;
  for (const char *p = s; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if ((c == '*' && p[1] == '/') || (c == '/' && p[1] == '*')) {
      char e[3] = {(char)c, ' ', 0};
      gen_text_puts(&out, e);
    } else {
      char e[2] = {c < 0x20 || c == 0x7f ? '?' : (char)c, 0};
      gen_text_puts(&out, e);
    }
  }
  return gen_text_take(&out);
}

bool gen_is_plain_text(const char *s) {
  for (const char *p = s; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '?') return false;
  }
  return true;
}

char *gen_file_identifier(const char *file_name) {
  gen_text out = GEN_TEXT_INIT;
  for (const char *p = file_name; *p != '\0'; p++) {
    unsigned char c = (unsigned char)*p;
    if (isalnum(c)) {
      char e[2] = {(char)toupper(c), 0};
      gen_text_puts(&out, e);
    } else {
      gen_text_printf(&out, "_%02X", c);
    }
  }
  return gen_text_take(&out);
}
