/*
 * master: the task-issuing end.
 *
 * Callers' threads dial and handshake with plain blocking sockets (bounded by
 * the caller's timeout), then hand the socket to the master's one libevent
 * loop thread, which from then on reads every frame of every connection and
 * completes tasks. Callers write frames into a connection's thread-safe
 * bufferevent under the master's mutex; the loop's callbacks run unlocked
 * (BEV_OPT_UNLOCK_CALLBACKS), so the lock order is always mutex -> bufferevent.
 *
 * Never: block on the loop thread, or leave a started task without a
 * terminal status when its connection goes away.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "master/master-internal.h"

#define DRAIN_TIMEOUT_S 2

void ia_master_config_init(ia_master_config *c) {
  memset(c, 0, sizeof *c);
  c->name = "master";
}

bool ia__master_on_loop(const ia_master *m) {
  return m->started && pthread_equal(pthread_self(), m->loop_thread);
}

/* ---- connections: references ---- */

void ia__conn_ref(ia_conn *c) {
  c->refs++;
}

static void conn_destroy_locked(ia_conn *c) {
  ia_master *m = c->m;
  for (ia_conn **p = &m->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  free(c->name);
  free(c);
}

void ia__conn_unref(ia_conn *c) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  if (--c->refs == 0) conn_destroy_locked(c);
  pthread_mutex_unlock(&m->mu);
}

ia_code ia__conn_send_locked(ia_conn *c, const uint8_t *buf, size_t len) {
  if (!c->up) return IA_NOT_CONNECTED;
  if (bufferevent_write(c->bev, buf, len) != 0) return IA_NO_MEMORY;
  return IA_OK;
}

/* ---- connections: teardown on the loop ---- */

/* Marks c down and ends every pending task with `status`/`code`. Any thread;
 * returns whether c was up. */
static bool conn_mark_down(ia_conn *c, ia_status status, ia_code code, const char *message) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  bool was_up = c->up;
  c->up = false;
  ia_task *list = c->pending;
  c->pending = NULL;
  pthread_mutex_unlock(&m->mu);
  while (list) {
    ia_task *t = list;
    list = t->next;
    t->next = NULL;
    if (t->is_disconnect && code == IA_OK)
      ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true);
    else
      ia__task_finish(t, status, code, message, NULL, 0, true);
  }
  return was_up;
}

/* Frees the bufferevent (closing the socket) and drops the loop's reference.
 * Loop thread only. */
static void conn_release_bev(ia_conn *c) {
  if (!c->bev) return;
  bufferevent_free(c->bev);
  c->bev = NULL;
  ia__conn_unref(c);
}

static void conn_lost(ia_conn *c, ia_code code, const char *message) {
  if (conn_mark_down(c, IA_STATUS_LOST, code, message))
    IA_INFO("master: connection %s down: %s (%s)", c->name, message, ia_code_name(code));
  conn_release_bev(c);
}

/* Protocol violation by the slave: tell it why, then drop the connection. */
static void conn_protocol_error(ia_conn *c, ia_code code, const char *message) {
  IA_WARN("master: connection %s: %s", c->name, message);
  pthread_mutex_lock(&c->m->mu);
  if (c->up) {
    /* Pushed to the socket now: the bufferevent is freed right after. */
    struct evbuffer *out = bufferevent_get_output(c->bev);
    ia__write_goodbye(out, 0, code, message);
    evbuffer_unfreeze(out, 1); /* bufferevents keep their output's start frozen */
    evbuffer_write(out, bufferevent_getfd(c->bev));
  }
  pthread_mutex_unlock(&c->m->mu);
  conn_lost(c, code, message);
}

/* Runs on the loop for a close requested from another thread. */
static void close_request_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_conn *c = arg;
  conn_lost(c, IA_CONNECTION_LOST, "closed by the master");
  ia__conn_unref(c); /* the request's reference */
}

/* Closes c from any thread: it is down at once; the loop frees the socket. */
static void conn_close_async(ia_conn *c, ia_code code, const char *message) {
  ia_master *m = c->m;
  conn_mark_down(c, IA_STATUS_LOST, code, message);
  pthread_mutex_lock(&m->mu);
  ia__conn_ref(c);
  pthread_mutex_unlock(&m->mu);
  if (ia__master_on_loop(m)) {
    close_request_cb(-1, 0, c);
    return;
  }
  struct timeval now = {0, 0};
  if (event_base_once(m->base, -1, EV_TIMEOUT, close_request_cb, c, &now) != 0)
    ia__conn_unref(c); /* the loop is gone; ia_master_free releases the socket */
}

/* ---- reading ---- */

static ia_task *take_pending(ia_conn *c, uint64_t id, bool keep) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  ia_task *found = NULL;
  for (ia_task **p = &c->pending; *p; p = &(*p)->next)
    if ((*p)->id == id) {
      found = *p;
      if (!keep) {
        *p = found->next;
        found->next = NULL;
      }
      break;
    }
  pthread_mutex_unlock(&m->mu);
  return found;
}

/* Handles one frame; returns false if the connection was closed. */
static bool on_frame(ia_conn *c, const ia__frame *f) {
  ia_master *m = c->m;
  switch (f->body_case) {
  case INTERACTION__V1__FRAME__BODY_ACCEPTED: {
    pthread_mutex_lock(&m->mu);
    ia_task *t = NULL;
    for (t = c->pending; t && t->id != f->id; t = t->next)
      ;
    if (t && t->status == IA_STATUS_STARTING) t->status = IA_STATUS_STARTED;
    pthread_mutex_unlock(&m->mu);
    if (!t) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "Accepted for a task id that was never sent");
      return false;
    }
    return true;
  }
  case INTERACTION__V1__FRAME__BODY_RESULT:
  case INTERACTION__V1__FRAME__BODY_FAIL:
  case INTERACTION__V1__FRAME__BODY_REFUSAL: {
    ia_task *t = take_pending(c, f->id, false);
    if (!t) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "a reply to an id that was never sent");
      return false;
    }
    if (f->body_case == INTERACTION__V1__FRAME__BODY_RESULT) {
      const Interaction__V1__TaskResult *r = f->result;
      ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, r->has_payload ? r->payload.data : NULL,
                      r->has_payload ? r->payload.len : 0, true);
    } else if (f->body_case == INTERACTION__V1__FRAME__BODY_FAIL) {
      const Interaction__V1__TaskFail *fl = f->fail;
      ia_code code = fl->has_code ? (ia_code)fl->code : IA_TASK_FAILED;
      ia_status st = code == IA_CANCELLED           ? IA_STATUS_CANCELLED
                     : code == IA_DEADLINE_EXCEEDED ? IA_STATUS_TIMED_OUT
                                                    : IA_STATUS_FAILED;
      ia__task_finish(t, st, code, fl->message, fl->has_result ? fl->result.data : NULL,
                      fl->has_result ? fl->result.len : 0, true);
    } else {
      const Interaction__V1__Refusal *r = f->refusal;
      ia__task_finish(t, IA_STATUS_START_FAILED, r->has_code ? (ia_code)r->code : IA_PROTOCOL_ERROR,
                      r->message, r->has_data ? r->data.data : NULL, r->has_data ? r->data.len : 0, true);
    }
    return true;
  }
  case INTERACTION__V1__FRAME__BODY_GOODBYE: {
    const Interaction__V1__Goodbye *g = f->goodbye;
    ia_code code = g->has_code ? (ia_code)g->code : IA_CONNECTION_LOST;
    char msg[IA_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof msg, "the slave said goodbye: %s", g->message ? g->message : ia_code_name(code));
    /* A Goodbye answering our Disconnect completes it; any other ends the
     * pending tasks as LOST with the slave's reason. */
    ia_task *t = f->id ? take_pending(c, f->id, false) : NULL;
    if (t && t->is_disconnect && code == IA_OK) {
      conn_mark_down(c, IA_STATUS_LOST, IA_CONNECTION_LOST, "disconnected");
      ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true);
      conn_release_bev(c);
      return false;
    }
    if (t) ia__task_finish(t, IA_STATUS_LOST, code, msg, NULL, 0, true);
    conn_lost(c, code, msg);
    return false;
  }
  case INTERACTION__V1__FRAME__BODY_PING:
    pthread_mutex_lock(&m->mu);
    if (c->up) ia__write_empty(bufferevent_get_output(c->bev), f->id, INTERACTION__V1__FRAME__BODY_PONG);
    pthread_mutex_unlock(&m->mu);
    return true;
  case INTERACTION__V1__FRAME__BODY_PONG:
    return true;
  default:
    conn_protocol_error(c, IA_PROTOCOL_ERROR, "unexpected frame from the slave");
    return false;
  }
}

static void read_cb(struct bufferevent *bev, void *arg) {
  ia_conn *c = arg;
  struct evbuffer *in = bufferevent_get_input(bev);
  for (;;) {
    const uint8_t *body;
    uint32_t len;
    ia__frame_next_result r = ia__frame_next(in, c->m->max_frame, &body, &len);
    if (r == IA_FRAME_NEED_MORE) return;
    if (r == IA_FRAME_OVERSIZE) {
      conn_protocol_error(c, IA_FRAME_TOO_LARGE, "frame over max_frame from the slave");
      return;
    }
    ia__frame *f = ia__frame_unpack(body, len);
    evbuffer_drain(in, IA_FRAME_HEADER + len);
    if (!f) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "malformed frame from the slave");
      return;
    }
    bool open = on_frame(c, f);
    ia__frame_free(f);
    if (!open) return;
  }
}

static void event_cb(struct bufferevent *bev, short what, void *arg) {
  (void)bev;
  ia_conn *c = arg;
  conn_lost(c, IA_CONNECTION_LOST,
            (what & BEV_EVENT_EOF) ? "the slave closed the connection"
                                   : "the connection to the slave failed");
}

/* ---- connect / find / disconnect ---- */

static ia_conn *find_live_locked(ia_master *m, const char *name) {
  for (ia_conn *c = m->conns; c; c = c->next)
    if (c->up && strcmp(c->name, name) == 0) return c;
  return NULL;
}

ia_conn *ia_master_find(ia_master *m, const char *name) {
  pthread_mutex_lock(&m->mu);
  ia_conn *c = find_live_locked(m, name);
  pthread_mutex_unlock(&m->mu);
  return c;
}

/* Says Hello on a fresh socket and waits for the answer. */
static ia_code handshake(ia_master *m, int fd, const void *data, size_t len, uint64_t deadline,
                         uint32_t *peer_max_frame, ia_error *err) {
  Interaction__V1__Hello h = INTERACTION__V1__HELLO__INIT;
  h.has_version = h.has_channel = 1;
  h.version = IA_PROTOCOL_VERSION;
  h.channel = m->cfg.channel;
  h.master_name = (char *)m->cfg.name;
  if (data && len) {
    h.has_data = 1;
    h.data.data = (uint8_t *)data;
    h.data.len = len;
  }
  ia__frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = atomic_fetch_add(&m->next_id, 1);
  f.body_case = INTERACTION__V1__FRAME__BODY_HELLO;
  f.hello = &h;
  size_t n;
  uint8_t *buf = ia__frame_pack(&f, &n);
  if (!buf) return ia__error_set(err, IA_NO_MEMORY, "no memory for Hello");
  ia_code rc = ia__fd_write_all(fd, buf, n, deadline, err);
  free(buf);
  if (rc != IA_OK) return rc;
  ia__frame *reply = NULL;
  rc = ia__fd_read_frame(fd, m->max_frame, deadline, &reply, err);
  if (rc != IA_OK) return rc;
  switch (reply->body_case) {
  case INTERACTION__V1__FRAME__BODY_WELCOME:
    *peer_max_frame = reply->welcome->has_max_frame ? reply->welcome->max_frame : IA_MAX_FRAME_DEFAULT;
    break;
  case INTERACTION__V1__FRAME__BODY_REFUSAL: {
    const Interaction__V1__Refusal *r = reply->refusal;
    rc = ia__error_set(err, r->has_code ? (ia_code)r->code : IA_CONNECTION_REFUSED, "%s",
                       r->message ? r->message : "refused");
    if (r->has_data) ia__error_set_data(err, r->data.data, r->data.len);
    break;
  }
  case INTERACTION__V1__FRAME__BODY_GOODBYE: {
    const Interaction__V1__Goodbye *g = reply->goodbye;
    rc = ia__error_set(err, g->has_code && g->code ? (ia_code)g->code : IA_CONNECTION_LOST, "%s",
                       g->message ? g->message : "the slave closed the connection");
    break;
  }
  default:
    rc = ia__error_set(err, IA_PROTOCOL_ERROR, "unexpected answer to Hello");
    break;
  }
  ia__frame_free(reply);
  return rc;
}

ia_code ia_master_connect(ia_master *m, const char *name, const char *host, uint16_t port, const void *data,
                          size_t len, uint32_t timeout_ms, ia_conn **out, ia_error *err) {
  if (!m || !name || !host || !out)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "master, name, host and out are required");
  if (!m->started || atomic_load(&m->shutting_down))
    return ia__error_set(err, IA_NOT_CONNECTED, "the master is not running");
  if (ia_master_find(m, name))
    return ia__error_set(err, IA_ALREADY_CONNECTED, "a live connection is already named '%s'", name);
  uint64_t deadline = ia__now_ms() + timeout_ms;
  int fd = -1;
  uint32_t peer_max = 0;
  ia_code rc = ia__dial(host, port, deadline, &fd, err);
  if (rc != IA_OK) return rc;
  rc = handshake(m, fd, data, len, deadline, &peer_max, err);
  if (rc != IA_OK) {
    close(fd);
    return rc;
  }
  ia_conn *c = calloc(1, sizeof *c);
  struct bufferevent *bev = bufferevent_socket_new(m->base, fd,
                                                   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_THREADSAFE |
                                                       BEV_OPT_DEFER_CALLBACKS | BEV_OPT_UNLOCK_CALLBACKS);
  if (!c || !bev || !(c->name = strdup(name))) {
    if (bev)
      bufferevent_free(bev);
    else
      close(fd);
    if (c) free(c->name);
    free(c);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the connection");
  }
  c->m = m;
  c->bev = bev;
  c->peer_max_frame = peer_max;
  bufferevent_setcb(bev, read_cb, NULL, event_cb, c);
  pthread_mutex_lock(&m->mu);
  if (find_live_locked(m, name)) {
    pthread_mutex_unlock(&m->mu);
    /* The slave is told nothing more; closing says enough. */
    bufferevent_free(bev);
    free(c->name);
    free(c);
    return ia__error_set(err, IA_ALREADY_CONNECTED, "a live connection is already named '%s'", name);
  }
  c->refs = 2; /* the caller's and the loop's */
  c->up = true;
  c->next = m->conns;
  m->conns = c;
  pthread_mutex_unlock(&m->mu);
  bufferevent_enable(bev, EV_READ);
  IA_INFO("master: connected %s to %s:%u", name, host, (unsigned)port);
  *out = c;
  return IA_OK;
}

const char *ia_conn_name(const ia_conn *c) {
  return c->name;
}

bool ia_conn_is_connected(const ia_conn *c) {
  pthread_mutex_lock(&c->m->mu);
  bool up = c->up;
  pthread_mutex_unlock(&c->m->mu);
  return up;
}

ia_code ia_conn_disconnect(ia_conn *c, const void *data, size_t len, uint32_t timeout_ms, ia_error *err) {
  ia_master *m = c->m;
  ia_task *t = ia_conn_new_task(c, "", NULL, 0);
  if (!t) return ia__error_set(err, IA_NO_MEMORY, "no memory for the disconnect");
  t->is_disconnect = true;
  Interaction__V1__Disconnect d = INTERACTION__V1__DISCONNECT__INIT;
  if (data && len) {
    d.has_data = 1;
    d.data.data = (uint8_t *)data;
    d.data.len = len;
  }
  ia__frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = t->id;
  f.body_case = INTERACTION__V1__FRAME__BODY_DISCONNECT;
  f.disconnect = &d;
  size_t n;
  uint8_t *buf = ia__frame_pack(&f, &n);
  if (!buf) {
    ia_task_free(t);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the disconnect");
  }
  pthread_mutex_lock(&m->mu);
  ia_code rc = c->up ? IA_OK : IA_NOT_CONNECTED;
  if (rc == IA_OK) {
    t->status = IA_STATUS_STARTING;
    t->refs++;
    t->next = c->pending;
    c->pending = t;
    rc = ia__conn_send_locked(c, buf, n);
    if (rc != IA_OK) {
      c->pending = t->next;
      t->refs--;
    }
  }
  pthread_mutex_unlock(&m->mu);
  free(buf);
  if (rc != IA_OK) {
    ia_task_free(t);
    return ia__error_set(err, rc, "%s is not connected", c->name);
  }
  if (ia_task_join(t, timeout_ms) != IA_OK) {
    /* No answer in time: the connection is closed anyway; the slave sees it
     * drop. */
    conn_close_async(c, IA_CONNECTION_LOST, "disconnect timed out");
    ia_task_free(t);
    return ia__error_set(err, IA_TIMEOUT, "no answer to Disconnect within %u ms; connection closed",
                         timeout_ms);
  }
  rc = IA_OK;
  if (ia_task_status(t) != IA_STATUS_COMPLETED) {
    const ia_error *e = ia_task_error(t);
    if (err) ia__error_copy(err, e);
    rc = e->code;
  }
  ia_task_free(t);
  return rc;
}

void ia_conn_free(ia_conn *c) {
  if (!c) return;
  if (ia_conn_is_connected(c)) conn_close_async(c, IA_CONNECTION_LOST, "the connection was freed");
  ia__conn_unref(c);
}

/* ---- lifecycle ---- */

static void drain_cb(struct bufferevent *bev, void *arg) {
  ia_conn *c = arg;
  if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) return;
  ia_master *m = c->m;
  conn_release_bev(c);
  if (--m->draining == 0) event_base_loopbreak(m->base);
}

static void drain_event_cb(struct bufferevent *bev, short what, void *arg) {
  (void)what;
  evbuffer_drain(bufferevent_get_output(bev), evbuffer_get_length(bufferevent_get_output(bev)));
  drain_cb(bev, arg);
}

/* The connections whose socket is still open, each with a reference taken;
 * *n is their count. NULL when there are none (or no memory). */
static ia_conn **collect_open(ia_master *m, size_t *n) {
  pthread_mutex_lock(&m->mu);
  size_t k = 0;
  for (ia_conn *c = m->conns; c; c = c->next)
    k += c->bev != NULL;
  ia_conn **open = k ? calloc(k, sizeof *open) : NULL;
  *n = 0;
  for (ia_conn *c = m->conns; c && open; c = c->next)
    if (c->bev) {
      open[(*n)++] = c;
      ia__conn_ref(c);
    }
  pthread_mutex_unlock(&m->mu);
  return open;
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_master *m = arg;
  size_t n;
  ia_conn **open = collect_open(m, &n);
  for (size_t i = 0; i < n; i++) {
    ia_conn *c = open[i];
    pthread_mutex_lock(&m->mu);
    if (c->up)
      ia__write_goodbye(bufferevent_get_output(c->bev), 0, IA_SHUTTING_DOWN, "the master is shutting down");
    pthread_mutex_unlock(&m->mu);
    conn_mark_down(c, IA_STATUS_LOST, IA_SHUTTING_DOWN, "the master is shutting down");
    bufferevent_disable(c->bev, EV_READ);
    struct timeval drain = {DRAIN_TIMEOUT_S, 0};
    bufferevent_set_timeouts(c->bev, NULL, &drain);
    bufferevent_setcb(c->bev, NULL, drain_cb, drain_event_cb, c);
    m->draining++;
    bufferevent_trigger(c->bev, EV_WRITE, BEV_OPT_DEFER_CALLBACKS);
    ia__conn_unref(c);
  }
  free(open);
  if (m->draining == 0) event_base_loopbreak(m->base);
  struct timeval bound = {DRAIN_TIMEOUT_S + 1, 0};
  event_add(m->deadline_ev, &bound);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_master *m = arg;
  event_base_loopbreak(m->base);
}

ia_code ia_master_new(const ia_master_config *config, ia_master **out, ia_error *err) {
  if (!config || !out) return ia__error_set(err, IA_INVALID_ARGUMENT, "config and out are required");
  ia__threads_init();
  ia_master *m = calloc(1, sizeof *m);
  if (!m) return ia__error_set(err, IA_NO_MEMORY, "no memory for the master");
  m->cfg = *config;
  m->cfg.name = strdup(config->name ? config->name : "master");
  m->max_frame = ia__max_frame(config->max_frame);
  pthread_mutex_init(&m->mu, NULL);
  atomic_init(&m->next_id, 1);
  atomic_init(&m->shutting_down, false);
  m->base = event_base_new();
  if (m->base) {
    m->shutdown_ev = event_new(m->base, -1, 0, shutdown_cb, m);
    m->deadline_ev = evtimer_new(m->base, deadline_cb, m);
  }
  if (!m->cfg.name || !m->base || !m->shutdown_ev || !m->deadline_ev) {
    ia_master_free(m);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the master");
  }
  *out = m;
  return IA_OK;
}

static void *loop_main(void *arg) {
  ia_master *m = arg;
  event_base_loop(m->base, EVLOOP_NO_EXIT_ON_EMPTY);
  /* Close whatever is still open (a drain that did not finish in time). */
  size_t n;
  ia_conn **open = collect_open(m, &n);
  for (size_t i = 0; i < n; i++) {
    conn_mark_down(open[i], IA_STATUS_LOST, IA_SHUTTING_DOWN, "the master is shutting down");
    conn_release_bev(open[i]);
    ia__conn_unref(open[i]);
  }
  free(open);
  return NULL;
}

ia_code ia_master_start(ia_master *m, ia_error *err) {
  if (m->started) return ia__error_set(err, IA_INVALID_ARGUMENT, "the master is already started");
  if (ia__thread_create(&m->loop_thread, loop_main, m) != 0)
    return ia__error_set(err, IA_NO_MEMORY, "cannot start the I/O thread");
  m->started = true;
  return IA_OK;
}

void ia_master_shutdown(ia_master *m) {
  if (!m || atomic_exchange(&m->shutting_down, true)) return;
  if (m->started) event_active(m->shutdown_ev, EV_TIMEOUT, 0);
}

void ia_master_join(ia_master *m) {
  if (!m->started || m->joined) return;
  pthread_join(m->loop_thread, NULL);
  m->joined = true;
}

void ia_master_free(ia_master *m) {
  if (!m) return;
  if (m->started) {
    ia_master_shutdown(m);
    ia_master_join(m);
  }
  /* What the user did not free goes now; their handles are dead after this. */
  while (m->conns) {
    ia_conn *c = m->conns;
    m->conns = c->next;
    if (c->bev) bufferevent_free(c->bev);
    free(c->name);
    free(c);
  }
  if (m->shutdown_ev) event_free(m->shutdown_ev);
  if (m->deadline_ev) event_free(m->deadline_ev);
  if (m->base) event_base_free(m->base);
  pthread_mutex_destroy(&m->mu);
  free((char *)m->cfg.name);
  free(m);
}
