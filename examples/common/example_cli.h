/*
 * example_cli: the command-line plumbing the example programs share.
 *
 * It exists so that each example (sum-slave, sum-demo, learner-slave,
 * coordinator) can show only what is particular to it: its handlers, or the
 * tasks it sends. None of it is part of Interaction; a program of your own may
 * copy it as it is, or parse its options any other way.
 */
#ifndef EXAMPLE_CLI_H
#define EXAMPLE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "interaction/interaction.h"

/* Parses a whole decimal number in [0, max] into *out; false (and *out left
 * alone) on an empty string, a sign, trailing characters or overflow. */
bool example_parse_uint(const char *text, unsigned long max, unsigned long *out);

#endif
