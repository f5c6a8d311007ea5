/*
 * The watchdog: one thread per process that looks at every registered
 * watch each tick while any of them reports a running handler, and sleeps
 * otherwise (see watchdog.c for why a shared periodic thread). It knows
 * nothing of what it watches: a watch is a check function and its argument.
 */
#ifndef IA__WATCHDOG_H
#define IA__WATCHDOG_H

#include <stdbool.h>

#include "interaction/status.h"

#define IA__WD_RUNNING 1 /* check: a handler runs */
#define IA__WD_LONG 2    /* check: and it runs long; the watched part was told */

typedef struct ia__watch {
  /* Called on the watchdog thread with the registry locked: returns
   * IA__WD_* bits. Must not block, nor call into this file. */
  int (*check)(void *arg);
  void *arg;
} ia__watch;

/* Registers w (which must stay valid until removed); starts the thread
 * with the first watch. False if out of memory or no thread. Thread-safe. */
IA_MUST_CHECK bool ia__watchdog_add(ia__watch *w);
/* Unregisters w; once it returns, w's check is not running and never runs
 * again. The last watch removed joins the thread. Thread-safe, but not from
 * a check. */
void ia__watchdog_remove(ia__watch *w);
/* A handler starts: wakes the watchdog if it sleeps (an atomic load when it
 * does not). Call after the state a check reads is updated, with no lock
 * of the checked part held. */
void ia__watchdog_poke(void);

#endif
