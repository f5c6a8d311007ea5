/*
 * What the master does with each frame a reader takes off a socket: a reply
 * ends its pending task; Ping gets a Pong; Goodbye ends the connection. A
 * reply to an id that was never sent, a status without a code, a Pong that
 * answers a task, or anything malformed is a protocol error on that one
 * connection: Goodbye with the code, and it is closed. A late answer to a
 * call that timed out (its id abandoned, call.c) is dropped.
 *
 * Never: run a callback with a lock held, or use a connection's input
 * buffer after a frame that ended the connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "master/master-internal.h"

/* Takes the pending task with `id` off c's list. */
static ia_task *take_pending(ia_conn *c, uint64_t id) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  ia_task *found = NULL;
  for (ia_task **p = &c->pending; *p; p = &(*p)->next)
    if ((*p)->id == id) {
      found = *p;
      *p = found->next;
      found->next = NULL;
      break;
    }
  pthread_mutex_unlock(&m->mu);
  return found;
}

/* Whether `id` is an abandoned call's; `forget` drops it (its answer came). (mu) */
static bool abandoned_locked(ia_conn *c, uint64_t id, bool forget) {
  for (size_t i = 0; i < c->n_abandoned; i++)
    if (c->abandoned[i] == id) {
      if (forget) memmove(&c->abandoned[i], &c->abandoned[i + 1], (--c->n_abandoned - i) * sizeof *c->abandoned);
      return true;
    }
  return false;
}

static bool abandoned(ia_conn *c, uint64_t id, bool forget) {
  pthread_mutex_lock(&c->m->mu);
  bool found = abandoned_locked(c, id, forget);
  pthread_mutex_unlock(&c->m->mu);
  return found;
}

bool ia__master_abandon(ia_conn *c, ia_task *t) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  bool found = false;
  for (ia_task **p = &c->pending; *p; p = &(*p)->next)
    if (*p == t) {
      *p = t->next;
      t->next = NULL;
      found = true;
      break;
    }
  if (found) {
    if (c->n_abandoned == c->cap_abandoned) {
      size_t cap = c->cap_abandoned ? c->cap_abandoned * 2 : 8;
      uint64_t *a = cap <= IA__ABANDONED_MAX ? realloc(c->abandoned, cap * sizeof *a) : NULL;
      if (a) {
        c->abandoned = a;
        c->cap_abandoned = cap;
      } else if (c->n_abandoned > 0) {
        /* Full: the oldest is forgotten (its answer, should it still come,
         * is then a protocol error). */
        memmove(c->abandoned, c->abandoned + 1, --c->n_abandoned * sizeof *c->abandoned);
      }
    }
    if (c->n_abandoned < c->cap_abandoned) c->abandoned[c->n_abandoned++] = t->id;
  }
  pthread_mutex_unlock(&m->mu);
  if (found) ia__task_unref(t); /* the pending list's reference */
  return found;
}

static void finish_from_status(ia_task *t, ia_status st, const ia__status_view *v) {
  char msg[IA_ERROR_MESSAGE_MAX];
  size_t n = v->message.n < sizeof msg - 1 ? v->message.n : sizeof msg - 1;
  memcpy(msg, v->message.p ? (const char *)v->message.p : "", n);
  msg[n] = '\0';
  ia__task_finish(t, st, (ia_code)v->code, msg, v->data.p, v->data.n, true);
}

/* A reply for a task that is not pending: an abandoned call's late answer
 * (dropped) or a protocol error. True if the connection goes on. */
IA__COLD static bool not_pending(ia_conn *c, uint64_t id, bool forget) {
  if (abandoned(c, id, forget)) return true;
  pthread_mutex_lock(&c->m->mu);
  bool up = c->up;
  pthread_mutex_unlock(&c->m->mu);
  /* A connection going down ended its tasks already: what is still on the
   * way is read and dropped, not called a protocol error. */
  if (!up) return false;
  ia__conn_protocol_error(c, IA_PROTOCOL_ERROR, "a reply to an id that was never sent");
  return false;
}

/* A pending task answered with the wrong kind of frame: the task is lost
 * with the connection, which the slave broke. */
IA__COLD static bool answered_wrong(ia_conn *c, ia_task *t, const char *why) {
  ia__task_finish(t, IA_STATUS_LOST, IA_PROTOCOL_ERROR, why, NULL, 0, true);
  ia__conn_protocol_error(c, IA_PROTOCOL_ERROR, why);
  return false;
}

static bool on_result(ia_conn *c, const ia__env *env) {
  ia__slice payload;
  if (!ia__result_parse(env->body, &payload)) {
    ia__conn_protocol_error(c, IA_PROTOCOL_ERROR, "malformed TaskResult from the slave");
    return false;
  }
  ia_task *t = take_pending(c, env->id);
  if (!t) return not_pending(c, env->id, true);
  if (t->kind != IA__TASK_USER) return answered_wrong(c, t, "a TaskResult answered an internal request");
  /* The task is ours now (off the pending list): nobody else writes
   * t->decoded until it is finished. */
  if (t->dec.decode) {
    t->decoded = t->dec.decode(payload.p, payload.n, t->dec.arg);
    if (!t->decoded)
      ia__task_finish(t, IA_STATUS_FAILED, IA_PROTOCOL_ERROR, "the reply does not decode", NULL, 0, true);
    else
      ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true); /* decoded where it lay */
  } else {
    ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, payload.p, payload.n, true);
  }
  return true;
}

IA__COLD static bool on_goodbye(ia_conn *c, const ia__env *env, const ia__status_view *v) {
  /* A Goodbye answering our Disconnect (code 0) completes it. */
  ia_task *t = env->id ? take_pending(c, env->id) : NULL;
  if (t && t->kind == IA__TASK_DISCONNECT && v->has_code && v->code == IA_OK) {
    ia__conn_disconnected(c);
    ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true);
    return false;
  }
  ia_code code = v->has_code && v->code != IA_OK ? (ia_code)v->code : IA_CONNECTION_LOST;
  char msg[IA_ERROR_MESSAGE_MAX];
  snprintf(msg, sizeof msg, "the slave said goodbye: %.*s", (int)(v->message.n > 200 ? 200 : v->message.n),
           v->message.p ? (const char *)v->message.p : "");
  if (t) ia__task_finish(t, IA_STATUS_LOST, code, msg, NULL, 0, true);
  ia__conn_lost(c, IA_STATUS_LOST, code, msg);
  return false;
}

/* TaskFail, Refusal and Goodbye share a body. */
/* Out of line, as the rarer frames below: see on_frame. */
static __attribute__((noinline)) bool on_status(ia_conn *c, const ia__env *env) {
  ia__status_view v;
  if (!ia__status_parse(env->body, env->kind != INTERACTION__V1__FRAME__BODY_GOODBYE, &v)) {
    ia__conn_protocol_error(c, IA_PROTOCOL_ERROR, "malformed frame from the slave");
    return false;
  }
  if (env->kind == INTERACTION__V1__FRAME__BODY_GOODBYE) return on_goodbye(c, env, &v);
  if (!v.has_code || v.code == IA_OK) {
    /* Success never travels as a failure: another implementation that sends
     * this is broken, and reading it as OK would hand out a NULL reply. */
    ia__conn_protocol_error(c, IA_PROTOCOL_ERROR,
                            env->kind == INTERACTION__V1__FRAME__BODY_FAIL ? "a TaskFail without a failure code"
                                                                            : "a Refusal without a code");
    return false;
  }
  ia_task *t = take_pending(c, env->id);
  if (!t) return not_pending(c, env->id, true);
  if (env->kind == INTERACTION__V1__FRAME__BODY_REFUSAL) {
    finish_from_status(t, IA_STATUS_START_FAILED, &v);
  } else {
    ia_status st = v.code == IA_CANCELLED           ? IA_STATUS_CANCELLED
                   : v.code == IA_DEADLINE_EXCEEDED ? IA_STATUS_TIMED_OUT
                                                    : IA_STATUS_FAILED;
    finish_from_status(t, st, &v);
  }
  return true;
}

static __attribute__((noinline)) bool on_accepted(ia_conn *c, const ia__env *env) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  ia_task *t = c->pending;
  while (t && t->id != env->id)
    t = t->next;
  if (t && atomic_load(&t->status) == IA_STATUS_STARTING) atomic_store(&t->status, IA_STATUS_STARTED);
  bool late = !t && abandoned_locked(c, env->id, false); /* its outcome is still to come */
  bool up = c->up;
  pthread_mutex_unlock(&m->mu);
  if (t || late) return true;
  if (!up) return false; /* going down: its tasks were ended, what is on the way is dropped */
  ia__conn_protocol_error(c, IA_PROTOCOL_ERROR, "Accepted for a task id that was never sent");
  return false;
}

static __attribute__((noinline)) bool on_pong(ia_conn *c, const ia__env *env) {
  ia_task *t = env->id ? take_pending(c, env->id) : NULL;
  if (!t) {
    (void)abandoned(c, env->id, true); /* a timed-out ping's, or unsolicited: a sign of life */
    return true;
  }
  if (t->kind == IA__TASK_PING) {
    ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true);
    return true;
  }
  return answered_wrong(c, t, "a Pong answered a task");
}

static __attribute__((noinline)) bool on_stats(ia_conn *c, const ia__env *env) {
  ia_task *t = take_pending(c, env->id);
  if (!t) return not_pending(c, env->id, true);
  if (t->kind != IA__TASK_STATS) return answered_wrong(c, t, "Stats answered a task");
  ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, env->body.p, env->body.n, true); /* stats.c decodes it */
  return true;
}

/* Handles one frame; false if the connection is over. */
/* A Result, the usual frame, is handled inline; the others out of line, so
 * that their code does not spread this one's over more cache lines. */
static bool on_frame(ia_conn *c, const ia__env *env) {
  switch (env->kind) {
  case INTERACTION__V1__FRAME__BODY_ACCEPTED:
    return on_accepted(c, env);
  case INTERACTION__V1__FRAME__BODY_RESULT:
    return on_result(c, env);
  case INTERACTION__V1__FRAME__BODY_FAIL:
  case INTERACTION__V1__FRAME__BODY_REFUSAL:
  case INTERACTION__V1__FRAME__BODY_GOODBYE:
    return on_status(c, env);
  case INTERACTION__V1__FRAME__BODY_PING: {
    ia__wframe w;
    ia__wframe_empty(&w, env->id, INTERACTION__V1__FRAME__BODY_PONG);
    return ia__conn_send_nb(c, &w) == IA_OK;
  }
  case INTERACTION__V1__FRAME__BODY_PONG:
    return on_pong(c, env);
  case INTERACTION__V1__FRAME__BODY_STATS:
    return on_stats(c, env);
  default:
    ia__conn_protocol_error(c, IA_PROTOCOL_ERROR, "unexpected frame from the slave");
    return false;
  }
}

/* A reply whose blob was received into its decoded object (land.c). */
static __attribute__((noinline)) bool on_landed(ia_conn *c) {
  void *msg = c->land.msg;
  uint64_t id = c->land.id;
  c->land.msg = NULL;
  ia__inbuf_consume_landed(&c->in); /* the object holds all it needs */
  ia_task *t = take_pending(c, id);
  if (!t || t->kind != IA__TASK_USER || t->dec.land != c->land.dec.land) {
    c->land.dec.release(msg);
    return t ? answered_wrong(c, t, "a TaskResult answered an internal request") : not_pending(c, id, true);
  }
  t->decoded = msg;
  ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true);
  return true;
}

bool ia__master_dispatch(ia_conn *c) {
  for (;;) {
    const uint8_t *body;
    uint32_t len;
    ia__next r = ia__inbuf_next(&c->in, c->m->max_frame, &body, &len);
    ia__live_head(&c->live, r > IA__NEXT_MORE, c->in.end > c->in.start);
    if (r == IA__NEXT_MORE) {
      if (c->in.end > c->in.start) ia__master_land_try(c); /* part of a frame: a large reply's head? */
      return true;
    }
    if (r == IA__NEXT_LANDED) {
      if (!on_landed(c)) return false;
      continue;
    }
    if (r == IA__NEXT_OVERSIZE) {
      ia__conn_protocol_error(c, IA_FRAME_TOO_LARGE, "frame over max_frame from the slave");
      return false;
    }
    ia__env env;
    if (!ia__env_parse(body, len, &env)) {
      ia__conn_protocol_error(c, IA_PROTOCOL_ERROR, "malformed frame from the slave");
      return false;
    }
    /* A frame that ends the connection may have torn down c->in. */
    if (!on_frame(c, &env)) return false;
    ia__inbuf_consume(&c->in, IA__FRAME_HEADER + len);
  }
}
