/*
 * Liveness on the slave: the heartbeat setting agreed with each master in
 * its handshake, and the loop's timer that drops the master once nothing
 * at all has come from it for the tolerance (runtime/beat.h has the
 * protocol). The slave sends no Pings of its own: it answers the master's
 * (dispatch.c), from whichever thread reads the socket -- the loop while a
 * handler runs long -- so a busy slave still answers.
 *
 * A master dropped here is lost: lost_connection fires with
 * CONNECTION_LOST, its running task is cancelled, and the slave is free for
 * the next master.
 *
 * Never: block the loop, or look at a connection that is not the master.
 */
#include <stdio.h>

#include <event2/event.h>

#include "runtime/sock.h"
#include "slave/slave-internal.h"

#define BEAT_LOOK_MAX_MS 250u /* the timer looks at least this often with heartbeats on */

static void beat_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  ia_slave *s = arg;
  uint64_t now = ia__now_ms();
  pthread_mutex_lock(&s->mu);
  ia__sconn *c = s->master;
  bool dead = c && !atomic_load(&c->closing) && ia__beat_on(c->beat) &&
              ia__live_check(&c->live, c->beat, ia__ws_drained(&c->out), now, false) == IA__LIVE_DEAD;
  pthread_mutex_unlock(&s->mu);
  if (!dead) return;
  /* Only the loop frees connections, and this is the loop: c is still there. */
  char msg[IA_ERROR_MESSAGE_MAX];
  snprintf(msg, sizeof msg, "no sign of life from the master for %llu ms (heartbeat tolerance %u ms)",
           (unsigned long long)ia__live_silent_ms(&c->live, now), c->beat.tolerance_ms);
  ia__sconn_fail(c, IA_CONNECTION_LOST, msg, IA__RD_LOOP);
}

bool ia__slave_beat_init(ia_slave *s) {
  s->beat = ia__beat_from(s->cfg.heartbeat_ms, s->cfg.heartbeat_tolerance_ms);
  s->beat_ev = event_new(s->base, -1, EV_PERSIST, beat_cb, s);
  return s->beat_ev != NULL;
}

void ia__slave_beat_start(ia_slave *s) {
  if (!ia__beat_on(s->beat)) return;
  /* Every connection's interval is at least the config's. A sign of life
   * is dated by the look that sees it, so a silent master is noticed up to
   * two looks late: a quarter interval each keeps that within the goal of
   * tolerance + one interval (bench-detect measures it), at four cheap
   * wake-ups an interval. */
  uint32_t look = s->beat.interval_ms / 4;
  if (look > BEAT_LOOK_MAX_MS) look = BEAT_LOOK_MAX_MS;
  if (look < IA__BEAT_MIN_MS) look = IA__BEAT_MIN_MS;
  struct timeval tv = {look / 1000, (look % 1000) * 1000};
  event_add(s->beat_ev, &tv);
}

ia__beat ia__slave_beat_agree(ia__sconn *c, bool has, uint32_t h_ms, uint32_t h_tol) {
  ia__beat proposed = has ? ia__beat_from(h_ms, h_tol) : (ia__beat){0, 0};
  c->beat = ia__beat_agree(c->slave->beat, proposed);
  if (ia__beat_on(c->beat)) ia__sock_user_timeout(c->fd, c->beat.tolerance_ms);
  ia__live_start(&c->live, ia__now_ms());
  return c->beat;
}
