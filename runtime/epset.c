/* The epoll set outside libevent: see epset.h. */
#include "runtime/epset.h"

#include <errno.h>
#include <unistd.h>

#include <event2/event.h>

#include "runtime/runtime-internal.h"

#define ROUNDS 16 /* full batches read before libevent's other events get a turn */

static void drain_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia__epset *e = arg;
  struct epoll_event evs[IA__EPSET_BATCH];
  atomic_store_explicit(&e->again, false, memory_order_relaxed);
  for (int round = 0; round < ROUNDS; round++) {
    int n = epoll_wait(e->fd, evs, IA__EPSET_BATCH, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) e->fn(e->arg, evs, n);
    if (n < IA__EPSET_BATCH) {
      if (atomic_load_explicit(&e->again, memory_order_relaxed)) event_active(e->ev, EV_READ, 0);
      return;
    }
  }
  event_active(e->ev, EV_READ, 0);
}

bool ia__epset_init(ia__epset *e, struct event_base *base, ia__epset_fn fn, void *arg) {
  e->fn = fn;
  e->arg = arg;
  e->ev = NULL;
  atomic_init(&e->again, false);
  e->fd = epoll_create1(EPOLL_CLOEXEC);
  if (e->fd < 0) return false;
  e->ev = event_new(base, e->fd, EV_READ | EV_PERSIST | EV_ET, drain_cb, e);
  return e->ev != NULL;
}

bool ia__epset_start(ia__epset *e) {
  return event_add(e->ev, NULL) == 0;
}

void ia__epset_free(ia__epset *e) {
  if (e->ev) event_free(e->ev);
  e->ev = NULL;
  if (e->fd >= 0) close(e->fd);
  e->fd = -1;
}

/* What a registered socket watches while it is set to watch nothing: no
 * poll event but EPOLLERR and EPOLLHUP, which epoll adds to every mask.
 * Data then wakes nobody, and those two, edge-triggered, come at most
 * once, to a batch that is not reading the socket; a later watch (a MOD)
 * looks at the socket afresh and reports them again. */
#define OFF EPOLLET

static bool ctl(ia__epset *e, int fd, uint32_t *cur, uint32_t want, uint64_t key) {
  struct epoll_event ev = {.events = want, .data.u64 = key};
  int op = *cur == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  if (epoll_ctl(e->fd, op, fd, &ev) != 0) {
    /* A socket closed and reused under an old registration: start over. */
    if (op == EPOLL_CTL_ADD && errno == EEXIST)
      op = EPOLL_CTL_MOD;
    else if (op == EPOLL_CTL_MOD && errno == ENOENT && want)
      op = EPOLL_CTL_ADD;
    else if (op == EPOLL_CTL_DEL && errno == ENOENT)
      op = -1;
    else
      return false;
    if (op >= 0 && epoll_ctl(e->fd, op, fd, &ev) != 0) return false;
  }
  *cur = want;
  return true;
}

bool ia__epset_watch(ia__epset *e, int fd, uint32_t *cur, uint32_t want, uint64_t key) {
  /* Turned off rather than removed: a MOD costs less than half a DEL and
   * the ADD after it (measured: 0.25 against 0.58 us), and sockets move in
   * and out on every hand-off between a caller and the loop. */
  if (want == 0 && *cur != 0) want = OFF;
  return *cur == want || ctl(e, fd, cur, want, key);
}

bool ia__epset_forget(ia__epset *e, int fd, uint32_t *cur) {
  return *cur == 0 || ctl(e, fd, cur, 0, 0);
}

void ia__epset_again(ia__epset *e) {
  atomic_store_explicit(&e->again, true, memory_order_relaxed);
}
