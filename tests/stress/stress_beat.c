/*
 * stress_beat: heartbeats under load, and connections dropped for silence
 * while other threads use them.
 *
 * Phase 1: a slave and a master with a 10 ms heartbeat (so that the loop's
 * Pings and the slave's Pongs interleave with everything else on the
 * streams) run blocking Sums on two threads, async Sleeps handed to the
 * slave's loop on a third, and pings on a fourth; no connection may be
 * lost, every result must be right. Then the same with the master's
 * heartbeats off: the slave's loop sends the Pings itself, among the
 * worker's replies, and whichever master thread reads answers them.
 *
 * Phase 2: fake slaves that agree to a short heartbeat and then say
 * nothing: a thread blocked in ia_call on each must get CONNECTION_LOST,
 * an async task on it must end LOST, and the state callback must say LOST
 * exactly once -- the loop's drop racing the caller's read.
 *
 * Phase 3: raw masters that propose a short heartbeat and then go quiet:
 * the slave drops each (lost_connection once, CONNECTION_LOST) and takes
 * the next.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "stress.h"
#include "sum_handlers.h"

#define CHANNEL 47
#define BEAT_MS 10
#define LOAD_MS 1500
#define MAX_CALLS 20000
#define SILENT_ROUNDS 12

static uint64_t deadline;
static atomic_long sums, sleeps, pings, lost_states, lost_masters;

/* ---- phase 1 ---- */

static void *summer_main(void *arg) {
  ia_conn *c = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)(uintptr_t)&r);
  for (int i = 0; i < MAX_CALLS && stress_before(deadline); i++) {
    char why[IA_ERROR_MESSAGE_MAX];
    ia_code rc = stress_call_sum(c, &r, i % 2 == 0, why);
    if (!STRESS_CHECK(rc == IA_OK, "Sum with heartbeats on: %s: %s", ia_code_name(rc), why)) break;
    atomic_fetch_add(&sums, 1);
  }
  return NULL;
}

static void *sleeper_main(void *arg) {
  ia_conn *c = arg;
  for (int i = 0; i < 200 && stress_before(deadline); i++) {
    ia_task *t = tu_sleep_task_new(c, 5);
    if (!STRESS_CHECK(t != NULL, "no Sleep task")) break;
    ia_code rc = ia_task_start(t);
    ia_code jr = rc == IA_OK ? ia_task_join(t, TU_WAIT_MS) : rc;
    ia_status st = ia_task_status(t);
    /* 601: a Sum held the slot; anything else is a failure. */
    bool busy = st == IA_STATUS_START_FAILED && ia_task_error(t)->code == IA_TASK_ALREADY_EXIST;
    bool ok = busy || STRESS_CHECK(jr == IA_OK && st == IA_STATUS_COMPLETED, "Sleep with heartbeats on: %s (%s)",
                                   ia_status_name(st), ia_code_name(ia_task_error(t)->code));
    ia_task_free(t);
    if (!ok) break;
    if (!busy) atomic_fetch_add(&sleeps, 1);
  }
  return NULL;
}

static void *pinger_main(void *arg) {
  ia_conn *c = arg;
  for (int i = 0; i < 2000 && stress_before(deadline); i++) {
    ia_error err = IA_ERROR_INIT;
    ia_code rc = ia_conn_ping(c, TU_WAIT_MS, NULL, &err);
    bool ok = STRESS_CHECK(rc == IA_OK, "ping with heartbeats on: %s: %s", ia_code_name(rc), err.message);
    ia_error_clear(&err);
    if (!ok) break;
    atomic_fetch_add(&pings, 1);
    tu_sleep_ms(2);
  }
  return NULL;
}

static void load_phase(uint32_t master_beat_ms) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = BEAT_MS;
  config.heartbeat_tolerance_ms = stress_ms(2000);
  ia_error err = IA_ERROR_INIT;
  ia_slave *s = NULL;
  ia_code rc = tu_slave_start(&config, &s, &err);
  ia_master *m = NULL;
  if (STRESS_CHECK(rc == IA_OK, "slave: %s", err.message))
    rc = tu_master_start_beat("beat", CHANNEL, master_beat_ms, master_beat_ms ? stress_ms(2000) : 0, &m, &err);
  ia_conn *c = NULL;
  if (m && STRESS_CHECK(rc == IA_OK, "master: %s", err.message)) c = stress_connect(m, "loaded", ia_slave_port(s), &rc);
  if (c) {
    stress_phase(master_beat_ms ? "Sums, Sleeps and pings with a 10 ms heartbeat"
                                : "the same with the master's heartbeats off: the slave pings it");
    deadline = stress_deadline(LOAD_MS);
    pthread_t t[4];
    bool up[4] = {stress_spawn(&t[0], summer_main, c), stress_spawn(&t[1], summer_main, c),
                  stress_spawn(&t[2], sleeper_main, c), stress_spawn(&t[3], pinger_main, c)};
    for (int i = 0; i < 4; i++)
      if (up[i]) stress_join(t[i], stress_ms(30000), "a caller with heartbeats on");
    STRESS_CHECK(ia_conn_is_connected(c), "the loaded connection was dropped by its heartbeat");
  }
  ia_error_clear(&err);
  ia_conn_free(c);
  ia_master_free(m);
  ia_slave_free(s);
}

/* ---- phase 2 ---- */

static void silent_script(tu_fake *fake, int fd) {
  (void)fake;
  if (!tu_raw_welcome_beat(fd, true, BEAT_MS, 4 * BEAT_MS, NULL)) return;
  /* Reads (Pings, a Task) and never answers, until the master closes. */
  uint64_t end = tu_now_ms() + stress_ms(10000);
  while (tu_now_ms() < end) {
    Interaction__V1__Frame *f = NULL;
    if (tu_raw_read_frame(fd, 100, &f) == 0) break;
    if (f) interaction__v1__frame__free_unpacked(f, NULL);
  }
}

static void on_state(ia_conn *conn, ia_conn_state state, const ia_error *why, void *user) {
  (void)conn;
  (void)user;
  if (STRESS_CHECK(state == IA_CONN_LOST && why->code == IA_CONNECTION_LOST, "state %s (%s)",
                   ia_conn_state_name(state), ia_code_name(why->code)))
    atomic_fetch_add(&lost_states, 1);
}

typedef struct blocked_call {
  ia_conn *conn;
  ia_code rc;
} blocked_call;

static void *blocked_main(void *arg) {
  blocked_call *b = arg;
  int64_t sum = 0;
  ia_error err = IA_ERROR_INIT;
  b->rc = tu_call_sum(b->conn, 1, 2, &sum, &err);
  ia_error_clear(&err);
  return NULL;
}

static void silent_slaves_phase(void) {
  stress_phase("fake slaves that agree to heartbeats and go silent");
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = tu_master_start_beat("beat", CHANNEL, BEAT_MS, 4 * BEAT_MS, &m, &err);
  if (!STRESS_CHECK(rc == IA_OK, "master: %s", err.message)) return;
  for (int i = 0; i < SILENT_ROUNDS && stress_failures() == 0; i++) {
    tu_fake fake;
    if (!STRESS_CHECK(tu_fake_start(&fake, silent_script, NULL, 0), "fake slave")) break;
    ia_conn *c = NULL;
    rc = tu_connect(m, "silent", fake.port, &c, &err);
    if (STRESS_CHECK(rc == IA_OK, "connect to a fake: %s", err.message)) {
      STRESS_CHECK(ia_conn_on_state(c, on_state, NULL) == IA_OK, "on_state");
      ia_task *t = tu_sleep_task_new(c, 1000);
      ia_code sr = t ? ia_task_start(t) : IA_NO_MEMORY;
      blocked_call b = {c, IA_OK};
      pthread_t th;
      if (stress_spawn(&th, blocked_main, &b)) {
        stress_join(th, stress_ms(10000), "a call on a silent slave");
        STRESS_CHECK(b.rc == IA_CONNECTION_LOST, "a call on a silent slave: %s", ia_code_name(b.rc));
      }
      if (t && sr == IA_OK) {
        STRESS_CHECK(ia_task_join(t, stress_ms(10000)) == IA_OK && ia_task_status(t) == IA_STATUS_LOST,
                     "an async task on a silent slave ended %s", ia_status_name(ia_task_status(t)));
      }
      ia_task_free(t);
      STRESS_CHECK(!ia_conn_is_connected(c), "a silent slave is still connected");
    }
    ia_error_clear(&err);
    ia_conn_free(c);
    tu_fake_join(&fake);
  }
  ia_master_free(m);
  STRESS_CHECK(atomic_load(&lost_states) == SILENT_ROUNDS || stress_failures() > 0,
               "%ld LOST states for %d silent slaves", atomic_load(&lost_states), SILENT_ROUNDS);
}

/* ---- phase 3 ---- */

static void on_lost(const char *master_name, ia_code why, void *user) {
  (void)master_name;
  (void)user;
  if (STRESS_CHECK(why == IA_CONNECTION_LOST, "lost_connection: %s", ia_code_name(why)))
    atomic_fetch_add(&lost_masters, 1);
}

static void silent_masters_phase(void) {
  stress_phase("raw masters that propose heartbeats and go silent");
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = BEAT_MS;
  config.heartbeat_tolerance_ms = 4 * BEAT_MS;
  config.lost_connection = on_lost;
  ia_error err = IA_ERROR_INIT;
  ia_slave *s = NULL;
  ia_code rc = tu_slave_start(&config, &s, &err);
  if (!STRESS_CHECK(rc == IA_OK, "slave: %s", err.message)) return;
  for (int i = 0; i < SILENT_ROUNDS && stress_failures() == 0; i++) {
    int fd = tu_raw_connect(ia_slave_port(s));
    bool welcomed = false;
    uint64_t end = tu_now_ms() + TU_WAIT_MS;
    /* The previous silent master may still hold the seat for a moment. */
    while (fd >= 0 && tu_now_ms() < end) {
      Interaction__V1__Frame *f = NULL;
      if (!tu_raw_send_hello_beat(fd, CHANNEL, "quiet", true, BEAT_MS, 4 * BEAT_MS) ||
          tu_raw_read_frame(fd, TU_WAIT_MS, &f) != 1)
        break;
      welcomed = f->body_case == INTERACTION__V1__FRAME__BODY_WELCOME;
      interaction__v1__frame__free_unpacked(f, NULL);
      if (welcomed) break;
      close(fd);
      tu_sleep_ms(5);
      fd = tu_raw_connect(ia_slave_port(s));
    }
    if (STRESS_CHECK(welcomed, "round %d: a raw master was not welcomed", i))
      STRESS_CHECK(tu_raw_expect_closed(fd, stress_ms(5000)), "round %d: the slave kept a silent master", i);
    if (fd >= 0) close(fd);
  }
  ia_slave_free(s);
  STRESS_CHECK(atomic_load(&lost_masters) == SILENT_ROUNDS || stress_failures() > 0,
               "%ld lost_connection calls for %d silent masters", atomic_load(&lost_masters), SILENT_ROUNDS);
}

int main(void) {
  stress_begin("stress_beat", "heartbeats under load; silent peers dropped while threads use them", 120);
  load_phase(BEAT_MS);
  load_phase(0);
  silent_slaves_phase();
  silent_masters_phase();
  stress_report("Sums with the right result, heartbeats on", atomic_load(&sums));
  stress_report("async Sleeps completed, heartbeats on", atomic_load(&sleeps));
  stress_report("pings answered, heartbeats on", atomic_load(&pings));
  stress_report("silent slaves dropped: LOST once each", atomic_load(&lost_states));
  stress_report("silent masters dropped: lost_connection once each", atomic_load(&lost_masters));
  STRESS_CHECK(atomic_load(&sums) > 0 && atomic_load(&pings) > 0, "the load phase did nothing");
  return stress_end();
}
