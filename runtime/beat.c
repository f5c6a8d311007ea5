/*
 * Heartbeats: the agreed setting and a connection's liveness (see
 * runtime/beat.h for the protocol). Pure functions of their arguments and
 * the one struct: no clock is read here, no socket touched.
 */
#include "runtime/beat.h"

static uint32_t max_u32(uint32_t a, uint32_t b) {
  return a > b ? a : b;
}

ia__beat ia__beat_from(uint32_t interval_ms, uint32_t tolerance_ms) {
  ia__beat b = {0, 0};
  if (interval_ms == 0 || tolerance_ms == 0) return b;
  b.interval_ms = max_u32(interval_ms, IA__BEAT_MIN_MS);
  uint64_t twice = 2ull * b.interval_ms;
  b.tolerance_ms = tolerance_ms < twice ? (uint32_t)(twice > UINT32_MAX ? UINT32_MAX : twice) : tolerance_ms;
  return b;
}

static uint32_t min_u32(uint32_t a, uint32_t b) {
  return a < b ? a : b;
}

/* The longer of a and b, but over `cap` only as far as both go. */
static uint32_t longer_capped(uint32_t a, uint32_t b, uint32_t cap) {
  return min_u32(max_u32(a, b), max_u32(min_u32(a, b), cap));
}

ia__beat ia__beat_agree(ia__beat a, ia__beat b) {
  if (!ia__beat_on(a) || !ia__beat_on(b)) return (ia__beat){0, 0};
  uint32_t tolerance = longer_capped(a.tolerance_ms, b.tolerance_ms, IA__BEAT_MAX_TOLERANCE_MS);
  uint32_t interval = min_u32(max_u32(a.interval_ms, b.interval_ms), tolerance / 2);
  return ia__beat_from(interval, tolerance);
}

void ia__live_start(ia__live *l, uint64_t now_ms) {
  l->seen_rx = atomic_load_explicit(&l->rx, memory_order_relaxed);
  l->seen_tx = 0;
  l->heard_ms = now_ms;
  l->ping_ms = now_ms;
}

ia__live_rc ia__live_check(ia__live *l, ia__beat b, uint64_t tx, uint64_t now_ms, bool pings) {
  if (!ia__beat_on(b)) return IA__LIVE_OK;
  uint64_t rx = atomic_load_explicit(&l->rx, memory_order_relaxed);
  if (rx != l->seen_rx || tx != l->seen_tx) {
    l->seen_rx = rx;
    l->seen_tx = tx;
    l->heard_ms = now_ms;
  }
  if (ia__live_silent_ms(l, now_ms) >= b.tolerance_ms) return IA__LIVE_DEAD;
  if (!pings || now_ms < l->ping_ms) return IA__LIVE_OK;
  l->ping_ms = now_ms + b.interval_ms;
  return IA__LIVE_PING;
}

bool ia__live_stalled(ia__live *l, uint32_t window_ms, uint64_t now_ms) {
  uint64_t mid = atomic_load_explicit(&l->mid, memory_order_relaxed);
  uint64_t rx = atomic_load_explicit(&l->rx, memory_order_relaxed);
  if (mid == 0 || mid != l->mid_seen || now_ms < l->mid_ms) {
    l->mid_seen = mid; /* a new frame in progress, or none: start over */
    l->mid_rx = rx;
    l->mid_ms = now_ms;
    return false;
  }
  if (now_ms - l->mid_ms < window_ms) return false;
  if (rx - l->mid_rx < (uint64_t)window_ms * IA__FRAME_MIN_RATE / 1000) return true;
  l->mid_rx = rx; /* fast enough: the next stretch */
  l->mid_ms = now_ms;
  return false;
}

uint64_t ia__live_silent_ms(const ia__live *l, uint64_t now_ms) {
  /* A `now` read just before the connection was started is earlier than
   * its start: that is no silence at all, not 2^64 ms of it. */
  return now_ms > l->heard_ms ? now_ms - l->heard_ms : 0;
}
