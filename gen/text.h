/*
 * Text building for the generator: a growable string and allocation helpers.
 *
 * protoc-gen-interaction is a short-lived build tool, so running out of
 * memory is not something it recovers from: these helpers print a message and
 * exit(1), which protoc reports as a failed plugin. That keeps every caller
 * free of NULL checks.
 */
#ifndef IA__GEN_TEXT_H
#define IA__GEN_TEXT_H

#include <stdarg.h>
#include <stddef.h>

/* A NUL-terminated string that grows as text is appended. Initialise with
 * GEN_TEXT_INIT; release with gen_text_free() or take the buffer with
 * gen_text_take(). */
typedef struct gen_text {
  char *data; /* NULL until something is appended */
  size_t len;
  size_t cap;
} gen_text;

#define GEN_TEXT_INIT                                                                                        \
  { NULL, 0, 0 }

/* Appends printf-formatted text. */
void gen_text_printf(gen_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a string as is. */
void gen_text_puts(gen_text *t, const char *s);
/* Hands the buffer to the caller (free() it; "" if nothing was appended) and
 * resets `t`. */
char *gen_text_take(gen_text *t);
void gen_text_free(gen_text *t);

/* malloc/realloc/strdup/asprintf that exit(1) with a message on failure. */
void *gen_xmalloc(size_t size);
void *gen_xrealloc(void *p, size_t size);
char *gen_xstrdup(const char *s);
char *gen_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *gen_xvasprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif
