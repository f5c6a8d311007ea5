/*
 * Liveness on the slave: the heartbeat setting agreed with each master in
 * its handshake, and the loop's timer that drops the master once nothing
 * at all has come from it for the tolerance, or once a frame of its has
 * stalled half-way (runtime/beat.h has the protocol). The slave answers the
 * master's Pings (dispatch.c) from whichever thread reads the socket -- the
 * loop while a handler runs long -- so a busy slave still answers. A master
 * that proposed no heartbeats is watched all the same, at the slave's own
 * setting: the loop sends it Pings, which it answers.
 *
 * A master dropped here is lost: lost_connection fires with
 * CONNECTION_LOST (silence) or TIMEOUT (a stalled frame), its running task
 * is cancelled, and the slave is free for the next master.
 *
 * Observers are watched the same way as the master.
 *
 * Never: block the loop, or look at a connection still in its handshake
 * (its Hello deadline watches it).
 */
#include <stdio.h>

#include <event2/event.h>

#include "runtime/sock.h"
#include "slave/slave-internal.h"

#define BEAT_LOOK_MAX_MS 250u /* the timer looks at least this often */

/* How long a frame in progress is given to show IA__FRAME_MIN_RATE. */
static uint32_t stall_window(const ia__sconn *c) {
  return ia__beat_on(c->watch) ? c->watch.tolerance_ms : IA__BEAT_DEFAULT_TOLERANCE_MS;
}

/* One look at a handshaken connection: the master or an observer. Loop. */
static void look_at(ia_slave *s, ia__sconn *c, uint64_t now) {
  pthread_mutex_lock(&s->mu);
  if (atomic_load(&c->closing)) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  ia__live_rc rc = ia__live_check(&c->live, c->watch, ia__ws_drained(&c->out), now, c->self_ping);
  bool stalled = rc != IA__LIVE_DEAD && ia__live_stalled(&c->live, stall_window(c), now);
  bool unsent = false;
  if (rc == IA__LIVE_PING) {
    ia__wframe w;
    ia__wframe_empty(&w, 0, INTERACTION__V1__FRAME__BODY_PING);
    unsent = !ia__sconn_send_nb_locked(c, &w);
  }
  pthread_mutex_unlock(&s->mu);
  if (unsent) {
    IA__INFO("slave: cannot ping %s: its connection failed", c->label);
    ia__sconn_close(c, true, IA_CONNECTION_LOST);
    return;
  }
  if (rc != IA__LIVE_DEAD && !stalled) return;
  char msg[IA_ERROR_MESSAGE_MAX];
  const char *peer = c->observer ? "observer" : "master";
  if (stalled) {
    snprintf(msg, sizeof msg, "a frame from the %s stalled: under %u bytes/s for %u ms", peer, IA__FRAME_MIN_RATE,
             stall_window(c));
    ia__sconn_fail(c, IA_TIMEOUT, msg, IA__RD_LOOP);
    return;
  }
  snprintf(msg, sizeof msg, "no sign of life from the %s for %llu ms (heartbeat tolerance %u ms)", peer,
           (unsigned long long)ia__live_silent_ms(&c->live, now), c->watch.tolerance_ms);
  ia__sconn_fail(c, IA_CONNECTION_LOST, msg, IA__RD_LOOP);
}

static void beat_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  uint64_t now = ia__now_ms();
  /* The list is the loop's, and closing frees nothing here (close_cb does). */
  for (ia__sconn *c = s->conns; c; c = c->next)
    if (c->handshaken) look_at(s, c, now);
}

bool ia__slave_beat_init(ia_slave *s) {
  s->beat = ia__beat_from(s->cfg.heartbeat_ms, s->cfg.heartbeat_tolerance_ms);
  s->beat_ev = event_new(s->base, -1, EV_PERSIST, beat_cb, s);
  return s->beat_ev != NULL;
}

void ia__slave_beat_start(ia_slave *s) {
  /* Every connection's interval is at least the config's. A sign of life
   * is dated by the look that sees it, so a silent master is noticed up to
   * two looks late: a quarter interval each keeps that within the goal of
   * tolerance + one interval (bench-detect measures it), at four cheap
   * wake-ups an interval. */
  uint32_t look = ia__beat_on(s->beat) ? s->beat.interval_ms / 4 : BEAT_LOOK_MAX_MS;
  if (look > BEAT_LOOK_MAX_MS) look = BEAT_LOOK_MAX_MS;
  if (look < IA__BEAT_MIN_MS) look = IA__BEAT_MIN_MS;
  struct timeval tv = {look / 1000, (look % 1000) * 1000};
  event_add(s->beat_ev, &tv);
}

ia__beat ia__slave_beat_agree(ia__sconn *c, bool has, uint32_t h_ms, uint32_t h_tol) {
  ia__beat own = c->slave->beat;
  ia__beat proposed = has ? ia__beat_from(h_ms, h_tol) : (ia__beat){0, 0};
  c->beat = ia__beat_agree(own, proposed);
  /* A master that wants none cannot switch the slave's watch off: it holds
   * the only seat. */
  c->self_ping = ia__beat_on(own) && !ia__beat_on(proposed);
  c->watch = c->self_ping ? own : c->beat;
  if (c->self_ping)
    IA__INFO("slave: %s proposed no heartbeats: pinging it every %u ms", c->label,
             own.interval_ms);
  if (ia__beat_on(c->watch)) ia__sock_user_timeout(c->fd, c->watch.tolerance_ms);
  ia__live_start(&c->live, ia__now_ms());
  return c->beat;
}
