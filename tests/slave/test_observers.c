/* Observers: connections whose Hello asks to observe. They are welcomed
 * beside the master and never take its seat, may Ping, are told the
 * slave's name, mode and capacity, have their tasks refused with 602, are
 * capped in number, are watched by heartbeats like the master, and never
 * fire lost_connection. The before_connection hook, which admits masters,
 * is not asked about them. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#define CHANNEL 83
#define MAX_OBSERVERS 8 /* ia_master_observe() documents it */

static tu_lost lost;

static ia_slave *observed_slave(ia_slave_config *config) {
  tu_lost_init(&lost);
  config->lost_connection = tu_on_lost;
  config->user = &lost;
  config->name = "observed";
  return fixture_slave_start(config);
}

static ia_conn *observe(ia_master *m, const char *name, ia_slave *s) {
  ia_conn *conn = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_master_observe(m, name, TU_HOST, ia_slave_port(s), TU_WAIT_MS, &conn, &err), &err);
  return conn;
}

Test(observers, an_observer_is_welcomed_beside_the_master_and_pings, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  ia_slave *s = observed_slave(&config);
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL, *o = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("coordinator", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);
  TU_ASSERT_OK(tu_master_start("monitor", CHANNEL, &o, &err), &err);
  ia_conn *obs = observe(o, "slave", s);
  uint64_t rtt = 0;
  TU_ASSERT_OK(ia_conn_ping(obs, TU_WAIT_MS, &rtt, &err), &err);
  cr_assert_str_eq(ia_conn_slave_name(obs), "observed");
  cr_assert_eq(ia_conn_slave_mode(obs), IA_MODE_NONBLOCKING_SINGLE);
  cr_assert_str_eq(ia_mode_name(ia_conn_slave_mode(obs)), "nonblocking-single");
  cr_assert_eq(ia_conn_slave_capacity(obs), 1);
  cr_assert_str_eq(ia_conn_slave_name(conn), "observed", "the master reads the Welcome too");
  assert_sum_works(conn, 20, 22); /* the master kept its seat */
  ia_conn_free(obs);
  ia_master_free(o);
  assert_sum_works(conn, 1, 1);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(s);
  cr_assert_eq(tu_flag_count(&lost.calls), 0, "lost_connection fired %d times", tu_flag_count(&lost.calls));
}

Test(observers, an_observers_task_is_refused_602_and_it_stays_connected, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  ia_slave *s = observed_slave(&config);
  ia_error err = IA_ERROR_INIT;
  ia_master *o = NULL;
  TU_ASSERT_OK(tu_master_start("monitor", CHANNEL, &o, &err), &err);
  ia_conn *obs = observe(o, "slave", s);
  int64_t sum = 0;
  ia_code rc = tu_call_sum(obs, 1, 2, &sum, &err);
  cr_assert_eq(rc, IA_TASK_REFUSED, "an observer's Sum: %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert(strstr(err.message, "observer") != NULL, "the refusal says why: %s", err.message);
  ia_error_clear(&err);
  cr_assert(ia_conn_is_connected(obs));
  TU_ASSERT_OK(ia_conn_ping(obs, TU_WAIT_MS, NULL, &err), &err);
  cr_assert_eq(tu_handler_calls(), 0, "a handler ran for an observer");
  /* The seat was never taken: a master gets it at once. */
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("coordinator", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);
  assert_sum_works(conn, 2, 3);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_conn_free(obs);
  ia_master_free(o);
  ia_slave_free(s);
}

Test(observers, observers_past_the_cap_are_refused_503, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  ia_slave *s = observed_slave(&config);
  ia_error err = IA_ERROR_INIT;
  ia_master *o = NULL;
  TU_ASSERT_OK(tu_master_start("monitor", CHANNEL, &o, &err), &err);
  ia_conn *obs[MAX_OBSERVERS];
  char name[32];
  for (int i = 0; i < MAX_OBSERVERS; i++) {
    snprintf(name, sizeof name, "o%d", i);
    obs[i] = observe(o, name, s);
  }
  ia_conn *extra = NULL;
  ia_code rc = ia_master_observe(o, "extra", TU_HOST, ia_slave_port(s), TU_WAIT_MS, &extra, &err);
  cr_assert_eq(rc, IA_CONNECTION_REFUSED, "observer %d: %d %s (%s)", MAX_OBSERVERS + 1, rc, ia_code_name(rc),
               err.message);
  ia_error_clear(&err);
  /* One leaves (a Disconnect: the slave has let go of it once the Goodbye
   * comes); the next is welcomed. */
  TU_ASSERT_OK(ia_conn_disconnect(obs[0], NULL, 0, TU_WAIT_MS, &err), &err);
  ia_conn_free(obs[0]);
  obs[0] = observe(o, "again", s);
  for (int i = 0; i < MAX_OBSERVERS; i++)
    ia_conn_free(obs[i]);
  ia_master_free(o);
  ia_slave_free(s);
}

static bool refuse_every_master(const char *master_name, const uint8_t *data, size_t len, ia_hook_reply *reply,
                                void *user) {
  (void)master_name;
  (void)data;
  (void)len;
  (void)reply;
  (void)user;
  return false;
}

Test(observers, the_before_connection_hook_admits_masters_not_observers, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.before_connection = refuse_every_master;
  ia_slave *s = observed_slave(&config);
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("coordinator", CHANNEL, &m, &err), &err);
  ia_code rc = tu_connect(m, "slave", ia_slave_port(s), &conn, &err);
  cr_assert_eq(rc, IA_CONNECTION_REFUSED, "a master past a refusing hook: %d %s", rc, ia_code_name(rc));
  ia_error_clear(&err);
  ia_conn *obs = observe(m, "watch", s);
  TU_ASSERT_OK(ia_conn_ping(obs, TU_WAIT_MS, NULL, &err), &err);
  ia_conn_free(obs);
  ia_master_free(m);
  ia_slave_free(s);
}

Test(observers, a_silent_observer_is_dropped_by_its_heartbeat_and_is_not_lost, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.heartbeat_ms = 50;
  config.heartbeat_tolerance_ms = 300;
  ia_slave *s = observed_slave(&config);
  int fd = tu_raw_connect(ia_slave_port(s));
  cr_assert_geq(fd, 0);
  cr_assert(tu_raw_send_hello_full(fd, CHANNEL, "quiet-watcher", true, 50, 300, true));
  Interaction__V1__Frame *w = NULL;
  cr_assert_eq(tu_raw_read_frame(fd, TU_WAIT_MS, &w), 1);
  cr_assert_eq(w->body_case, INTERACTION__V1__FRAME__BODY_WELCOME, "an observer's Hello got body %d", w->body_case);
  interaction__v1__frame__free_unpacked(w, NULL);
  uint32_t code = 0;
  cr_assert(tu_raw_await_goodbye(fd, 300 + 5000, &code), "a silent observer was never dropped");
  cr_assert_eq(code, IA_CONNECTION_LOST, "Goodbye code %u", code);
  close(fd);
  ia_slave_free(s);
  cr_assert_eq(tu_flag_count(&lost.calls), 0, "lost_connection fired for an observer");
}
