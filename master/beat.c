/*
 * Liveness on the master: the heartbeat of every live connection, looked at
 * on the loop's tick, and the connection-state callback that tells the
 * program when a connection ended and how (runtime/beat.h has the protocol).
 *
 * Each tick the loop sends a Ping (id 0, without blocking) on every
 * connection whose agreed interval has passed, and drops every connection
 * on which nothing arrived for the tolerance: its pending tasks end LOST
 * with CONNECTION_LOST, ia_conn_is_connected() turns false, and the state
 * callback hears LOST. A connection on which one frame has been arriving
 * slower than IA__FRAME_MIN_RATE for the tolerance is dropped the same way,
 * with TIMEOUT: a slave that trickles a reply is never silent.
 *
 * Never: block the loop (Pings go out without blocking; a stream that
 * cannot take one is already failing), or call the state callback with the
 * master's mutex held or more than once per connection.
 */
#include <stdio.h>
#include <stdlib.h>

#include "master/master-internal.h"

const char *ia_conn_state_name(ia_conn_state state) {
  switch (state) {
  case IA_CONN_CONNECTED:
    return "CONNECTED";
  case IA_CONN_LOST:
    return "LOST";
  case IA_CONN_CLOSED:
    return "CLOSED";
  }
  return "UNKNOWN";
}

ia_conn_state ia_conn_state_now(const ia_conn *c) {
  if (!c) return IA_CONN_CLOSED;
  pthread_mutex_lock(&c->m->mu);
  ia_conn_state st = c->state;
  pthread_mutex_unlock(&c->m->mu);
  return st;
}

/* Calls fn with c's end state. Without mu. */
static void tell(ia_conn *c, ia_conn_state_fn fn, void *user) {
  ia_error why = IA_ERROR_INIT;
  pthread_mutex_lock(&c->m->mu);
  ia_conn_state st = c->state;
  ia__error_set(&why, c->down_code, "%s", c->down_message);
  pthread_mutex_unlock(&c->m->mu);
  fn(c, st, &why, user);
  ia_error_clear(&why);
}

ia_code ia_conn_on_state(ia_conn *c, ia_conn_state_fn fn, void *user) {
  if (!c || !fn) return IA_INVALID_ARGUMENT;
  pthread_mutex_lock(&c->m->mu);
  c->state_fn = fn;
  c->state_user = user;
  bool ended = c->state != IA_CONN_CONNECTED;
  pthread_mutex_unlock(&c->m->mu);
  if (ended) ia__conn_state_changed(c);
  return IA_OK;
}

void ia__conn_state_changed(ia_conn *c) {
  /* Taken once: a registration racing the end runs it here or there, never
   * both. */
  pthread_mutex_lock(&c->m->mu);
  ia_conn_state_fn fn = c->state_fn;
  void *user = c->state_user;
  c->state_fn = NULL;
  pthread_mutex_unlock(&c->m->mu);
  if (fn) tell(c, fn, user);
}

/* What the tick found a connection needs. */
typedef struct beat_job {
  ia_conn *conn;
  ia__live_rc rc;
  bool stalled; /* a frame of the slave's stopped arriving half-way */
  uint64_t silent_ms;
} beat_job;

void ia__master_beat(ia_master *m) {
  if (!ia__beat_on(m->beat)) return;
  pthread_mutex_lock(&m->mu);
  uint64_t now = ia__now_ms(); /* under mu: no connection registered later started after it */
  size_t n = 0, cap = m->tick_cap;
  beat_job *jobs = m->tick_conns;
  for (ia_conn *c = m->conns; c; c = c->next) {
    if (!c->up || c->torn_down || !ia__beat_on(c->beat)) continue;
    ia__live_rc rc = ia__live_check(&c->live, c->beat, ia__ws_drained(&c->out), now, true);
    bool stalled = rc != IA__LIVE_DEAD && ia__live_stalled(&c->live, c->beat.tolerance_ms, now);
    if (rc == IA__LIVE_OK && !stalled) continue;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      beat_job *more = realloc(jobs, ncap * sizeof *jobs);
      if (!more) break; /* the rest waits for the next tick */
      jobs = more;
      cap = ncap;
    }
    ia__conn_ref(c);
    jobs[n++] = (beat_job){c, rc, stalled, ia__live_silent_ms(&c->live, now)};
  }
  m->tick_conns = jobs;
  m->tick_cap = cap;
  pthread_mutex_unlock(&m->mu);
  for (size_t i = 0; i < n; i++) {
    ia_conn *c = jobs[i].conn;
    if (jobs[i].stalled) {
      char msg[IA_ERROR_MESSAGE_MAX];
      snprintf(msg, sizeof msg, "a frame from the slave stalled: under %u bytes/s for %u ms",
               IA__FRAME_MIN_RATE, c->beat.tolerance_ms);
      IA__WARN("master: connection %s: %s", c->name, msg);
      ia__conn_lost(c, IA_STATUS_LOST, IA_TIMEOUT, msg);
    } else if (jobs[i].rc == IA__LIVE_PING) {
      ia__wframe w;
      ia__wframe_empty(&w, 0, INTERACTION__V1__FRAME__BODY_PING);
      (void)ia__conn_send_nb(c, &w); /* a failure ends the connection by itself */
    } else {
      char msg[IA_ERROR_MESSAGE_MAX];
      snprintf(msg, sizeof msg, "no sign of life from the slave for %llu ms (heartbeat tolerance %u ms)",
               (unsigned long long)jobs[i].silent_ms, c->beat.tolerance_ms);
      IA__WARN("master: connection %s: %s", c->name, msg);
      ia__conn_lost(c, IA_STATUS_LOST, IA_CONNECTION_LOST, msg);
    }
    ia__conn_unref(c);
  }
}
