/*
 * How `interaction stats` prints a slave's counters: a text table for a
 * terminal, or one JSON object (--json) for scripts.
 *
 * Never: print anything but the counters, to the stream it is given.
 */
#ifndef CLI_STATS_H
#define CLI_STATS_H

#include <stdbool.h>
#include <stdio.h>

#include "interaction/interaction.h"

/* The slave's name, mode and capacity (from its Welcome) and its counters. */
void cli_print_stats(FILE *out, bool json, const char *slave, uint32_t mode, uint32_t capacity,
                     const ia_slave_stats *st);

#endif
