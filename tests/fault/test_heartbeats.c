/* Heartbeats: a peer that stops without closing its socket -- frozen with
 * SIGSTOP, or a fake that goes quiet -- is noticed within the heartbeat
 * tolerance on both ends, and the two ends' settings are agreed in the
 * handshake so that a mismatch never drops a healthy connection. These are
 * the original module's failures: a frozen collector's task STARTED
 * forever, `is_connected` true, and a slave refusing every new master with
 * 501 after its master froze. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif
#ifndef MASTER_PROC_PATH
#error "MASTER_PROC_PATH must name the master_proc helper"
#endif

#define CHANNEL 62
#define BEAT_MS 100u
#define BEAT_TOL_MS 500u
/* Generous slack over "tolerance + one interval": a loaded 2-core CI box. */
#define SLACK_MS 1500u

static void kill_children(void) {
  tu_proc_kill_all();
}

/* ---- what the connection-state callback saw ---- */

typedef struct state_log {
  pthread_mutex_t mu;
  tu_flag calls;
  ia_conn_state state;
  ia_code code;
  char message[IA_ERROR_MESSAGE_MAX];
} state_log;

static void on_state(ia_conn *conn, ia_conn_state state, const ia_error *why, void *user) {
  (void)conn;
  state_log *log = user;
  pthread_mutex_lock(&log->mu);
  log->state = state;
  log->code = why->code;
  snprintf(log->message, sizeof log->message, "%s", why->message);
  pthread_mutex_unlock(&log->mu);
  tu_flag_raise(&log->calls);
}

static void state_log_init(state_log *log) {
  memset(log, 0, sizeof *log);
  pthread_mutex_init(&log->mu, NULL);
  tu_flag_init(&log->calls);
}

/* Asserts how long detection took: never before the tolerance less one
 * interval (the last Pong may have come an interval before the freeze),
 * never after tolerance + interval + slack. Not under valgrind. */
static void assert_detected_in_time(uint64_t elapsed_ms, const char *what) {
  cr_log_info("%s after %llu ms (tolerance %u ms, interval %u ms)", what, (unsigned long long)elapsed_ms,
              BEAT_TOL_MS, BEAT_MS);
  if (tu_valgrind()) return;
  cr_assert_geq(elapsed_ms, BEAT_TOL_MS - BEAT_MS, "%s after only %llu ms", what, (unsigned long long)elapsed_ms);
  cr_assert_leq(elapsed_ms, BEAT_TOL_MS + BEAT_MS + SLACK_MS, "%s only after %llu ms", what,
                (unsigned long long)elapsed_ms);
}

/* A Sum on `port` from a new master: the slave is free again. A cancelled
 * task still ending is tolerated as busy for a bounded 3 s. */
static void assert_new_master_works(uint16_t port, const char *name) {
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start(name, CHANNEL, &m, &err), &err);
  ia_code rc;
  uint64_t deadline = tu_now_ms() + 3000;
  while ((rc = tu_connect(m, "again", port, &conn, &err)) == IA_ALREADY_CONNECTED && tu_now_ms() < deadline) {
    ia_error_clear(&err);
    tu_sleep_ms(20);
  }
  cr_assert_eq(rc, IA_OK, "a new master cannot connect: %d %s (%s)", rc, ia_code_name(rc), err.message);
  int64_t sum = 0;
  while ((rc = tu_call_sum(conn, 30, 12, &sum, &err)) == IA_TASK_ALREADY_EXIST && tu_now_ms() < deadline) {
    ia_error_clear(&err);
    tu_sleep_ms(20);
  }
  cr_assert_eq(rc, IA_OK, "sum from a new master: %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(sum, 42);
  TU_ASSERT_OK(ia_conn_disconnect(conn, NULL, 0, TU_WAIT_MS, &err), &err);
  ia_conn_free(conn);
  ia_master_free(m);
}

Test(heartbeats, frozen_slave_ends_its_task_lost_within_the_tolerance, .timeout = 60, .fini = kill_children) {
  tu_proc slave = TU_PROC_INIT;
  const char *const extra[] = {"--heartbeat-ms", "100", "--heartbeat-tolerance-ms", "500", NULL};
  uint16_t port = tu_spawn_sum_slave(&slave, SUM_SLAVE_PATH, CHANNEL, extra);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", slave.line);

  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start_beat("coordinator", CHANNEL, BEAT_MS, BEAT_TOL_MS, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "collector", port, &conn, &err), &err);
  state_log log;
  state_log_init(&log);
  cr_assert_eq(ia_conn_on_state(conn, on_state, &log), IA_OK);
  cr_assert_eq(ia_conn_state_now(conn), IA_CONN_CONNECTED);

  ia_task *t = tu_sleep_task_new(conn, 60000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED);

  cr_assert(tu_proc_signal(&slave, SIGSTOP));
  uint64_t t0 = tu_now_ms();
  cr_assert_eq(ia_task_join(t, BEAT_TOL_MS + BEAT_MS + SLACK_MS + 2000), IA_OK,
               "the task of a frozen slave did not end");
  assert_detected_in_time(tu_now_ms() - t0, "the frozen slave's task ended");
  TU_ASSERT_STATUS(t, IA_STATUS_LOST);
  cr_assert_eq(ia_task_error(t)->code, IA_CONNECTION_LOST, "code %d %s", ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code));
  cr_assert_not(ia_conn_is_connected(conn), "a frozen slave's connection is still 'connected'");
  cr_assert(tu_flag_wait(&log.calls, 1, TU_WAIT_MS), "the state callback did not run");
  pthread_mutex_lock(&log.mu);
  cr_assert_eq(log.state, IA_CONN_LOST, "state %s", ia_conn_state_name(log.state));
  cr_assert_eq(log.code, IA_CONNECTION_LOST, "why %d %s (%s)", log.code, ia_code_name(log.code), log.message);
  pthread_mutex_unlock(&log.mu);
  cr_assert_eq(ia_conn_state_now(conn), IA_CONN_LOST);
  cr_assert_null(tu_found(m, "collector"), "a lost connection is still registered");

  /* Thawed, the slave finds its master gone and serves the next one. */
  cr_assert(tu_proc_signal(&slave, SIGCONT));
  assert_new_master_works(port, "next-coordinator");
  cr_assert_eq(tu_flag_count(&log.calls), 1, "the state callback ran %d times", tu_flag_count(&log.calls));

  ia_task_free(t);
  ia_conn_free(conn);
  ia_master_free(m);
  tu_proc_kill(&slave);
}

static tu_lost lost;

Test(heartbeats, frozen_master_frees_the_slave_within_the_tolerance, .timeout = 60, .fini = kill_children) {
  tu_lost_init(&lost);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = BEAT_MS;
  config.heartbeat_tolerance_ms = BEAT_TOL_MS;
  config.lost_connection = tu_on_lost;
  config.user = &lost;
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(tu_slave_start(&config, &slave, &err), &err);

  char port_text[8], channel_text[16], beat[16], tol[16];
  snprintf(port_text, sizeof port_text, "%u", ia_slave_port(slave));
  snprintf(channel_text, sizeof channel_text, "%u", CHANNEL);
  snprintf(beat, sizeof beat, "%u", BEAT_MS);
  snprintf(tol, sizeof tol, "%u", BEAT_TOL_MS);
  char *argv[] = {MASTER_PROC_PATH, "hold", TU_HOST, port_text, channel_text, beat, tol, NULL};
  tu_proc master = TU_PROC_INIT;
  cr_assert(tu_spawn(&master, argv, "started", TU_WAIT_MS), "master_proc: %s", master.line);
  cr_assert(tu_wait_handler_calls(1, TU_WAIT_MS), "the frozen master's task is not running here");

  cr_assert(tu_proc_signal(&master, SIGSTOP));
  uint64_t t0 = tu_now_ms();
  cr_assert(tu_flag_wait(&lost.calls, 1, BEAT_TOL_MS + BEAT_MS + SLACK_MS + 2000),
            "lost_connection did not fire for a frozen master");
  uint64_t at = 0;
  ia_code why = tu_lost_last(&lost, &at);
  assert_detected_in_time(at - t0, "lost_connection fired");
  cr_assert_eq(why, IA_CONNECTION_LOST, "why = %d %s", why, ia_code_name(why));

  /* The seat is free while the old master is still frozen: no 501. */
  assert_new_master_works(ia_slave_port(slave), "rescuer");
  cr_assert_eq(tu_flag_count(&lost.calls), 1, "lost_connection fired %d times", tu_flag_count(&lost.calls));

  tu_proc_kill(&master);
  ia_slave_free(slave);
}

/* ---- the protocol, against a fake slave ---- */

typedef struct fake_beat {
  bool has_beat; /* what the fake's Welcome says */
  uint32_t beat_ms, beat_tol;
  uint32_t quiet_ms;    /* how long it reads without a word */
  uint32_t proposed[2]; /* what the Hello proposed */
  int pings;            /* Pings it received */
  int bad_ping_ids;     /* Pings with an id other than 0 */
  bool welcomed;
} fake_beat;

/* Welcomes, then reads for quiet_ms (or until the master closes) and never
 * says a word: no Pong, nothing. */
static void silent_slave(tu_fake *fake, int fd) {
  fake_beat *fb = fake->user;
  fb->welcomed = tu_raw_welcome_beat(fd, fb->has_beat, fb->beat_ms, fb->beat_tol, fb->proposed);
  uint64_t end = tu_now_ms() + fb->quiet_ms;
  while (fb->welcomed && tu_now_ms() < end) {
    Interaction__V1__Frame *f = NULL;
    int r = tu_raw_read_frame(fd, (uint32_t)(end - tu_now_ms()) + 1, &f);
    if (r != 1) break;
    if (f->body_case == INTERACTION__V1__FRAME__BODY_PING) {
      fb->pings++;
      fb->bad_ping_ids += f->id != 0;
    }
    interaction__v1__frame__free_unpacked(f, NULL);
  }
}

Test(heartbeats, slave_that_agreed_and_went_silent_is_lost, .timeout = 30) {
  fake_beat fb = {.has_beat = true, .beat_ms = 50, .beat_tol = 200, .quiet_ms = 5000};
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, silent_slave, &fb, 0));
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start_beat("m", CHANNEL, 50, 200, &m, &err), &err);
  uint64_t t0 = tu_now_ms();
  TU_ASSERT_OK(tu_connect(m, "quiet", fake.port, &conn, &err), &err);
  cr_assert(tu_wait_connected(conn, false, 200 + 50 + SLACK_MS), "a silent slave was not dropped");
  uint64_t elapsed = tu_now_ms() - t0;
  cr_log_info("the silent slave was dropped after %llu ms (tolerance 200 ms)", (unsigned long long)elapsed);
  if (!tu_valgrind()) cr_assert_geq(elapsed, 200, "dropped after only %llu ms", (unsigned long long)elapsed);
  cr_assert_eq(ia_conn_state_now(conn), IA_CONN_LOST);
  ia_conn_free(conn);
  ia_master_free(m);
  tu_fake_join(&fake);
  cr_assert(fb.welcomed);
  cr_assert_eq(fb.proposed[0], 50, "Hello proposed heartbeat_ms %u", fb.proposed[0]);
  cr_assert_eq(fb.proposed[1], 200, "Hello proposed heartbeat_tolerance_ms %u", fb.proposed[1]);
  cr_assert_geq(fb.pings, 2, "the master sent %d Pings in 200 ms at a 50 ms interval", fb.pings);
  cr_assert_eq(fb.bad_ping_ids, 0, "heartbeat Pings must carry id 0");
}

Test(heartbeats, slave_that_did_not_agree_is_never_dropped_for_silence, .timeout = 30) {
  /* An older slave, or one with heartbeats off: its Welcome has no
   * heartbeat fields, so it expects no Pings and sends nothing unasked. */
  fake_beat fb = {.has_beat = false, .quiet_ms = 1200};
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, silent_slave, &fb, 0));
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start_beat("m", CHANNEL, 20, 60, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "old", fake.port, &conn, &err), &err);
  tu_sleep_ms(800);
  cr_assert(ia_conn_is_connected(conn), "a slave without heartbeats was dropped for being quiet");
  tu_fake_join(&fake);
  cr_assert_eq(fb.pings, 0, "the master sent %d Pings to a slave that did not agree to heartbeats", fb.pings);
  ia_conn_free(conn);
  ia_master_free(m);
}

Test(heartbeats, mismatched_settings_keep_an_idle_connection_up, .timeout = 30) {
  /* The slave alone would drop a master quiet for 60 ms; the master alone
   * pings every 500 ms. Agreed: 500 ms / 2000 ms, and nobody is dropped. */
  tu_lost_init(&lost);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = 20;
  config.heartbeat_tolerance_ms = 60;
  config.lost_connection = tu_on_lost;
  config.user = &lost;
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(tu_slave_start(&config, &slave, &err), &err);
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start_beat("m", CHANNEL, 500, 2000, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "s", ia_slave_port(slave), &conn, &err), &err);
  tu_sleep_ms(1500);
  cr_assert(ia_conn_is_connected(conn), "the master dropped a healthy idle connection");
  cr_assert_eq(tu_flag_count(&lost.calls), 0, "the slave dropped a healthy idle master");
  int64_t sum = 0;
  TU_ASSERT_OK(tu_call_sum(conn, 1, 2, &sum, &err), &err);
  cr_assert_eq(sum, 3);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(slave);
}

Test(heartbeats, busy_slave_still_answers_heartbeats, .timeout = 30) {
  /* The handler holds the worker for 1 s, five tolerances: only the loop
   * answering the Pings keeps the connection up. */
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = 50;
  config.heartbeat_tolerance_ms = 200;
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(tu_slave_start(&config, &slave, &err), &err);
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start_beat("m", CHANNEL, 50, 200, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "busy", ia_slave_port(slave), &conn, &err), &err);
  ia_task *t = tu_sleep_task_new(conn, 1000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, 10000), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  cr_assert(ia_conn_is_connected(conn), "a busy slave's connection was dropped");
  ia_task_free(t);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(slave);
}

/* ---- a master that stays alive but stops reading ---- */

#define BIG_METHOD "test.Big/Reply"
#define BIG_LEN (8u << 20)

static void big_handler(ia_task_ctx *task, void *user) {
  (void)user;
  uint8_t *big = calloc(1, BIG_LEN);
  tu_ended(big ? ia_task_ctx_reply(task, big, BIG_LEN) : IA_NO_MEMORY);
  free(big);
}

Test(heartbeats, a_master_that_pings_but_reads_nothing_is_dropped_within_the_tolerance, .timeout = 60) {
  /* The worker's 8 MiB reply is stuck behind the master's full window. The
   * worker must not stay blocked past the tolerance (1000 ms) -- without
   * heartbeats it waits 10 s. While it sends it holds the read side, so the
   * master's Pings go unread: the slave hears silence and drops it. */
  tu_lost_init(&lost);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = 100;
  config.heartbeat_tolerance_ms = 1000;
  config.lost_connection = tu_on_lost;
  config.user = &lost;
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(ia_slave_new(&config, &slave, &err), &err);
  cr_assert_eq(ia_slave_register(slave, BIG_METHOD, big_handler, NULL), IA_OK);
  TU_ASSERT_OK(ia_slave_start(slave, &err), &err);

  int fd = tu_raw_connect(ia_slave_port(slave));
  cr_assert_geq(fd, 0);
  int small = 4096;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  cr_assert(tu_raw_send_hello_beat(fd, CHANNEL, "deaf", true, 100, 1000));
  Interaction__V1__Frame *welcome = NULL;
  cr_assert_eq(tu_raw_read_frame(fd, TU_WAIT_MS, &welcome), 1);
  cr_assert_eq(welcome->body_case, INTERACTION__V1__FRAME__BODY_WELCOME);
  interaction__v1__frame__free_unpacked(welcome, NULL);
  cr_assert(tu_raw_send_task(fd, 5, BIG_METHOD, NULL, 0));
  uint64_t t0 = tu_now_ms();
  /* Pings every 50 ms, never a read, until the slave gives up (or 8 s). */
  while (tu_flag_count(&lost.calls) == 0 && tu_now_ms() - t0 < 8000) {
    if (!tu_raw_send_empty(fd, 0, INTERACTION__V1__FRAME__BODY_PING)) break;
    tu_sleep_ms(50);
  }
  cr_assert(tu_flag_wait(&lost.calls, 1, 2000), "the slave never dropped a master that reads nothing");
  uint64_t at = 0;
  ia_code why = tu_lost_last(&lost, &at);
  uint64_t took = at - t0;
  cr_log_info("a master that pings but reads nothing was dropped after %llu ms (tolerance 1000 ms)",
              (unsigned long long)took);
  cr_assert_eq(why, IA_CONNECTION_LOST);
  if (!tu_valgrind())
    cr_assert_leq(took, 1000 + SLACK_MS + 1000, "dropped only after %llu ms", (unsigned long long)took);
  close(fd);
  /* The slave serves the next master. */
  assert_new_master_works(ia_slave_port(slave), "next");
  ia_slave_free(slave);
}
