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
  ia__live_rx(&l, 1);
  cr_assert_eq(ia__live_check(&l, b, 0, 1100, true), IA__LIVE_PING);
  cr_assert_eq(ia__live_check(&l, b, 0, 1150, false), IA__LIVE_OK, "a slave never pings");
}

Test(beat, silence_past_the_tolerance_is_death_and_any_sign_of_life_resets_it) {
  ia__beat b = ia__beat_from(100, 500);
  ia__live l = {0};
  ia__live_start(&l, 0);
  cr_assert_eq(ia__live_check(&l, b, 0, 499, false), IA__LIVE_OK);
  ia__live_rx(&l, 1); /* bytes came in */
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

Test(beat, no_end_stretches_the_tolerance_past_a_minute_unless_both_ask) {
  /* A master that proposes an hour would hold the seat of a slave that
   * wants 5 s for that long. */
  ia__beat own = ia__beat_from(1000, 5000), greedy = ia__beat_from(3600000, 7200000);
  ia__beat ab = ia__beat_agree(own, greedy), ba = ia__beat_agree(greedy, own);
  cr_assert_eq(ab.tolerance_ms, IA__BEAT_MAX_TOLERANCE_MS, "agreed tolerance %u", ab.tolerance_ms);
  cr_assert_eq(ab.interval_ms, IA__BEAT_MAX_TOLERANCE_MS / 2, "agreed interval %u", ab.interval_ms);
  cr_assert_eq(ba.tolerance_ms, ab.tolerance_ms);
  cr_assert_eq(ba.interval_ms, ab.interval_ms);
  /* Both ask for more than a minute: the shorter of the two. */
  ia__beat both = ia__beat_agree(ia__beat_from(40000, 90000), ia__beat_from(50000, 120000));
  cr_assert_eq(both.tolerance_ms, 90000, "agreed tolerance %u", both.tolerance_ms);
  cr_assert_eq(both.interval_ms, 45000, "agreed interval %u", both.interval_ms);
}

Test(beat, a_frame_in_progress_must_keep_up_the_minimum_rate) {
  ia__live l = {0};
  ia__live_start(&l, 0);
  cr_assert_not(ia__live_stalled(&l, 1000, 0), "no frame in progress");
  ia__live_head(&l, false, true); /* the first bytes of a frame */
  ia__live_rx(&l, 10);
  cr_assert_not(ia__live_stalled(&l, 1000, 100), "the frame was only just seen");
  ia__live_rx(&l, IA__FRAME_MIN_RATE - 1);
  cr_assert_not(ia__live_stalled(&l, 1000, 1099), "a whole window has not passed");
  cr_assert(ia__live_stalled(&l, 1000, 1100), "%u bytes in a 1 s window is under the floor", IA__FRAME_MIN_RATE - 1);
}

Test(beat, a_steady_frame_a_new_frame_or_none_is_never_stalled) {
  ia__live l = {0};
  ia__live_start(&l, 0);
  ia__live_head(&l, false, true);
  cr_assert_not(ia__live_stalled(&l, 1000, 0));
  ia__live_rx(&l, IA__FRAME_MIN_RATE);
  cr_assert_not(ia__live_stalled(&l, 1000, 1000), "the floor itself is enough");
  cr_assert_not(ia__live_stalled(&l, 1000, 1500), "the next window has only begun");
  ia__live_head(&l, true, true);  /* that frame is whole... */
  ia__live_head(&l, false, true); /* ...and the next has begun */
  cr_assert_not(ia__live_stalled(&l, 1000, 2000), "a new frame starts a new window");
  cr_assert_not(ia__live_stalled(&l, 1000, 2999));
  ia__live_head(&l, true, false);  /* whole, and nothing after it */
  ia__live_head(&l, false, false); /* waiting for nothing */
  cr_assert_not(ia__live_stalled(&l, 1000, 3000));
  cr_assert_not(ia__live_stalled(&l, 1000, 60000), "an idle connection is silence, not a stall");
}
