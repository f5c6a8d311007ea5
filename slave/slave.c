/*
 * slave: the task-executing end.
 *
 * One libevent loop thread owns the listener and every connection's
 * bufferevent; it parses frames, runs the (non-blocking) hooks, takes the task
 * slot under the slave's mutex and hands the task to a worker thread. The
 * worker runs the handler and hands the outcome back through `done` and
 * event_active; the loop frees the slot and only then writes the reply, so a
 * master that holds a result always finds the slot free.
 *
 * Never: run a handler on the loop thread, block the loop, or free a
 * connection inside its own bufferevent callback (closing ones are reaped).
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
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "slave/slave-internal.h"

#define DRAIN_TIMEOUT_S 2

typedef struct sconn {
  ia_slave *slave;
  struct bufferevent *bev;
  uint64_t gen;
  bool handshaken;
  bool closing;
  char *master_name;
  struct sconn *next;
} sconn;

typedef struct method_entry {
  char *method;
  ia_handler_fn fn;
  void *user;
} method_entry;

struct ia_slave {
  method_entry *methods; /* fixed once started: read by the worker without a lock */
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

  /* Loop thread only. */
  sconn *conns;
  sconn *master;
  uint64_t next_gen;
  bool finishing;

  /* Under mu: the slot and the hand-offs with the worker. */
  pthread_mutex_t mu;
  pthread_cond_t work_cond;
  pthread_cond_t cancel_cond;
  ia_task_ctx *slot;
  ia_task_ctx *to_run;
  ia_task_ctx *done;
  bool worker_stop;

  atomic_bool shutting_down;
  struct event *done_ev;
  struct event *shutdown_ev;
  struct event *grace_ev;
  struct event *reap_ev;
  struct event *deadline_ev;
};

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

/* ---- connections ---- */

static void conn_free(sconn *c) {
  ia_slave *s = c->slave;
  for (sconn **p = &s->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  if (s->master == c) s->master = NULL;
  bufferevent_free(c->bev);
  free(c->master_name);
  free(c);
}

static void maybe_finish(ia_slave *s);
static void event_cb(struct bufferevent *bev, short what, void *arg);

static void reap_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  sconn *c = s->conns;
  while (c) {
    sconn *next = c->next;
    if (c->closing && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) conn_free(c);
    c = next;
  }
  if (s->finishing && !s->conns) event_base_loopbreak(s->base);
}

static void drain_cb(struct bufferevent *bev, void *arg) {
  (void)bev;
  sconn *c = arg;
  event_active(c->slave->reap_ev, EV_TIMEOUT, 0);
}

/* The master of a running task is gone: its handler is asked to stop, so
 * that the slot is free for the next master. */
static void cancel_tasks_of(sconn *c) {
  ia_slave *s = c->slave;
  pthread_mutex_lock(&s->mu);
  if (s->slot && s->slot->conn_gen == c->gen) {
    atomic_store(&s->slot->cancelled, true);
    pthread_cond_broadcast(&s->cancel_cond);
  }
  pthread_mutex_unlock(&s->mu);
}

/* Stops reading from c, lets what was written drain, then frees it. */
static void conn_close(sconn *c) {
  ia_slave *s = c->slave;
  if (c->closing) return;
  c->closing = true;
  if (s->master == c) s->master = NULL;
  cancel_tasks_of(c);
  bufferevent_disable(c->bev, EV_READ);
  struct timeval drain = {DRAIN_TIMEOUT_S, 0};
  bufferevent_set_timeouts(c->bev, NULL, &drain);
  bufferevent_setcb(c->bev, NULL, drain_cb, event_cb, c);
  event_active(s->reap_ev, EV_TIMEOUT, 0);
}

/* The peer broke the protocol or sent too much: say why, then close. */
static void conn_fail(sconn *c, ia_code code, const char *message) {
  ia_slave *s = c->slave;
  IA_WARN("slave: closing connection from %s: %s (%s)", c->master_name ? c->master_name : "unknown", message,
          ia_code_name(code));
  bool was_master = s->master == c;
  ia__write_goodbye(bufferevent_get_output(c->bev), 0, code, message);
  conn_close(c);
  if (was_master && s->cfg.lost_connection)
    s->cfg.lost_connection(c->master_name ? c->master_name : "", code, s->cfg.user);
}

static void refuse(sconn *c, uint64_t id, ia_code code, const char *message, const ia_hook_reply *r) {
  const char *msg = r && r->message ? r->message : message;
  ia__write_refusal(bufferevent_get_output(c->bev), id, code, msg, r ? r->data : NULL, r ? r->len : 0);
}

/* ---- handshake ---- */

static void on_hello(sconn *c, ia__frame *f) {
  ia_slave *s = c->slave;
  const Interaction__V1__Hello *h = f->hello;
  char msg[160];
  ia_hook_reply reply = {0};
  free(c->master_name);
  c->master_name = strdup(h->master_name ? h->master_name : "");
  ia_code code = IA_OK;
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
  } else if (s->master) {
    code = IA_ALREADY_CONNECTED;
    snprintf(msg, sizeof msg, "the slave already has a master (%s)", s->master->master_name);
  } else if (s->cfg.before_connection &&
             !s->cfg.before_connection(c->master_name, h->has_data ? h->data.data : NULL,
                                       h->has_data ? h->data.len : 0, &reply, s->cfg.user)) {
    code = IA_CONNECTION_REFUSED;
    snprintf(msg, sizeof msg, "refused by the slave's before_connection hook");
  }
  if (code != IA_OK) {
    IA_INFO("slave: refusing master %s: %s", c->master_name, msg);
    refuse(c, f->id, code, msg, &reply);
    ia__hook_reply_release(&reply);
    conn_close(c);
    return;
  }
  c->handshaken = true;
  s->master = c;
  bufferevent_set_timeouts(c->bev, NULL, NULL);
  Interaction__V1__Welcome w = INTERACTION__V1__WELCOME__INIT;
  w.has_version = w.has_mode = w.has_capacity = w.has_max_frame = 1;
  w.version = IA_PROTOCOL_VERSION;
  w.slave_name = (char *)s->cfg.name;
  w.mode = (uint32_t)s->cfg.mode;
  w.capacity = 1;
  w.max_frame = s->max_frame;
  ia__frame out = INTERACTION__V1__FRAME__INIT;
  out.has_id = 1;
  out.id = f->id;
  out.body_case = INTERACTION__V1__FRAME__BODY_WELCOME;
  out.welcome = &w;
  ia__frame_write(bufferevent_get_output(c->bev), &out);
  IA_INFO("slave: master %s connected", c->master_name);
}

/* ---- tasks ---- */

static const method_entry *find_method(const ia_slave *s, const char *method) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (strcmp(s->methods[i].method, method) == 0) return &s->methods[i];
  return NULL;
}

/* Takes ownership of f. */
static void on_task(sconn *c, ia__frame *f) {
  ia_slave *s = c->slave;
  uint64_t id = f->id;
  if (atomic_load(&s->shutting_down)) {
    refuse(c, id, IA_SHUTTING_DOWN, "the slave is shutting down", NULL);
    ia__frame_free(f);
    return;
  }
  if (!s->cfg.handler && !find_method(s, f->task->method ? f->task->method : "")) {
    char msg[160];
    snprintf(msg, sizeof msg, "no handler for method '%.100s'", f->task->method ? f->task->method : "");
    refuse(c, id, IA_UNKNOWN_METHOD, msg, NULL);
    ia__frame_free(f);
    return;
  }
  ia_task_ctx *ctx = ia__task_ctx_new(s, f, c->gen);
  if (!ctx) {
    refuse(c, id, IA_TASK_ERROR, "the slave is out of memory", NULL);
    ia__frame_free(f);
    return;
  }
  pthread_mutex_lock(&s->mu);
  bool busy = s->slot != NULL;
  if (!busy) s->slot = ctx;
  pthread_mutex_unlock(&s->mu);
  if (busy) {
    refuse(c, id, IA_TASK_ALREADY_EXIST, "the slave's task slot is busy", NULL);
    ia__task_ctx_free(ctx);
    return;
  }
  ia_hook_reply reply = {0};
  if (s->cfg.before_task && !s->cfg.before_task(ctx, &reply, s->cfg.user)) {
    pthread_mutex_lock(&s->mu);
    s->slot = NULL;
    pthread_mutex_unlock(&s->mu);
    refuse(c, id, IA_TASK_REFUSED, "refused by the slave's before_task hook", &reply);
    ia__hook_reply_release(&reply);
    ia__task_ctx_free(ctx);
    return;
  }
  ia__hook_reply_release(&reply);
  ia__write_empty(bufferevent_get_output(c->bev), id, INTERACTION__V1__FRAME__BODY_ACCEPTED);
  pthread_mutex_lock(&s->mu);
  s->to_run = ctx;
  pthread_cond_signal(&s->work_cond);
  pthread_mutex_unlock(&s->mu);
}

ia_code ia_slave_register(ia_slave *s, const char *method, ia_handler_fn fn, void *user) {
  if (!s || !method || !fn || s->started) return IA_INVALID_ARGUMENT;
  method_entry *e = (method_entry *)find_method(s, method);
  if (!e) {
    method_entry *m = realloc(s->methods, (s->n_methods + 1) * sizeof *m);
    if (!m) return IA_NO_MEMORY;
    s->methods = m;
    e = &m[s->n_methods];
    if (!(e->method = strdup(method))) return IA_NO_MEMORY;
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

static void run_handler(ia_slave *s, ia_task_ctx *ctx) {
  const char *method = ia_task_ctx_method(ctx);
  const method_entry *e = find_method(s, method);
  if (e) {
    e->fn(ctx, e->user);
  } else if (s->cfg.handler) {
    s->cfg.handler(ctx, s->cfg.user);
  } else {
    char msg[160];
    snprintf(msg, sizeof msg, "no handler for method '%.100s'", method);
    ia_task_ctx_fail(ctx, IA_UNKNOWN_METHOD, msg, NULL, 0);
  }
}

static void *worker_main(void *arg) {
  ia_slave *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->to_run && !s->worker_stop)
      pthread_cond_wait(&s->work_cond, &s->mu);
    if (!s->to_run) break;
    ia_task_ctx *ctx = s->to_run;
    s->to_run = NULL;
    pthread_mutex_unlock(&s->mu);
    run_handler(s, ctx);
    pthread_mutex_lock(&s->mu);
    s->done = ctx;
    event_active(s->done_ev, EV_TIMEOUT, 0);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static sconn *find_conn(ia_slave *s, uint64_t gen) {
  for (sconn *c = s->conns; c; c = c->next)
    if (c->gen == gen) return c;
  return NULL;
}

static void done_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  pthread_mutex_lock(&s->mu);
  ia_task_ctx *ctx = s->done;
  s->done = NULL;
  if (ctx && s->slot == ctx) s->slot = NULL; /* freed before the reply goes out: see the top comment */
  pthread_mutex_unlock(&s->mu);
  if (!ctx) return;
  if (ctx->outcome == IA_OUTCOME_NONE || ctx->outcome == IA_OUTCOME_INVALID)
    IA_WARN("slave: handler for %s gave no valid result: reported as TASK_ERROR", ia_task_ctx_method(ctx));
  sconn *c = find_conn(s, ctx->conn_gen);
  if (c && !c->closing)
    ia__task_ctx_write_outcome(ctx, bufferevent_get_output(c->bev));
  else
    IA_INFO("slave: the master of task %llu is gone; its outcome is dropped", (unsigned long long)ctx->id);
  ia__task_ctx_free(ctx);
  maybe_finish(s);
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

static void on_disconnect(sconn *c, ia__frame *f) {
  ia_slave *s = c->slave;
  const Interaction__V1__Disconnect *d = f->disconnect;
  ia_hook_reply reply = {0};
  if (s->cfg.before_disconnection &&
      !s->cfg.before_disconnection(c->master_name, d->has_data ? d->data.data : NULL,
                                   d->has_data ? d->data.len : 0, &reply, s->cfg.user)) {
    refuse(c, f->id, IA_DISCONNECTION_REFUSED, "refused by the slave's before_disconnection hook", &reply);
    ia__hook_reply_release(&reply);
    return;
  }
  ia__hook_reply_release(&reply);
  IA_INFO("slave: master %s disconnected", c->master_name);
  ia__write_goodbye(bufferevent_get_output(c->bev), f->id, IA_OK, "disconnected");
  conn_close(c);
}

/* Dispatches one frame; takes ownership of f. */
static void on_frame(sconn *c, ia__frame *f) {
  if (!c->handshaken) {
    if (f->body_case == INTERACTION__V1__FRAME__BODY_HELLO)
      on_hello(c, f);
    else
      conn_fail(c, IA_PROTOCOL_ERROR, "expected Hello as the first frame");
    ia__frame_free(f);
    return;
  }
  switch (f->body_case) {
  case INTERACTION__V1__FRAME__BODY_TASK:
    on_task(c, f);
    return;
  case INTERACTION__V1__FRAME__BODY_PING:
    ia__write_empty(bufferevent_get_output(c->bev), f->id, INTERACTION__V1__FRAME__BODY_PONG);
    break;
  case INTERACTION__V1__FRAME__BODY_PONG:
    break;
  case INTERACTION__V1__FRAME__BODY_CANCEL:
    on_cancel(c, f->id);
    break;
  case INTERACTION__V1__FRAME__BODY_DISCONNECT:
    on_disconnect(c, f);
    break;
  case INTERACTION__V1__FRAME__BODY_GOODBYE:
    IA_INFO("slave: master %s said goodbye", c->master_name);
    conn_close(c);
    break;
  default:
    conn_fail(c, IA_PROTOCOL_ERROR, "unexpected frame from the master");
    break;
  }
  ia__frame_free(f);
}

static void read_cb(struct bufferevent *bev, void *arg) {
  sconn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  while (!c->closing) {
    const uint8_t *body;
    uint32_t len;
    ia__frame_next_result r = ia__frame_next(in, c->slave->max_frame, &body, &len);
    if (r == IA_FRAME_NEED_MORE) return;
    if (r == IA_FRAME_OVERSIZE) {
      conn_fail(c, IA_FRAME_TOO_LARGE, "frame over max_frame");
      return;
    }
    ia__frame *f = ia__frame_unpack(body, len);
    evbuffer_drain(in, IA_FRAME_HEADER + len);
    if (!f) {
      conn_fail(c, IA_PROTOCOL_ERROR, "malformed frame");
      return;
    }
    on_frame(c, f);
  }
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  sconn *c = arg;
  ia_slave *s = c->slave;
  if (c->closing) {
    /* A closing connection's drain failed or timed out: drop what is left. */
    evbuffer_drain(bufferevent_get_output(c->bev), evbuffer_get_length(bufferevent_get_output(c->bev)));
    event_active(s->reap_ev, EV_TIMEOUT, 0);
    return;
  }
  if (what & BEV_EVENT_TIMEOUT) {
    conn_fail(c, IA_TIMEOUT, "no Hello within the hello timeout");
    return;
  }
  bool was_master = s->master == c;
  IA_INFO("slave: connection from %s lost", c->master_name ? c->master_name : "unknown");
  evbuffer_drain(bufferevent_get_output(c->bev), evbuffer_get_length(bufferevent_get_output(c->bev)));
  conn_close(c);
  if (was_master && s->cfg.lost_connection)
    s->cfg.lost_connection(c->master_name ? c->master_name : "", IA_CONNECTION_LOST, s->cfg.user);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int socklen,
                      void *arg) {
  (void)l;
  (void)addr;
  (void)socklen;
  ia_slave *s = arg;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  sconn *c = calloc(1, sizeof *c);
  struct bufferevent *bev = c ? bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE) : NULL;
  if (!bev) {
    IA_ERROR("slave: out of memory accepting a connection");
    free(c);
    evutil_closesocket(fd);
    return;
  }
  c->slave = s;
  c->bev = bev;
  c->gen = ++s->next_gen;
  c->next = s->conns;
  s->conns = c;
  struct timeval hello = {s->cfg.hello_timeout_ms / 1000, (s->cfg.hello_timeout_ms % 1000) * 1000};
  bufferevent_set_timeouts(bev, &hello, NULL);
  bufferevent_setcb(bev, read_cb, NULL, event_cb, c);
  bufferevent_enable(bev, EV_READ);
}

/* ---- shutdown ---- */

/* Once no task runs: Goodbye to everyone, close, and leave the loop when the
 * last connection is gone (or after a bounded drain). */
static void maybe_finish(ia_slave *s) {
  if (!atomic_load(&s->shutting_down) || s->finishing) return;
  pthread_mutex_lock(&s->mu);
  bool busy = s->slot != NULL;
  pthread_mutex_unlock(&s->mu);
  if (busy) return;
  s->finishing = true;
  for (sconn *c = s->conns; c; c = c->next) {
    if (c->closing) continue;
    if (c->handshaken)
      ia__write_goodbye(bufferevent_get_output(c->bev), 0, IA_SHUTTING_DOWN, "the slave is shutting down");
    conn_close(c);
  }
  struct timeval bound = {DRAIN_TIMEOUT_S + 1, 0};
  event_add(s->deadline_ev, &bound);
  event_active(s->reap_ev, EV_TIMEOUT, 0);
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
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->work_cond, &ca);
  pthread_cond_init(&s->cancel_cond, &ca);
  pthread_condattr_destroy(&ca);
  atomic_init(&s->shutting_down, false);
  struct event_config *ec = event_config_new();
  if (ec) {
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    s->base = event_base_new_with_config(ec);
    event_config_free(ec);
  }
  if (s->base) {
    s->done_ev = event_new(s->base, -1, 0, done_cb, s);
    s->shutdown_ev = event_new(s->base, -1, 0, shutdown_cb, s);
    s->grace_ev = evtimer_new(s->base, grace_cb, s);
    s->reap_ev = event_new(s->base, -1, 0, reap_cb, s);
    s->deadline_ev = evtimer_new(s->base, deadline_cb, s);
  }
  if (!s->cfg.host || !s->cfg.name || !s->base || !s->done_ev || !s->shutdown_ev || !s->grace_ev ||
      !s->reap_ev || !s->deadline_ev) {
    ia_slave_free(s);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the slave");
  }
  *out = s;
  return IA_OK;
}

static void *loop_main(void *arg) {
  ia_slave *s = arg;
  event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
  /* Whatever is left is closed now; the worker may still finish a task. */
  if (s->listener) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
  }
  while (s->conns)
    conn_free(s->conns);
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
  s->listener = evconnlistener_new_bind(s->base, accept_cb, s,
                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
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
  if (ia__thread_create(&s->worker, worker_main, s) != 0) {
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
  pthread_join(s->worker, NULL);
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
  /* A task the loop never saw finish, or one never handed to the worker. */
  if (s->done)
    ia__task_ctx_free(s->done);
  else if (s->slot)
    ia__task_ctx_free(s->slot);
  struct event *evs[] = {s->done_ev, s->shutdown_ev, s->grace_ev, s->reap_ev, s->deadline_ev};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (evs[i]) event_free(evs[i]);
  if (s->base) event_base_free(s->base);
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
