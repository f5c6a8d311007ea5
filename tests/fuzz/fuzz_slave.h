/*
 * What the parts of fuzz_slave share, with fuzz_tls (which plays byte
 * streams to a slave of the same handlers over TLS): one connection to the
 * slave, as the harness played it (fuzz_slave.c, fuzz_tls.c), the check of
 * what the slave sent back against what was written (fuzz_slave_check.c),
 * and the handlers behind fz_methods (fuzz_slave_handlers.c).
 */
#ifndef IA__FUZZ_SLAVE_H
#define IA__FUZZ_SLAVE_H

#include <stdbool.h>
#include <stdint.h>

#include "fuzz_common.h"
#include "interaction/interaction.h"

#define HELLO_TIMEOUT_MS 50 /* fuzz_slave's slave's; short, so that scripts can outlast it */
#define HELLO_SLACK_MS 100  /* scheduling slack before a late Welcome counts as a finding */

typedef struct conn {
  int fd;
  bool dead;     /* a write failed: the slave closed; what is left is not sent */
  bool eof;      /* the slave closed its side */
  fz_buf in;     /* everything the slave sent */
  uint64_t t0;   /* when connect() returned */
  fz_buf stream; /* every byte the script meant to write, in order */
  size_t written;
  fz_buf times;              /* (end offset, time) after each write, as pairs of uint64_t */
  uint32_t hello_timeout_ms; /* the slave's: a Hello finished well after it is not welcomed */
} conn;

/* When the byte at offset `end` - 1 had been written (0 if it never was). */
static inline uint64_t written_at(const conn *c, size_t end) {
  const uint64_t *m = (const uint64_t *)c->times.p;
  for (size_t i = 0; i + 1 < c->times.n / sizeof *m; i += 2)
    if (m[i] >= end) return m[i + 1];
  return 0;
}

/* Checks every frame the slave sent on c against what c wrote (the
 * invariants of fuzz_slave.c's top comment); `trace` prints each frame. */
void fzs_check(const conn *c, bool trace);

/* Registers the handlers of fz_methods[FZ_M_SUM..FZ_M_META] on s. */
ia_code fzs_register(ia_slave *s);
/* How many times any of them has started, over the whole run. */
unsigned long fzs_handled(void);

#endif
