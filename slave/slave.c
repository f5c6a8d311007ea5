/*
 * slave: the task-executing end.
 *
 * Threads. One libevent loop thread owns the listener, every connection
 * still in its handshake, the timers, and the teardown of connections. One
 * worker thread runs handlers. The master's socket is read by whichever of
 * the two holds its read side (`reader`, under the slave's mutex):
 *
 *  - Normally the worker holds it (lazy leader/follower): it recv()s a task,
 *    runs the handler itself, frees the slot and send()s the reply, with no
 *    thread hand-off at all.
 *  - Once the process's watchdog (watchdog.c) has seen the same handler
 *    running at two of its ticks, it has the loop take the read side over: the master
 *    hears Accepted, and from then on the loop answers pings, refuses new
 *    tasks with TASK_ALREADY_EXIST, sees Cancel and notices a lost master,
 *    all while the handler runs. When the loop later reads a task into a free slot it
 *    hands task and read side back. A short task pays nothing for this.
 *
 * The slot is taken and freed under the mutex; it is freed before the reply
 * is sent, so a master that holds a result always finds the slot free.
 * Writes from both threads are serialised by the connection's write lock.
 * A connection is freed by the loop only, and only while the worker does
 * not hold its read side.
 *
 * Never: run a handler on the loop thread, or block the loop on a peer
 * (sockets carry a send timeout).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "slave/slave-internal.h"

#define IA_READ_TICK_MS 50     /* a reading worker looks at the slave's state this often */
#define IA_SEND_TIMEOUT_S 10   /* a peer that takes nothing for this long is dropped */
#define FINISH_BOUND_S 3       /* shutdown leaves the loop after this, whatever is left */

typedef enum reader_t { RD_LOOP = 0, RD_WORKER } reader_t;

typedef struct sconn {
  ia_slave *slave;
  int fd;
  uint64_t gen;
  struct event *rev; /* the loop's read event; pending iff the loop reads */
  bool rev_added;    /* loop only */
  bool in_ep;        /* (mu) in the loop's epoll set (handshaken connections) */
  ia__inbuf in;      /* owned by the reader */
  bool handshaken;
  reader_t reader; /* (mu) */
  atomic_bool closing; /* (written under mu) */
  bool lost;       /* (mu) fire lost_connection when freed */
  int tasks;       /* (mu) tasks of this connection in the slot: it lives until they end */
  ia_code lost_code;
  char *master_name;
  pthread_mutex_t wmu; /* one writer at a time */
  struct sconn *next;  /* loop only */
} sconn;

typedef struct method_entry {
  char *method;
  size_t len;
  ia_handler_fn fn;
  void *user;
} method_entry;

struct ia_slave {
  method_entry *methods; /* fixed once started: read without a lock */
  size_t n_methods;
  void **allocs; /* ia_slave_alloc() blocks */
  size_t n_allocs;
  ia_slave_config cfg; /* host and name point at owned copies */
  uint32_t max_frame;
  struct event_base *base;
  struct evconnlistener *listener;
  pthread_t loop_thread;
  pthread_t worker;
  bool started;
  bool joined;
  _Atomic uint16_t port;

  sconn *conns; /* loop only */
  uint64_t next_gen;
  bool finishing; /* loop only */

  pthread_mutex_t mu;
  pthread_cond_t work_cond;
  pthread_cond_t cancel_cond;
  sconn *master;       /* (mu) the handshaken master */
  ia_task_ctx *slot;   /* (mu) the running task */
  ia_task_ctx *to_run; /* (mu) a task the loop read, for the worker */
  bool in_handler;     /* (mu) */
  bool watched;        /* (mu) the loop was asked to watch the running handler */
  uint64_t run_seq;    /* (mu) handlers started so far */
  uint64_t wd_seq;     /* (mu) the one the watchdog saw running at its last look */
  atomic_bool worker_stop; /* (written under mu) */

  atomic_bool shutting_down;
  bool in_watchdog;
  _Atomic(ia_task_ctx *) spare; /* a task context kept for the next task */
  struct event *long_ev;        /* the watchdog asks the loop to take over */
  int epfd;                     /* handshaken sockets the loop watches or reads, outside libevent */
  struct event *ep_ev;
  struct event *close_ev;
  struct event *shutdown_ev;
  struct event *grace_ev;
  struct event *deadline_ev;
};

ia_task_ctx *ia__slave_take_spare(ia_slave *s) {
  return atomic_exchange(&s->spare, NULL);
}

bool ia__slave_keep_spare(ia_slave *s, ia_task_ctx *ctx) {
  ia_task_ctx *none = NULL;
  return atomic_compare_exchange_strong(&s->spare, &none, ctx);
}

pthread_mutex_t *ia__slave_mutex(ia_slave *s) {
  return &s->mu;
}

pthread_cond_t *ia__slave_cancel_cond(ia_slave *s) {
  return &s->cancel_cond;
}

void ia_slave_config_init(ia_slave_config *c) {
  memset(c, 0, sizeof *c);
  c->host = "127.0.0.1";
  c->grace_ms = 2000;
  c->hello_timeout_ms = 10000;
}

/* ---- methods ---- */

static const method_entry *find_method(const ia_slave *s, const char *method, size_t len) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (s->methods[i].len == len && memcmp(s->methods[i].method, method, len) == 0) return &s->methods[i];
  return NULL;
}

ia_code ia_slave_register(ia_slave *s, const char *method, ia_handler_fn fn, void *user) {
  if (!s || !method || !fn || s->started) return IA_INVALID_ARGUMENT;
  method_entry *e = (method_entry *)find_method(s, method, strlen(method));
  if (!e) {
    method_entry *m = realloc(s->methods, (s->n_methods + 1) * sizeof *m);
    if (!m) return IA_NO_MEMORY;
    s->methods = m;
    e = &m[s->n_methods];
    if (!(e->method = strdup(method))) return IA_NO_MEMORY;
    e->len = strlen(method);
    s->n_methods++;
  }
  e->fn = fn;
  e->user = user;
  return IA_OK;
}

void *ia_slave_alloc(ia_slave *s, size_t size) {
  void **a = realloc(s->allocs, (s->n_allocs + 1) * sizeof *a);
  if (!a) return NULL;
  s->allocs = a;
  void *p = calloc(1, size ? size : 1);
  if (p) a[s->n_allocs++] = p;
  return p;
}

/* ---- writing ---- */

/* Sends a frame on c; false if the connection failed (it is then closing). */
static bool conn_send(sconn *c, const ia__wframe *w);
static void conn_close(sconn *c, bool lost, ia_code code);
static void watch_locked(sconn *c, bool on);

static bool send_status(sconn *c, uint64_t id, unsigned kind, ia_code code, const char *message,
                        const void *data, size_t len) {
  ia__wframe w;
  if (!ia__wframe_status(&w, id, kind, code, message, data, len)) return false;
  bool ok = conn_send(c, &w);
  ia__wframe_release(&w);
  return ok;
}

static bool send_empty(sconn *c, uint64_t id, unsigned kind) {
  ia__wframe w;
  ia__wframe_empty(&w, id, kind);
  return conn_send(c, &w);
}

static void refuse(sconn *c, uint64_t id, ia_code code, const char *message, const ia_hook_reply *r) {
  const char *msg = r && r->message ? r->message : message;
  send_status(c, id, INTERACTION__V1__FRAME__BODY_REFUSAL, code, msg, r ? r->data : NULL, r ? r->len : 0);
}

static bool conn_send(sconn *c, const ia__wframe *w) {
  pthread_mutex_lock(&c->wmu);
  int rc = ia__wframe_send(c->fd, w, 0);
  pthread_mutex_unlock(&c->wmu);
  if (rc != 0) {
    IA_INFO("slave: send to %s failed: %s", c->master_name ? c->master_name : "a peer", strerror(errno));
    conn_close(c, true, IA_CONNECTION_LOST);
    return false;
  }
  return true;
}

/* ---- closing ---- */

/*
 * Starts closing c, from any thread: it stops being the master, its socket is
 * shut down (which also wakes a worker blocked reading it), and the loop
 * frees it once nobody reads it. `lost` fires lost_connection then.
 */
static void conn_close(sconn *c, bool lost, ia_code code) {
  ia_slave *s = c->slave;
  pthread_mutex_lock(&s->mu);
  if (c->closing) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  c->closing = true;
  c->lost = lost && s->master == c;
  c->lost_code = code;
  if (s->master == c) s->master = NULL;
  if (s->slot && s->slot->conn_gen == c->gen) {
    /* Its master is gone: the handler is asked to stop, so that the slot
     * is free for the next master. */
    atomic_store(&s->slot->cancelled, true);
    pthread_cond_broadcast(&s->cancel_cond);
  }
  pthread_mutex_unlock(&s->mu);
  shutdown(c->fd, SHUT_RDWR);
  event_active(s->close_ev, EV_TIMEOUT, 0);
}

/* The peer broke the protocol or sent too much: say why, then close. */
static void conn_fail(sconn *c, ia_code code, const char *message) {
  IA_WARN("slave: closing connection from %s: %s (%s)", c->master_name ? c->master_name : "unknown", message,
          ia_code_name(code));
  send_status(c, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, code, message, NULL, 0);
  conn_close(c, true, code);
}

static void conn_free(sconn *c) {
  ia_slave *s = c->slave;
  for (sconn **p = &s->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  if (c->rev) event_free(c->rev);
  pthread_mutex_lock(&s->mu);
  watch_locked(c, false);
  pthread_mutex_unlock(&s->mu);
  /* Read what the peer still sent, so that close() does not reset the
   * connection under the Goodbye we may just have written. */
  char sink[4096];
  for (int i = 0; i < 64 && recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
    ;
  close(c->fd);
  ia__inbuf_free(&c->in);
  pthread_mutex_destroy(&c->wmu);
  free(c->master_name);
  free(c);
}

/* Frees every closing connection that no worker reads, firing hooks. Loop. */
static void close_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  sconn *c = s->conns;
  while (c) {
    sconn *next = c->next;
    pthread_mutex_lock(&s->mu);
    bool gone = c->closing && c->reader == RD_LOOP && c->tasks == 0;
    bool lost = c->lost;
    pthread_mutex_unlock(&s->mu);
    if (gone) {
      if (lost && s->cfg.lost_connection)
        s->cfg.lost_connection(c->master_name ? c->master_name : "", c->lost_code, s->cfg.user);
      IA_INFO("slave: connection from %s closed", c->master_name ? c->master_name : "unknown");
      conn_free(c);
    }
    c = next;
  }
  if (s->finishing && !s->conns) event_base_loopbreak(s->base);
}

/* ---- the read side ---- */

/* Puts a handshaken c in or out of the loop's epoll set. (mu) */
static void watch_locked(sconn *c, bool on) {
  if (on == c->in_ep) return;
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->gen};
  if (epoll_ctl(c->slave->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c->fd, &ev) == 0) c->in_ep = on;
}

/* Gives the read side of c (with what is buffered) to the worker. Loop, mu held. */
static void hand_to_worker_locked(ia_slave *s, sconn *c) {
  if (c->rev_added) {
    event_del(c->rev);
    c->rev_added = false;
  }
  watch_locked(c, false);
  c->reader = RD_WORKER;
  pthread_cond_signal(&s->work_cond);
}

/* ---- frames ---- */

static void on_hello(sconn *c, uint64_t id, ia__slice body) {
  ia_slave *s = c->slave;
  Interaction__V1__Hello *h = interaction__v1__hello__unpack(NULL, body.n, body.p);
  if (!h) {
    conn_fail(c, IA_PROTOCOL_ERROR, "malformed Hello");
    return;
  }
  char msg[160];
  ia_hook_reply reply = {0};
  free(c->master_name);
  c->master_name = strdup(h->master_name ? h->master_name : "");
  ia_code code = IA_OK;
  pthread_mutex_lock(&s->mu);
  sconn *current = s->master;
  pthread_mutex_unlock(&s->mu);
  if (!h->has_version || h->version != IA_PROTOCOL_VERSION) {
    code = IA_VERSION_UNSUPPORTED;
    snprintf(msg, sizeof msg, "protocol version %u is not supported (this slave speaks %u)",
             h->has_version ? h->version : 0, IA_PROTOCOL_VERSION);
  } else if (!h->has_channel) {
    code = IA_CHANNEL_NOT_FOUND;
    snprintf(msg, sizeof msg, "no channel given");
  } else if (h->channel != s->cfg.channel) {
    code = IA_CHANNEL_INVALID;
    snprintf(msg, sizeof msg, "channel %u does not match this slave's channel %u", h->channel,
             s->cfg.channel);
  } else if (atomic_load(&s->shutting_down)) {
    code = IA_SHUTTING_DOWN;
    snprintf(msg, sizeof msg, "the slave is shutting down");
  } else if (current) {
    code = IA_ALREADY_CONNECTED;
    snprintf(msg, sizeof msg, "the slave already has a master (%.100s)",
             current->master_name ? current->master_name : "");
  } else if (s->cfg.before_connection &&
             !s->cfg.before_connection(c->master_name, h->has_data ? h->data.data : NULL,
                                       h->has_data ? h->data.len : 0, &reply, s->cfg.user)) {
    code = IA_CONNECTION_REFUSED;
    snprintf(msg, sizeof msg, "refused by the slave's before_connection hook");
  }
  interaction__v1__hello__free_unpacked(h, NULL);
  if (code != IA_OK) {
    IA_INFO("slave: refusing master %s: %s", c->master_name, msg);
    refuse(c, id, code, msg, &reply);
    ia__hook_reply_release(&reply);
    conn_close(c, false, code);
    return;
  }
  Interaction__V1__Welcome w = INTERACTION__V1__WELCOME__INIT;
  w.has_version = w.has_mode = w.has_capacity = w.has_max_frame = 1;
  w.version = IA_PROTOCOL_VERSION;
  w.slave_name = (char *)s->cfg.name;
  w.mode = (uint32_t)s->cfg.mode;
  w.capacity = 1;
  w.max_frame = s->max_frame;
  ia__wframe out;
  if (!ia__wframe_message(&out, id, INTERACTION__V1__FRAME__BODY_WELCOME, &w.base)) {
    conn_fail(c, IA_NO_MEMORY, "out of memory");
    return;
  }
  c->handshaken = true;
  event_del(c->rev); /* also drops the hello timeout */
  c->rev_added = false;
  pthread_mutex_lock(&s->mu);
  s->master = c;
  pthread_mutex_unlock(&s->mu);
  bool sent = conn_send(c, &out);
  ia__wframe_release(&out);
  if (sent) IA_INFO("slave: master %s connected", c->master_name);
}

static void on_cancel(sconn *c, uint64_t id) {
  ia_slave *s = c->slave;
  pthread_mutex_lock(&s->mu);
  ia_task_ctx *t = s->slot;
  if (t && t->id == id && t->conn_gen == c->gen) {
    atomic_store(&t->cancelled, true);
    pthread_cond_broadcast(&s->cancel_cond);
  }
  pthread_mutex_unlock(&s->mu);
}

static void on_disconnect(sconn *c, uint64_t id, ia__slice body) {
  ia_slave *s = c->slave;
  Interaction__V1__Disconnect *d = interaction__v1__disconnect__unpack(NULL, body.n, body.p);
  if (!d) {
    conn_fail(c, IA_PROTOCOL_ERROR, "malformed Disconnect");
    return;
  }
  ia_hook_reply reply = {0};
  bool ok = !s->cfg.before_disconnection ||
            s->cfg.before_disconnection(c->master_name, d->has_data ? d->data.data : NULL,
                                        d->has_data ? d->data.len : 0, &reply, s->cfg.user);
  interaction__v1__disconnect__free_unpacked(d, NULL);
  if (!ok) {
    refuse(c, id, IA_DISCONNECTION_REFUSED, "refused by the slave's before_disconnection hook", &reply);
    ia__hook_reply_release(&reply);
    return;
  }
  ia__hook_reply_release(&reply);
  IA_INFO("slave: master %s disconnected", c->master_name);
  /* The slave is free for the next master before that master can hear of
   * it: a master that reconnects at once is not told ALREADY_CONNECTED. */
  pthread_mutex_lock(&s->mu);
  if (s->master == c) s->master = NULL;
  pthread_mutex_unlock(&s->mu);
  send_status(c, id, INTERACTION__V1__FRAME__BODY_GOODBYE, IA_OK, "disconnected", NULL, 0);
  conn_close(c, false, IA_OK);
}

typedef enum task_take {
  TAKE_DONE,   /* answered (refused); the frame can be consumed */
  TAKE_SLOT,   /* *out holds the slot; the frame stays buffered until it ends */
  TAKE_CLOSED, /* the connection is closing */
} task_take;

/* The slot's handler is about to run. (mu) */
static void handler_starts_locked(ia_slave *s, ia_task_ctx *ctx) {
  s->in_handler = true;
  s->watched = false;
  s->run_seq++;
  ctx->started = true;
}

/* Checks a task frame at the head of c->in and takes the slot for it. */
static task_take take_task(sconn *c, const ia__env *env, size_t frame_len, ia_task_ctx **out) {
  ia_slave *s = c->slave;
  ia__task_view v;
  if (!ia__task_parse(env->body, &v)) {
    conn_fail(c, IA_PROTOCOL_ERROR, "malformed Task");
    return TAKE_CLOSED;
  }
  if (atomic_load(&s->shutting_down)) {
    refuse(c, env->id, IA_SHUTTING_DOWN, "the slave is shutting down", NULL);
    return TAKE_DONE;
  }
  const method_entry *e = find_method(s, (const char *)v.method.p, v.method.n);
  if (!s->cfg.handler && !e) {
    char msg[160];
    snprintf(msg, sizeof msg, "no handler for method '%.*s'", (int)(v.method.n > 100 ? 100 : v.method.n),
             (const char *)v.method.p);
    refuse(c, env->id, IA_UNKNOWN_METHOD, msg, NULL);
    return TAKE_DONE;
  }
  ia_task_ctx *ctx = ia__task_ctx_new(s, env->id, c->gen, &v, env->body, frame_len);
  if (!ctx) {
    refuse(c, env->id, IA_TASK_ERROR, "the slave is out of memory", NULL);
    return TAKE_DONE;
  }
  ctx->conn = c;
  ctx->handler = e;
  /* Without a before_task hook the handler starts at once: the slot is
   * taken and the handler marked running in one go (see run_task). */
  bool now = !s->cfg.before_task;
  pthread_mutex_lock(&s->mu);
  bool busy = s->slot != NULL;
  if (!busy) {
    s->slot = ctx;
    c->tasks++;
    if (now) handler_starts_locked(s, ctx);
  }
  pthread_mutex_unlock(&s->mu);
  if (busy) {
    refuse(c, env->id, IA_TASK_ALREADY_EXIST, "the slave's task slot is busy", NULL);
    ia__task_ctx_free(ctx);
    return TAKE_DONE;
  }
  if (s->cfg.before_task) {
    ia_hook_reply reply = {0};
    bool ok = s->cfg.before_task(ctx, &reply, s->cfg.user);
    if (!ok) {
      pthread_mutex_lock(&s->mu);
      s->slot = NULL;
      c->tasks--;
      pthread_mutex_unlock(&s->mu);
      refuse(c, env->id, IA_TASK_REFUSED, "refused by the slave's before_task hook", &reply);
    }
    ia__hook_reply_release(&reply);
    if (!ok) {
      ia__task_ctx_free(ctx);
      return TAKE_DONE;
    }
  }
  *out = ctx;
  return TAKE_SLOT;
}

/* Any frame but Hello and Task from the master; false if c is closing. */
static bool on_master_frame(sconn *c, const ia__env *env) {
  switch (env->kind) {
  case INTERACTION__V1__FRAME__BODY_PING:
    return send_empty(c, env->id, INTERACTION__V1__FRAME__BODY_PONG);
  case INTERACTION__V1__FRAME__BODY_PONG:
    return true;
  case INTERACTION__V1__FRAME__BODY_CANCEL:
    on_cancel(c, env->id);
    return true;
  case INTERACTION__V1__FRAME__BODY_DISCONNECT:
    on_disconnect(c, env->id, env->body);
    break;
  case INTERACTION__V1__FRAME__BODY_GOODBYE:
    IA_INFO("slave: master %s said goodbye", c->master_name);
    conn_close(c, false, IA_OK);
    break;
  default:
    conn_fail(c, IA_PROTOCOL_ERROR, "unexpected frame from the master");
    break;
  }
  pthread_mutex_lock(&c->slave->mu);
  bool open = !c->closing;
  pthread_mutex_unlock(&c->slave->mu);
  return open;
}

/* The next frame at the head of c->in: 1 with *env and *frame_len, 0 if more
 * bytes are needed, -1 if the connection was failed for it. */
static int next_frame(sconn *c, ia__env *env, size_t *frame_len) {
  const uint8_t *body;
  uint32_t len;
  ia__frame_next_result r = ia__inbuf_next(&c->in, c->slave->max_frame, &body, &len);
  if (r == IA_FRAME_NEED_MORE) return 0;
  if (r == IA_FRAME_OVERSIZE) {
    conn_fail(c, IA_FRAME_TOO_LARGE, "frame over max_frame");
    return -1;
  }
  if (!ia__env_parse(body, len, env)) {
    conn_fail(c, IA_PROTOCOL_ERROR, "malformed frame");
    return -1;
  }
  *frame_len = IA_FRAME_HEADER + len;
  return 1;
}

/* ---- running tasks (worker) ---- */

static void run_handler(ia_slave *s, ia_task_ctx *ctx) {
  const method_entry *e = ctx->handler;
  if (e) {
    e->fn(ctx, e->user);
  } else if (s->cfg.handler) {
    s->cfg.handler(ctx, s->cfg.user);
  } else {
    char msg[160];
    snprintf(msg, sizeof msg, "no handler for method '%.100s'", ctx->method);
    ia_task_ctx_fail(ctx, IA_UNKNOWN_METHOD, msg, NULL, 0);
  }
}

/*
 * Runs a task that holds the slot and whose frame is at the head of c->in,
 * then frees the slot, replies, and drops the frame. Worker thread. Returns
 * whether the worker still holds c's read side.
 */
static bool run_task(ia_slave *s, sconn *c, ia_task_ctx *ctx) {
  if (!ctx->started) { /* not yet marked running by take_task */
    pthread_mutex_lock(&s->mu);
    handler_starts_locked(s, ctx);
    pthread_mutex_unlock(&s->mu);
  }
  ia__watchdog_poke();

  run_handler(s, ctx);
  if (ctx->outcome == IA_OUTCOME_NONE || ctx->outcome == IA_OUTCOME_INVALID)
    IA_WARN("slave: handler for %s gave no valid result: reported as TASK_ERROR", ctx->method);
  ia__wframe w;
  bool built = ia__task_ctx_outcome_frame(ctx, &w);

  pthread_mutex_lock(&s->mu);
  s->in_handler = false;
  s->slot = NULL; /* freed before the reply goes out: see the top comment */
  bool mine = c->reader == RD_WORKER;
  bool open = !c->closing;
  /* While the worker reads c the loop cannot free it: the task lets go of
   * it now. Else it holds c until the reply is out. */
  if (mine) c->tasks--;
  pthread_mutex_unlock(&s->mu);
  if (built && open)
    conn_send(c, &w);
  else if (!built)
    conn_fail(c, IA_NO_MEMORY, "out of memory for a reply");
  else
    IA_INFO("slave: the master of task %llu is gone; its outcome is dropped", (unsigned long long)ctx->id);
  if (built) ia__wframe_release(&w);
  if (mine && !ctx->hold) ia__inbuf_consume(&c->in, ctx->frame_len);
  ia__task_ctx_free(ctx);
  if (mine) return true; /* worker_read sees a closing c and lets the loop free it */
  pthread_mutex_lock(&s->mu);
  c->tasks--;
  bool closing = c->closing;
  pthread_mutex_unlock(&s->mu);
  if (closing) event_active(s->close_ev, EV_TIMEOUT, 0); /* it may be freed now */
  return false;
}

/* Reads and serves c while the worker holds its read side. Worker thread. */
static void worker_read(ia_slave *s, sconn *c) {
  for (;;) {
    ia__env env;
    size_t flen;
    int r;
    while ((r = next_frame(c, &env, &flen)) > 0) {
      if (env.kind == INTERACTION__V1__FRAME__BODY_TASK) {
        ia_task_ctx *ctx = NULL;
        task_take t = take_task(c, &env, flen, &ctx);
        if (t == TAKE_CLOSED) goto release;
        if (t == TAKE_DONE) {
          ia__inbuf_consume(&c->in, flen);
          continue;
        }
        if (!run_task(s, c, ctx)) return; /* the loop took the socket over while the handler ran */
        continue;
      }
      if (env.kind == INTERACTION__V1__FRAME__BODY_HELLO) {
        conn_fail(c, IA_PROTOCOL_ERROR, "Hello on a connection that already has one");
        goto release;
      }
      bool open = on_master_frame(c, &env);
      ia__inbuf_consume(&c->in, flen);
      if (!open) goto release;
    }
    if (r < 0) goto release;
    if (atomic_load_explicit(&c->closing, memory_order_acquire) ||
        atomic_load_explicit(&s->worker_stop, memory_order_acquire))
      goto release;
    ssize_t n = ia__inbuf_recv(&c->in, c->fd, s->max_frame, 0);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) continue;
    if (n < 0 && errno == ENOMEM) {
      conn_fail(c, IA_NO_MEMORY, "out of memory for a frame");
      goto release;
    }
    IA_INFO("slave: connection from %s lost", c->master_name ? c->master_name : "unknown");
    conn_close(c, true, IA_CONNECTION_LOST);
    goto release;
  }
release:
  pthread_mutex_lock(&s->mu);
  c->reader = RD_LOOP;
  pthread_mutex_unlock(&s->mu);
  event_active(s->close_ev, EV_TIMEOUT, 0);
}

static void *worker_main(void *arg) {
  ia_slave *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    if (s->to_run) {
      ia_task_ctx *ctx = s->to_run;
      s->to_run = NULL;
      sconn *c = ctx->conn; /* alive while the task holds the slot */
      pthread_mutex_unlock(&s->mu);
      if (run_task(s, c, ctx)) worker_read(s, c);
      pthread_mutex_lock(&s->mu);
      continue;
    }
    sconn *c = s->master;
    if (c && c->reader == RD_WORKER && !c->closing && !s->worker_stop) {
      pthread_mutex_unlock(&s->mu);
      worker_read(s, c);
      pthread_mutex_lock(&s->mu);
      continue;
    }
    if (s->worker_stop) break;
    pthread_cond_wait(&s->work_cond, &s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---- the loop's side ---- */

/* Frames the loop reads from c (a handshake, or the master during a long task). */
static void loop_process(sconn *c) {
  ia_slave *s = c->slave;
  ia__env env;
  size_t flen;
  int r;
  while ((r = next_frame(c, &env, &flen)) > 0) {
    if (!c->handshaken) {
      if (env.kind != INTERACTION__V1__FRAME__BODY_HELLO) {
        conn_fail(c, IA_PROTOCOL_ERROR, "expected Hello as the first frame");
        return;
      }
      on_hello(c, env.id, env.body);
      ia__inbuf_consume(&c->in, flen);
      pthread_mutex_lock(&s->mu);
      if (!c->closing && s->master == c) hand_to_worker_locked(s, c);
      pthread_mutex_unlock(&s->mu);
      return;
    }
    if (env.kind == INTERACTION__V1__FRAME__BODY_TASK) {
      ia_task_ctx *ctx = NULL;
      task_take t = take_task(c, &env, flen, &ctx);
      if (t == TAKE_CLOSED) return;
      if (t == TAKE_DONE) {
        ia__inbuf_consume(&c->in, flen);
        continue;
      }
      /* A free slot: task and read side go back to the worker together. */
      pthread_mutex_lock(&s->mu);
      s->to_run = ctx;
      hand_to_worker_locked(s, c);
      pthread_mutex_unlock(&s->mu);
      return;
    }
    if (env.kind == INTERACTION__V1__FRAME__BODY_HELLO) {
      conn_fail(c, IA_PROTOCOL_ERROR, "Hello on a connection that already has one");
      return;
    }
    bool open = on_master_frame(c, &env);
    ia__inbuf_consume(&c->in, flen);
    if (!open) return;
  }
}

/* One recv() by the loop on a socket it holds, and the frames it completes. */
static void loop_read(sconn *c) {
  ia_slave *s = c->slave;
  ssize_t n = ia__inbuf_recv(&c->in, c->fd, s->max_frame, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
  if (n < 0 && errno == ENOMEM) {
    conn_fail(c, IA_NO_MEMORY, "out of memory for a frame");
    return;
  }
  if (n <= 0) {
    IA_INFO("slave: connection from %s lost", c->master_name ? c->master_name : "unknown");
    conn_close(c, true, IA_CONNECTION_LOST);
    return;
  }
  loop_process(c);
}

/* A connection still in its handshake (the loop holds it). */
static void read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  sconn *c = arg;
  ia_slave *s = c->slave;
  pthread_mutex_lock(&s->mu);
  bool mine = c->reader == RD_LOOP && !c->closing;
  pthread_mutex_unlock(&s->mu);
  if (!mine) return;
  if (what & EV_TIMEOUT) {
    conn_fail(c, IA_TIMEOUT, "no Hello within the hello timeout");
    return;
  }
  loop_read(c);
}

/* The loop takes the read side of c while ctx's handler runs: the task's
 * frame stays where the handler reads it, the rest of the buffer moves to a
 * new one that the loop reads into. (mu) */
static bool take_over_locked(ia_slave *s, sconn *c, ia_task_ctx *ctx) {
  (void)s;
  ia__inbuf rest;
  if (!ia__inbuf_split(&c->in, ctx->frame_len, &rest)) return false;
  ctx->hold = c->in.buf;
  c->in = rest;
  c->reader = RD_LOOP;
  watch_locked(c, true);
  return true;
}

int ia__slave_watchdog_check(ia_slave *s) {
  pthread_mutex_lock(&s->mu);
  bool running = s->in_handler && s->slot;
  /* Seen at two looks in a row, a tick apart (1 ms or more): long. The
   * worker stamps no clock per task; it counts. */
  bool act = running && !s->watched && s->wd_seq == s->run_seq;
  if (running) s->wd_seq = s->run_seq;
  if (act) s->watched = true;
  pthread_mutex_unlock(&s->mu);
  if (act) event_active(s->long_ev, EV_TIMEOUT, 0);
  return (running ? IA_WD_RUNNING : 0) | (act ? IA_WD_LONG : 0);
}

/* A handler runs long: the loop takes the read side, with whatever is
 * already buffered behind the task's frame. */
static void long_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  pthread_mutex_lock(&s->mu);
  ia_task_ctx *ctx = s->slot;
  sconn *c = ctx && s->in_handler ? ctx->conn : NULL;
  bool take = c && c->reader == RD_WORKER && !c->closing && take_over_locked(s, c, ctx);
  uint64_t id = take ? ctx->id : 0;
  pthread_mutex_unlock(&s->mu);
  if (!take) return;
  IA_DEBUG("slave: task %llu runs long: the loop takes the socket", (unsigned long long)id);
  send_empty(c, id, INTERACTION__V1__FRAME__BODY_ACCEPTED);
  loop_process(c);
}

static sconn *find_conn(ia_slave *s, uint64_t gen) {
  for (sconn *c = s->conns; c; c = c->next)
    if (c->gen == gen) return c;
  return NULL;
}

/* The handshaken sockets the loop holds (their handler ran long). */
static void ep_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  struct epoll_event evs[8];
  int n = epoll_wait(s->epfd, evs, 8, 0);
  for (int i = 0; i < n; i++) {
    sconn *c = find_conn(s, evs[i].data.u64);
    if (!c) continue;
    pthread_mutex_lock(&s->mu);
    bool mine = c->reader == RD_LOOP && !c->closing;
    if (!mine) watch_locked(c, false); /* a stale registration */
    pthread_mutex_unlock(&s->mu);
    if (mine) loop_read(c);
  }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int socklen,
                      void *arg) {
  (void)l;
  (void)addr;
  (void)socklen;
  ia_slave *s = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tick = {0, IA_READ_TICK_MS * 1000}, snd = {IA_SEND_TIMEOUT_S, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
  sconn *c = calloc(1, sizeof *c);
  if (c) c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, read_cb, c);
  if (!c || !c->rev) {
    IA_ERROR("slave: out of memory accepting a connection");
    free(c);
    evutil_closesocket(fd);
    return;
  }
  c->slave = s;
  c->fd = fd;
  c->gen = ++s->next_gen;
  pthread_mutex_init(&c->wmu, NULL);
  c->next = s->conns;
  s->conns = c;
  struct timeval hello = {s->cfg.hello_timeout_ms / 1000, (s->cfg.hello_timeout_ms % 1000) * 1000};
  event_add(c->rev, &hello);
  c->rev_added = true;
}

/* ---- shutdown ---- */

/* Once no task runs: Goodbye to everyone, close, and leave the loop when the
 * last connection is gone (or after a bounded wait). */
static void maybe_finish(ia_slave *s) {
  if (!atomic_load(&s->shutting_down) || s->finishing) return;
  pthread_mutex_lock(&s->mu);
  bool busy = s->slot != NULL || s->to_run != NULL;
  pthread_mutex_unlock(&s->mu);
  if (busy) return;
  s->finishing = true;
  for (sconn *c = s->conns; c; c = c->next) {
    if (c->handshaken)
      send_status(c, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, IA_SHUTTING_DOWN, "the slave is shutting down",
                  NULL, 0);
    conn_close(c, false, IA_SHUTTING_DOWN);
  }
  struct timeval bound = {FINISH_BOUND_S, 0};
  event_add(s->deadline_ev, &bound);
  event_active(s->close_ev, EV_TIMEOUT, 0);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  pthread_mutex_lock(&s->mu);
  if (s->slot) {
    IA_INFO("slave: grace period over: cancelling the running task");
    atomic_store(&s->slot->cancelled, true);
    pthread_cond_broadcast(&s->cancel_cond);
  }
  pthread_mutex_unlock(&s->mu);
  /* Look again soon: the task ends when its handler sees the cancel. */
  struct timeval again = {0, 10000};
  if (!s->finishing) event_add(s->grace_ev, &again);
  maybe_finish(s);
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  if (s->listener) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
  }
  struct timeval grace = {s->cfg.grace_ms / 1000, (s->cfg.grace_ms % 1000) * 1000};
  event_add(s->grace_ev, &grace);
  maybe_finish(s);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  event_base_loopbreak(s->base);
}

/* ---- lifecycle ---- */

ia_code ia_slave_new(const ia_slave_config *config, ia_slave **out, ia_error *err) {
  if (!config || !out) return ia__error_set(err, IA_INVALID_ARGUMENT, "config and out are required");
  ia__threads_init();
  ia_slave *s = calloc(1, sizeof *s);
  if (!s) return ia__error_set(err, IA_NO_MEMORY, "no memory for the slave");
  s->cfg = *config;
  s->cfg.host = strdup(config->host ? config->host : "127.0.0.1");
  s->cfg.name = strdup(config->name ? config->name : "slave");
  s->max_frame = ia__max_frame(config->max_frame);
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->work_cond, &ca);
  pthread_cond_init(&s->cancel_cond, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&s->shutting_down, false);
  s->base = event_base_new();
  if (s->base && s->epfd >= 0) {
    s->ep_ev = event_new(s->base, s->epfd, EV_READ | EV_PERSIST, ep_cb, s);
    s->long_ev = event_new(s->base, -1, 0, long_cb, s);
    s->close_ev = event_new(s->base, -1, 0, close_cb, s);
    s->shutdown_ev = event_new(s->base, -1, 0, shutdown_cb, s);
    s->grace_ev = evtimer_new(s->base, grace_cb, s);
    s->deadline_ev = evtimer_new(s->base, deadline_cb, s);
  }
  if (!s->cfg.host || !s->cfg.name || !s->base || !s->ep_ev || !s->long_ev || !s->close_ev ||
      !s->shutdown_ev || !s->grace_ev || !s->deadline_ev) {
    ia_slave_free(s);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the slave");
  }
  event_add(s->ep_ev, NULL);
  *out = s;
  return IA_OK;
}

static void *loop_main(void *arg) {
  ia_slave *s = arg;
  event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
  if (s->listener) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
  }
  return NULL;
}

ia_code ia_slave_start(ia_slave *s, ia_error *err) {
  if (s->started) return ia__error_set(err, IA_INVALID_ARGUMENT, "the slave is already started");
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)s->cfg.port);
  int rc = getaddrinfo(s->cfg.host, portstr, &hints, &ai);
  if (rc != 0) return ia__error_set(err, IA_IO_ERROR, "cannot resolve %s: %s", s->cfg.host, gai_strerror(rc));
  /* Accepted sockets stay blocking: the worker reads them with recv() and a
   * timeout; the loop passes MSG_DONTWAIT. */
  s->listener = evconnlistener_new_bind(s->base, accept_cb, s,
                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
                                            LEV_OPT_LEAVE_SOCKETS_BLOCKING,
                                        128, ai->ai_addr, (int)ai->ai_addrlen);
  freeaddrinfo(ai);
  if (!s->listener)
    return ia__error_set(err, IA_IO_ERROR, "cannot listen on %s:%u: %s", s->cfg.host, (unsigned)s->cfg.port,
                         strerror(errno));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  getsockname(evconnlistener_get_fd(s->listener), (struct sockaddr *)&ss, &sl);
  uint16_t port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  atomic_store(&s->port, port);
  if (!ia__watchdog_add(s)) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
    return ia__error_set(err, IA_NO_MEMORY, "cannot start the watchdog");
  }
  s->in_watchdog = true;
  if (ia__thread_create(&s->worker, worker_main, s) != 0) {
    ia__watchdog_remove(s);
    s->in_watchdog = false;
    evconnlistener_free(s->listener);
    s->listener = NULL;
    return ia__error_set(err, IA_NO_MEMORY, "cannot start the worker thread");
  }
  if (ia__thread_create(&s->loop_thread, loop_main, s) != 0) {
    pthread_mutex_lock(&s->mu);
    s->worker_stop = true;
    pthread_cond_broadcast(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->worker, NULL);
    ia__watchdog_remove(s);
    s->in_watchdog = false;
    evconnlistener_free(s->listener);
    s->listener = NULL;
    return ia__error_set(err, IA_NO_MEMORY, "cannot start the I/O thread");
  }
  s->started = true;
  IA_INFO("slave: listening on %s:%u", s->cfg.host, (unsigned)port);
  return IA_OK;
}

uint16_t ia_slave_port(const ia_slave *s) {
  return atomic_load(&((ia_slave *)s)->port);
}

void ia_slave_shutdown(ia_slave *s) {
  if (!s || atomic_exchange(&s->shutting_down, true)) return;
  if (s->shutdown_ev) event_active(s->shutdown_ev, EV_TIMEOUT, 0);
}

void ia_slave_join(ia_slave *s) {
  if (!s->started || s->joined) return;
  pthread_join(s->loop_thread, NULL);
  pthread_mutex_lock(&s->mu);
  s->worker_stop = true;
  if (s->slot) {
    /* The loop is gone: nobody will wait out a grace period any more. */
    atomic_store(&s->slot->cancelled, true);
    pthread_cond_broadcast(&s->cancel_cond);
  }
  pthread_cond_broadcast(&s->work_cond);
  pthread_mutex_unlock(&s->mu);
  /* A worker blocked reading a socket wakes at its next read tick. */
  for (sconn *c = s->conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  pthread_join(s->worker, NULL);
  if (s->in_watchdog) ia__watchdog_remove(s);
  s->in_watchdog = false;
  while (s->conns)
    conn_free(s->conns);
  s->joined = true;
}

void ia_slave_free(ia_slave *s) {
  if (!s) return;
  if (s->started) {
    ia_slave_shutdown(s);
    ia_slave_join(s);
  }
  if (s->listener) evconnlistener_free(s->listener);
  while (s->conns)
    conn_free(s->conns);
  if (s->to_run) ia__task_ctx_free(s->to_run);
  free(atomic_exchange(&s->spare, NULL));
  struct event *evs[] = {s->ep_ev, s->long_ev, s->close_ev, s->shutdown_ev, s->grace_ev, s->deadline_ev};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (evs[i]) event_free(evs[i]);
  if (s->base) event_base_free(s->base);
  if (s->epfd >= 0) close(s->epfd);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->work_cond);
  pthread_cond_destroy(&s->cancel_cond);
  for (size_t i = 0; i < s->n_methods; i++)
    free(s->methods[i].method);
  free(s->methods);
  for (size_t i = 0; i < s->n_allocs; i++)
    free(s->allocs[i]);
  free(s->allocs);
  free((char *)s->cfg.host);
  free((char *)s->cfg.name);
  free(s);
}

ia_code ia_slave_run(ia_slave *s, ia_error *err) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  if (!s->started) {
    ia_code rc = ia_slave_start(s, err);
    if (rc != IA_OK) {
      pthread_sigmask(SIG_SETMASK, &old, NULL);
      return rc;
    }
  }
  while (!atomic_load(&s->shutting_down)) {
    struct timespec tick = {0, 100 * 1000 * 1000};
    int sig = sigtimedwait(&set, NULL, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      IA_INFO("slave: %s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
      ia_slave_shutdown(s);
    }
  }
  ia_slave_join(s);
  /* A second SIGINT/SIGTERM that came during the join is taken here: it
   * asked for what already happened, and must not kill the process once the
   * old mask is back. */
  struct timespec none = {0, 0};
  while (sigtimedwait(&set, NULL, &none) > 0)
    ;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return IA_OK;
}
