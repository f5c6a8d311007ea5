#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void out_of_memory(void) {
  fputs("protoc-gen-interaction: out of memory\n", stderr);
  exit(1);
}

void *gen_xmalloc(size_t size) {
  void *p = malloc(size ? size : 1);
  if (p == NULL) out_of_memory();
  return p;
}

void *gen_xrealloc(void *p, size_t size) {
  void *q = realloc(p, size ? size : 1);
  if (q == NULL) out_of_memory();
  return q;
}

char *gen_xstrdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = gen_xmalloc(n);
  memcpy(p, s, n);
  return p;
}

/* Makes room for `extra` more bytes plus the terminating NUL. */
static void reserve(gen_text *t, size_t extra) {
  if (t->len + extra + 1 <= t->cap) return;
  size_t cap = t->cap ? t->cap : 256;
  while (cap < t->len + extra + 1)
    cap *= 2;
  t->data = gen_xrealloc(t->data, cap);
  t->cap = cap;
}

static void vprintf_text(gen_text *t, const char *fmt, va_list ap) {
  va_list copy;
  va_copy(copy, ap);
  int n = vsnprintf(NULL, 0, fmt, copy);
  va_end(copy);
  if (n < 0) {
    fputs("protoc-gen-interaction: bad format string\n", stderr);
    exit(1);
  }
  reserve(t, (size_t)n);
  vsnprintf(t->data + t->len, (size_t)n + 1, fmt, ap);
  t->len += (size_t)n;
}

void gen_text_printf(gen_text *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf_text(t, fmt, ap);
  va_end(ap);
}

void gen_text_puts(gen_text *t, const char *s) {
  size_t n = strlen(s);
  reserve(t, n);
  memcpy(t->data + t->len, s, n + 1);
  t->len += n;
}

char *gen_text_take(gen_text *t) {
  char *s = t->data != NULL ? t->data : gen_xstrdup("");
  *t = (gen_text)GEN_TEXT_INIT;
  return s;
}

void gen_text_free(gen_text *t) {
  free(t->data);
  *t = (gen_text)GEN_TEXT_INIT;
}

char *gen_xvasprintf(const char *fmt, va_list ap) {
  gen_text t = GEN_TEXT_INIT;
  vprintf_text(&t, fmt, ap);
  return gen_text_take(&t);
}

char *gen_xasprintf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = gen_xvasprintf(fmt, ap);
  va_end(ap);
  return s;
}
