/*
 * example_cli: the command-line plumbing the example masters share (see
 * example_cli.h); a slave program's whole main() is the library's
 * ia_slave_main() (slave/main.c).
 */
#include "example_cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool example_parse_uint(const char *text, unsigned long max, unsigned long *out) {
  if (text == NULL || *text == '\0' || *text == '-' || *text == '+') return false;
  char *end;
  errno = 0;
  unsigned long v = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || v > max) return false;
  *out = v;
  return true;
}
