/*
 * slave: the task-executing end -- its lifecycle and configuration. See
 * slave-internal.h for the parts and the threads.
 *
 * Lifecycle: ia_slave_new() checks and copies the config and makes the
 * event base; ia_slave_start() binds, registers with the watchdog and
 * starts the worker and the loop; ia_slave_shutdown() asks the loop to stop
 * accepting, wait out the grace period, cancel what still runs, say Goodbye
 * and close; ia_slave_join() waits for both threads and frees what is left.
 *
 * Never: start a thread before everything it touches exists, or return from
 * ia_slave_join() while a thread of this slave still runs.
 */
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "runtime/sock.h"
#include "runtime/tls.h"
#include "slave/slave-internal.h"

#define FINISH_BOUND_S 3 /* shutdown leaves the loop after this, whatever is left */
#define GRACE_RECHECK_US 10000

ia_task_ctx *ia__slave_take_spare(ia_slave *s) {
  return atomic_exchange(&s->spare, NULL);
}

bool ia__slave_keep_spare(ia_slave *s, ia_task_ctx *ctx) {
  ia_task_ctx *none = NULL;
  return atomic_compare_exchange_strong(&s->spare, &none, ctx);
}

void ia_slave_config_init(ia_slave_config *c) {
  memset(c, 0, sizeof *c);
  c->host = "127.0.0.1";
  c->grace_ms = 2000;
  c->hello_timeout_ms = 10000;
  c->max_pending = IA__MAX_PENDING_DEFAULT;
  c->heartbeat_ms = IA_HEARTBEAT_DEFAULT_MS;
  c->heartbeat_tolerance_ms = IA_HEARTBEAT_TOLERANCE_DEFAULT_MS;
}

/* ---- methods ---- */

const char *ia_mode_name(uint32_t mode) {
  static const char *const names[] = {"nonblocking-single", "nonblocking-multi", "blocking-single",
                                      "blocking-multi"};
  return mode < sizeof names / sizeof names[0] ? names[mode] : "unknown";
}

const ia__method *ia__slave_method(const ia_slave *s, const uint8_t *name, size_t len) {
  for (size_t i = 0; i < s->n_methods; i++)
    if (s->methods[i].len == len && memcmp(s->methods[i].method, name, len) == 0) return &s->methods[i];
  return NULL;
}

ia_code ia_slave_register(ia_slave *s, const char *method, ia_handler_fn fn, void *user) {
  if (!s || !method || !fn || s->started) return IA_INVALID_ARGUMENT;
  ia__method *e = (ia__method *)ia__slave_method(s, (const uint8_t *)method, strlen(method));
  if (!e) {
    char *name = strdup(method);
    ia__method *m = name ? realloc(s->methods, (s->n_methods + 1) * sizeof *m) : NULL;
    if (!m) {
      free(name);
      return IA_NO_MEMORY;
    }
    s->methods = m;
    e = &m[s->n_methods++];
    memset(e, 0, sizeof *e); /* its counters start at 0 */
    e->method = name;
    e->len = strlen(method);
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

/* ---- shutdown (loop) ---- */

/* Once no task runs: Goodbye to everyone, close, and leave the loop when the
 * last connection is gone (or after a bounded wait). */
void ia__slave_maybe_finish(ia_slave *s) {
  if (!atomic_load(&s->shutting_down) || s->finishing) return;
  pthread_mutex_lock(&s->mu);
  bool busy = s->slot != NULL || s->to_run != NULL || s->pool.n_running || s->pool.n_waiting;
  pthread_mutex_unlock(&s->mu);
  if (busy) return;
  s->finishing = true;
  for (ia__sconn *c = s->conns; c; c = c->next) {
    if (c->handshaken)
      ia__sconn_status(c, 0, INTERACTION__V1__FRAME__BODY_GOODBYE, IA_SHUTTING_DOWN,
                       "the slave is shutting down", NULL, IA__RD_LOOP);
    ia__sconn_close(c, false, IA_SHUTTING_DOWN);
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
  if (s->slot) IA__INFO("slave: grace period over: cancelling the running task");
  ia__slot_cancel_locked(s, NULL, 0, true, IA_SHUTTING_DOWN);
  pthread_mutex_unlock(&s->mu);
  /* Look again soon: the task ends when its handler sees the cancel. */
  struct timeval again = {0, GRACE_RECHECK_US};
  if (!s->finishing) event_add(s->grace_ev, &again);
  ia__slave_maybe_finish(s);
}

static void shutdown_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  if (s->listener) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
  }
  event_del(s->accept_retry_ev);
  struct timeval grace = {s->cfg.grace_ms / 1000, (s->cfg.grace_ms % 1000) * 1000};
  event_add(s->grace_ev, &grace);
  ia__slave_maybe_finish(s);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  event_base_loopbreak(s->base);
}

/* ---- lifecycle ---- */

static bool make_events(ia_slave *s) {
  s->base = event_base_new();
  if (!s->base || !ia__epset_init(&s->ep, s->base, ia__slave_ep_batch, s)) return false;
  s->long_ev = event_new(s->base, -1, 0, ia__slot_long_cb, s);
  s->close_ev = event_new(s->base, -1, 0, ia__sconn_close_cb, s);
  s->shutdown_ev = event_new(s->base, -1, 0, shutdown_cb, s);
  s->grace_ev = evtimer_new(s->base, grace_cb, s);
  s->deadline_ev = evtimer_new(s->base, deadline_cb, s);
  s->accept_retry_ev = evtimer_new(s->base, ia__sconn_accept_retry_cb, s);
  return s->long_ev && s->close_ev && s->shutdown_ev && s->grace_ev && s->deadline_ev && s->accept_retry_ev &&
         ia__slave_beat_init(s) && ia__epset_start(&s->ep);
}

ia_code ia_slave_new(const ia_slave_config *config, ia_slave **out, ia_error *err) {
  if (!config || !out) return ia__error_set(err, IA_INVALID_ARGUMENT, "config and out are required");
  *out = NULL;
  ia__threads_init();
  ia_slave *s = calloc(1, sizeof *s);
  if (!s) return ia__error_set(err, IA_NO_MEMORY, "no memory for the slave");
  s->cfg = *config;
  s->cfg.host = strdup(config->host ? config->host : "127.0.0.1");
  s->cfg.name = strdup(config->name ? config->name : "slave");
  s->cfg.metrics_addr = config->metrics_addr ? strdup(config->metrics_addr) : NULL;
  s->max_frame = ia__max_frame(config->max_frame);
  s->max_pending = config->max_pending ? config->max_pending : IA__MAX_PENDING_DEFAULT;
  s->ep.fd = -1;
  pthread_mutex_init(&s->mu, NULL);
  ia__cond_init(&s->work_cond);
  ia__cond_init(&s->cancel_cond);
  atomic_init(&s->shutting_down, false);
  atomic_init(&s->worker_stop, false);
  s->watch = (ia__watch){ia__slot_watch_check, s};
  s->cfg.secret_file = NULL; /* read now, not kept */
  ia_code rc = ia__pool_init(s, err);
  if (rc == IA_OK) rc = ia__secret_load(config->secret_file, "slave", &s->secret, err);
  if (rc == IA_OK) rc = ia__slave_tls_init(s, config, err);
  if (rc != IA_OK) {
    ia_slave_free(s);
    return rc;
  }
  if (!s->cfg.host || !s->cfg.name || (config->metrics_addr && !s->cfg.metrics_addr) || !make_events(s)) {
    ia_slave_free(s);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the slave");
  }
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

static bool is_loopback(const struct sockaddr *a) {
  if (a->sa_family == AF_INET) return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
  return a->sa_family == AF_INET6 && IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

static ia_code listen_on(ia_slave *s, ia_error *err) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *ai = NULL;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)s->cfg.port);
  int rc = getaddrinfo(s->cfg.host, portstr, &hints, &ai);
  if (rc != 0) return ia__error_set(err, IA_IO_ERROR, "cannot resolve %s: %s", s->cfg.host, gai_strerror(rc));
  s->listener = evconnlistener_new_bind(s->base, ia__sconn_accept_cb, s,
                                        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
                                            LEV_OPT_LEAVE_SOCKETS_BLOCKING,
                                        128, ai->ai_addr, (int)ai->ai_addrlen);
  bool loopback = is_loopback(ai->ai_addr);
  freeaddrinfo(ai);
  if (s->listener && !loopback && !s->secret.n && !s->tls_mutual)
    IA__WARN(
        "slave: listening on %s beyond loopback without a secret%s: any host that reaches it can run its "
        "tasks (give it one with a secret file or IA_SECRET, or ask for client certificates with tls_ca)",
        s->cfg.host, s->tls ? " (TLS encrypts, but admits any master)" : " or TLS");
  if (!s->listener)
    return ia__error_set(err, IA_IO_ERROR, "cannot listen on %s:%u: %s", s->cfg.host, (unsigned)s->cfg.port,
                         strerror(errno));
  /* Without an error callback libevent retries a failing accept() at once,
   * forever: at EMFILE that is a busy loop. */
  evconnlistener_set_error_cb(s->listener, ia__sconn_accept_error_cb);
  atomic_store(&s->port, ia__sock_port(evconnlistener_get_fd(s->listener)));
  return IA_OK;
}

/* Undoes what ia_slave_start() did before a thread failed to start. */
static ia_code start_failed(ia_slave *s, const char *what, ia_error *err) {
  if (s->in_watchdog) ia__watchdog_remove(&s->watch);
  s->in_watchdog = false;
  evconnlistener_free(s->listener);
  s->listener = NULL;
  return ia__error_set(err, IA_NO_MEMORY, "cannot start the %s", what);
}

ia_code ia_slave_start(ia_slave *s, ia_error *err) {
  if (!s) return ia__error_set(err, IA_INVALID_ARGUMENT, "slave is required");
  if (s->started) return ia__error_set(err, IA_INVALID_ARGUMENT, "the slave is already started");
  ia_code rc = listen_on(s, err);
  if (rc == IA_OK) rc = ia__metrics_start(s, err);
  if (rc != IA_OK) {
    evconnlistener_free(s->listener);
    s->listener = NULL;
    return rc;
  }
  if (!ia__watchdog_add(&s->watch)) return start_failed(s, "watchdog", err);
  s->in_watchdog = true;
  ia__slave_beat_start(s);
  if (ia__thread_create(&s->worker, s->pool.on ? ia__pool_worker_main : ia__slave_worker_main, s) != 0)
    return start_failed(s, "worker thread", err);
  bool extra = ia__pool_start_extra(s);
  if (!extra || ia__thread_create(&s->loop_thread, loop_main, s) != 0) {
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->worker_stop, true);
    pthread_cond_broadcast(&s->work_cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->worker, NULL);
    ia__pool_join_extra(s);
    return start_failed(s, extra ? "I/O thread" : "worker threads", err);
  }
  s->started = true;
  IA__INFO("slave: listening on %s:%u", s->cfg.host, (unsigned)ia_slave_port(s));
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
  if (!s || !s->started || s->joined) return;
  pthread_join(s->loop_thread, NULL);
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->worker_stop, true);
  /* The loop is gone: nobody will wait out a grace period any more. */
  ia__slot_cancel_locked(s, NULL, 0, true, IA_SHUTTING_DOWN);
  pthread_cond_broadcast(&s->work_cond);
  pthread_mutex_unlock(&s->mu);
  /* A worker blocked reading a socket wakes when it is shut down. */
  for (ia__sconn *c = s->conns; c; c = c->next)
    shutdown(c->fd, SHUT_RDWR);
  pthread_join(s->worker, NULL);
  if (s->relief_on) pthread_join(s->relief, NULL);
  s->relief_on = false;
  ia__pool_join_extra(s);
  ia__pool_free(s); /* tasks still queued: their connections go next */
  if (s->in_watchdog) ia__watchdog_remove(&s->watch);
  s->in_watchdog = false;
  while (s->conns)
    ia__sconn_free(s->conns);
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
    ia__sconn_free(s->conns);
  if (s->to_run) ia__task_ctx_free(s->to_run);
  ia__pool_free(s);
  free(atomic_exchange(&s->spare, NULL));
  struct event *evs[] = {s->long_ev,     s->close_ev,        s->shutdown_ev, s->grace_ev,
                         s->deadline_ev, s->accept_retry_ev, s->beat_ev};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (evs[i]) event_free(evs[i]);
  ia__metrics_free(s);
  ia__epset_free(&s->ep);
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
  free((char *)s->cfg.metrics_addr);
  ia__secret_free(&s->secret);
  ia__tls_ctx_free(s->tls);
  free(s);
}

ia_code ia_slave_run(ia_slave *s, ia_error *err) {
  if (!s) return ia__error_set(err, IA_INVALID_ARGUMENT, "slave is required");
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
      IA__INFO("slave: %s received, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
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
