/*
 * Heartbeats, as both ends share them: the setting two ends agree on in the
 * handshake, and one connection's liveness as its loop looks at it.
 *
 * The protocol (proto/interaction.proto, Hello and Welcome): the master
 * proposes its interval and tolerance in Hello; the slave answers in Welcome
 * with the setting both then use (ia__beat_agree). The master sends a Ping
 * every interval; the slave answers each with a Pong, from whichever of its
 * threads reads the socket (its loop while a handler runs). Each end drops
 * the connection once it has heard nothing at all from the other for the
 * tolerance. A sign of life is any byte received, or -- while a large frame
 * of ours is stuck behind the peer's reading -- any of our waiting bytes the
 * peer's end took (runtime/wstream.h counts them), so that a long transfer
 * in either direction is never taken for silence.
 *
 * A slave whose master proposed no heartbeats (an older master, a small
 * client, a hostile one) still watches it at its own setting: it sends the
 * Pings itself and the master answers them, as every peer answers a Ping.
 * No peer can switch off the other end's watch, nor stretch it past
 * IA__BEAT_MAX_TOLERANCE_MS unless that end asks for more itself.
 *
 * Apart from silence, a frame that has begun to arrive must keep arriving:
 * at IA__FRAME_MIN_RATE bytes a second or more, measured over the
 * tolerance (ia__live_stalled). A peer that trickles a large frame a byte
 * at a time is never silent, yet holds the connection forever otherwise.
 *
 * The reader of a connection adds what each recv() got to its counter
 * (ia__live_rx) and says when it waits in the middle of a frame
 * (ia__live_head): relaxed atomics, no clock read, so the hot path pays
 * nothing measurable. The loop alone looks at the clock, from a timer
 * (ia__live_check, ia__live_stalled).
 *
 * Never: read a clock on the hot path, or let a mismatch in the two ends'
 * settings make either drop a healthy connection.
 */
#ifndef IA__BEAT_H
#define IA__BEAT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IA__BEAT_DEFAULT_MS 1000u           /* the default interval */
#define IA__BEAT_DEFAULT_TOLERANCE_MS 5000u /* the default tolerance */
#define IA__BEAT_MIN_MS 10u                 /* shorter intervals are raised to this */
#define IA__BEAT_MAX_TOLERANCE_MS 60000u    /* what one end may stretch the other's tolerance to */
#define IA__FRAME_MIN_RATE 1024u            /* bytes a second a frame in progress must keep up */

/* A heartbeat setting; both 0 means off. */
typedef struct ia__beat {
  uint32_t interval_ms;
  uint32_t tolerance_ms;
} ia__beat;

/* A config's setting: off if either number is 0; an interval under
 * IA__BEAT_MIN_MS is raised to it, a tolerance under two intervals to two
 * intervals. */
ia__beat ia__beat_from(uint32_t interval_ms, uint32_t tolerance_ms);
/* The setting of a connection whose ends want `a` and `b`: off if either
 * is; otherwise the longer interval and the longer tolerance, so that
 * neither end expects Pings more often than the other sends them -- but a
 * tolerance over IA__BEAT_MAX_TOLERANCE_MS only if both ask for that much
 * (the shorter one of the two then), and an interval at most half of it. */
ia__beat ia__beat_agree(ia__beat a, ia__beat b);
static inline bool ia__beat_on(ia__beat b) {
  return b.interval_ms != 0;
}

/* One connection's liveness. rx is bumped by whichever thread reads the
 * socket; the rest is the loop's. */
typedef struct ia__live {
  _Atomic uint64_t rx;  /* bytes received */
  _Atomic uint64_t mid; /* 0, or which frame the reader waits in the middle of */
  uint64_t frames;      /* the reader's: whole frames it has seen */
  bool mid_said;        /* the reader's: mid is not 0 */
  /* The loop's, after the reader's: a frame read touches one cache line. */
  uint64_t seen_rx, seen_tx; /* rx and the stream's drained count at the last look */
  uint64_t heard_ms;         /* when the last sign of life was seen */
  uint64_t ping_ms;          /* when the next Ping is due */
  uint64_t mid_seen;         /* mid at the last look */
  uint64_t mid_rx, mid_ms;   /* rx and the time when this stretch of it began */
} ia__live;

static inline void ia__live_rx(ia__live *l, size_t n) {
  atomic_fetch_add_explicit(&l->rx, n, memory_order_relaxed);
}
/* The reader saw the head of its input: a whole frame (`ready`), or not
 * yet, with some of it in (`partial`) or nothing. It says so to the loop's
 * stalled-frame guard only when that changes: the hot path, a whole frame
 * at a time and nothing after it, stores nothing. */
static inline void ia__live_head(ia__live *l, bool ready, bool partial) {
  if (ready) l->frames++;
  bool mid = !ready && partial;
  if (!mid && !l->mid_said) return;
  atomic_store_explicit(&l->mid, mid ? l->frames + 1 : 0, memory_order_relaxed);
  l->mid_said = mid;
}

/* Starts watching at `now` (the handshake just ended). */
void ia__live_start(ia__live *l, uint64_t now_ms);

typedef enum ia__live_rc {
  IA__LIVE_OK = 0,
  IA__LIVE_PING, /* a Ping is due now (the next is scheduled) */
  IA__LIVE_DEAD, /* nothing for the tolerance: drop the connection */
} ia__live_rc;

/* The loop's look at `now`. `tx` is the connection's stream's drained
 * count (ia__ws_drained). A Ping is only ever due when `pings`. */
ia__live_rc ia__live_check(ia__live *l, ia__beat b, uint64_t tx, uint64_t now_ms, bool pings);
/* True if one frame has been arriving all through the last `window_ms`
 * slower than IA__FRAME_MIN_RATE: the peer is cut off. The loop calls it
 * at every look, whatever the heartbeat setting. */
bool ia__live_stalled(ia__live *l, uint32_t window_ms, uint64_t now_ms);
/* How long the connection has been silent at `now`. */
uint64_t ia__live_silent_ms(const ia__live *l, uint64_t now_ms);

#endif
