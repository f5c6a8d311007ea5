/*
 * The master's connections: dialling and the handshake, the registry of
 * live connections by name, graceful disconnect, ping, sending, and the end
 * of a connection (every pending task ends, the socket is torn down on the
 * loop, the descriptor is closed with the last reference).
 *
 * The handshake runs on the caller's thread through the same framing as
 * everything else (runtime/wire.h, runtime/wstream.h), bounded by the
 * caller's timeout; only a handshaken connection is registered.
 *
 * Never: block the loop (it sends without blocking), leave a pending task
 * without an end when its connection goes, or close a descriptor that a
 * thread may still write to.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "master/master-internal.h"
#include "runtime/tls.h"
#include "runtime/sock.h"

/* ---- references ---- */

void ia__conn_ref(ia_conn *c) {
  atomic_fetch_add(&c->refs, 1);
}

void ia__conn_destroy(ia_conn *c) {
  (void)ia__epset_forget(&c->m->ep, c->fd, &c->ep); /* a connection that was never torn down */
  ia__tls_free(c->tls);
  if (c->fd >= 0) close(c->fd);
  ia__master_land_drop(c);
  ia__inbuf_free(&c->in);
  ia__ws_destroy(&c->out);
  free(c->abandoned);
  free(c->slave_name);
  free(c->name);
  free(c);
}

void ia__conn_unref(ia_conn *c) {
  if (atomic_fetch_sub(&c->refs, 1) != 1) return;
  /* The last reference: nobody can find c any more but through m->conns,
   * and every walk of that list takes references only on connections whose
   * socket is open (and so still referenced). */
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  for (ia_conn **p = &m->conns; *p; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  pthread_mutex_unlock(&m->mu);
  ia__conn_destroy(c);
}

/* ---- the loop's epoll set ---- */

void ia__conn_watch_locked(ia_conn *c) {
  bool ok;
  if (c->torn_down) {
    ok = ia__epset_forget(&c->m->ep, c->fd, &c->ep); /* before its close(): the key is c itself */
  } else {
    uint32_t want = 0;
    if (c->reader == IA__RD_LOOP) want |= IA__EPSET_IN;
    if (ia__ws_queued(&c->out) > 0) want |= EPOLLOUT;
    ok = ia__epset_watch(&c->m->ep, c->fd, &c->ep, want, (uint64_t)(uintptr_t)c);
  }
  if (!ok) IA__WARN("master: cannot watch the socket of %s: %s", c->name, strerror(errno));
}

/* ---- the end of a connection ---- */

/* Marks c down in `state` and ends every pending task with `status`/`code`,
 * then tells the state callback. Any thread; returns whether c was up. */
static bool mark_down(ia_conn *c, ia_conn_state state, ia_status status, ia_code code, const char *message) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  bool was_up = c->up;
  c->up = false;
  if (was_up) {
    c->state = state;
    /* Closed from this end (disconnect, free): the tasks are lost, the
     * connection ended as asked. */
    c->down_code = state == IA_CONN_CLOSED && code == IA_CONNECTION_LOST ? IA_OK : code;
    snprintf(c->down_message, sizeof c->down_message, "%s", message ? message : "");
  }
  ia_task *list = c->pending;
  c->pending = NULL;
  pthread_mutex_unlock(&m->mu);
  while (list) {
    ia_task *t = list;
    list = t->next;
    t->next = NULL;
    ia__task_finish(t, status, code, message, NULL, 0, true);
  }
  if (was_up) {
    IA__INFO("master: connection %s to %s %s: %s (%s)", c->name, c->addr,
             state == IA_CONN_LOST ? "lost" : "closed", message ? message : "", ia_code_name(code));
    ia__conn_state_changed(c);
  }
  return was_up;
}

void ia__conn_teardown(ia_conn *c) {
  ia_master *m = c->m;
  pthread_mutex_lock(&m->mu);
  if (c->torn_down) {
    pthread_mutex_unlock(&m->mu);
    return;
  }
  if (c->reader == IA__RD_CALLER || c->reader == IA__RD_TRANSFER) {
    /* The caller tears it down when it lets go; the shutdown wakes it. */
    atomic_store(&c->teardown_pending, true);
    pthread_mutex_unlock(&m->mu);
    shutdown(c->fd, SHUT_RDWR);
    return;
  }
  c->torn_down = true;
  c->reader = IA__RD_PARKED;
  ia__conn_watch_locked(c);
  pthread_mutex_unlock(&m->mu);
  /* The descriptor stays open until the last reference goes: a writer may
   * still be inside a send, and a closed number can be reused at once. */
  shutdown(c->fd, SHUT_RDWR);
  ia__master_land_drop(c);
  ia__inbuf_free(&c->in);
  ia__conn_unref(c); /* the socket's */
}

static void teardown_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_conn *c = arg;
  ia__conn_teardown(c);
  ia__conn_unref(c); /* the request's */
}

void ia__conn_request_teardown(ia_conn *c) {
  ia_master *m = c->m;
  if (ia__master_on_loop(m) || atomic_load(&m->loop_gone)) { /* on the loop, or there is none any more */
    ia__conn_teardown(c);
    return;
  }
  ia__conn_ref(c);
  struct timeval now = {0, 0};
  if (event_base_once(m->base, -1, EV_TIMEOUT, teardown_cb, c, &now) != 0)
    ia__conn_unref(c); /* the loop is gone: ia_master_free closes it */
}

void ia__conn_lost(ia_conn *c, ia_status status, ia_code code, const char *message) {
  bool deliberate = code == IA_OK || code == IA_SHUTTING_DOWN;
  ia__conn_end(c, deliberate ? IA_CONN_CLOSED : IA_CONN_LOST, status, code, message);
}

void ia__conn_end(ia_conn *c, ia_conn_state state, ia_status status, ia_code code, const char *message) {
  if (mark_down(c, state, status, code, message)) {
    IA__INFO("master: connection %s down: %s (%s)", c->name, message, ia_code_name(code));
    /* The slave hears of it now, not when the loop gets to the teardown:
     * a master that connects again at once must find the slave free. (The
     * descriptor itself stays open until the last reference goes.) */
    shutdown(c->fd, SHUT_RDWR);
  }
  ia__conn_request_teardown(c);
}

void ia__conn_disconnected(ia_conn *c) {
  mark_down(c, IA_CONN_CLOSED, IA_STATUS_LOST, IA_CONNECTION_LOST, "disconnected");
  ia__conn_request_teardown(c);
}

void ia__conn_goodbye(ia_conn *c, ia_code code, const char *message, uint32_t wait_ms) {
  ia__wframe w;
  if (!ia__wframe_status(&w, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, code, message, NULL, 0)) return;
  /* A last word: the connection closes next, so nobody would flush what the
   * socket does not take at once -- or what queued behind another thread's
   * send, unless we wait our turn. Nothing goes out after it (a heartbeat
   * Ping of the loop's, say). */
  ia__ws_rc rc =
      ia__ws_send_last(&c->out, c->fd, &w, wait_ms == 0, wait_ms ? ia__deadline_after(wait_ms) : 0, 0);
  (void)rc;
  ia__wframe_release(&w);
}

void ia__conn_protocol_error(ia_conn *c, ia_code code, const char *message) {
  IA__WARN("master: connection %s: %s", c->name, message);
  ia__conn_goodbye(c, code, message, 0);
  ia__conn_lost(c, IA_STATUS_LOST, code, message);
}

/* ---- sending ---- */

static void rewatch(ia_conn *c) {
  pthread_mutex_lock(&c->m->mu);
  ia__conn_watch_locked(c);
  pthread_mutex_unlock(&c->m->mu);
}

/* What a send's result means for c. */
static ia_code sent(ia_conn *c, ia__ws_rc rc) {
  if (rc == IA__WS_DONE) return IA_OK;
  if (rc == IA__WS_FLUSH || rc == IA__WS_TIMEOUT) {
    rewatch(c); /* bytes wait: the loop flushes them */
    return rc == IA__WS_FLUSH ? IA_OK : IA_TIMEOUT;
  }
  int e = ia__ws_error(&c->out);
  if (e == EPIPE || e == ECONNRESET || e == ENOTCONN) {
    /* The slave closed its end. What it sent before may still be unread --
     * the Goodbye answering our Disconnect, results -- so the reader ends
     * the connection when it reaches the end, and there must be one. */
    pthread_mutex_lock(&c->m->mu);
    if (c->up && c->reader == IA__RD_PARKED) {
      c->reader = IA__RD_LOOP;
      ia__conn_watch_locked(c);
    }
    pthread_mutex_unlock(&c->m->mu);
    return IA_CONNECTION_LOST;
  }
  IA__INFO("master: send to %s failed: %s", c->name,
           e == ENOBUFS ? "the slave has not been reading what it was sent" : strerror(e));
  ia__conn_lost(c, IA_STATUS_LOST, IA_CONNECTION_LOST, "the connection to the slave failed");
  return IA_CONNECTION_LOST;
}

ia_code ia__conn_send_nb(ia_conn *c, const ia__wframe *w) {
  return sent(c, ia__ws_send_nb(&c->out, c->fd, w));
}

ia_code ia__conn_send(ia_conn *c, const ia__wframe *w, uint64_t deadline_ms) {
  return sent(c, ia__ws_send(&c->out, c->fd, w, deadline_ms, 0));
}

void ia__conn_flush(ia_conn *c) {
  /* The epoll set watches for output while the stream counts queued bytes:
   * a sender that queued meanwhile re-arms it after its bytes are in. */
  ia__ws_rc rc = ia__ws_flush(&c->out, c->fd);
  if (rc == IA__WS_FAILED)
    (void)sent(c, rc);
  else if (rc == IA__WS_DONE)
    rewatch(c);
}

/* ---- the handshake ---- */

ia_code ia__conn_read_frame(ia_conn *c, uint64_t deadline, ia__env *env, size_t *flen, ia_error *err) {
  ia_master *m = c->m;
  ia__inbuf *in = &c->in;
  for (;;) {
    const uint8_t *body;
    uint32_t len;
    ia__next r = ia__inbuf_next(in, m->max_frame, &body, &len);
    if (r == IA__NEXT_OVERSIZE)
      return ia__error_set(err, IA_FRAME_TOO_LARGE, "the answer to Hello is over max_frame");
    if (r == IA__NEXT_READY) {
      if (!ia__env_parse(body, len, env))
        return ia__error_set(err, IA_PROTOCOL_ERROR, "malformed answer to Hello");
      *flen = IA__FRAME_HEADER + len;
      return IA_OK;
    }
    int w = ia__wait_fd(c->fd, POLLIN, deadline);
    if (w == 0) return ia__error_set(err, IA_TIMEOUT, "no answer to Hello in time");
    ssize_t n =
        ia__inbuf_recv_most(in, c->fd, c->tls, m->max_frame, ia__inbuf_missing(in), MSG_DONTWAIT, NULL);
    if (n == 0) return ia__error_set(err, IA_CONNECTION_LOST, "the slave closed the connection");
    if (n < 0 && errno == EPROTO && c->tls) return ia__tls_error(c->tls, c->addr, err);
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      return ia__error_set(err, errno == ENOMEM ? IA_NO_MEMORY : IA_CONNECTION_LOST, "recv: %s",
                           strerror(errno));
  }
}

/* What the slave answered to Hello, as a status (Welcome: IA_OK). */
static ia_code hello_answer(ia_conn *c, const ia__env *env, ia_error *err) {
  if (env->kind == INTERACTION__V1__FRAME__BODY_WELCOME) {
    Interaction__V1__Welcome *w = interaction__v1__welcome__unpack(NULL, env->body.n, env->body.p);
    if (!w) return ia__error_set(err, IA_PROTOCOL_ERROR, "malformed Welcome");
    c->peer_max_frame = w->has_max_frame && w->max_frame ? w->max_frame : IA__MAX_FRAME_DEFAULT;
    c->slave_name = strdup(w->slave_name ? w->slave_name : "");
    c->slave_mode = w->has_mode ? w->mode : 0;
    c->slave_capacity = w->has_capacity ? w->capacity : 1;
    /* The slave says what both use; a slave that says nothing has none. */
    c->beat = w->has_heartbeat_ms && w->has_heartbeat_tolerance_ms
                  ? ia__beat_from(w->heartbeat_ms, w->heartbeat_tolerance_ms)
                  : (ia__beat){0, 0};
    interaction__v1__welcome__free_unpacked(w, NULL);
    return IA_OK;
  }
  ia__status_view v;
  bool refusal = env->kind == INTERACTION__V1__FRAME__BODY_REFUSAL;
  if ((!refusal && env->kind != INTERACTION__V1__FRAME__BODY_GOODBYE) ||
      !ia__status_parse(env->body, refusal, &v))
    return ia__error_set(err, IA_PROTOCOL_ERROR, "unexpected answer to Hello");
  if (refusal && (!v.has_code || v.code == IA_OK))
    return ia__error_set(err, IA_PROTOCOL_ERROR, "the slave refused with no failure code");
  ia_code code = v.has_code && v.code != IA_OK ? (ia_code)v.code : IA_CONNECTION_LOST;
  if (v.message.n)
    ia__error_set(err, code, "%.*s", (int)(v.message.n > 200 ? 200 : v.message.n), (const char *)v.message.p);
  else
    ia__error_set(err, code, "%s", refusal ? "refused" : "the slave closed the connection");
  if (refusal && v.data.n) ia__error_set_data(err, v.data.p, v.data.n);
  return code;
}

/* Says Hello on c's fresh socket and reads the answer. */
static ia_code handshake(ia_conn *c, const void *data, size_t len, uint64_t deadline, ia_error *err) {
  ia_master *m = c->m;
  Interaction__V1__Hello h = INTERACTION__V1__HELLO__INIT;
  h.has_version = h.has_channel = h.has_max_frame = 1;
  h.version = IA__PROTOCOL_VERSION;
  h.channel = m->cfg.channel;
  h.master_name = (char *)m->cfg.name;
  h.max_frame = m->max_frame;
  h.has_heartbeat_ms = h.has_heartbeat_tolerance_ms = 1;
  h.heartbeat_ms = m->beat.interval_ms;
  h.heartbeat_tolerance_ms = m->beat.tolerance_ms;
  h.has_observe = c->observer;
  h.observe = c->observer;
  if (data && len) {
    h.has_data = 1;
    h.data.data = (uint8_t *)data;
    h.data.len = len;
  }
  /* With a secret: a fresh nonce, and the Hello's bytes, which both proofs
   * cover (auth.c). */
  uint8_t nonce[IA__AUTH_NONCE];
  uint8_t *hello = NULL;
  size_t hello_n = 0;
  if (m->secret.n) {
    if (!ia__auth_nonce(nonce)) return ia__error_set(err, IA_NO_MEMORY, "no random bytes for the nonce");
    h.has_auth_nonce = 1;
    h.auth_nonce = (ProtobufCBinaryData){IA__AUTH_NONCE, nonce};
    hello_n = protobuf_c_message_get_packed_size(&h.base);
    if (!(hello = malloc(hello_n))) return ia__error_set(err, IA_NO_MEMORY, "no memory for Hello");
    protobuf_c_message_pack(&h.base, hello);
  }
  ia__wframe w;
  ia_code code = IA_OK;
  if (!ia__wframe_message(&w, atomic_fetch_add(&m->next_id, 1), INTERACTION__V1__FRAME__BODY_HELLO,
                          &h.base)) {
    code = ia__error_set(err, IA_NO_MEMORY, "no memory for Hello");
  } else if (ia__wframe_body_len(&w) > IA__PREAUTH_MAX_FRAME) {
    ia__wframe_release(&w);
    code = ia__error_set(err, IA_FRAME_TOO_LARGE, "the connect data (%zu bytes) makes a Hello over %u bytes",
                         len, IA__PREAUTH_MAX_FRAME);
  } else {
    ia__ws_rc rc = ia__ws_send(&c->out, c->fd, &w, deadline, 0);
    ia__wframe_release(&w);
    if (rc == IA__WS_TIMEOUT)
      code = ia__error_set(err, IA_TIMEOUT, "sending Hello timed out");
    else if (rc != IA__WS_DONE)
      code = ia__error_set(err, IA_CONNECTION_LOST, "send: %s", strerror(ia__ws_error(&c->out)));
  }
  if (code != IA_OK) {
    free(hello);
    return code;
  }
  ia__env env;
  size_t flen = 0;
  code = ia__conn_read_frame(c, deadline, &env, &flen, err);
  if (code == IA_OK) code = ia__conn_auth(c, hello, hello_n, &env, &flen, deadline, err);
  free(hello);
  if (code != IA_OK) return code;
  code = hello_answer(c, &env, err);
  ia__inbuf_consume(&c->in, flen);
  return code;
}

/* TLS on c's fresh socket, before the Hello: the slave's certificate must
 * carry `name`. */
static ia_code tls_handshake(ia_conn *c, const char *name, uint64_t deadline, ia_error *err) {
  c->tls = ia__tls_new(c->m->tls, c->fd, name);
  if (!c->tls) return ia__error_set(err, IA_NO_MEMORY, "no memory for TLS");
  for (;;) {
    ia__tls_step step = ia__tls_handshake(c->tls);
    if (step == IA__TLS_UP) break;
    if (step != IA__TLS_WANT_READ && step != IA__TLS_WANT_WRITE) return ia__tls_error(c->tls, c->addr, err);
    int w = ia__wait_fd(c->fd, step == IA__TLS_WANT_READ ? POLLIN : POLLOUT, deadline);
    if (w == 0)
      return ia__error_set(err, IA_TIMEOUT, "the TLS handshake with %s did not finish in time", c->addr);
  }
  c->out.tls = c->tls;
  return IA_OK;
}

/* ---- connect / find / disconnect ---- */

static ia_conn *find_live_locked(ia_master *m, const char *name) {
  for (ia_conn *c = m->conns; c; c = c->next)
    if (c->up && strcmp(c->name, name) == 0) return c;
  return NULL;
}

ia_conn *ia_master_find(ia_master *m, const char *name) {
  if (!m || !name) return NULL;
  pthread_mutex_lock(&m->mu);
  ia_conn *c = find_live_locked(m, name);
  if (c) ia__conn_ref(c); /* the caller's, released by ia_conn_release() */
  pthread_mutex_unlock(&m->mu);
  return c;
}

void ia_conn_release(ia_conn *c) {
  if (c) ia__conn_unref(c);
}

static bool name_taken(ia_master *m, const char *name) {
  pthread_mutex_lock(&m->mu);
  bool taken = find_live_locked(m, name) != NULL;
  pthread_mutex_unlock(&m->mu);
  return taken;
}

static ia_conn *conn_new(ia_master *m, const char *name) {
  ia_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->name = strdup(name);
  if (!c->name) {
    free(c);
    return NULL;
  }
  c->m = m;
  c->fd = -1;
  ia__ws_init(&c->out, IA__MASTER_QUEUE_LIMIT);
  atomic_init(&c->refs, 1);
  return c;
}

/* ia_master_connect() and ia_master_observe(). */
static ia_code open_conn(ia_master *m, const char *name, const char *host, uint16_t port, const void *data,
                         size_t len, bool observe, uint32_t timeout_ms, ia_conn **out, ia_error *err) {
  if (out) *out = NULL;
  if (!m || !name || !host || !out || (len && !data))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "master, name, host and out are required");
  if (!m->started || atomic_load(&m->shutting_down))
    return ia__error_set(err, IA_NOT_CONNECTED, "the master is not running");
  if (name_taken(m, name))
    return ia__error_set(err, IA_ALREADY_CONNECTED, "a live connection is already named '%s'", name);
  ia_conn *c = conn_new(m, name);
  if (!c) return ia__error_set(err, IA_NO_MEMORY, "no memory for the connection");
  c->observer = observe;
  snprintf(c->addr, sizeof c->addr, "%s:%u", host, (unsigned)port);
  uint64_t deadline = ia__deadline_after(timeout_ms);
  ia_code rc = ia__dial(host, port, deadline, &c->fd, err);
  if (rc == IA_OK && m->tls)
    rc = tls_handshake(c, m->cfg.tls_server_name ? m->cfg.tls_server_name : host, deadline, err);
  if (rc == IA_OK) rc = handshake(c, data, len, deadline, err);
  if (rc != IA_OK) {
    ia__conn_destroy(c);
    return rc;
  }
  pthread_mutex_lock(&m->mu);
  /* Looked at again where it counts: a shutdown that came during the
   * handshake must not find a connection it could not take down. */
  bool down = atomic_load(&m->shutting_down);
  if (down || find_live_locked(m, name)) {
    pthread_mutex_unlock(&m->mu);
    ia__conn_destroy(c); /* the slave is told nothing more; closing says enough */
    if (down) return ia__error_set(err, IA_SHUTTING_DOWN, "the master is shutting down");
    return ia__error_set(err, IA_ALREADY_CONNECTED, "a live connection is already named '%s'", name);
  }
  atomic_store(&c->refs, 2); /* the caller's and the socket's */
  if (ia__beat_on(c->beat)) ia__sock_user_timeout(c->fd, c->beat.tolerance_ms);
  ia__live_start(&c->live, ia__now_ms());
  c->up = true;
  c->state = IA_CONN_CONNECTED;
  c->reader = IA__RD_PARKED; /* the loop's next tick takes it */
  c->next = m->conns;
  m->conns = c;
  pthread_mutex_unlock(&m->mu);
  IA__INFO("master: connected %s to %s:%u%s", name, host, (unsigned)port, observe ? " as an observer" : "");
  *out = c;
  return IA_OK;
}

ia_code ia_master_connect(ia_master *m, const char *name, const char *host, uint16_t port, const void *data,
                          size_t len, uint32_t timeout_ms, ia_conn **out, ia_error *err) {
  return open_conn(m, name, host, port, data, len, false, timeout_ms, out, err);
}

ia_code ia_master_observe(ia_master *m, const char *name, const char *host, uint16_t port,
                          uint32_t timeout_ms, ia_conn **out, ia_error *err) {
  return open_conn(m, name, host, port, NULL, 0, true, timeout_ms, out, err);
}

const char *ia_conn_slave_name(const ia_conn *c) {
  return c && c->slave_name ? c->slave_name : "";
}

uint32_t ia_conn_slave_mode(const ia_conn *c) {
  return c ? c->slave_mode : 0;
}

uint32_t ia_conn_slave_capacity(const ia_conn *c) {
  return c ? c->slave_capacity : 0;
}

const char *ia_conn_name(const ia_conn *c) {
  return c ? c->name : "";
}

bool ia_conn_is_connected(const ia_conn *c) {
  if (!c) return false;
  pthread_mutex_lock(&c->m->mu);
  bool up = c->up;
  pthread_mutex_unlock(&c->m->mu);
  return up;
}

ia_code ia__conn_internal_call(ia_conn *c, ia__task_kind kind, const void *data, size_t len,
                               uint32_t timeout_ms, ia_task **out, ia_error *err) {
  ia_task *t = ia__task_new(c, "", data, data ? len : 0);
  if (!t) return ia__error_set(err, IA_NO_MEMORY, "no memory for the request");
  t->kind = (uint8_t)kind;
  ia_code rc = ia__call_task(t, timeout_ms, err);
  if (rc == IA_OK && ia_task_status(t) != IA_STATUS_COMPLETED) {
    if (err) ia__error_copy(err, &t->error);
    rc = t->error.code;
  }
  if (rc != IA_OK) {
    ia_task_free(t);
    return rc;
  }
  *out = t;
  return IA_OK;
}

ia_code ia_conn_disconnect(ia_conn *c, const void *data, size_t len, uint32_t timeout_ms, ia_error *err) {
  if (!c || (len && !data)) return ia__error_set(err, IA_INVALID_ARGUMENT, "conn is required");
  ia_task *t = NULL;
  ia_code rc = ia__conn_internal_call(c, IA__TASK_DISCONNECT, data, len, timeout_ms, &t, err);
  if (rc == IA_TIMEOUT) {
    /* No answer in time: the connection is closed anyway. */
    ia__conn_end(c, IA_CONN_CLOSED, IA_STATUS_LOST, IA_CONNECTION_LOST, "disconnect timed out");
    return ia__error_set(err, IA_TIMEOUT, "no answer to Disconnect within %u ms; connection closed",
                         timeout_ms);
  }
  ia_task_free(t);
  return rc;
}

ia_code ia_conn_ping(ia_conn *c, uint32_t timeout_ms, uint64_t *rtt_us, ia_error *err) {
  if (!c) return ia__error_set(err, IA_INVALID_ARGUMENT, "conn is required");
  uint64_t start = ia__now_ns();
  ia_task *t = NULL;
  ia_code rc = ia__conn_internal_call(c, IA__TASK_PING, NULL, 0, timeout_ms, &t, err);
  if (rc == IA_OK && rtt_us) *rtt_us = (ia__now_ns() - start) / 1000;
  ia_task_free(t);
  return rc;
}

void ia_conn_free(ia_conn *c) {
  if (!c) return;
  if (ia_conn_is_connected(c)) {
    /* The slave is told, so it takes this for a close, not a lost master:
     * waiting (briefly) for a Ping the loop may be sending right now. */
    ia__conn_goodbye(c, IA_OK, "the master freed the connection", IA__GOODBYE_WAIT_MS);
    ia__conn_end(c, IA_CONN_CLOSED, IA_STATUS_LOST, IA_CONNECTION_LOST, "the connection was freed");
  }
  ia__conn_unref(c);
}
