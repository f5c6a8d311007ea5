/*
 * The read side of the slave's connections, and its hand-off between the
 * worker and the loop (lazy leader/follower, shared/DESIGN.md "Threads"):
 *
 *  - Normally the worker holds the master's read side: it recv()s a task,
 *    runs the handler itself, frees the slot and sends the reply, with no
 *    thread hand-off at all.
 *  - Once the watchdog has seen the same handler running at two of its
 *    looks, the read side goes to the relief worker, a second worker
 *    thread the loop starts at the first long task (slot.c,
 *    ia__slot_long_cb): from then on it answers pings, refuses new tasks
 *    with TASK_ALREADY_EXIST, sees Cancel and notices a lost master while
 *    the handler runs, reading with blocking recv() as the first worker
 *    did -- no epoll and no turn of the loop per frame. The first task it
 *    reads into a free slot it runs itself, and the first worker is the
 *    relief for that one. A short task pays nothing. (Without the relief
 *    thread, the loop reads instead, as in the other modes, and hands task
 *    and read side back together once it reads a task into a free slot.)
 *  - The other modes (pool.c) work the same way: one worker at a time
 *    holds the read side and runs the tasks it reads in turn; when one of
 *    them runs long, the loop takes over and admits the tasks behind it to
 *    the other workers and the queue; a task the loop reads that a worker
 *    can run at once, with nothing buffered behind it, goes to an idle
 *    worker together with the read side.
 *  - Connections in their handshake, and observers, are read by the loop.
 *
 * `reader` says who holds it, under the slave's mutex, and `reading` that a
 * worker has come to it (no second worker may); only the holder touches the
 * connection's input buffer. The loop's sockets sit in its
 * epoll set (runtime/epset.h), in for EPOLLIN exactly while the loop reads.
 *
 * Never: let the loop block in a read, or read a socket whose read side is
 * the other thread's.
 */
#include <errno.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "slave/slave-internal.h"

#define LOOP_READS 8 /* full reads of one socket per turn of the loop */

void ia__slave_to_worker_locked(ia_slave *s, ia__sconn *c) {
  c->reader = IA__RD_WORKER;
  s->handed = c;
  ia__sconn_watch_locked(c);
  pthread_cond_signal(&s->work_cond);
}

void ia__slave_to_loop_locked(ia_slave *s, ia__sconn *c) {
  c->reader = IA__RD_LOOP;
  c->reading = false;
  if (s->handed == c) s->handed = NULL; /* else the next master's is there already */
  ia__sconn_watch_locked(c);
}

bool ia__slave_take_over_locked(ia__sconn *c, ia_task_ctx *ctx, ia__reader to) {
  ia__inbuf rest;
  if (!ia__inbuf_split(&c->in, ctx->frame_len, &rest)) return false;
  ctx->hold = c->in.buf;
  ctx->taken = true;
  c->in = rest;
  c->reading = false; /* the worker running ctx reads it no more */
  if (to == IA__RD_WORKER)
    ia__slave_to_worker_locked(c->slave, c);
  else
    ia__slave_to_loop_locked(c->slave, c);
  return true;
}

bool ia__slave_relief_start(ia_slave *s) {
  if (!s->relief_on) s->relief_on = ia__thread_create(&s->relief, ia__slave_worker_main, s) == 0;
  return s->relief_on;
}

/* What a failed recv() means for c; reader's thread. */
IA__COLD static void read_failed(ia__sconn *c, ssize_t n, ia__reader who) {
  if (n < 0 && errno == ENOMEM) {
    ia__sconn_fail(c, IA_NO_MEMORY, "out of memory for a frame", who);
    return;
  }
  IA__INFO("slave: connection from %s lost", c->label);
  ia__sconn_close(c, true, IA_CONNECTION_LOST);
}

static bool retry(ssize_t n) {
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
}

void ia__slave_loop_read(ia__sconn *c, bool ended) {
  ia_slave *s = c->slave;
  if (c->tls && !c->out.tls && !ia__slave_tls_step(c)) return;
  for (int i = 0; i < LOOP_READS; i++) {
    bool full = false;
    uint32_t limit = c->handshaken && !c->observer ? s->max_frame : IA__PREAUTH_MAX_FRAME;
    ssize_t n = ia__inbuf_recv(&c->in, c->fd, c->tls, limit, MSG_DONTWAIT, &full);
    if (retry(n)) return;
    if (n <= 0) {
      read_failed(c, n, IA__RD_LOOP);
      return;
    }
    ia__live_rx(&c->live, (size_t)n);
    ia__count(&s->stats.rx_bytes, (uint64_t)n);
    /* A short read took all the data, but not an end that came with it. */
    if (ia__slave_dispatch(c, IA__RD_LOOP) != IA__DISPATCH_MORE || (!full && !ended)) return;
  }
  ia__epset_again(&s->ep); /* more is waiting: after the other sockets */
}

static ia__sconn *find_conn(ia_slave *s, uint64_t gen) {
  for (ia__sconn *c = s->conns; c; c = c->next)
    if (c->gen == gen) return c;
  return NULL;
}

void ia__slave_ep_batch(void *arg, struct epoll_event *evs, int n) {
  ia_slave *s = arg;
  for (int i = 0; i < n; i++) {
    ia__sconn *c = find_conn(s, evs[i].data.u64);
    if (!c) continue; /* freed since the set reported it */
    if (evs[i].events & EPOLLOUT) ia__sconn_flush(c);
    if (!(evs[i].events & (EPOLLIN | IA__EPSET_ENDED))) continue;
    pthread_mutex_lock(&s->mu);
    bool mine = c->reader == IA__RD_LOOP && !atomic_load(&c->closing);
    pthread_mutex_unlock(&s->mu);
    if (mine) ia__slave_loop_read(c, evs[i].events & IA__EPSET_ENDED);
  }
}

/* Reads and serves c while the worker holds its read side (c->reading,
 * set by the caller). Worker. */
void ia__slave_worker_read(ia_slave *s, ia__sconn *c) {
  for (;;) {
    /* Closed before or while this worker came to it: the loop frees it. */
    if (atomic_load_explicit(&c->closing, memory_order_acquire) ||
        atomic_load_explicit(&s->worker_stop, memory_order_acquire))
      break;
    ia__dispatch_rc r = ia__slave_dispatch(c, IA__RD_WORKER);
    if (r == IA__DISPATCH_HANDED) return;
    if (r == IA__DISPATCH_CLOSED) break;
    if (atomic_load_explicit(&c->closing, memory_order_acquire) ||
        atomic_load_explicit(&s->worker_stop, memory_order_acquire))
      break;
    /* Blocking, with the socket's receive tick: a closing socket is shut
     * down, which wakes this at once. */
    ssize_t n = ia__inbuf_recv(&c->in, c->fd, c->tls, s->max_frame, 0, NULL);
    if (n > 0) {
      ia__live_rx(&c->live, (size_t)n);
      ia__count(&s->stats.rx_bytes, (uint64_t)n);
      continue;
    }
    if (retry(n)) continue;
    read_failed(c, n, IA__RD_WORKER);
    break;
  }
  pthread_mutex_lock(&s->mu);
  ia__slave_to_loop_locked(s, c);
  pthread_mutex_unlock(&s->mu);
  event_active(s->close_ev, EV_TIMEOUT, 0); /* the loop may free it now */
}

ia__sconn *ia__slave_read_side_locked(ia_slave *s) {
  ia__sconn *c = s->handed;
  if (!c || c->reading || atomic_load(&s->worker_stop)) return NULL;
  c->reading = true;
  return c;
}

void *ia__slave_worker_main(void *arg) {
  ia_slave *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (s->to_run) {
      ia_task_ctx *ctx = s->to_run;
      s->to_run = NULL;
      ia__sconn *c = ctx->conn;                /* alive while the task holds the slot */
      c->reading = c->reader == IA__RD_WORKER; /* handed with it, unless it closed since */
      pthread_mutex_unlock(&s->mu);
      if (ia__slot_run(s, c, ctx)) ia__slave_worker_read(s, c);
      pthread_mutex_lock(&s->mu);
      continue;
    }
    ia__sconn *c = ia__slave_read_side_locked(s);
    if (c) {
      pthread_mutex_unlock(&s->mu);
      ia__slave_worker_read(s, c);
      pthread_mutex_lock(&s->mu);
      continue;
    }
    if (atomic_load(&s->worker_stop)) break;
    pthread_cond_wait(&s->work_cond, &s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}
