/*
 * master: the task-issuing end -- its lifecycle and its loop. See
 * master-internal.h for the parts, the threads and the references.
 *
 * Lifecycle: ia_master_new() makes the event base, the loop's epoll set and
 * its timers; ia_master_start() starts the loop thread; ia_master_shutdown()
 * has the loop say Goodbye to every slave and end every pending task with
 * SHUTTING_DOWN; ia_master_join() waits for the loop; ia_master_free()
 * releases what is left, the connections the user never freed included.
 *
 * Never: block on the loop thread, or leave a started task without a
 * terminal status when the master goes away.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "master/master-internal.h"
#include "runtime/tls.h"

#define TICK_MS 50 /* how often the loop takes back parked sockets */
#define FINISH_BOUND_S 3

void ia_master_config_init(ia_master_config *c) {
  memset(c, 0, sizeof *c);
  c->name = "master";
  c->heartbeat_ms = IA_HEARTBEAT_DEFAULT_MS;
  c->heartbeat_tolerance_ms = IA_HEARTBEAT_TOLERANCE_DEFAULT_MS;
}

bool ia__master_on_loop(const ia_master *m) {
  return m->started && pthread_equal(pthread_self(), m->loop_thread);
}

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
    if (ia_conn_is_connected(c)) ia__conn_goodbye(c, IA_SHUTTING_DOWN, "the master is shutting down", 0);
    ia__conn_lost(c, IA_STATUS_LOST, IA_SHUTTING_DOWN, "the master is shutting down");
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

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_master *m = arg;
  if (atomic_load(&m->shutting_down)) {
    if (all_torn_down(m)) event_base_loopbreak(m->base);
    return;
  }
  ia__master_tick(m);
  ia__master_beat(m);
  ia__master_deadlines(m);
}

ia_code ia_master_new(const ia_master_config *config, ia_master **out, ia_error *err) {
  if (!config || !out) return ia__error_set(err, IA_INVALID_ARGUMENT, "config and out are required");
  *out = NULL;
  ia__threads_init();
  ia_master *m = calloc(1, sizeof *m);
  if (!m) return ia__error_set(err, IA_NO_MEMORY, "no memory for the master");
  m->cfg = *config;
  m->cfg.name = strdup(config->name ? config->name : "master");
  m->cfg.metrics_addr = config->metrics_addr ? strdup(config->metrics_addr) : NULL;
  m->cfg.secret_file = NULL; /* read now, not kept */
  m->cfg.tls_ca = m->cfg.tls_cert = m->cfg.tls_key = NULL;
  m->cfg.tls_server_name = config->tls_server_name ? strdup(config->tls_server_name) : NULL;
  ia_code rc = ia__secret_load(config->secret_file, "master", &m->secret, err);
  if (rc == IA_OK && (config->tls_ca || config->tls_cert || config->tls_key))
    rc = ia__tls_ctx_client(config->tls_ca, config->tls_cert, config->tls_key, &m->tls, err);
  if (rc == IA_OK && config->tls_server_name && !m->cfg.tls_server_name)
    rc = ia__error_set(err, IA_NO_MEMORY, "no memory for the master");
  if (rc != IA_OK) {
    ia__secret_free(&m->secret);
    ia__tls_ctx_free(m->tls);
    free((char *)m->cfg.tls_server_name);
    free((char *)m->cfg.name);
    free((char *)m->cfg.metrics_addr);
    free(m);
    return rc;
  }
  m->max_frame = ia__max_frame(config->max_frame);
  m->beat = ia__beat_from(config->heartbeat_ms, config->heartbeat_tolerance_ms);
  m->ep.fd = -1;
  pthread_mutex_init(&m->mu, NULL);
  atomic_init(&m->next_id, 1);
  atomic_init(&m->shutting_down, false);
  atomic_init(&m->loop_gone, false);
  ia__cond_init(&m->reader_cond);
  ia__cond_init(&m->any_cond);
  atomic_init(&m->any_waiters, 0);
  m->base = event_base_new();
  bool ok = m->cfg.name && (!config->metrics_addr || m->cfg.metrics_addr) && m->base &&
            ia__epset_init(&m->ep, m->base, ia__master_ep_batch, m);
  if (ok) {
    m->shutdown_ev = event_new(m->base, -1, 0, shutdown_cb, m);
    m->tick_ev = event_new(m->base, -1, EV_PERSIST, tick_cb, m);
    m->deadline_ev = evtimer_new(m->base, deadline_cb, m);
    struct timeval tick = {0, TICK_MS * 1000};
    ok = m->shutdown_ev && m->tick_ev && m->deadline_ev && event_add(m->tick_ev, &tick) == 0 &&
         ia__epset_start(&m->ep);
  }
  if (!ok) {
    ia_master_free(m);
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the master");
  }
  *out = m;
  return IA_OK;
}

static void *loop_main(void *arg) {
  ia_master *m = arg;
  event_base_loop(m->base, EVLOOP_NO_EXIT_ON_EMPTY);
  atomic_store(&m->loop_gone, true);
  return NULL;
}

ia_code ia_master_start(ia_master *m, ia_error *err) {
  if (!m) return ia__error_set(err, IA_INVALID_ARGUMENT, "master is required");
  if (m->started) return ia__error_set(err, IA_INVALID_ARGUMENT, "the master is already started");
  ia_code rc = ia__master_metrics_start(m, err);
  if (rc != IA_OK) return rc;
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
  if (!m || !m->started || m->joined) return;
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
    ia__conn_lost(open[i], IA_STATUS_LOST, IA_SHUTTING_DOWN, "the master is shutting down");
    ia__conn_unref(open[i]);
  }
  free(open);
  while (m->conns) {
    ia_conn *c = m->conns;
    m->conns = c->next;
    ia__conn_destroy(c);
  }
  struct event *evs[] = {m->shutdown_ev, m->tick_ev, m->deadline_ev};
  for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
    if (evs[i]) event_free(evs[i]);
  ia__http_free(m->http);
  ia__epset_free(&m->ep);
  if (m->base) event_base_free(m->base);
  pthread_cond_destroy(&m->reader_cond);
  pthread_cond_destroy(&m->any_cond);
  pthread_mutex_destroy(&m->mu);
  free(m->tick_conns);
  free((char *)m->cfg.name);
  free((char *)m->cfg.metrics_addr);
  ia__secret_free(&m->secret);
  ia__tls_ctx_free(m->tls);
  free((char *)m->cfg.tls_server_name);
  free(atomic_exchange(&m->spare_task, NULL));
  free(m);
}
