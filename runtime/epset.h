/*
 * An epoll set of our own, outside libevent, that one libevent event
 * watches: both ends keep the sockets their loop reads (or flushes) in one.
 * A socket moves in or out with one epoll_ctl() from any thread, without
 * waking the loop -- an event_add() from another thread would wake it, and
 * an event_del() from another thread blocks while that event's callback
 * runs.
 *
 * libevent watches the set edge-triggered: level-triggered, every turn of
 * libevent's loop polled the set again and woke once more per batch for
 * nothing (measured: 0.1-0.5 us of master CPU per fan-out call). The set
 * itself is level-triggered, so a socket that still has bytes is reported
 * again by the next epoll_wait() -- but only an event that comes after the
 * set was read wakes libevent again. So the batch callback must take
 * everything a reported socket holds: read until a short read, or, when the
 * peer's end was reported too (IA__EPSET_ENDED), until the end itself, since
 * data and the peer's FIN that came together are one event, and a short
 * read leaves the end unread with no edge to come. A callback that stops at
 * a bound of its own calls ia__epset_again(), so that the drain comes back
 * after libevent's other events.
 */
#ifndef IA__EPSET_H
#define IA__EPSET_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "runtime/runtime-internal.h"

struct event_base;
struct event;

typedef void (*ia__epset_fn)(void *arg, struct epoll_event *evs, int n);

typedef struct ia__epset {
  int fd;
  struct event *ev;
  ia__epset_fn fn;
  void *arg;
  atomic_bool again; /* a socket was left at its bound: come back */
} ia__epset;

#define IA__EPSET_BATCH 64
/* What a reader asks the set to watch for (with EPOLLRDHUP, so that the
 * peer's end is reported with the data before it), and the events that say
 * the end has come. */
#define IA__EPSET_IN (EPOLLIN | EPOLLRDHUP)
#define IA__EPSET_ENDED (EPOLLRDHUP | EPOLLHUP | EPOLLERR)

/* Makes the set and its event on `base` (not yet added: ia__epset_start). */
IA_MUST_CHECK bool ia__epset_init(ia__epset *e, struct event_base *base, ia__epset_fn fn, void *arg);
/* Adds the libevent event. Before the loop runs. */
IA_MUST_CHECK bool ia__epset_start(ia__epset *e);
void ia__epset_free(ia__epset *e);

/*
 * Makes the set watch `want` (EPOLLIN, EPOLLOUT, both, or 0 for nothing:
 * the socket stays registered, turned off) for fd, reported with `key`.
 * *cur is the caller's record of what the set watches for fd, kept under
 * the caller's own lock; the call does nothing when it is already `want`.
 * False if epoll_ctl failed (*cur unchanged).
 */
bool ia__epset_watch(ia__epset *e, int fd, uint32_t *cur, uint32_t want, uint64_t key);
/* Takes fd out of the set, before it is closed: a registration outlives
 * close() while another process holds the socket too (a fork), and would
 * go on reporting a key that is gone. */
bool ia__epset_forget(ia__epset *e, int fd, uint32_t *cur);

/* The batch callback stopped at its bound: the drain comes back after
 * libevent's other events. Loop thread. */
void ia__epset_again(ia__epset *e);

#endif
