/* Masters that hold the slave's only seat without using it: one that
 * proposes no heartbeats and goes quiet, one that stops half-way through a
 * frame, one that trickles a large frame a byte at a time (never silent,
 * never done). Each is cut off with a clear code within the tolerance, the
 * slave's lost_connection says so, and the next master is served. A master
 * without heartbeats that answers the slave's Pings, and one that sends a
 * frame slowly but steadily, keep their seat. And the other way round: a
 * slave that trickles its reply is dropped by the master. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "runtime/beat.h"

#define CHANNEL 71
#define BEAT_MS 50u
#define TOL_MS 300u
/* Generous slack over "tolerance + one interval": a loaded 2-core CI box. */
#define SLACK_MS 1500u

static tu_lost lost;

static ia_slave *watched_slave(uint32_t beat_ms, uint32_t tol_ms) {
  tu_lost_init(&lost);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = beat_ms;
  config.heartbeat_tolerance_ms = tol_ms;
  config.lost_connection = tu_on_lost;
  config.user = &lost;
  return fixture_slave_start(&config);
}

/* A raw master on s: Hello (proposing beat_ms/tol_ms when has_beat), then
 * the Welcome read. */
static int raw_master(ia_slave *s, bool has_beat, uint32_t beat_ms, uint32_t tol_ms) {
  int fd = tu_raw_connect(ia_slave_port(s));
  cr_assert_geq(fd, 0, "cannot connect to the slave");
  cr_assert(tu_raw_send_hello_beat(fd, CHANNEL, "stalled", has_beat, beat_ms, tol_ms));
  Interaction__V1__Frame *w = NULL;
  cr_assert_eq(tu_raw_read_frame(fd, TU_WAIT_MS, &w), 1, "no answer to Hello");
  cr_assert_eq(w->body_case, INTERACTION__V1__FRAME__BODY_WELCOME, "Hello got body %d", w->body_case);
  interaction__v1__frame__free_unpacked(w, NULL);
  return fd;
}

/* Reads what the slave sends until its Goodbye, counting heartbeat Pings
 * (id 0): true with the Goodbye's code. */
static bool goodbye_after_pings(int fd, uint32_t timeout_ms, uint32_t *code, int *pings) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  for (int i = 0; i < 1000 && tu_now_ms() < deadline; i++) {
    Interaction__V1__Frame *f = NULL;
    if (tu_raw_read_frame(fd, (uint32_t)(deadline - tu_now_ms()), &f) != 1) return false;
    int kind = f->body_case;
    if (kind == INTERACTION__V1__FRAME__BODY_PING && f->id == 0) ++*pings;
    if (kind == INTERACTION__V1__FRAME__BODY_GOODBYE) *code = f->goodbye->has_code ? f->goodbye->code : 0;
    interaction__v1__frame__free_unpacked(f, NULL);
    if (kind == INTERACTION__V1__FRAME__BODY_GOODBYE) return true;
  }
  return false;
}

/* lost_connection fired once, with `want`, within [least_ms, most_ms] of t0
 * (the upper bound not under valgrind). */
static void assert_lost(ia_code want, uint64_t t0, uint64_t least_ms, uint64_t most_ms, const char *what) {
  cr_assert(tu_flag_wait(&lost.calls, 1, (uint32_t)most_ms + 5000), "lost_connection never fired for %s",
            what);
  uint64_t at = 0;
  ia_code why = tu_lost_last(&lost, &at);
  cr_log_info("%s: lost_connection %s after %llu ms", what, ia_code_name(why), (unsigned long long)(at - t0));
  cr_assert_eq(why, want, "%s: lost_connection said %s, not %s", what, ia_code_name(why), ia_code_name(want));
  cr_assert_geq(at - t0, least_ms, "%s: dropped after only %llu ms", what, (unsigned long long)(at - t0));
  if (!tu_valgrind())
    cr_assert_leq(at - t0, most_ms, "%s: dropped only after %llu ms", what, (unsigned long long)(at - t0));
  cr_assert_eq(tu_flag_count(&lost.calls), 1, "lost_connection fired %d times", tu_flag_count(&lost.calls));
}

/* A real master gets the seat and a Sum works. */
static void assert_next_master_served(ia_slave *s) {
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("next", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);
  assert_sum_works(conn, 40, 2);
  ia_conn_free(conn);
  ia_master_free(m);
}

/* The first bytes of a Task frame whose body is `len` bytes: its length
 * prefix and the start of the body. */
static void send_frame_head(int fd, uint32_t len) {
  const uint8_t head[6] = {
      (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len, 0x08, 0x07};
  cr_assert(tu_raw_write(fd, head, sizeof head), "cannot write the head of a frame");
}

/* How a master that goes quiet is to be cut off. */
typedef struct quiet_case {
  uint32_t beat_ms, tol_ms; /* the slave's setting */
  bool proposes;            /* the master proposes the same in its Hello (else none) */
  bool half_frame;          /* the master sends the first bytes of a frame before it goes quiet */
  ia_code code;             /* the Goodbye's and lost_connection's code */
  int min_pings, max_pings; /* heartbeat Pings the slave sends it meanwhile */
  uint64_t least_ms, most_ms;
  const char *what;
} quiet_case;

static void assert_quiet_master_cut_off(const quiet_case *q) {
  ia_slave *s = watched_slave(q->beat_ms, q->tol_ms);
  int fd = raw_master(s, q->proposes, q->beat_ms, q->tol_ms);
  if (q->half_frame) send_frame_head(fd, 1000);
  uint64_t t0 = tu_now_ms();
  uint32_t code = 0;
  int pings = 0;
  cr_assert(goodbye_after_pings(fd, (uint32_t)q->most_ms + 5000, &code, &pings), "%s: no Goodbye", q->what);
  cr_assert_eq(code, q->code, "%s: Goodbye code %u, not %d", q->what, code, q->code);
  cr_assert(pings >= q->min_pings && pings <= q->max_pings, "%s: the slave sent %d heartbeat Pings", q->what,
            pings);
  assert_lost(q->code, t0, q->least_ms, q->most_ms, q->what);
  close(fd);
  assert_next_master_served(s);
  ia_slave_free(s);
}

Test(stalled_peers, a_master_that_proposes_no_heartbeats_is_pinged_and_dropped_once_quiet, .timeout = 60) {
  /* Before this, a Hello without heartbeat fields switched the slave's
   * watch off: such a master held the only seat for as long as it liked.
   * Now the slave pings it (at least twice in a tolerance of 6 intervals). */
  const quiet_case q = {.beat_ms = BEAT_MS,
                        .tol_ms = TOL_MS,
                        .code = IA_CONNECTION_LOST,
                        .min_pings = 2,
                        .max_pings = 1000,
                        .least_ms = TOL_MS - BEAT_MS,
                        .most_ms = TOL_MS + BEAT_MS + SLACK_MS,
                        .what = "a quiet master without heartbeats"};
  assert_quiet_master_cut_off(&q);
}

Test(stalled_peers, a_master_without_heartbeats_that_answers_pings_keeps_its_seat, .timeout = 60) {
  /* Our master with heartbeats off sends no Pings of its own and never
   * drops the slave for silence, but answers the slave's. */
  ia_slave *s = watched_slave(BEAT_MS, TOL_MS);
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start_beat("quiet", CHANNEL, 0, 0, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);
  tu_sleep_ms(4 * TOL_MS);
  cr_assert_eq(tu_flag_count(&lost.calls), 0, "the slave dropped a master that answers its Pings");
  cr_assert(ia_conn_is_connected(conn), "the master dropped its slave");
  assert_sum_works(conn, 1, 2);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(s);
}

Test(stalled_peers, a_master_that_stops_half_way_through_a_frame_loses_the_seat, .timeout = 60) {
  /* The probe in the issue: half a frame after Hello, then nothing. It
   * proposed heartbeats, so the slave waits for its Pings, sending none. */
  const quiet_case q = {.beat_ms = BEAT_MS,
                        .tol_ms = TOL_MS,
                        .proposes = true,
                        .half_frame = true,
                        .code = IA_CONNECTION_LOST,
                        .least_ms = TOL_MS - BEAT_MS,
                        .most_ms = TOL_MS + BEAT_MS + SLACK_MS,
                        .what = "half a frame, then quiet"};
  assert_quiet_master_cut_off(&q);
}

/* Writes one byte of the frame every 20 ms (50 bytes/s) until the slave
 * answers or 10 s pass: true with the Goodbye's code. */
static bool trickle_until_goodbye(int fd, uint32_t *code) {
  const uint8_t byte = 0;
  uint64_t deadline = tu_now_ms() + 10000;
  while (tu_now_ms() < deadline) {
    if (!tu_raw_write(fd, &byte, 1)) break; /* closed: the Goodbye is waiting */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 20) == 1) break;
  }
  int pings = 0;
  return goodbye_after_pings(fd, TU_WAIT_MS, code, &pings);
}

Test(stalled_peers, a_frame_trickled_a_byte_at_a_time_is_cut_off_with_702, .timeout = 60) {
  /* Every byte is a sign of life, so heartbeats alone never drop this
   * master; the frame must keep up IA__FRAME_MIN_RATE over the tolerance. */
  ia_slave *s = watched_slave(BEAT_MS, TOL_MS);
  int fd = raw_master(s, true, BEAT_MS, TOL_MS);
  send_frame_head(fd, 1u << 20);
  uint64_t t0 = tu_now_ms();
  uint32_t code = 0;
  cr_assert(trickle_until_goodbye(fd, &code), "no Goodbye for a trickling master");
  cr_assert_eq(code, IA_TIMEOUT, "Goodbye code %u, not 702", code);
  /* One window to see the frame begin, one to measure it. */
  assert_lost(IA_TIMEOUT, t0, TOL_MS - BEAT_MS, 2 * TOL_MS + SLACK_MS, "a trickled frame");
  close(fd);
  assert_next_master_served(s);
  ia_slave_free(s);
}

Test(stalled_peers, a_stalled_frame_is_cut_off_with_heartbeats_off_on_both_ends, .timeout = 60) {
  /* No heartbeats at all: nothing watches for silence, but a frame still
   * has the default tolerance to keep arriving. */
  const uint32_t window = IA__BEAT_DEFAULT_TOLERANCE_MS;
  const quiet_case q = {.half_frame = true,
                        .code = IA_TIMEOUT,
                        .least_ms = window - 50,
                        .most_ms = 2 * window + SLACK_MS,
                        .what = "a stalled frame without heartbeats"};
  assert_quiet_master_cut_off(&q);
}

Test(stalled_peers, a_frame_sent_slowly_but_steadily_is_served, .timeout = 60) {
  /* 4000 bytes/s, well over the floor: a 6000-byte Task takes 1.5 s, five
   * tolerances, and is answered, not cut off. */
  ia_slave *s = watched_slave(BEAT_MS, TOL_MS);
  int fd = raw_master(s, true, BEAT_MS, TOL_MS);
  enum { PAYLOAD = 6000, CHUNK = 200 };
  uint8_t *payload = calloc(1, PAYLOAD);
  cr_assert_not_null(payload);
  Interaction__V1__Task task = INTERACTION__V1__TASK__INIT;
  task.method = (char *)"no.Such/Method";
  task.has_payload = 1;
  task.payload.data = payload;
  task.payload.len = PAYLOAD;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = 7;
  frame.body_case = INTERACTION__V1__FRAME__BODY_TASK;
  frame.task = &task;
  size_t len = 0;
  uint8_t *body = tu_frame_pack(&frame, &len);
  cr_assert_not_null(body);
  const uint8_t head[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  cr_assert(tu_raw_write(fd, head, sizeof head));
  for (size_t at = 0; at < len; at += CHUNK) {
    cr_assert(tu_raw_write(fd, body + at, len - at < CHUNK ? len - at : CHUNK),
              "the slave cut a steady frame off");
    tu_sleep_ms(CHUNK * 1000 / 4000);
  }
  Interaction__V1__Frame *reply = NULL;
  cr_assert_eq(tu_raw_read_frame(fd, TU_WAIT_MS, &reply), 1, "no answer to a steady frame");
  cr_assert_neq(reply->body_case, INTERACTION__V1__FRAME__BODY_GOODBYE, "a steady frame got a Goodbye %u",
                reply->goodbye ? reply->goodbye->code : 0);
  cr_assert_eq(reply->id, 7, "the answer is to frame %llu", (unsigned long long)reply->id);
  interaction__v1__frame__free_unpacked(reply, NULL);
  cr_assert_eq(tu_flag_count(&lost.calls), 0, "the slave dropped a master that sends steadily");
  free(body);
  free(payload);
  close(fd);
  ia_slave_free(s);
}

/* ---- a slave that trickles its reply ---- */

static void trickling_slave(tu_fake *fake, int fd) {
  (void)fake;
  if (!tu_raw_welcome_beat(fd, true, BEAT_MS, TOL_MS, NULL)) return;
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  bool task = false;
  while (!task && tu_now_ms() < deadline) {
    Interaction__V1__Frame *f = NULL;
    if (tu_raw_read_frame(fd, TU_WAIT_MS, &f) != 1) return;
    task = f->body_case == INTERACTION__V1__FRAME__BODY_TASK;
    interaction__v1__frame__free_unpacked(f, NULL);
  }
  if (!task) return;
  send_frame_head(fd, 1u << 20);
  const uint8_t byte = 0;
  deadline = tu_now_ms() + 10000;
  while (tu_now_ms() < deadline && tu_raw_write(fd, &byte, 1)) /* until the master closes */
    tu_sleep_ms(20);
}

Test(stalled_peers, a_slave_that_trickles_its_reply_is_dropped_with_702, .timeout = 60) {
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, trickling_slave, NULL, 0));
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start_beat("m", CHANNEL, BEAT_MS, TOL_MS, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "trickler", fake.port, &conn, &err), &err);
  ia_task *t = tu_sum_task_new(conn, 1, 2);
  cr_assert_not_null(t);
  uint64_t t0 = tu_now_ms();
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, 2 * TOL_MS + SLACK_MS + 5000), IA_OK, "the task never ended");
  uint64_t took = tu_now_ms() - t0;
  cr_log_info("a trickled reply ended the task after %llu ms (tolerance %u ms)", (unsigned long long)took,
              TOL_MS);
  TU_ASSERT_STATUS(t, IA_STATUS_LOST);
  cr_assert_eq(ia_task_error(t)->code, IA_TIMEOUT, "code %d %s (%s)", ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code), ia_task_error(t)->message);
  cr_assert_geq(took, TOL_MS - BEAT_MS, "ended after only %llu ms", (unsigned long long)took);
  if (!tu_valgrind())
    cr_assert_leq(took, 2 * TOL_MS + SLACK_MS, "ended only after %llu ms", (unsigned long long)took);
  cr_assert_not(ia_conn_is_connected(conn), "a slave whose reply stalled is still connected");
  ia_task_free(t);
  ia_conn_free(conn);
  ia_master_free(m);
  tu_fake_join(&fake);
}
