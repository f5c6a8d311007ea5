/*
 * The reader role on the master: one owner at a time reads a connection's
 * socket (`reader`, under the master's mutex), and only the owner touches
 * its input buffer.
 *
 *  - A thread blocked in a call (ia_call, the typed stubs, disconnect, ping)
 *    reads its own reply with recv(), and dispatches any other frame it
 *    meets: no thread hand-off on the hot path.
 *  - Otherwise the one loop thread reads (async tasks, fan-out, Goodbye, a
 *    dead slave). Its sockets sit in an epoll set of its own that libevent
 *    watches (runtime/epset.h), so handing a socket between a caller and
 *    the loop is one epoll_ctl() and never wakes the loop.
 *  - Between calls the read side is parked; the loop's tick takes a parked
 *    socket back, so that an idle connection is still watched.
 *
 * The states: PARKED -> CALLER (a caller takes it), LOOP -> TRANSFER ->
 * CALLER (a caller takes it from the loop, waiting until the loop is out of
 * its read), PARKED or LOOP -> CALLER (a blocking call with a small
 * request takes it before it sends, when the loop is not in a read),
 * CALLER -> another blocked caller (offered), LOOP (async tasks wait) or
 * PARKED. The loop reads each ready socket until a short read, at most
 * LOOP_READS times a turn, then comes back: libevent watches the set
 * edge-triggered, and a frame that landed whole while the loop was busy has
 * no edge to come.
 *
 * Never: block the loop in a read, or let a caller wait past its deadline.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include "master/master-internal.h"
#include "runtime/sock.h"

#define LOOP_READS 8          /* full reads of one socket per turn of the loop */
#define CLAIM_MAX (16 * 1024) /* a blocking call's request up to this size takes the read side first */

static bool retry(ssize_t n) {
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

/* What a failed recv() means: the connection is over. */
IA__COLD static void read_failed(ia_conn *c, ssize_t n) {
  if (n < 0 && errno == ENOMEM) {
    ia__conn_protocol_error(c, IA_NO_MEMORY, "out of memory for a frame");
    return;
  }
  ia__conn_lost(c, IA_STATUS_LOST, IA_CONNECTION_LOST,
                n == 0 ? "the slave closed the connection" : "the connection to the slave failed");
}

/* One read by a caller with `left_ms` to go: false if the connection is
 * over. It blocks in recv() for at most the socket's receive tick; in the
 * last tick before the deadline it waits in poll() for what is left, so
 * that the call returns at its deadline, not at the next tick. */
static bool caller_read(ia_conn *c, uint64_t left_ms) {
  if (left_ms < IA__RECV_TICK_MS) {
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, (int)left_ms);
    if (r == 0 || (r < 0 && errno == EINTR)) return true;
  }
  ssize_t n = ia__inbuf_recv(&c->in, c->fd, c->tls, c->m->max_frame, 0, NULL);
  if (n > 0) {
    ia__live_rx(&c->live, (size_t)n);
    return true;
  }
  if (retry(n)) return true;
  read_failed(c, n);
  return false;
}

/* Reads until a short read, or to the end when the peer's end was reported
 * (`ended`): see runtime/epset.h. */
static void loop_read(ia_conn *c, bool ended) {
  for (int i = 0; i < LOOP_READS; i++) {
    bool full = false;
    ssize_t n = ia__inbuf_recv(&c->in, c->fd, c->tls, c->m->max_frame, MSG_DONTWAIT, &full);
    if (retry(n)) return;
    if (n <= 0) {
      read_failed(c, n);
      return;
    }
    ia__live_rx(&c->live, (size_t)n);
    if (!ia__master_dispatch(c) || (!full && !ended)) return;
  }
  ia__epset_again(&c->m->ep); /* more is waiting: after the other sockets */
}

void ia__master_ep_batch(void *arg, struct epoll_event *evs, int n) {
  ia_master *m = arg;
  /* References held across the batch: handling one connection's frames may
   * drop every other reference to another. */
  bool mine[IA__EPSET_BATCH];
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < n; i++) {
    ia_conn *c = (ia_conn *)(uintptr_t)evs[i].data.u64;
    ia__conn_ref(c);
    mine[i] = c->reader == IA__RD_LOOP && !c->torn_down && (evs[i].events & (EPOLLIN | IA__EPSET_ENDED));
    c->loop_reading |= mine[i];
  }
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < n; i++) {
    ia_conn *c = (ia_conn *)(uintptr_t)evs[i].data.u64;
    if (evs[i].events & EPOLLOUT) ia__conn_flush(c);
    if (mine[i]) loop_read(c, evs[i].events & IA__EPSET_ENDED);
  }
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < n; i++) {
    ia_conn *c = (ia_conn *)(uintptr_t)evs[i].data.u64;
    c->loop_reading = false;
    if (c->reader == IA__RD_TRANSFER) pthread_cond_broadcast(&m->reader_cond);
  }
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < n; i++)
    ia__conn_unref((ia_conn *)(uintptr_t)evs[i].data.u64);
}

/* The caller lets go of the read side: to a caller blocked on another
 * task, to the loop if async tasks wait, else parked. Called and returns
 * with mu held (let go of around a teardown). */
static void release_reader_locked(ia_conn *c) {
  ia_master *m = c->m;
  ia_task *next = NULL;
  bool any = false;
  for (ia_task *p = c->pending; p; p = p->next) {
    any = true;
    if (p->blocking && !next) next = p;
  }
  bool teardown = atomic_load(&c->teardown_pending);
  if (teardown || !c->up) {
    c->reader = IA__RD_PARKED;
  } else if (next) {
    c->reader = IA__RD_PARKED;
    next->offered = true;
    if (atomic_load(&next->has_cond)) pthread_cond_broadcast(&next->cond);
  } else {
    c->reader = any ? IA__RD_LOOP : IA__RD_PARKED; /* async tasks wait: the loop reads for them */
  }
  ia__conn_watch_locked(c);
  if (!teardown) return;
  pthread_mutex_unlock(&m->mu);
  ia__conn_request_teardown(c);
  pthread_mutex_lock(&m->mu);
}

ia_code ia__conn_submit(ia_conn *c, ia_task *t, const ia__wframe *w, bool blocking, uint64_t deadline_ms) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  if (atomic_load(&t->status) != IA_STATUS_IDLE) {
    pthread_mutex_unlock(&m->mu);
    return IA_INVALID_ARGUMENT;
  }
  if (!c->up) {
    pthread_mutex_unlock(&m->mu);
    return IA_NOT_CONNECTED;
  }
  atomic_store(&t->status, IA_STATUS_STARTING);
  t->blocking = blocking;
  t->start_ticks = t->kind == IA__TASK_USER ? ia__ticks() : 0;
  /* A blocking call's caller keeps its own deadline: only an async task's
   * is the loop's to watch (and worth a clock read). */
  t->deadline_at = t->deadline_ms && !blocking ? ia__now_ms() + t->deadline_ms : 0;
  atomic_fetch_add(&t->refs, 1); /* the pending list's */
  t->next = c->pending;
  c->pending = t;
  /* A blocking call takes the read side before its request goes out, when
   * it is free or the loop's and the loop is not in a read: taken after
   * the send, the reply could come first and the loop read it (on one CPU
   * it nearly always did), to hand it over with a wake-up. Only a small
   * request that nothing is queued before: it is sent without blocking,
   * the loop flushing any rest, so the caller is soon reading -- a caller
   * blocked in a send would read nothing while the slave, its replies
   * unread, might stop reading too. */
  t->reads = blocking && ia__wframe_len(w) <= CLAIM_MAX && ia__ws_queued(&c->out) == 0 &&
             (c->reader == IA__RD_PARKED || (c->reader == IA__RD_LOOP && !c->loop_reading));
  if (t->reads) {
    bool was_loop = c->reader == IA__RD_LOOP;
    c->reader = IA__RD_CALLER;
    if (was_loop) ia__conn_watch_locked(c); /* parked, it watched nothing already: nothing is queued */
  } else if (!blocking && c->reader == IA__RD_PARKED) {
    c->reader = IA__RD_LOOP;
    ia__conn_watch_locked(c);
  }
  bool wait = blocking && !t->reads;
  pthread_mutex_unlock(&m->mu);
  /* Registered before it is sent: a fast reply must find it. A send that
   * fails ends the connection, and the task with it, as LOST; one that
   * times out leaves the rest queued, and the caller's wait ends at the
   * same deadline. */
  if (wait)
    (void)ia__conn_send(c, w, deadline_ms);
  else
    (void)ia__conn_send_nb(c, w);
  return IA_OK;
}

/* The caller holds c's read side: reads until t's reply is in, the
 * connection ends, or time is up, then lets go of it. Called without mu;
 * returns with it held. */
static void read_for(ia_conn *c, ia_task *t, uint64_t deadline) {
  ia_master *m = c->m;
  t->reads = false;
  bool open = ia__master_dispatch(c);
  /* The reply ends t (done) and a teardown waits for this reader
   * (teardown_pending): both atomics, looked at without the lock. */
  while (open && !atomic_load(&t->done) && !atomic_load(&c->teardown_pending)) {
    uint64_t now = ia__now_ms();
    if (now >= deadline) break;
    open = caller_read(c, deadline - now) && ia__master_dispatch(c);
  }
  pthread_mutex_lock(&m->mu);
  release_reader_locked(c);
}

ia_code ia__conn_await(ia_conn *c, ia_task *t, uint64_t deadline) {
  ia_master *m = c->m;
  /* Taken at submit (even if the reply or the connection's end came
   * meanwhile: a teardown waits for the caller to let go). */
  if (t->reads)
    read_for(c, t, deadline);
  else
    pthread_mutex_lock(&m->mu);
  while (!atomic_load(&t->done)) {
    bool take = false, steal = false;
    if (c->up && !c->torn_down && !atomic_load(&c->teardown_pending)) {
      take = c->reader == IA__RD_PARKED;
      /* The loop reads: take the socket from it (one epoll_ctl), and read
       * for any async task on the way. */
      steal = c->reader == IA__RD_LOOP;
    }
    if (take || steal) {
      if (steal) {
        c->reader = IA__RD_TRANSFER;
        ia__conn_watch_locked(c);
        while (c->loop_reading)
          pthread_cond_wait(&m->reader_cond, &m->mu);
      }
      c->reader = IA__RD_CALLER;
      t->offered = false;
      pthread_mutex_unlock(&m->mu);
      read_for(c, t, deadline);
      if (!atomic_load(&t->done) && ia__now_ms() >= deadline) break;
      continue;
    }
    /* Somebody else reads: they dispatch our reply or offer us the socket. */
    pthread_cond_t *cond = ia__task_cond_locked(t);
    if (atomic_load(&t->done)) continue; /* finished before it saw the condition: no wake-up comes */
    if (deadline == UINT64_MAX) {
      pthread_cond_wait(cond, &m->mu);
    } else {
      uint64_t now = ia__now_ms();
      if (now >= deadline) break;
      struct timespec until;
      ia__deadline_ts(&until, (uint32_t)(deadline - now > 1000 ? 1000 : deadline - now));
      pthread_cond_timedwait(cond, &m->mu, &until);
    }
  }
  bool done = atomic_load(&t->done);
  pthread_mutex_unlock(&m->mu);
  return done ? IA_OK : IA_TIMEOUT;
}

void ia__master_tick(ia_master *m) {
  pthread_mutex_lock(&m->mu);
  for (ia_conn *c = m->conns; c; c = c->next)
    if (c->up && !c->torn_down && c->reader == IA__RD_PARKED) {
      c->reader = IA__RD_LOOP;
      ia__conn_watch_locked(c);
    }
  pthread_mutex_unlock(&m->mu);
}
