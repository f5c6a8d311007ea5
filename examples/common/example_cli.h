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

/* What example_slave_main() needs to know about one slave program. */
typedef struct example_slave {
  const char *program;      /* "sum-slave": usage line and error prefix */
  const char *default_name; /* the default of --name */
  const char *name_help;    /* the help text of --name, after its default */
  const char *about;        /* the last lines of --help: what the program serves */
  /* Registers the program's handlers on `slave` before it starts. `config`
   * is the parsed configuration, valid until example_slave_main() returns. */
  ia_code (*serve)(ia_slave *slave, const ia_slave_config *config, void *user);
  void *user; /* passed to serve; must outlive example_slave_main() */
} example_slave;

/* The whole main() of a slave program:
 *
 *   PROGRAM --host H --port P --channel C [--grace-ms N] [--name NAME]
 *           [--heartbeat-ms N] [--heartbeat-tolerance-ms N]
 *           [--mode M] [--workers N] [--queue N] [--metrics HOST:PORT]
 *           [--secret-file PATH]
 *
 * Parses the command line (exit status 0 after --help, 2 on a usage error),
 * blocks SIGINT and SIGTERM, creates the slave, lets spec->serve register the
 * handlers, starts it, prints exactly one line `listening on H:P` (the port
 * actually bound) and flushes stdout, then serves until SIGINT or SIGTERM.
 * Returns the exit status: 0 after a clean shutdown, 1 on any error (said on
 * stderr). The slave is freed before it returns. */
int example_slave_main(int argc, char **argv, const example_slave *spec);

#endif
