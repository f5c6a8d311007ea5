/*
 * The slave's connections: accepting them, the handshake deadline, sending
 * on them, refusing and failing, closing, and freeing them later.
 *
 * Accepting is where an unauthenticated peer first costs something, so it
 * is bounded: at most max_pending connections may be in their handshake at
 * once (a new one closes the oldest), each must finish its handshake within
 * hello_timeout_ms of its accept whatever it sends, and before its Hello it
 * may send frames of IA__PREAUTH_MAX_FRAME at most (dispatch.c). When the
 * process runs out of descriptors, accepting closes the oldest connection
 * in its handshake, or pauses for a while: it never retries at once.
 *
 * A connection is freed by the loop only, once it is closing, nobody but
 * the loop holds its read side, and no task holds it (redis'
 * freeClientAsync): a thread that closes one only marks it and wakes the
 * loop.
 *
 * Never: block the loop on a peer (the loop only sends without blocking),
 * or free a connection from inside a call that is still using it.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "runtime/sock.h"
#include "runtime/tls.h"
#include "slave/slave-internal.h"

#define ACCEPT_PAUSE_MIN_MS 100u
#define ACCEPT_PAUSE_MAX_MS 1000u
#define ACCEPT_WARN_EVERY_MS 10000u

static const char *name_of(const ia__sconn *c) {
  return c->label;
}

void ia__sconn_label(ia__sconn *c, bool observer, const char *name) {
  snprintf(c->label, sizeof c->label, "%s %.100s at %s", observer ? "observer" : "master", name ? name : "",
           c->addr);
}

/* ---- the epoll set's view of a connection ---- */

void ia__sconn_watch_locked(ia__sconn *c) {
  uint32_t want = 0;
  if (!atomic_load(&c->closing)) {
    if (c->reader == IA__RD_LOOP) want |= IA__EPSET_IN;
    if (ia__ws_queued(&c->out) > 0) want |= EPOLLOUT;
  }
  /* Out of the set rather than turned off while a worker reads it: the
   * read side changes hands only around long tasks here, and a socket in
   * the set costs every packet that reaches it a look by epoll. And out
   * before its close() in any case. */
  bool ok = want ? ia__epset_watch(&c->slave->ep, c->fd, &c->ep, want, c->gen)
                 : ia__epset_forget(&c->slave->ep, c->fd, &c->ep);
  if (!ok) IA__WARN("slave: cannot watch the socket of %s: %s", name_of(c), strerror(errno));
}

/* ---- sending ---- */

static void rewatch(ia__sconn *c) {
  pthread_mutex_lock(&c->slave->mu);
  ia__sconn_watch_locked(c);
  pthread_mutex_unlock(&c->slave->mu);
}

/* What a send's result means for c. mu must not be held. */
static inline bool sent(ia__sconn *c, const ia__wframe *w, ia__ws_rc rc) {
  if (w && (rc == IA__WS_DONE || rc == IA__WS_FLUSH)) ia__count(&c->slave->stats.tx_bytes, ia__wframe_len(w));
  if (rc == IA__WS_DONE) return true;
  if (rc == IA__WS_FLUSH) {
    rewatch(c); /* bytes wait: the loop flushes them */
    return true;
  }
  if (rc == IA__WS_TIMEOUT)
    IA__INFO("slave: %s took nothing for %u ms: dropped", name_of(c), IA__SEND_BOUND_MS);
  else
    IA__INFO("slave: send to %s failed: %s", name_of(c), strerror(ia__ws_error(&c->out)));
  ia__sconn_close(c, true, IA_CONNECTION_LOST);
  return false;
}

bool ia__sconn_send(ia__sconn *c, const ia__wframe *w, ia__reader who) {
  if (who == IA__RD_LOOP) return sent(c, w, ia__ws_send_nb(&c->out, c->fd, w));
  return sent(c, w, ia__ws_send(&c->out, c->fd, w, 0, IA__SEND_BOUND_MS));
}

/* A Goodbye: nothing goes out on c after it (a heartbeat Ping of the loop's
 * was once seen just behind a Disconnect's Goodbye). */
static bool send_last(ia__sconn *c, const ia__wframe *w, ia__reader who) {
  return sent(c, w, ia__ws_send_last(&c->out, c->fd, w, who == IA__RD_LOOP, 0, IA__SEND_BOUND_MS));
}

bool ia__sconn_send_nb_locked(ia__sconn *c, const ia__wframe *w) {
  ia__ws_rc rc = ia__ws_send_nb(&c->out, c->fd, w);
  if (rc == IA__WS_FLUSH) ia__sconn_watch_locked(c);
  if (rc != IA__WS_FAILED) ia__count(&c->slave->stats.tx_bytes, ia__wframe_len(w));
  return rc != IA__WS_FAILED;
}

void ia__sconn_flush(ia__sconn *c) {
  /* The epoll set watches for output while the stream counts queued bytes:
   * a sender that queued meanwhile re-arms it after its bytes are in. */
  ia__ws_rc rc = ia__ws_flush(&c->out, c->fd);
  if (rc == IA__WS_FAILED)
    (void)sent(c, NULL, rc);
  else if (rc == IA__WS_DONE)
    rewatch(c);
}

void ia__sconn_status(ia__sconn *c, uint64_t id, unsigned kind, ia_code code, const char *message,
                      const ia_hook_reply *r, ia__reader who) {
  /* A TLS peer whose handshake is not done could not read a frame. */
  if (c->tls && !c->out.tls && !c->plain_peer) return;
  const char *msg = r && r->message ? r->message : message;
  ia__wframe w;
  if (!ia__wframe_status(&w, id, kind, code, msg, r ? r->data : NULL, r ? r->len : 0)) {
    IA__WARN("slave: no memory to answer %s", name_of(c));
    return;
  }
  if (kind == INTERACTION__V1__FRAME__BODY_GOODBYE)
    (void)send_last(c, &w, who);
  else
    (void)ia__sconn_send(c, &w, who);
  ia__wframe_release(&w);
}

void ia__sconn_refuse(ia__sconn *c, uint64_t id, ia_code code, const char *message, const ia_hook_reply *r) {
  IA__INFO("slave: refusing %s: %s (%s)", name_of(c), message, ia_code_name(code));
  ia__sconn_status(c, id, INTERACTION__V1__FRAME__BODY_REFUSAL, code, message, r, IA__RD_LOOP);
  ia__sconn_close(c, false, code);
}

void ia__sconn_fail(ia__sconn *c, ia_code code, const char *message, ia__reader who) {
  IA__WARN("slave: closing the connection from %s: %s (%s)", name_of(c), message, ia_code_name(code));
  ia__sconn_status(c, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, code, message, NULL, who);
  ia__sconn_close(c, true, code);
}

/* ---- closing and freeing ---- */

void ia__sconn_close(ia__sconn *c, bool lost, ia_code code) {
  ia_slave *s = c->slave;
  pthread_mutex_lock(&s->mu);
  if (atomic_load(&c->closing)) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  atomic_store(&c->closing, true);
  if (c->observer && c->handshaken) s->n_observers--;
  if (c->handshaken) s->n_conns--;
  c->lost = lost && s->master == c;
  c->lost_code = code;
  if (s->master == c) s->master = NULL;
  /* Its master is gone: the handler is asked to stop, so that the slot is
   * free for the next master. */
  ia__slot_cancel_locked(s, c, 0, true, IA_CONNECTION_LOST);
  ia__pool_stop_locked(s, c, IA_CONNECTION_LOST); /* and its queued tasks never run */
  /* Handed to the workers, and none came to it yet: none will. */
  if (c->reader == IA__RD_WORKER && !c->reading) ia__slave_to_loop_locked(s, c);
  ia__sconn_watch_locked(c);
  pthread_mutex_unlock(&s->mu);
  shutdown(c->fd, SHUT_RDWR);
  event_active(s->close_ev, EV_TIMEOUT, 0);
}

bool ia__sconn_peer_gone(const ia__sconn *c) {
  struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

void ia__sconn_free(ia__sconn *c) {
  ia_slave *s = c->slave;
  if (c->prev)
    c->prev->next = c->next;
  else
    s->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    s->conns_tail = c->prev;
  if (c->hello_ev) {
    event_free(c->hello_ev);
    s->n_pending--;
  }
  if (c->hello_wait_ev) event_free(c->hello_wait_ev);
  ia__slave_auth_release(c);
  pthread_mutex_lock(&s->mu);
  atomic_store(&c->closing, true);
  ia__sconn_watch_locked(c);
  pthread_mutex_unlock(&s->mu);
  /* Read what the peer still sent, so that close() does not reset the
   * connection under a Goodbye we may just have written. */
  char sink[4096];
  for (int i = 0; i < 64 && recv(c->fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
    ;
  ia__tls_free(c->tls);
  close(c->fd);
  ia__inbuf_free(&c->in);
  ia__ws_destroy(&c->out);
  free(c->master_name);
  free(c);
}

void ia__sconn_close_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  ia__sconn *c = s->conns;
  while (c) {
    ia__sconn *next = c->next;
    pthread_mutex_lock(&s->mu);
    bool gone = atomic_load(&c->closing) && c->reader == IA__RD_LOOP && c->tasks == 0;
    bool lost = c->lost;
    ia_code why = c->lost_code;
    pthread_mutex_unlock(&s->mu);
    if (gone) {
      if (lost && s->cfg.lost_connection)
        s->cfg.lost_connection(c->master_name ? c->master_name : "", why, s->cfg.user);
      IA__INFO("slave: connection from %s closed", name_of(c));
      ia__sconn_free(c);
    }
    c = next;
  }
  if (s->finishing && !s->conns) event_base_loopbreak(s->base);
}

/* ---- accepting ---- */

/* Closes and frees the oldest connection still in its handshake; false if
 * there is none. Loop. */
static bool evict_oldest_pending(ia_slave *s, const char *why) {
  for (ia__sconn *c = s->conns; c; c = c->next) {
    if (c->handshaken || atomic_load(&c->closing)) continue;
    IA__INFO("slave: closing a connection still in its handshake: %s", why);
    ia__sconn_status(c, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, IA_CONNECTION_REFUSED, why, NULL,
                     IA__RD_LOOP);
    ia__sconn_close(c, false, IA_CONNECTION_REFUSED);
    /* Nobody else reads a connection in its handshake: free it now, so
     * that its descriptor is there for the next accept. */
    ia__sconn_free(c);
    return true;
  }
  return false;
}

static void hello_deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia__sconn *c = arg;
  char msg[96];
  snprintf(msg, sizeof msg, "%s within %u ms of the connection",
           c->auth == IA__AUTH_CHALLENGED ? "no proof of the secret" : "no Hello",
           (unsigned)c->slave->cfg.hello_timeout_ms);
  ia__sconn_fail(c, IA_TIMEOUT, msg, IA__RD_LOOP);
}

void ia__sconn_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int socklen,
                         void *arg) {
  (void)l;
  (void)socklen;
  ia_slave *s = arg;
  s->accept_pause_ms = 0; /* accepting works again */
  if (s->n_pending >= s->max_pending)
    evict_oldest_pending(s, "too many connections waiting for their handshake");
  ia__sock_setup(fd);
  ia__sconn *c = calloc(1, sizeof *c);
  if (c) c->hello_ev = evtimer_new(s->base, hello_deadline_cb, c);
  if (!c || !c->hello_ev) {
    IA__ERROR("slave: out of memory accepting a connection");
    free(c);
    evutil_closesocket(fd);
    return;
  }
  c->slave = s;
  c->fd = fd;
  char host[64] = "?";
  uint16_t port = 0;
  if (addr && addr->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
  } else if (addr && addr->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
  }
  snprintf(c->addr, sizeof c->addr, "%s:%u", host, (unsigned)port);
  snprintf(c->label, sizeof c->label, "a peer at %s", c->addr);
  c->gen = ++s->next_gen;
  c->peer_max_frame = IA__MAX_FRAME_DEFAULT;
  atomic_init(&c->closing, false);
  ia__ws_init(&c->out, IA__SLAVE_QUEUE_LIMIT);
  if (s->tls && !ia__slave_tls_accept(c)) {
    IA__ERROR("slave: out of memory for the TLS of a connection");
    ia__ws_destroy(&c->out);
    event_free(c->hello_ev);
    free(c);
    evutil_closesocket(fd);
    return;
  }
  c->prev = s->conns_tail;
  if (s->conns_tail)
    s->conns_tail->next = c;
  else
    s->conns = c;
  s->conns_tail = c;
  s->n_pending++;
  /* From accept, whatever the peer sends: an idle timer would let a peer
   * that trickles a byte now and then keep its seat for good. */
  struct timeval hello = {s->cfg.hello_timeout_ms / 1000, (s->cfg.hello_timeout_ms % 1000) * 1000};
  event_add(c->hello_ev, &hello);
  pthread_mutex_lock(&s->mu);
  c->reader = IA__RD_LOOP;
  ia__sconn_watch_locked(c);
  pthread_mutex_unlock(&s->mu);
}

void ia__sconn_accept_error_cb(struct evconnlistener *l, void *arg) {
  ia_slave *s = arg;
  int e = EVUTIL_SOCKET_ERROR();
  uint64_t now = ia__now_ms();
  bool out_of_fds = e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
  if (!s->accept_warned_ms || now - s->accept_warned_ms >= ACCEPT_WARN_EVERY_MS) {
    IA__WARN("slave: accept failed: %s%s", strerror(e),
             out_of_fds ? " (closing connections still in their handshake, pausing if there are none)" : "");
    s->accept_warned_ms = now;
  }
  if (out_of_fds && evict_oldest_pending(s, "the slave is out of file descriptors")) return;
  /* Nothing to free: pause, longer each time in a row (libevent would try
   * again at once, and again, at full speed). */
  unsigned ms = s->accept_pause_ms ? s->accept_pause_ms : ACCEPT_PAUSE_MIN_MS;
  if (evconnlistener_disable(l) == 0) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(s->accept_retry_ev, &tv);
    s->accept_pause_ms = ms * 2 < ACCEPT_PAUSE_MAX_MS ? ms * 2 : ACCEPT_PAUSE_MAX_MS;
  }
}

void ia__sconn_accept_retry_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  if (s->listener && !atomic_load(&s->shutting_down)) evconnlistener_enable(s->listener);
}
