/*
 * The workers and the queue of the three modes beside non-blocking single
 * (shared/DESIGN.md, "Task modes"):
 *
 *   non-blocking multi  N workers; a task beyond them is refused (601)
 *   blocking single     1 worker and a bounded FIFO queue (full: 605)
 *   blocking multi      N workers and a bounded FIFO queue
 *
 * Reading, as in the default mode (reader.c): one worker at a time holds
 * the master's read side and runs each task it reads itself, at once, so a
 * stream of short tasks costs no hand-off between threads at all. When one
 * of them runs long, the loop takes the read side over and admits each
 * task behind it under the slave's mutex -- to the queue the other workers
 * take from, or refused -- and a worker runs it and sends its outcome
 * itself. A task the loop reads that a worker can take at once, with no
 * task waiting and nothing buffered behind it, goes to an idle worker with
 * the read side, and the fast path is back. A worker that reads runs
 * nothing else and nobody fills the queue meanwhile: it always finds a free
 * place, and no waiting task that should start first.
 *
 * Tasks start in the order they came; a task waiting in the queue is
 * cancelled by its master (608), outlived by its deadline (607, without
 * running), dropped with a master that went away (never run), and answered
 * 101 once the slave shuts down. Frames not read yet wait in the socket, as
 * in the default mode, until the watchdog finds the task before them long
 * (10-20 ms at first, 1-2 ms while long tasks are about).
 *
 * Order rules, as for the slot (slot.c): admission counts under the mutex,
 * so no more than `workers` run and no more than `queue_cap` wait; a task
 * that must wait is Accepted, into the stream with the mutex held before a
 * worker can see it, so Accepted never follows the outcome; a worker frees
 * its place before it sends the outcome. Each task keeps a copy of its
 * body, so the loop reads on.
 *
 * Never: run a handler on the loop, hold the mutex while a handler or a
 * hook runs, or run a task whose master is gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "slave/slave-internal.h"

ia_code ia__pool_init(ia_slave *s, ia_error *err) {
  ia__pool *p = &s->pool;
  ia_mode mode = s->cfg.mode;
  if ((unsigned)mode > IA_MODE_BLOCKING_MULTI)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "no task mode %d", mode);
  p->on = mode != IA_MODE_NONBLOCKING_SINGLE;
  bool multi = mode == IA_MODE_NONBLOCKING_MULTI || mode == IA_MODE_BLOCKING_MULTI;
  bool queued = mode == IA_MODE_BLOCKING_SINGLE || mode == IA_MODE_BLOCKING_MULTI;
  uint32_t workers = s->cfg.workers, queue = s->cfg.queue;
  if (!multi && workers > 1)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "%s runs one task at a time: workers must be 0 or 1",
                         ia_mode_name(mode));
  if (!queued && queue > 0)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "%s has no queue: queue must be 0", ia_mode_name(mode));
  if (workers > IA__POOL_WORKERS_MAX || queue > IA__POOL_QUEUE_MAX)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "at most %u workers and a queue of %u",
                         IA__POOL_WORKERS_MAX, IA__POOL_QUEUE_MAX);
  p->workers = !multi ? 1 : workers ? workers : IA__POOL_WORKERS_DEFAULT;
  p->queue_cap = !queued ? 0 : queue ? queue : IA__POOL_QUEUE_DEFAULT;
  if (!p->on) return IA_OK;
  p->running = calloc(p->workers, sizeof *p->running);
  p->extra = p->workers > 1 ? calloc(p->workers - 1, sizeof *p->extra) : NULL;
  if (!p->running || (p->workers > 1 && !p->extra))
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the pool");
  return IA_OK;
}

uint32_t ia__pool_capacity(const ia_slave *s) {
  return s->pool.on ? s->pool.workers : 1;
}

bool ia__pool_start_extra(ia_slave *s) {
  ia__pool *p = &s->pool;
  for (; p->on && p->n_extra + 1 < p->workers; p->n_extra++)
    if (ia__thread_create(&p->extra[p->n_extra], ia__pool_worker_main, s) != 0) return false;
  return true;
}

void ia__pool_join_extra(ia_slave *s) {
  for (uint32_t i = 0; i < s->pool.n_extra; i++)
    pthread_join(s->pool.extra[i], NULL);
  s->pool.n_extra = 0;
}

/* ---- the queue (mu) ---- */

static void push_locked(ia__pool *p, ia_task_ctx *ctx) {
  ctx->qnext = NULL;
  if (p->tail)
    p->tail->qnext = ctx;
  else
    p->head = ctx;
  p->tail = ctx;
  p->n_waiting++;
}

/* Unlinks the waiting tasks that `match` picks into a list of their own. */
static ia_task_ctx *unlink_locked(ia__pool *p, bool (*match)(const ia_task_ctx *, const void *),
                                  const void *arg) {
  ia_task_ctx *out = NULL, **end = &out, *prev = NULL;
  for (ia_task_ctx *t = p->head, *next; t; t = next) {
    next = t->qnext;
    if (!match(t, arg)) {
      prev = t;
      continue;
    }
    if (prev)
      prev->qnext = next;
    else
      p->head = next;
    if (p->tail == t) p->tail = prev;
    p->n_waiting--;
    t->qnext = NULL;
    *end = t;
    end = &t->qnext;
  }
  return out;
}

static bool of_conn(const ia_task_ctx *t, const void *c) {
  return !c || t->conn == c;
}

/* A free place for ctx, which starts now: its index. (mu; one is free) */
static uint32_t take_place_locked(ia__pool *p, ia_task_ctx *ctx) {
  uint32_t i = 0;
  while (p->running[i])
    i++;
  p->running[i] = ctx;
  p->n_running++;
  ctx->started = true;
  return i;
}

/* ---- admission (loop) ---- */

/* The task takes its own copy of its body (the payload and metadata lie in
 * it), so that the loop reads on in c->in: small ones into the context. */
static bool own_body(ia_task_ctx *ctx) {
  size_t n = ctx->body.n;
  uint8_t *copy = n <= sizeof ctx->body_small ? ctx->body_small : malloc(n);
  if (!copy) return false;
  if (copy != ctx->body_small) ctx->hold = copy;
  if (n) memcpy(copy, ctx->body.p, n);
  const uint8_t *p = ctx->payload.p;
  if (p >= ctx->body.p && p <= ctx->body.p + n) ctx->payload.p = copy + (p - ctx->body.p);
  ctx->body.p = copy;
  return true;
}

/* Admits a checked task (the hook asked) to a worker or the queue, or
 * refuses it, and frees it then. */
static ia__take admit(ia__sconn *c, ia_task_ctx *ctx, ia__reader who) {
  ia_slave *s = c->slave;
  ia__pool *p = &s->pool;
  uint64_t id = ctx->id;
  if (!own_body(ctx)) {
    ia__task_ctx_free(ctx);
    ia__sconn_fail(c, IA_NO_MEMORY, "out of memory for a task", who);
    return IA__TAKE_CLOSED;
  }
  pthread_mutex_lock(&s->mu);
  uint32_t in = p->n_running + p->n_waiting;
  bool room = in < p->workers + p->queue_cap;
  bool sent = true;
  if (room) {
    c->tasks++;
    /* A task that has to wait is Accepted, so that its master knows; one a
     * worker takes at once just runs, as in the default mode. Either way
     * before any worker can see it (top comment). */
    if (in >= p->workers) {
      ia__wframe w;
      ia__wframe_empty(&w, id, INTERACTION__V1__FRAME__BODY_ACCEPTED);
      sent = ia__sconn_send_nb_locked(c, &w);
    }
    push_locked(p, ctx);
    /* A busy worker takes the next task itself when it is done: only an
     * idle one needs waking. */
    if (p->n_idle) pthread_cond_signal(&s->work_cond);
  }
  pthread_mutex_unlock(&s->mu);
  if (room) {
    if (!sent) ia__sconn_close(c, true, IA_CONNECTION_LOST);
    return IA__TAKE_SLOT;
  }
  const unsigned refusal = INTERACTION__V1__FRAME__BODY_REFUSAL;
  ia__stats_refused(c, id, p->queue_cap ? IA_STATS_REFUSED_QUEUE_FULL : IA_STATS_REFUSED_BUSY);
  if (p->queue_cap)
    ia__sconn_status(c, id, refusal, IA_QUEUE_FULL, "the slave's queue is full", NULL, who);
  else
    ia__sconn_status(c, id, refusal, IA_TASK_ALREADY_EXIST, "every one of the slave's workers is busy", NULL,
                     who);
  ia__task_ctx_free(ctx);
  return IA__TAKE_DONE;
}

/* The checks every task passes first, the hook's too: IA__TAKE_SLOT with
 * *out, or answered, or c failed. */
static ia__take check(ia__sconn *c, const ia__env *env, size_t frame_len, ia__reader who, ia_task_ctx **out) {
  ia__take t = ia__slot_admit_check(c, env, frame_len, who, out);
  if (t != IA__TAKE_SLOT || ia__slot_hook(c, *out, who)) return t;
  ia__task_ctx_free(*out);
  return IA__TAKE_DONE;
}

ia__take ia__pool_admit(ia__sconn *c, const ia__env *env, size_t frame_len) {
  ia_task_ctx *ctx = NULL;
  ia__take t = check(c, env, frame_len, IA__RD_LOOP, &ctx);
  return t == IA__TAKE_SLOT ? admit(c, ctx, IA__RD_LOOP) : t;
}

bool ia__pool_hand_back(ia__sconn *c, size_t frame_len) {
  ia_slave *s = c->slave;
  ia__pool *p = &s->pool;
  /* Frames behind it: a burst, which the loop admits side by side now. */
  if (c->in.end - c->in.start > frame_len) return false;
  pthread_mutex_lock(&s->mu);
  bool hand = p->n_idle > 0 && p->n_waiting == 0 && p->n_running < p->workers && s->master == c &&
              !atomic_load(&c->closing);
  if (hand) ia__slave_to_worker_locked(s, c);
  pthread_mutex_unlock(&s->mu);
  return hand;
}

ia__dispatch_rc ia__pool_lead(ia__sconn *c, const ia__env *env, size_t frame_len) {
  ia_slave *s = c->slave;
  ia__pool *p = &s->pool;
  ia_task_ctx *ctx = NULL;
  ia__take t = check(c, env, frame_len, IA__RD_WORKER, &ctx);
  if (t == IA__TAKE_CLOSED) return IA__DISPATCH_CLOSED;
  pthread_mutex_lock(&s->mu);
  /* This worker runs nothing else, and nobody fills the queue while it
   * reads: a place is free, and no task waits for it (top comment). */
  uint32_t i = 0;
  bool gone = atomic_load(&c->closing); /* since it was read: nobody would hear its outcome */
  bool now = t == IA__TAKE_SLOT && !gone && p->n_waiting == 0 && p->n_running < p->workers;
  if (now) {
    i = take_place_locked(p, ctx);
    c->tasks++;
    c->lead = ctx;
    s->run_seq++; /* for the watchdog's look (slot.c) */
    s->watched = false;
  }
  pthread_mutex_unlock(&s->mu);
  if (gone) {
    if (t == IA__TAKE_SLOT) ia__task_ctx_free(ctx);
    return IA__DISPATCH_CLOSED;
  }
  if (!now) {
    if (t == IA__TAKE_SLOT && admit(c, ctx, IA__RD_WORKER) == IA__TAKE_CLOSED) return IA__DISPATCH_CLOSED;
    ia__inbuf_consume(&c->in, frame_len);
    return IA__DISPATCH_MORE;
  }
  ia__wframe w;
  bool built = ia__slot_execute(s, ctx, &w);
  pthread_mutex_lock(&s->mu);
  p->running[i] = NULL; /* free before the outcome goes out (top comment) */
  p->n_running--;
  /* Unless the loop took the read side while it ran, this worker reads on:
   * the task lets go of c now, as in the slot (slot.c). */
  bool mine = c->lead == ctx;
  if (mine) {
    c->lead = NULL;
    c->tasks--;
  }
  bool open = !atomic_load(&c->closing);
  pthread_mutex_unlock(&s->mu);
  return ia__slot_finish(s, c, ctx, built ? &w : NULL, open, mine) ? IA__DISPATCH_MORE : IA__DISPATCH_HANDED;
}

/* ---- ending tasks that never ran ---- */

/* Answers (when c is open) and frees a task that never ran, for `why`. */
static void end_unrun(ia_slave *s, ia_task_ctx *ctx, ia_code why, const char *message) {
  ia__sconn *c = ctx->conn;
  if (why == IA_CANCELLED) {
    ia_code rc = ia_task_ctx_fail(ctx, IA_CANCELLED, message, NULL, 0);
    (void)rc; /* a task that never ran has no outcome yet */
  } else {
    atomic_store(&ctx->cancel_why, (int)why);
    atomic_store(&ctx->cancelled, true); /* heard as 607 or 101 (task_ctx.c) */
  }
  ia__stats_task(ctx, 0);
  ia__wframe w;
  bool built = ia__task_ctx_outcome_frame(ctx, c->peer_max_frame, &w);
  if (built && !atomic_load(&c->closing)) (void)ia__sconn_send(c, &w, IA__RD_WORKER);
  if (built) ia__wframe_release(&w);
  ia__task_ctx_free(ctx);
  pthread_mutex_lock(&s->mu);
  c->tasks--;
  bool closing = atomic_load(&c->closing);
  pthread_mutex_unlock(&s->mu);
  if (closing) event_active(s->close_ev, EV_TIMEOUT, 0);
}

static bool has_id(const ia_task_ctx *t, const void *arg) {
  const ia_task_ctx *want = arg;
  return t->conn == want->conn && t->id == want->id;
}

void ia__pool_cancel(ia__sconn *c, uint64_t id) {
  ia_slave *s = c->slave;
  ia_task_ctx key = {.conn = c, .id = id};
  pthread_mutex_lock(&s->mu);
  ia_task_ctx *waiting = unlink_locked(&s->pool, has_id, &key);
  if (!waiting) ia__pool_stop_running_locked(s, c, id, false, IA_CANCELLED);
  pthread_mutex_unlock(&s->mu);
  while (waiting) {
    ia_task_ctx *next = waiting->qnext;
    end_unrun(s, waiting, IA_CANCELLED, "cancelled while it waited in the slave's queue");
    waiting = next;
  }
}

void ia__pool_stop_running_locked(ia_slave *s, const ia__sconn *c, uint64_t id, bool any_id, ia_code why) {
  ia__pool *p = &s->pool;
  for (uint32_t i = 0; p->on && i < p->workers; i++) {
    ia_task_ctx *t = p->running[i];
    if (!t || (c && t->conn != c) || (!any_id && t->id != id)) continue;
    if (!atomic_load(&t->cancelled)) atomic_store(&t->cancel_why, (int)why);
    atomic_store(&t->cancelled, true);
    pthread_cond_broadcast(&s->cancel_cond);
  }
}

void ia__pool_stop_locked(ia_slave *s, ia__sconn *c, ia_code why) {
  if (!s->pool.on) return;
  ia__pool_stop_running_locked(s, c, 0, true, why);
  /* Its waiting tasks never run: their master is gone. */
  ia_task_ctx *gone = unlink_locked(&s->pool, of_conn, c);
  while (gone) {
    ia_task_ctx *next = gone->qnext;
    atomic_store(&gone->cancel_why, (int)why);
    atomic_store(&gone->cancelled, true);
    ia__stats_task(gone, 0);
    gone->conn->tasks--;
    ia__task_ctx_free(gone);
    gone = next;
  }
}

bool ia__pool_watch_locked(ia_slave *s) {
  ia__pool *p = &s->pool;
  if (!p->on || p->n_running == 0) return false;
  uint64_t now = 0;
  for (uint32_t i = 0; i < p->workers; i++) {
    ia_task_ctx *t = p->running[i];
    if (!t || !t->deadline_at || atomic_load(&t->cancelled)) continue;
    if (!now) now = ia__now_ms();
    if (now >= t->deadline_at) {
      atomic_store(&t->cancel_why, (int)IA_DEADLINE_EXCEEDED);
      atomic_store(&t->cancelled, true);
      pthread_cond_broadcast(&s->cancel_cond);
    }
  }
  return true;
}

void ia__pool_free(ia_slave *s) {
  pthread_mutex_lock(&s->mu);
  ia_task_ctx *left = unlink_locked(&s->pool, of_conn, NULL);
  pthread_mutex_unlock(&s->mu);
  while (left) {
    ia_task_ctx *next = left->qnext;
    left->conn->tasks--;
    ia__task_ctx_free(left);
    left = next;
  }
  free(s->pool.running);
  free(s->pool.extra);
  s->pool.running = NULL;
  s->pool.extra = NULL;
}

/* ---- the workers ---- */

/* Runs one task taken from the queue into place `i` and sends its outcome;
 * returns with the mutex held again, the task gone. (Called without mu.) */
static void run_one(ia_slave *s, ia_task_ctx *ctx, uint32_t i) {
  ia__sconn *c = ctx->conn;
  ia__wframe w;
  bool built = ia__slot_execute(s, ctx, &w);
  pthread_mutex_lock(&s->mu);
  s->pool.running[i] = NULL; /* free before the outcome goes out (top comment) */
  s->pool.n_running--;
  bool open = !atomic_load(&c->closing);
  pthread_mutex_unlock(&s->mu);
  (void)ia__slot_finish(s, c, ctx, built ? &w : NULL, open, false);
  pthread_mutex_lock(&s->mu); /* kept for the next look at the queue */
}

void *ia__pool_worker_main(void *arg) {
  ia_slave *s = arg;
  ia__pool *p = &s->pool;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    /* A waiting task first: the read side's worker would run the next one
     * before it. */
    bool task = false;
    while (!atomic_load(&s->worker_stop) && !(task = p->head && p->n_running < p->workers) &&
           !(s->handed && !s->handed->reading)) {
      p->n_idle++;
      pthread_cond_wait(&s->work_cond, &s->mu);
      p->n_idle--;
    }
    if (atomic_load(&s->worker_stop)) break;
    if (!task) {
      ia__sconn *c = ia__slave_read_side_locked(s);
      pthread_mutex_unlock(&s->mu);
      if (c) ia__slave_worker_read(s, c);
      pthread_mutex_lock(&s->mu);
      continue;
    }
    ia_task_ctx *ctx = p->head;
    p->head = ctx->qnext;
    if (!p->head) p->tail = NULL;
    p->n_waiting--;
    ctx->qnext = NULL;
    /* Why it may not run after all: it waited past its deadline, or the
     * slave is shutting down. */
    ia_code skip = atomic_load(&s->shutting_down)                         ? IA_SHUTTING_DOWN
                   : ctx->deadline_at && ia__now_ms() >= ctx->deadline_at ? IA_DEADLINE_EXCEEDED
                                                                          : IA_OK;
    uint32_t i = skip == IA_OK ? take_place_locked(p, ctx) : 0;
    pthread_mutex_unlock(&s->mu);
    if (skip == IA_OK) {
      run_one(s, ctx, i);
    } else {
      end_unrun(s, ctx, skip, NULL);
      pthread_mutex_lock(&s->mu);
    }
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}
