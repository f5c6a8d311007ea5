/* The heartbeat setting two ends agree on, and a connection's liveness
 * (runtime/beat.c): pure functions, driven with a made-up clock. */
#include <criterion/criterion.h>

#include "runtime/beat.h"

Test(beat, zero_on_either_field_turns_heartbeats_off) {
  cr_assert_not(ia__beat_on(ia__beat_from(0, 5000)));
  cr_assert_not(ia__beat_on(ia__beat_from(1000, 0)));
  cr_assert(ia__beat_on(ia__beat_from(1000, 5000)));
}

Test(beat, a_tolerance_under_two_intervals_is_raised) {
  ia__beat b = ia__beat_from(1000, 500);
  cr_assert_eq(b.interval_ms, 1000);
  cr_assert_eq(b.tolerance_ms, 2000);
  b = ia__beat_from(1, 1);
  cr_assert_eq(b.interval_ms, IA__BEAT_MIN_MS);
  cr_assert_eq(b.tolerance_ms, 2 * IA__BEAT_MIN_MS);
}

Test(beat, agreement_takes_the_longer_of_each_and_off_wins) {
  ia__beat a = ia__beat_from(200, 1000), b = ia__beat_from(1000, 600);
  ia__beat ab = ia__beat_agree(a, b), ba = ia__beat_agree(b, a);
  cr_assert_eq(ab.interval_ms, 1000);
  cr_assert_eq(ab.tolerance_ms, 2000, "1000 is under two intervals of 1000: raised to 2000, got %u", ab.tolerance_ms);
  cr_assert_eq(ba.interval_ms, ab.interval_ms);
  cr_assert_eq(ba.tolerance_ms, ab.tolerance_ms);
  cr_assert_not(ia__beat_on(ia__beat_agree(a, ia__beat_from(0, 0))));
  cr_assert_not(ia__beat_on(ia__beat_agree(ia__beat_from(0, 0), b)));
}

Test(beat, pings_are_due_every_interval) {
  ia__beat b = ia__beat_from(100, 500);
  ia__live l = {0};
  ia__live_start(&l, 1000);
  cr_assert_eq(ia__live_check(&l, b, 0, 1000, true), IA__LIVE_PING);
  cr_assert_eq(ia__live_check(&l, b, 0, 1050, true), IA__LIVE_OK);
  ia__live_rx(&l);
  cr_assert_eq(ia__live_check(&l, b, 0, 1100, true), IA__LIVE_PING);
  cr_assert_eq(ia__live_check(&l, b, 0, 1150, false), IA__LIVE_OK, "a slave never pings");
}

Test(beat, silence_past_the_tolerance_is_death_and_any_sign_of_life_resets_it) {
  ia__beat b = ia__beat_from(100, 500);
  ia__live l = {0};
  ia__live_start(&l, 0);
  cr_assert_eq(ia__live_check(&l, b, 0, 499, false), IA__LIVE_OK);
  ia__live_rx(&l); /* bytes came in */
  cr_assert_eq(ia__live_check(&l, b, 0, 499, false), IA__LIVE_OK);
  cr_assert_eq(ia__live_check(&l, b, 0, 998, false), IA__LIVE_OK);
  cr_assert_eq(ia__live_check(&l, b, 7, 998, false), IA__LIVE_OK); /* our waiting bytes were taken */
  cr_assert_eq(ia__live_check(&l, b, 7, 1497, false), IA__LIVE_OK);
  cr_assert_eq(ia__live_check(&l, b, 7, 1498, false), IA__LIVE_DEAD);
  cr_assert_eq(ia__live_silent_ms(&l, 1498), 500);
}

Test(beat, off_is_never_dead) {
  ia__live l = {0};
  ia__live_start(&l, 0);
  cr_assert_eq(ia__live_check(&l, ia__beat_from(0, 0), 0, 1u << 30, true), IA__LIVE_OK);
}

Test(beat, a_clock_read_before_the_start_is_no_silence) {
  /* The master's tick read the clock, then a connect registered a
   * connection started a millisecond later: found 2^64 ms silent, it was
   * dropped at once (stress_conns under TSan). */
  ia__beat b = ia__beat_from(1000, 5000);
  ia__live l = {0};
  ia__live_start(&l, 1001);
  cr_assert_eq(ia__live_silent_ms(&l, 1000), 0);
  cr_assert_neq(ia__live_check(&l, b, 0, 1000, true), IA__LIVE_DEAD);
}
