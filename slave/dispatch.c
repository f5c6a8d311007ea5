/*
 * The slave's one frame-dispatch loop, which both readers run (the worker
 * on the hot path, the loop for handshakes and while a handler runs long),
 * and the control frames: Hello, Cancel, Disconnect, Ping, Goodbye. Tasks
 * go to the slot (slot.c), or in the other modes to the pool (pool.c).
 *
 * Before its Hello is accepted a peer gets a small frame limit
 * (IA__PREAUTH_MAX_FRAME) and nothing but a Hello is read; afterwards the
 * slave's max_frame applies. Anything malformed or unexpected closes that
 * one connection with a Goodbye saying why.
 *
 * Never: run a handler here, or touch a connection's input buffer without
 * holding its read side.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "slave/slave-internal.h"

/* Why a Hello is refused, or IA_OK. (mu) */
static ia_code check_hello(ia__sconn *c, const Interaction__V1__Hello *h, char *msg, size_t cap) {
  ia_slave *s = c->slave;
  if (!h->has_version || h->version != IA__PROTOCOL_VERSION) {
    snprintf(msg, cap, "protocol version %u is not supported (this slave speaks %u)",
             h->has_version ? h->version : 0, IA__PROTOCOL_VERSION);
    return IA_VERSION_UNSUPPORTED;
  }
  if (!h->has_channel) {
    snprintf(msg, cap, "no channel given");
    return IA_CHANNEL_NOT_FOUND;
  }
  if (h->channel != s->cfg.channel) {
    snprintf(msg, cap, "channel %u does not match this slave's channel %u", h->channel, s->cfg.channel);
    return IA_CHANNEL_INVALID;
  }
  if (atomic_load(&s->shutting_down)) {
    snprintf(msg, cap, "the slave is shutting down");
    return IA_SHUTTING_DOWN;
  }
  if (c->observer) {
    if (s->n_observers < IA__MAX_OBSERVERS) return IA_OK;
    snprintf(msg, cap, "the slave has %u observers already", IA__MAX_OBSERVERS);
    return IA_CONNECTION_REFUSED;
  }
  ia__sconn *current = s->master;
  if (current) {
    snprintf(msg, cap, "the slave already has a master (%.100s)",
             current->master_name ? current->master_name : "");
    return IA_ALREADY_CONNECTED;
  }
  return IA_OK;
}

/* The first frame of a connection. True if it was welcomed. Loop. */
static bool on_hello(ia__sconn *c, uint64_t id, ia__slice body) {
  ia_slave *s = c->slave;
  Interaction__V1__Hello *h = interaction__v1__hello__unpack(NULL, body.n, body.p);
  if (!h) {
    ia__sconn_fail(c, IA_PROTOCOL_ERROR, "malformed Hello", IA__RD_LOOP);
    return false;
  }
  free(c->master_name);
  c->master_name = strdup(h->master_name ? h->master_name : "");
  c->observer = h->has_observe && h->observe;
  ia__sconn_label(c, c->observer, h->master_name);
  c->peer_max_frame = h->has_max_frame && h->max_frame ? h->max_frame : IA__MAX_FRAME_DEFAULT;
  bool beat_asked = h->has_heartbeat_ms && h->has_heartbeat_tolerance_ms;
  uint32_t beat_ms = h->heartbeat_ms, beat_tol = h->heartbeat_tolerance_ms;
  char msg[160];
  pthread_mutex_lock(&s->mu);
  ia__sconn *old = !c->observer && s->master && ia__sconn_peer_gone(s->master) ? s->master : NULL;
  pthread_mutex_unlock(&s->mu);
  if (old) {
    /* The current master closed its socket -- most likely it is this one,
     * back at once -- and its EOF is merely not read yet: let it go now
     * rather than refuse the newcomer. (Only the loop frees connections,
     * so `old` is still there.) */
    IA__INFO("slave: %s closed its connection; taking the next one", old->label);
    ia__sconn_close(old, true, IA_CONNECTION_LOST);
  }
  pthread_mutex_lock(&s->mu);
  ia_code code = check_hello(c, h, msg, sizeof msg);
  pthread_mutex_unlock(&s->mu);
  ia_hook_reply reply = {0};
  /* An observer runs nothing: the hook, which admits masters, is not asked. */
  if (code == IA_OK && !c->observer && s->cfg.before_connection &&
      !s->cfg.before_connection(c->master_name ? c->master_name : "", h->has_data ? h->data.data : NULL,
                                h->has_data ? h->data.len : 0, &reply, s->cfg.user)) {
    code = IA_CONNECTION_REFUSED;
    snprintf(msg, sizeof msg, "refused by the slave's before_connection hook");
  }
  interaction__v1__hello__free_unpacked(h, NULL);
  if (code == IA_OK) {
    /* The hook ran unlocked: another Hello may have won the seat meanwhile. */
    pthread_mutex_lock(&s->mu);
    if (c->observer) {
      s->n_observers++; /* checked under this same lock: only the loop welcomes */
      s->n_conns++;
    } else if (s->master) {
      code = IA_ALREADY_CONNECTED;
      snprintf(msg, sizeof msg, "the slave already has a master (%.100s)", s->master->master_name);
    } else {
      s->master = c;
      s->n_conns++;
    }
    pthread_mutex_unlock(&s->mu);
  }
  if (code != IA_OK) {
    ia__sconn_refuse(c, id, code, msg, &reply);
    ia__hook_reply_release(&reply);
    return false;
  }
  ia__hook_reply_release(&reply);
  Interaction__V1__Welcome w = INTERACTION__V1__WELCOME__INIT;
  w.has_version = w.has_mode = w.has_capacity = w.has_max_frame = 1;
  w.version = IA__PROTOCOL_VERSION;
  w.slave_name = (char *)s->cfg.name;
  w.mode = (uint32_t)s->cfg.mode;
  w.capacity = ia__pool_capacity(s);
  w.max_frame = s->max_frame;
  ia__beat beat = ia__slave_beat_agree(c, beat_asked, beat_ms, beat_tol);
  w.has_heartbeat_ms = w.has_heartbeat_tolerance_ms = 1;
  w.heartbeat_ms = beat.interval_ms;
  w.heartbeat_tolerance_ms = beat.tolerance_ms;
  ia__wframe out;
  c->handshaken = true;
  event_free(c->hello_ev); /* the handshake is over in time */
  c->hello_ev = NULL;
  s->n_pending--;
  if (!ia__wframe_message(&out, id, INTERACTION__V1__FRAME__BODY_WELCOME, &w.base)) {
    ia__sconn_fail(c, IA_NO_MEMORY, "out of memory", IA__RD_LOOP);
    return false;
  }
  bool ok = ia__sconn_send(c, &out, IA__RD_LOOP);
  ia__wframe_release(&out);
  if (ok) IA__INFO("slave: %s connected", c->label);
  return ok;
}

/* The frames other than Task, and the handshake, are handled out of line:
 * inlined into ia__slave_dispatch, their code would spread the Task's path
 * over more cache lines. */
static __attribute__((noinline)) void on_cancel(ia__sconn *c, uint64_t id) {
  ia_slave *s = c->slave;
  if (s->pool.on) {
    ia__pool_cancel(c, id);
    return;
  }
  pthread_mutex_lock(&s->mu);
  ia__slot_cancel_locked(s, c, id, false, IA_CANCELLED);
  pthread_mutex_unlock(&s->mu);
}

static __attribute__((noinline)) void on_disconnect(ia__sconn *c, uint64_t id, ia__slice body,
                                                    ia__reader who) {
  ia_slave *s = c->slave;
  Interaction__V1__Disconnect *d = interaction__v1__disconnect__unpack(NULL, body.n, body.p);
  if (!d) {
    ia__sconn_fail(c, IA_PROTOCOL_ERROR, "malformed Disconnect", who);
    return;
  }
  ia_hook_reply reply = {0};
  bool ok = c->observer || !s->cfg.before_disconnection ||
            s->cfg.before_disconnection(c->master_name, d->has_data ? d->data.data : NULL,
                                        d->has_data ? d->data.len : 0, &reply, s->cfg.user);
  interaction__v1__disconnect__free_unpacked(d, NULL);
  if (!ok) {
    ia__sconn_status(c, id, INTERACTION__V1__FRAME__BODY_REFUSAL, IA_DISCONNECTION_REFUSED,
                     "refused by the slave's before_disconnection hook", &reply, who);
    ia__hook_reply_release(&reply);
    return;
  }
  ia__hook_reply_release(&reply);
  IA__INFO("slave: %s disconnected", c->label);
  /* The slave is free for the next master before that master can hear of
   * it: a master that reconnects at once is not told ALREADY_CONNECTED. */
  pthread_mutex_lock(&s->mu);
  if (s->master == c) s->master = NULL;
  pthread_mutex_unlock(&s->mu);
  ia__sconn_status(c, id, INTERACTION__V1__FRAME__BODY_GOODBYE, IA_OK, "disconnected", NULL, who);
  ia__sconn_close(c, false, IA_OK);
}

/* The next frame at the head of c->in: 1 with *env and *frame_len, 0 if more
 * bytes are needed, -1 if the connection was failed for it. */
static int next_frame(ia__sconn *c, ia__reader who, ia__env *env, size_t *frame_len) {
  const uint8_t *body;
  uint32_t len;
  uint32_t limit = c->handshaken && !c->observer ? c->slave->max_frame : IA__PREAUTH_MAX_FRAME;
  ia__next r = ia__inbuf_next(&c->in, limit, &body, &len);
  ia__live_head(&c->live, r == IA__NEXT_READY, c->in.end > c->in.start);
  if (r == IA__NEXT_MORE) return 0;
  if (r == IA__NEXT_OVERSIZE) {
    /* A TLS ClientHello read as a frame: 22, 3, ... is a length of ~369 MB. */
    bool tls = !c->handshaken && c->in.buf[c->in.start] == 22 && c->in.buf[c->in.start + 1] == 3;
    ia__sconn_fail(c, IA_FRAME_TOO_LARGE,
                   tls             ? "a TLS handshake, but this slave does not serve TLS (no tls_cert)"
                   : c->handshaken ? "frame over max_frame"
                                   : "frame too large before Hello",
                   who);
    return -1;
  }
  if (!ia__env_parse(body, len, env)) {
    ia__sconn_fail(c, IA_PROTOCOL_ERROR, "malformed frame", who);
    return -1;
  }
  *frame_len = IA__FRAME_HEADER + len;
  return 1;
}

#define HELLO_WAITS 10     /* looks again at a Hello that found the seat taken... */
#define HELLO_WAIT_US 2000 /* ...this far apart: 20 ms in all */

static void hello_wait_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia__sconn *c = arg;
  /* Only the loop frees connections, and it frees this timer with c. */
  if (!atomic_load(&c->closing)) (void)ia__slave_dispatch(c, IA__RD_LOOP);
}

/* A Hello that finds the seat taken waits a little, its frame left
 * buffered, before it is refused or the seat is forced: a master that
 * closed and dialled again at once may be faster than its own FIN, which
 * the kernel need not deliver before the new connection's SYN (loopback
 * packets queue per CPU); and one whose end has come may have said Goodbye
 * just before it, which its reader is about to read -- forcing the seat
 * then would take a master that left for one that was lost. True if it
 * waits. Loop. */
static bool wait_for_the_seat(ia__sconn *c) {
  ia_slave *s = c->slave;
  pthread_mutex_lock(&s->mu);
  ia__sconn *cur = s->master;
  bool taken = cur && !atomic_load(&cur->closing);
  pthread_mutex_unlock(&s->mu);
  if (!taken || c->hello_waits >= HELLO_WAITS) return false;
  if (!c->hello_wait_ev && !(c->hello_wait_ev = evtimer_new(s->base, hello_wait_cb, c))) return false;
  c->hello_waits++;
  struct timeval tv = {0, HELLO_WAIT_US};
  return event_add(c->hello_wait_ev, &tv) == 0;
}

/* Whether a Hello asks to observe (before on_hello has read it). */
static bool observes(const ia__env *env) {
  Interaction__V1__Hello *h = interaction__v1__hello__unpack(NULL, env->body.n, env->body.p);
  bool o = h && h->has_observe && h->observe;
  if (h) interaction__v1__hello__free_unpacked(h, NULL);
  return o;
}

/* The first frame of a connection, which must be a Hello: once a master's
 * is accepted, the read side goes to the worker; an observer's stays with
 * the loop. */
static __attribute__((noinline)) ia__dispatch_rc handshake(ia__sconn *c, const ia__env *env, size_t flen) {
  ia_slave *s = c->slave;
  /* With a secret, the Hello to go on with is the one whose master proved
   * it (auth.c); the frame now at the head is then its AuthProof. */
  ia__env hello = *env;
  int a = s->secret.n ? ia__slave_auth(c, env, flen, &hello) : 1;
  if (a <= 0) return a < 0 ? IA__DISPATCH_CLOSED : IA__DISPATCH_MORE;
  if (hello.kind != INTERACTION__V1__FRAME__BODY_HELLO) {
    ia__sconn_fail(c, IA_PROTOCOL_ERROR, "expected Hello as the first frame", IA__RD_LOOP);
    return IA__DISPATCH_CLOSED;
  }
  if (!observes(&hello) && wait_for_the_seat(c)) return IA__DISPATCH_MORE;
  bool welcomed = on_hello(c, hello.id, hello.body);
  ia__inbuf_consume(&c->in, flen);
  ia__slave_auth_release(c);
  if (!welcomed) return IA__DISPATCH_CLOSED;
  /* An observer is read by the loop throughout. */
  if (c->observer) return atomic_load(&c->closing) ? IA__DISPATCH_CLOSED : IA__DISPATCH_MORE;
  pthread_mutex_lock(&s->mu);
  bool mine = !atomic_load(&c->closing) && s->master == c;
  if (mine) ia__slave_to_worker_locked(s, c);
  pthread_mutex_unlock(&s->mu);
  return mine ? IA__DISPATCH_HANDED : IA__DISPATCH_CLOSED;
}

static __attribute__((noinline)) void pong(ia__sconn *c, uint64_t id, ia__reader who) {
  ia__wframe w;
  ia__wframe_empty(&w, id, INTERACTION__V1__FRAME__BODY_PONG);
  (void)ia__sconn_send(c, &w, who);
}

ia__dispatch_rc ia__slave_dispatch(ia__sconn *c, ia__reader who) {
  ia_slave *s = c->slave;
  ia__env env;
  size_t flen;
  int r;
  while ((r = next_frame(c, who, &env, &flen)) > 0) {
    if (!c->handshaken) {
      ia__dispatch_rc h = handshake(c, &env, flen);
      if (h != IA__DISPATCH_MORE || !c->handshaken) return h;
      continue; /* an observer: what it sent behind its Hello is read now */
    }
    switch (env.kind) {
    case INTERACTION__V1__FRAME__BODY_TASK: {
      if (c->observer) {
        ia__sconn_status(c, env.id, INTERACTION__V1__FRAME__BODY_REFUSAL, IA_TASK_REFUSED,
                         "an observer may not run tasks", NULL, who);
        break;
      }
      if (s->pool.on && who == IA__RD_WORKER) {
        ia__dispatch_rc led = ia__pool_lead(c, &env, flen);
        if (led != IA__DISPATCH_MORE) return led;
        continue; /* ia__pool_lead consumed the frame */
      }
      if (s->pool.on) {
        if (ia__pool_hand_back(c, flen)) return IA__DISPATCH_HANDED; /* the frame goes with it */
        if (ia__pool_admit(c, &env, flen) == IA__TAKE_CLOSED) return IA__DISPATCH_CLOSED;
        break; /* the task, if any, has its own copy */
      }
      ia_task_ctx *ctx = NULL;
      ia__take t = ia__slot_admit(c, &env, flen, who, &ctx);
      if (t == IA__TAKE_CLOSED) return IA__DISPATCH_CLOSED;
      if (t == IA__TAKE_DONE) break;
      if (who == IA__RD_LOOP) {
        /* A free slot: task and read side go to the worker together. */
        pthread_mutex_lock(&s->mu);
        s->to_run = ctx;
        ia__slave_to_worker_locked(s, c);
        pthread_mutex_unlock(&s->mu);
        return IA__DISPATCH_HANDED;
      }
      if (!ia__slot_run(s, c, ctx)) return IA__DISPATCH_HANDED; /* the loop took the socket over meanwhile */
      continue;                                                 /* ia__slot_run consumed the frame */
    }
    case INTERACTION__V1__FRAME__BODY_PING:
      pong(c, env.id, who);
      break;
    case INTERACTION__V1__FRAME__BODY_PONG:
      break; /* a sign of life, nothing more */
    case INTERACTION__V1__FRAME__BODY_STATS_REQUEST:
      ia__stats_answer(c, env.id, who);
      break;
    case INTERACTION__V1__FRAME__BODY_CANCEL:
      if (!c->observer) on_cancel(c, env.id); /* an observer has no task to cancel */
      break;
    case INTERACTION__V1__FRAME__BODY_DISCONNECT:
      on_disconnect(c, env.id, env.body, who);
      break;
    case INTERACTION__V1__FRAME__BODY_GOODBYE:
      IA__INFO("slave: %s said goodbye", c->label);
      ia__sconn_close(c, false, IA_OK);
      break;
    case INTERACTION__V1__FRAME__BODY_HELLO:
      ia__sconn_fail(c, IA_PROTOCOL_ERROR, "Hello on a connection that already has one", who);
      return IA__DISPATCH_CLOSED;
    default:
      ia__sconn_fail(c, IA_PROTOCOL_ERROR, "unexpected frame from the master", who);
      return IA__DISPATCH_CLOSED;
    }
    ia__inbuf_consume(&c->in, flen);
    if (atomic_load_explicit(&c->closing, memory_order_acquire)) return IA__DISPATCH_CLOSED;
  }
  return r < 0 ? IA__DISPATCH_CLOSED : IA__DISPATCH_MORE;
}
