/*
 * master: the task-issuing end.
 *
 * Callers dial and handshake with plain blocking sockets, bounded by their
 * timeout. From then on every frame a caller sends, it sends itself, under
 * the connection's write lock (no hand-off to another thread). Reading has
 * one owner at a time (`reader`, under the master's mutex):
 *
 *  - a thread blocked in a call (ia_call, the typed stubs, disconnect) reads
 *    its own reply with recv(), and dispatches any other reply it meets;
 *  - otherwise the one libevent loop thread reads (async tasks, fan-out,
 *    Goodbye, a dead slave). The loop's sockets sit in an epoll set of our
 *    own that libevent watches, so handing a socket between a caller and the
 *    loop is one epoll_ctl() and never wakes the loop;
 *  - between calls the read side is parked, and the loop's tick takes a
 *    parked socket back, so that an idle connection is still watched.
 *
 * When a connection ends, every pending task ends (LOST, or SHUTTING_DOWN),
 * and its socket is closed on the loop once no caller reads it.
 *
 * Never: block on the loop thread, or leave a started task without a
 * terminal status when its connection goes away.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "master/master-internal.h"

#define IA_TICK_MS 50        /* how often the loop takes back parked sockets */
#define IA_SEND_TIMEOUT_S 10 /* a slave that takes nothing for this long is dropped */
#define FINISH_BOUND_S 3

void ia_master_config_init(ia_master_config *c) {
  memset(c, 0, sizeof *c);
  c->name = "master";
}

bool ia__master_on_loop(const ia_master *m) {
  return m->started && pthread_equal(pthread_self(), m->loop_thread);
}

/* ---- references ---- */

void ia__conn_ref(ia_conn *c) {
  atomic_fetch_add(&c->refs, 1);
}

static void conn_destroy(ia_conn *c) {
  if (c->fd >= 0) close(c->fd);
  ia__inbuf_free(&c->in);
  pthread_mutex_destroy(&c->wmu);
  free(c->name);
  free(c);
}

static void conn_destroy_locked(ia_conn *c) {
  ia_master *m = c->m;
  for (ia_conn **p = &m->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  conn_destroy(c);
}

void ia__conn_unref(ia_conn *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  /* The last reference: nobody can find c any more but through m->conns,
   * and every walk of that list takes references only on connections whose
   * socket is open (and so still referenced). */
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  conn_destroy_locked(c);
  pthread_mutex_unlock(&m->mu);
}

/* Puts c's socket in or out of the loop's epoll set. (mu) */
static void loop_reads_locked(ia_conn *c, bool on) {
  if (on == c->in_epoll || c->fd < 0) return;
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(c->m->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c->fd, &ev) == 0) c->in_epoll = on;
}

/* ---- teardown ---- */

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
    ia__task_finish(t, status, code, message, NULL, 0, true);
  }
  return was_up;
}

/* Closes c's socket if no caller reads it, else leaves that to the caller
 * (woken by the shutdown). Loop thread. */
static void conn_teardown(ia_conn *c) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  if (c->torn_down) {
    pthread_mutex_unlock(&m->mu);
    return;
  }
  if (c->reader == IA_RD_CALLER || c->reader == IA_RD_TRANSFER) {
    c->teardown_pending = true;
    pthread_mutex_unlock(&m->mu);
    shutdown(c->fd, SHUT_RDWR);
    return;
  }
  c->torn_down = true;
  c->reader = IA_RD_PARKED;
  loop_reads_locked(c, false);
  pthread_mutex_unlock(&m->mu);
  pthread_mutex_lock(&c->wmu); /* a writer may still be inside send() */
  close(c->fd);
  c->fd = -1;
  pthread_mutex_unlock(&c->wmu);
  ia__inbuf_free(&c->in);
  ia__conn_unref(c); /* the socket's */
}

static void teardown_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_conn *c = arg;
  conn_teardown(c);
  ia__conn_unref(c); /* the request's */
}

/* Asks the loop to close c's socket (from any thread). */
static void conn_request_teardown(ia_conn *c) {
  ia_master *m = c->m;
  if (ia__master_on_loop(m)) {
    conn_teardown(c);
    return;
  }
  pthread_mutex_lock(&m->mu);
  ia__conn_ref(c);
  pthread_mutex_unlock(&m->mu);
  struct timeval now = {0, 0};
  if (event_base_once(m->base, -1, EV_TIMEOUT, teardown_cb, c, &now) != 0)
    ia__conn_unref(c); /* the loop is gone: ia_master_free closes it */
}

/* The connection is over: tasks end, the socket closes. Any thread. */
static void conn_lost(ia_conn *c, ia_status status, ia_code code, const char *message) {
  if (conn_mark_down(c, status, code, message))
    IA_INFO("master: connection %s down: %s (%s)", c->name, message, ia_code_name(code));
  conn_request_teardown(c);
}

/* A protocol violation by the slave: tell it why, then drop the connection. */
static void conn_protocol_error(ia_conn *c, ia_code code, const char *message) {
  IA_WARN("master: connection %s: %s", c->name, message);
  ia__wframe w;
  if (ia__wframe_status(&w, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, code, message, NULL, 0)) {
    ia__conn_send(c, &w);
    ia__wframe_release(&w);
  }
  conn_lost(c, IA_STATUS_LOST, code, message);
}

/* ---- sending ---- */

ia_code ia__conn_send(ia_conn *c, const ia__wframe *w) {
  pthread_mutex_lock(&c->wmu);
  int rc = c->fd >= 0 ? ia__wframe_send(c->fd, w, 0) : -1;
  int e = errno;
  pthread_mutex_unlock(&c->wmu);
  if (rc != 0) {
    IA_INFO("master: send to %s failed: %s", c->name, strerror(e));
    conn_lost(c, IA_STATUS_LOST, IA_CONNECTION_LOST, "the connection to the slave failed");
    return IA_CONNECTION_LOST;
  }
  return IA_OK;
}

/* ---- reading ---- */

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

static void finish_from_status(ia_task *t, ia_status st, const ia__status_view *v, ia_code dflt) {
  char msg[IA_ERROR_MESSAGE_MAX];
  size_t n = v->message.n < sizeof msg - 1 ? v->message.n : sizeof msg - 1;
  memcpy(msg, v->message.p ? (const char *)v->message.p : "", n);
  msg[n] = '\0';
  ia__task_finish(t, st, v->has_code ? (ia_code)v->code : dflt, msg, v->data.p, v->data.n, true);
}

/* Handles one frame; false if the connection is over. */
static bool on_frame(ia_conn *c, const ia__env *env) {
  ia_master *m = c->m;
  switch (env->kind) {
  case INTERACTION__V1__FRAME__BODY_ACCEPTED: {
    pthread_mutex_lock(&m->mu);
    ia_task *t = c->pending;
    while (t && t->id != env->id)
      t = t->next;
    if (t && t->status == IA_STATUS_STARTING) t->status = IA_STATUS_STARTED;
    pthread_mutex_unlock(&m->mu);
    if (!t) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "Accepted for a task id that was never sent");
      return false;
    }
    return true;
  }
  case INTERACTION__V1__FRAME__BODY_RESULT: {
    ia__slice payload;
    if (!ia__result_parse(env->body, &payload)) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "malformed TaskResult from the slave");
      return false;
    }
    ia_task *t = take_pending(c, env->id);
    if (!t) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "a reply to an id that was never sent");
      return false;
    }
    /* The task is ours now (out of the pending list): nobody else writes
     * t->decoded until it is finished. */
    if (t->dec) t->decoded = t->dec->decode(payload.p, payload.n, t->dec->arg);
    if (t->dec && !t->decoded)
      ia__task_finish(t, IA_STATUS_FAILED, IA_PROTOCOL_ERROR, "the reply does not decode", NULL, 0, true);
    else if (t->dec)
      ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true); /* decoded where it lay */
    else
      ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, payload.p, payload.n, true);
    return true;
  }
  case INTERACTION__V1__FRAME__BODY_FAIL:
  case INTERACTION__V1__FRAME__BODY_REFUSAL:
  case INTERACTION__V1__FRAME__BODY_GOODBYE: {
    ia__status_view v;
    if (!ia__status_parse(env->body, &v)) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "malformed frame from the slave");
      return false;
    }
    if (env->kind == INTERACTION__V1__FRAME__BODY_GOODBYE) {
      ia_code code = v.has_code ? (ia_code)v.code : IA_CONNECTION_LOST;
      /* A Goodbye answering our Disconnect completes it. */
      ia_task *t = env->id ? take_pending(c, env->id) : NULL;
      if (t && t->is_disconnect && code == IA_OK) {
        conn_mark_down(c, IA_STATUS_LOST, IA_CONNECTION_LOST, "disconnected");
        ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true);
        conn_request_teardown(c);
        return false;
      }
      char msg[IA_ERROR_MESSAGE_MAX];
      snprintf(msg, sizeof msg, "the slave said goodbye: %.*s", (int)(v.message.n > 200 ? 200 : v.message.n),
               v.message.p ? (const char *)v.message.p : "");
      if (t) ia__task_finish(t, IA_STATUS_LOST, code, msg, NULL, 0, true);
      conn_lost(c, IA_STATUS_LOST, code, msg);
      return false;
    }
    ia_task *t = take_pending(c, env->id);
    if (!t) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "a reply to an id that was never sent");
      return false;
    }
    if (env->kind == INTERACTION__V1__FRAME__BODY_REFUSAL) {
      finish_from_status(t, IA_STATUS_START_FAILED, &v, IA_PROTOCOL_ERROR);
    } else {
      ia_code code = v.has_code ? (ia_code)v.code : IA_TASK_FAILED;
      ia_status st = code == IA_CANCELLED           ? IA_STATUS_CANCELLED
                     : code == IA_DEADLINE_EXCEEDED ? IA_STATUS_TIMED_OUT
                                                    : IA_STATUS_FAILED;
      finish_from_status(t, st, &v, IA_TASK_FAILED);
    }
    return true;
  }
  case INTERACTION__V1__FRAME__BODY_PING: {
    ia__wframe w;
    ia__wframe_empty(&w, env->id, INTERACTION__V1__FRAME__BODY_PONG);
    return ia__conn_send(c, &w) == IA_OK;
  }
  case INTERACTION__V1__FRAME__BODY_PONG: {
    ia_task *t = take_pending(c, env->id);
    if (t && t->is_ping)
      ia__task_finish(t, IA_STATUS_COMPLETED, IA_OK, NULL, NULL, 0, true);
    else if (t)
      ia__task_finish(t, IA_STATUS_LOST, IA_PROTOCOL_ERROR, "a Pong answered a task", NULL, 0, true);
    return true; /* an unsolicited Pong is a sign of life, nothing more */
  }
  default:
    conn_protocol_error(c, IA_PROTOCOL_ERROR, "unexpected frame from the slave");
    return false;
  }
}

/* Dispatches every whole frame in c->in; false if the connection is over. */
static bool process_frames(ia_conn *c) {
  for (;;) {
    const uint8_t *body;
    uint32_t len;
    ia__frame_next_result r = ia__inbuf_next(&c->in, c->m->max_frame, &body, &len);
    if (r == IA_FRAME_NEED_MORE) return true;
    if (r == IA_FRAME_OVERSIZE) {
      conn_protocol_error(c, IA_FRAME_TOO_LARGE, "frame over max_frame from the slave");
      return false;
    }
    ia__env env;
    if (!ia__env_parse(body, len, &env)) {
      conn_protocol_error(c, IA_PROTOCOL_ERROR, "malformed frame from the slave");
      return false;
    }
    /* A frame that ends the connection may have torn down c->in. */
    if (!on_frame(c, &env)) return false;
    ia__inbuf_consume(&c->in, IA_FRAME_HEADER + len);
  }
}

/* One recv() by the reader: false if the connection is over. */
static bool read_some(ia_conn *c, int flags) {
  ssize_t n = ia__inbuf_recv(&c->in, c->fd, c->m->max_frame, flags);
  if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))) return true;
  if (n < 0 && errno == ENOMEM) {
    conn_protocol_error(c, IA_NO_MEMORY, "out of memory for a frame");
    return false;
  }
  conn_lost(c, IA_STATUS_LOST, IA_CONNECTION_LOST,
            n == 0 ? "the slave closed the connection" : "the connection to the slave failed");
  return false;
}

#define EP_BATCH 64

static void ep_batch(ia_master *m, struct epoll_event *evs, int n);

#define EP_ROUNDS 16 /* full batches read before libevent's other events get a turn */

/*
 * The loop's epoll set has events. libevent watches the set edge-triggered:
 * level-triggered, every turn of libevent's loop polled the set again, which
 * polls each of its ready sockets again, and woke the loop once more per
 * batch for nothing (measured: 0.1-0.5 us of master CPU per fan-out call). So
 * the set is read until it gives less than a full batch; after EP_ROUNDS
 * full ones the event is made active again to come back after libevent's
 * other work.
 */
static void ep_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_master *m = arg;
  struct epoll_event evs[EP_BATCH];
  for (int round = 0; round < EP_ROUNDS; round++) {
    int n = epoll_wait(m->epfd, evs, EP_BATCH, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) ep_batch(m, evs, n);
    if (n < EP_BATCH) return;
  }
  event_active(m->ep_ev, EV_READ, 0);
}

/* Reads the sockets of one batch of events. */
static void ep_batch(ia_master *m, struct epoll_event *evs, int n) {
  /* Held across the batch: handling one connection's frames may drop every
   * other reference to another. */
  bool mine[EP_BATCH];
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < n; i++) {
    ia_conn *c = evs[i].data.ptr;
    ia__conn_ref(c);
    mine[i] = c->reader == IA_RD_LOOP && !c->torn_down;
    c->loop_reading |= mine[i];
  }
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < n; i++) {
    ia_conn *c = evs[i].data.ptr;
    if (mine[i] && read_some(c, MSG_DONTWAIT)) process_frames(c);
  }
  pthread_mutex_lock(&m->mu);
  for (int i = 0; i < n; i++) {
    ia_conn *c = evs[i].data.ptr;
    c->loop_reading = false;
    if (c->reader == IA_RD_TRANSFER) pthread_cond_broadcast(&m->reader_cond);
  }
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < n; i++)
    ia__conn_unref(evs[i].data.ptr);
}

/* Lets go of the read side held by the caller of t: to a caller blocked on
 * another task, to the loop if async tasks wait, else parked. */
static void release_reader(ia_conn *c) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  ia_task *next = NULL;
  bool any = false;
  for (ia_task *p = c->pending; p; p = p->next) {
    any = true;
    if (p->blocking && !next) next = p;
  }
  bool teardown = c->teardown_pending;
  if (teardown || !c->up) {
    c->reader = IA_RD_PARKED;
  } else if (next) {
    c->reader = IA_RD_PARKED;
    next->offered = true;
    if (atomic_load(&next->has_cond)) pthread_cond_broadcast(&next->cond);
  } else if (any) {
    c->reader = IA_RD_LOOP; /* async tasks wait: the loop reads for them */
    loop_reads_locked(c, true);
  } else {
    c->reader = IA_RD_PARKED;
  }
  pthread_mutex_unlock(&m->mu);
  if (teardown) conn_request_teardown(c);
}

ia_code ia__conn_submit(ia_conn *c, ia_task *t, const ia__wframe *w, bool blocking) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  if (t->status != IA_STATUS_IDLE) {
    pthread_mutex_unlock(&m->mu);
    return IA_INVALID_ARGUMENT;
  }
  if (!c->up) {
    pthread_mutex_unlock(&m->mu);
    return IA_NOT_CONNECTED;
  }
  t->status = IA_STATUS_STARTING;
  t->blocking = blocking;
  atomic_fetch_add(&t->refs, 1); /* the pending list's */
  t->next = c->pending;
  c->pending = t;
  if (!blocking && c->reader == IA_RD_PARKED) {
    c->reader = IA_RD_LOOP;
    loop_reads_locked(c, true);
  }
  pthread_mutex_unlock(&m->mu);
  /* Registered before it is sent: a fast reply must find it. A send that
   * fails ends the connection, and the task with it, as LOST. */
  ia__conn_send(c, w);
  return IA_OK;
}

ia_code ia__conn_await(ia_conn *c, ia_task *t, uint32_t timeout_ms) {
  ia_master *m = c->m;
  uint64_t deadline = timeout_ms == UINT32_MAX ? UINT64_MAX : ia__now_ms() + timeout_ms;
  pthread_mutex_lock(&m->mu);
  while (!t->done) {
    bool take = false, steal = false;
    if (c->up && !c->torn_down && !c->teardown_pending) {
      take = c->reader == IA_RD_PARKED;
      /* The loop reads: take the socket from it (one epoll_ctl), and read
       * for any async task on the way. */
      steal = c->reader == IA_RD_LOOP;
    }
    if (take || steal) {
      if (steal) {
        c->reader = IA_RD_TRANSFER;
        while (c->loop_reading)
          pthread_cond_wait(&m->reader_cond, &m->mu);
        loop_reads_locked(c, false);
      }
      c->reader = IA_RD_CALLER;
      t->offered = false;
      pthread_mutex_unlock(&m->mu);
      /* Read until our reply is in, the connection ends, or time is up. */
      bool open = process_frames(c);
      for (;;) {
        pthread_mutex_lock(&m->mu);
        bool stop = t->done || !open || c->teardown_pending;
        pthread_mutex_unlock(&m->mu);
        if (stop || ia__now_ms() >= deadline) break;
        open = read_some(c, 0) && process_frames(c);
      }
      release_reader(c);
      pthread_mutex_lock(&m->mu);
      if (!t->done && ia__now_ms() >= deadline) break;
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
  bool done = t->done;
  pthread_mutex_unlock(&m->mu);
  return done ? IA_OK : IA_TIMEOUT;
}

/* The loop's tick: take back parked sockets so that idle connections are
 * still watched (a dead slave, a Goodbye, a ping). */
static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_master *m = arg;
  pthread_mutex_lock(&m->mu);
  for (ia_conn *c = m->conns; c; c = c->next)
    if (c->up && !c->torn_down && c->reader == IA_RD_PARKED) {
      c->reader = IA_RD_LOOP;
      loop_reads_locked(c, true);
    }
  pthread_mutex_unlock(&m->mu);
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
  /* From here the socket blocks: callers recv() their replies with a short
   * timeout tick, the loop passes MSG_DONTWAIT. */
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  struct timeval tick = {0, IA_TICK_MS * 1000}, snd = {IA_SEND_TIMEOUT_S, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof snd);
  ia_conn *c = calloc(1, sizeof *c);
  if (c) c->name = strdup(name);
  if (!c || !c->name) {
    free(c);
    close(fd);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the connection");
  }
  c->m = m;
  c->fd = fd;
  c->peer_max_frame = peer_max;
  pthread_mutex_init(&c->wmu, NULL);
  pthread_mutex_lock(&m->mu);
  if (find_live_locked(m, name)) {
    pthread_mutex_unlock(&m->mu);
    c->refs = 1;
    ia__conn_unref(c); /* the slave is told nothing more; closing says enough */
    return ia__error_set(err, IA_ALREADY_CONNECTED, "a live connection is already named '%s'", name);
  }
  c->refs = 2; /* the caller's and the socket's */
  c->up = true;
  c->reader = IA_RD_PARKED; /* the loop's next tick takes it */
  c->next = m->conns;
  m->conns = c;
  pthread_mutex_unlock(&m->mu);
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

/* Sends an internal request (a Disconnect or a Ping) and waits
 * for its answer. On IA_OK *out is the finished task, for the caller to free. */
static ia_code internal_call(ia_conn *c, bool disconnect, const void *data, size_t len, uint32_t timeout_ms,
                             ia_task **out, ia_error *err) {
  if (ia__master_on_loop(c->m))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "a blocking call would block the I/O thread");
  ia_task *t = ia_conn_new_task(c, "", NULL, 0);
  if (!t) return ia__error_set(err, IA_NO_MEMORY, "no memory for the request");
  t->is_disconnect = disconnect;
  t->is_ping = !disconnect;
  ia__field f = {.no = 1, .p = data, .n = data ? len : 0};
  ia__wframe w;
  bool built = disconnect ? ia__wframe_build(&w, t->id, INTERACTION__V1__FRAME__BODY_DISCONNECT, &f,
                                             data && len ? 1 : 0)
                          : ia__wframe_empty(&w, t->id, INTERACTION__V1__FRAME__BODY_PING);
  if (!built) {
    ia_task_free(t);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the request");
  }
  ia_code rc = ia__conn_submit(c, t, &w, true);
  ia__wframe_release(&w);
  if (rc != IA_OK) {
    ia_task_free(t);
    return ia__error_set(err, rc, "%s is not connected", c->name);
  }
  if (ia__conn_await(c, t, timeout_ms) != IA_OK) {
    ia_task_free(t);
    return ia__error_set(err, IA_TIMEOUT, "no answer from %s within %u ms", c->name, timeout_ms);
  }
  if (ia_task_status(t) != IA_STATUS_COMPLETED) {
    const ia_error *e = ia_task_error(t);
    if (err) ia__error_copy(err, e);
    rc = e->code;
    ia_task_free(t);
    return rc;
  }
  *out = t;
  return IA_OK;
}

ia_code ia_conn_disconnect(ia_conn *c, const void *data, size_t len, uint32_t timeout_ms, ia_error *err) {
  ia_task *t = NULL;
  ia_code rc = internal_call(c, true, data, len, timeout_ms, &t, err);
  if (rc == IA_TIMEOUT) {
    /* No answer in time: the connection is closed anyway. */
    conn_lost(c, IA_STATUS_LOST, IA_CONNECTION_LOST, "disconnect timed out");
    return ia__error_set(err, IA_TIMEOUT, "no answer to Disconnect within %u ms; connection closed",
                         timeout_ms);
  }
  ia_task_free(t);
  return rc;
}

ia_code ia_conn_ping(ia_conn *c, uint32_t timeout_ms, uint64_t *rtt_us, ia_error *err) {
  uint64_t start = ia__now_ns();
  ia_task *t = NULL;
  ia_code rc = internal_call(c, false, NULL, 0, timeout_ms, &t, err);
  if (rc == IA_OK && rtt_us) *rtt_us = (ia__now_ns() - start) / 1000;
  ia_task_free(t);
  return rc;
}

void ia_conn_free(ia_conn *c) {
  if (!c) return;
  if (ia_conn_is_connected(c)) conn_lost(c, IA_STATUS_LOST, IA_CONNECTION_LOST, "the connection was freed");
  ia__conn_unref(c);
}

/* ---- lifecycle ---- */

/* The connections whose socket is still open, each with a reference taken;
 * *n is their count. NULL when there are none (or no memory). */
static ia_conn **collect_open(ia_master *m, size_t *n) {
  pthread_mutex_lock(&m->mu);
  size_t k = 0;
  for (ia_conn *c = m->conns; c; c = c->next)
    k += !c->torn_down;
  ia_conn **open = k ? calloc(k, sizeof *open) : NULL;
  *n = 0;
  for (ia_conn *c = m->conns; c && open; c = c->next)
    if (!c->torn_down) {
      open[(*n)++] = c;
      ia__conn_ref(c);
    }
  pthread_mutex_unlock(&m->mu);
  return open;
}

static bool all_torn_down(ia_master *m) {
  pthread_mutex_lock(&m->mu);
  bool all = true;
  for (ia_conn *c = m->conns; c; c = c->next)
    all &= c->torn_down;
  pthread_mutex_unlock(&m->mu);
  return all;
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_master *m = arg;
  size_t n;
  ia_conn **open = collect_open(m, &n);
  for (size_t i = 0; i < n; i++) {
    ia_conn *c = open[i];
    if (ia_conn_is_connected(c)) {
      ia__wframe w;
      if (ia__wframe_status(&w, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, IA_SHUTTING_DOWN,
                            "the master is shutting down", NULL, 0)) {
        pthread_mutex_lock(&c->wmu);
        if (c->fd >= 0) ia__wframe_send(c->fd, &w, MSG_DONTWAIT);
        pthread_mutex_unlock(&c->wmu);
        ia__wframe_release(&w);
      }
    }
    conn_lost(c, IA_STATUS_LOST, IA_SHUTTING_DOWN, "the master is shutting down");
    ia__conn_unref(c);
  }
  free(open);
  struct timeval bound = {FINISH_BOUND_S, 0};
  event_add(m->deadline_ev, &bound);
  struct timeval soon = {0, 1000};
  if (all_torn_down(m))
    event_base_loopbreak(m->base);
  else
    event_add(m->tick_ev, &soon); /* look again: a caller lets go of its socket */
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_master *m = arg;
  event_base_loopbreak(m->base);
}

static void tick_or_finish_cb(evutil_socket_t fd, short what, void *arg) {
  ia_master *m = arg;
  if (atomic_load(&m->shutting_down)) {
    if (all_torn_down(m)) event_base_loopbreak(m->base);
    return;
  }
  tick_cb(fd, what, arg);
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
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&m->reader_cond, &ca);
  pthread_condattr_destroy(&ca);
  m->epfd = epoll_create1(EPOLL_CLOEXEC);
  m->base = event_base_new();
  if (m->base && m->epfd >= 0) {
    m->ep_ev = event_new(m->base, m->epfd, EV_READ | EV_PERSIST | EV_ET, ep_cb, m);
    m->shutdown_ev = event_new(m->base, -1, 0, shutdown_cb, m);
    m->tick_ev = event_new(m->base, -1, EV_PERSIST, tick_or_finish_cb, m);
    m->deadline_ev = evtimer_new(m->base, deadline_cb, m);
  }
  if (!m->cfg.name || !m->base || !m->ep_ev || !m->shutdown_ev || !m->tick_ev || !m->deadline_ev) {
    ia_master_free(m);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the master");
  }
  struct timeval tick = {0, IA_TICK_MS * 1000};
  event_add(m->tick_ev, &tick);
  event_add(m->ep_ev, NULL);
  *out = m;
  return IA_OK;
}

static void *loop_main(void *arg) {
  ia_master *m = arg;
  event_base_loop(m->base, EVLOOP_NO_EXIT_ON_EMPTY);
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
  /* Whatever is left (the user's handles are dead after this). Tasks still
   * pending end LOST first, so that nobody waits on them. */
  size_t n;
  ia_conn **open = collect_open(m, &n);
  for (size_t i = 0; i < n; i++) {
    conn_mark_down(open[i], IA_STATUS_LOST, IA_SHUTTING_DOWN, "the master is shutting down");
    ia__conn_unref(open[i]);
  }
  free(open);
  while (m->conns) {
    ia_conn *c = m->conns;
    m->conns = c->next;
    conn_destroy(c);
  }
  struct event *evs[] = {m->ep_ev, m->shutdown_ev, m->tick_ev, m->deadline_ev};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (evs[i]) event_free(evs[i]);
  if (m->base) event_base_free(m->base);
  if (m->epfd >= 0) close(m->epfd);
  pthread_cond_destroy(&m->reader_cond);
  pthread_mutex_destroy(&m->mu);
  free((char *)m->cfg.name);
  free(m);
}
