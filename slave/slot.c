/*
 * The task slot (non-blocking single mode: one task at a time, a second is
 * refused at once with TASK_ALREADY_EXIST): admission, running a task, and
 * the watchdog's look at the running handler. The checks every mode makes
 * before admitting a task, and the handler's call, are here too (pool.c
 * uses them).
 *
 * Order rules, enforced here and nowhere else:
 *
 *  - The slot is taken under the slave's mutex, so two tasks can never both
 *    hold it, whichever threads read them.
 *  - The slot is freed before the outcome is sent, so that a master that
 *    holds a result always finds the slot free for its next task.
 *  - Accepted is never sent after the outcome of the same task. The loop
 *    hands Accepted to the connection's stream with the mutex held, while
 *    the handler still runs (in_handler); the worker takes the mutex to free
 *    the slot before it sends the outcome, so the outcome always goes out
 *    behind the Accepted in the stream.
 *
 * Never: run a handler on the loop, or hold the mutex while a handler or a
 * hook runs.
 */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "slave/slave-internal.h"

/* The slot's handler is about to run. (mu) */
static void starts_locked(ia_slave *s, ia_task_ctx *ctx) {
  s->in_handler = true;
  s->watched = false;
  s->run_seq++;
  ctx->started = true;
}

void ia__slot_cancel_locked(ia_slave *s, const ia__sconn *c, uint64_t id, bool any_id, ia_code why) {
  ia__pool_stop_running_locked(s, c, id, any_id, why);
  ia_task_ctx *t = s->slot;
  if (!t || (c && t->conn != c) || (!any_id && t->id != id)) return;
  if (!atomic_load(&t->cancelled)) atomic_store(&t->cancel_why, (int)why);
  atomic_store(&t->cancelled, true);
  pthread_cond_broadcast(&s->cancel_cond);
}

/* The hot path calls these within this file, where they inline; pool.c
 * through the ia__slot_ names below. */

/* The checks before a task is admitted, in their order: a malformed Task
 * closes the connection, then shutdown and an unknown method refuse it.
 * IA__TAKE_SLOT, with *v and *e (NULL: the catch-all handler), if it may
 * run. */
static inline __attribute__((always_inline)) ia__take
admit_view(ia__sconn *c, const ia__env *env, ia__reader who, ia__task_view *v, const ia__method **e) {
  ia_slave *s = c->slave;
  if (!ia__task_parse(env->body, v)) {
    ia__sconn_fail(c, IA_PROTOCOL_ERROR, "malformed Task", who);
    return IA__TAKE_CLOSED;
  }
  const unsigned refusal = INTERACTION__V1__FRAME__BODY_REFUSAL;
  if (atomic_load(&s->shutting_down)) {
    ia__stats_refused(c, env->id, IA_STATS_REFUSED_SHUTTING_DOWN);
    ia__sconn_status(c, env->id, refusal, IA_SHUTTING_DOWN, "the slave is shutting down", NULL, who);
    return IA__TAKE_DONE;
  }
  *e = ia__slave_method(s, v->method.p, v->method.n);
  if (!s->cfg.handler && !*e) {
    char msg[160];
    snprintf(msg, sizeof msg, "no handler for method '%.*s'", (int)(v->method.n > 100 ? 100 : v->method.n),
             (const char *)v->method.p);
    ia__stats_refused(c, env->id, IA_STATS_REFUSED_UNKNOWN_METHOD);
    ia__sconn_status(c, env->id, refusal, IA_UNKNOWN_METHOD, msg, NULL, who);
    return IA__TAKE_DONE;
  }
  return IA__TAKE_SLOT;
}

/* The task's context, or NULL if there is no memory (any lock held). */
static inline __attribute__((always_inline)) ia_task_ctx *
new_ctx(ia__sconn *c, const ia__env *env, const ia__task_view *v, const ia__method *e, size_t frame_len) {
  ia_task_ctx *ctx = ia__task_ctx_new(c->slave, env->id, v, env->body, frame_len);
  if (!ctx) return NULL;
  ctx->conn = c;
  ctx->handler = e;
  return ctx;
}

IA__COLD static void out_of_memory(ia__sconn *c, uint64_t id, ia__reader who) {
  ia__sconn_status(c, id, INTERACTION__V1__FRAME__BODY_REFUSAL, IA_TASK_ERROR, "the slave is out of memory",
                   NULL, who);
}

static inline __attribute__((always_inline)) ia__take
admit_check(ia__sconn *c, const ia__env *env, size_t frame_len, ia__reader who, ia_task_ctx **out) {
  ia__task_view v;
  const ia__method *e;
  ia__take t = admit_view(c, env, who, &v, &e);
  if (t != IA__TAKE_SLOT) return t;
  if (!(*out = new_ctx(c, env, &v, e, frame_len))) {
    out_of_memory(c, env->id, who);
    return IA__TAKE_DONE;
  }
  return IA__TAKE_SLOT;
}

static inline bool hook(ia__sconn *c, ia_task_ctx *ctx, ia__reader who) {
  ia_slave *s = c->slave;
  if (!s->cfg.before_task) return true;
  ia_hook_reply reply = {0};
  bool ok = s->cfg.before_task(ctx, &reply, s->cfg.user);
  if (!ok) ia__stats_refused(c, ctx->id, IA_STATS_REFUSED_HOOK);
  if (!ok)
    ia__sconn_status(c, ctx->id, INTERACTION__V1__FRAME__BODY_REFUSAL, IA_TASK_REFUSED,
                     "refused by the slave's before_task hook", &reply, who);
  ia__hook_reply_release(&reply);
  return ok;
}

ia__take ia__slot_admit(ia__sconn *c, const ia__env *env, size_t frame_len, ia__reader who,
                        ia_task_ctx **out) {
  ia_slave *s = c->slave;
  ia__task_view v;
  const ia__method *e;
  ia__take t = admit_view(c, env, who, &v, &e);
  if (t != IA__TAKE_SLOT) return t;
  /* Without a before_task hook the handler starts at once: the slot is
   * taken and the handler marked running in one go (see ia__slot_run).
   * The context is made only for a free slot, under the lock that takes
   * it: a refusal makes none. */
  bool now = !s->cfg.before_task;
  ia_task_ctx *ctx = NULL;
  pthread_mutex_lock(&s->mu);
  bool busy = s->slot != NULL;
  if (!busy && (ctx = new_ctx(c, env, &v, e, frame_len))) {
    s->slot = ctx;
    c->tasks++;
    if (now) starts_locked(s, ctx);
  }
  pthread_mutex_unlock(&s->mu);
  if (busy) {
    ia__stats_refused(c, env->id, IA_STATS_REFUSED_BUSY);
    ia__sconn_status(c, env->id, INTERACTION__V1__FRAME__BODY_REFUSAL, IA_TASK_ALREADY_EXIST,
                     "the slave's task slot is busy", NULL, who);
    return IA__TAKE_DONE;
  }
  if (!ctx) {
    out_of_memory(c, env->id, who);
    return IA__TAKE_DONE;
  }
  /* The hook runs with the slot taken: it sees the task as the one running. */
  if (!hook(c, ctx, who)) {
    pthread_mutex_lock(&s->mu);
    s->slot = NULL;
    c->tasks--;
    pthread_mutex_unlock(&s->mu);
    ia__task_ctx_free(ctx);
    return IA__TAKE_DONE;
  }
  *out = ctx;
  return IA__TAKE_SLOT;
}

static inline void run_handler(ia_slave *s, ia_task_ctx *ctx) {
  const ia__method *e = ctx->handler;
  if (e) {
    e->fn(ctx, e->user);
  } else if (s->cfg.handler) {
    s->cfg.handler(ctx, s->cfg.user);
  } else {
    char msg[160];
    snprintf(msg, sizeof msg, "no handler for method '%.100s'", ctx->method);
    ia_code rc = ia_task_ctx_fail(ctx, IA_UNKNOWN_METHOD, msg, NULL, 0);
    (void)rc; /* a fresh task has no outcome yet: this cannot fail */
  }
}

/* Runs the task's handler (timed, counted) and builds its outcome frame. */
static inline __attribute__((always_inline)) bool execute(ia_slave *s, ia_task_ctx *ctx, ia__wframe *w) {
  ia__watchdog_poke();
  uint64_t t0 = ia__ticks();
  run_handler(s, ctx);
  uint64_t ran = ia__ticks_ns(t0, ia__ticks());
  if (ctx->outcome == IA__OUTCOME_NONE || ctx->outcome == IA__OUTCOME_INVALID)
    IA__WARN("slave: task %llu (%s) of %s: the handler gave no valid result: reported as TASK_ERROR",
             (unsigned long long)ctx->id, ctx->method, ctx->conn->label);
  ia__stats_task(ctx, ran ? ran : 1);
  return ia__task_ctx_outcome_frame(ctx, ctx->conn->peer_max_frame, w);
}

/* See ia__slot_finish. */
static inline __attribute__((always_inline)) bool finish(ia_slave *s, ia__sconn *c, ia_task_ctx *ctx,
                                                         ia__wframe *w, bool open, bool mine) {
  if (w && open)
    (void)ia__sconn_send(c, w, IA__RD_WORKER);
  else if (!w)
    ia__sconn_fail(c, IA_NO_MEMORY, "out of memory for a reply", IA__RD_WORKER);
  else
    IA__INFO("slave: task %llu (%s): %s is gone; its outcome is dropped", (unsigned long long)ctx->id,
             ctx->method, c->label);
  if (w) ia__wframe_release(w);
  if (mine && !ctx->hold) ia__inbuf_consume(&c->in, ctx->frame_len);
  ia__task_ctx_free(ctx);
  if (mine) return true;
  pthread_mutex_lock(&s->mu);
  c->tasks--;
  bool closing = atomic_load(&c->closing);
  pthread_mutex_unlock(&s->mu);
  if (closing) event_active(s->close_ev, EV_TIMEOUT, 0); /* it may be freed now */
  return false;
}

ia__take ia__slot_admit_check(ia__sconn *c, const ia__env *env, size_t frame_len, ia__reader who,
                              ia_task_ctx **out) {
  return admit_check(c, env, frame_len, who, out);
}

bool ia__slot_hook(ia__sconn *c, ia_task_ctx *ctx, ia__reader who) {
  return hook(c, ctx, who);
}

bool ia__slot_execute(ia_slave *s, ia_task_ctx *ctx, ia__wframe *w) {
  return execute(s, ctx, w);
}

bool ia__slot_finish(ia_slave *s, ia__sconn *c, ia_task_ctx *ctx, ia__wframe *w, bool open, bool mine) {
  return finish(s, c, ctx, w, open, mine);
}

bool ia__slot_run(ia_slave *s, ia__sconn *c, ia_task_ctx *ctx) {
  if (!ctx->started) { /* not yet marked running by ia__slot_admit */
    pthread_mutex_lock(&s->mu);
    starts_locked(s, ctx);
    pthread_mutex_unlock(&s->mu);
  }
  ia__wframe w;
  bool built = execute(s, ctx, &w);

  pthread_mutex_lock(&s->mu);
  s->in_handler = false;
  s->slot = NULL; /* freed before the outcome goes out: see the top comment */
  bool mine = c->reader == IA__RD_WORKER && !ctx->taken; /* else the loop's or another worker's */
  bool open = !atomic_load(&c->closing);
  /* While the worker reads c the loop cannot free it: the task lets go of
   * it now. Else it holds c until the outcome is out. */
  if (mine) c->tasks--;
  pthread_mutex_unlock(&s->mu);
  return finish(s, c, ctx, built ? &w : NULL, open, mine);
}

/* The task the master's reading worker runs itself, if any. (mu) */
static ia_task_ctx *inline_task_locked(const ia_slave *s) {
  if (s->pool.on) return s->master ? s->master->lead : NULL;
  return s->in_handler ? s->slot : NULL;
}

int ia__slot_watch_check(void *arg) {
  ia_slave *s = arg;
  pthread_mutex_lock(&s->mu);
  bool pooled = ia__pool_watch_locked(s); /* the other modes' deadlines */
  ia_task_ctx *t = inline_task_locked(s);
  /* An overdue task is cancelled here: this thread looks every tick while a
   * handler runs, and only reads the clock for a task with a deadline. */
  if (!s->pool.on && t && t->deadline_at && !atomic_load(&t->cancelled) && ia__now_ms() >= t->deadline_at)
    ia__slot_cancel_locked(s, NULL, 0, true, IA_DEADLINE_EXCEEDED);
  /* Seen at two looks in a row, a tick apart (1 ms or more): long. The
   * worker stamps no clock per task; it counts. */
  bool act = t && !s->watched && s->wd_seq == s->run_seq;
  if (t) s->wd_seq = s->run_seq;
  if (act) s->watched = true;
  pthread_mutex_unlock(&s->mu);
  if (act) event_active(s->long_ev, EV_TIMEOUT, 0);
  return (t || pooled ? IA__WD_RUNNING : 0) | (act ? IA__WD_LONG : 0);
}

void ia__slot_long_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  /* The default mode's read side goes to the relief worker, which reads
   * with blocking recv() as the first one did; the other modes', or
   * without that thread, to the loop. */
  bool relief = !s->pool.on && ia__slave_relief_start(s);
  ia__reader to = relief ? IA__RD_WORKER : IA__RD_LOOP;
  pthread_mutex_lock(&s->mu);
  ia_task_ctx *ctx = inline_task_locked(s);
  ia__sconn *c = ctx ? ctx->conn : NULL;
  /* A task taken over already is not its reader's any more: another
   * worker may hold the read side (and its buffer) now. The watchdog can
   * find it long again when this callback took a task that started just
   * after the one it had found. */
  bool take = c && c->reader == IA__RD_WORKER && !ctx->taken && !atomic_load(&c->closing) &&
              ia__slave_take_over_locked(c, ctx, to);
  bool sent = true;
  uint64_t id = take ? ctx->id : 0;
  if (take && s->pool.on) {
    c->lead = NULL; /* its worker lets go of c once it is done (pool.c) */
  } else if (take) {
    /* The Accepted rule (top comment): into the stream now, mutex held. */
    ia__wframe w;
    ia__wframe_empty(&w, id, INTERACTION__V1__FRAME__BODY_ACCEPTED);
    sent = ia__sconn_send_nb_locked(c, &w);
  }
  pthread_mutex_unlock(&s->mu);
  if (!take) return;
  if (!sent) {
    ia__sconn_close(c, true, IA_CONNECTION_LOST);
    return;
  }
  IA__DEBUG("slave: task %llu runs long: the %s reads the socket", (unsigned long long)id,
            relief ? "relief worker" : "loop");
  /* Frames the master sent behind the task are already buffered: the
   * relief worker dispatches them first; the loop does now. */
  if (!relief) ia__slave_dispatch(c, IA__RD_LOOP);
}
