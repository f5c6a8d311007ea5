/* Graceful shutdown stays bounded when the peer is frozen (SIGSTOP: its
 * socket open, nothing read, nothing answered). Heartbeats are off here, so
 * that what is measured is shutdown's own bound, not the heartbeat's. */
#include <signal.h>
#include <stdio.h>

#include "fixture.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif
#ifndef MASTER_PROC_PATH
#error "MASTER_PROC_PATH must name the master_proc helper"
#endif

#define CHANNEL 65
#define GRACE_MS 200u
#define FINISH_BOUND_MS 3000u /* what either end waits for its peers at most once it says Goodbye */
#define SLACK_MS 1500u

static void kill_children(void) {
  tu_proc_kill_all();
}

Test(shutdown_bounds, a_slave_with_a_frozen_master_and_a_running_task_shuts_down_in_bounded_time, .timeout = 60,
     .fini = kill_children) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.grace_ms = GRACE_MS;
  config.heartbeat_ms = 0;
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(tu_slave_start(&config, &slave, &err), &err);
  char port[8], channel[16];
  snprintf(port, sizeof port, "%u", ia_slave_port(slave));
  snprintf(channel, sizeof channel, "%u", CHANNEL);
  char *argv[] = {MASTER_PROC_PATH, "hold", TU_HOST, port, channel, "0", "0", NULL};
  tu_proc master = TU_PROC_INIT;
  cr_assert(tu_spawn(&master, argv, "started", TU_WAIT_MS), "master_proc: %s", master.line);
  cr_assert(tu_proc_signal(&master, SIGSTOP));

  uint64_t t0 = tu_now_ms();
  ia_slave_shutdown(slave);
  ia_slave_join(slave);
  uint64_t took = tu_now_ms() - t0;
  cr_log_info("the slave shut down in %llu ms with a frozen master (grace %u ms)", (unsigned long long)took,
              GRACE_MS);
  /* The running task had its grace, and no more than the bound after it. */
  cr_assert_geq(took, GRACE_MS - 50, "the slave shut down after %llu ms, before the grace", (unsigned long long)took);
  if (!tu_valgrind())
    cr_assert_leq(took, GRACE_MS + FINISH_BOUND_MS + SLACK_MS, "the slave's shutdown took %llu ms",
                  (unsigned long long)took);
  ia_slave_free(slave);
  tu_proc_kill(&master);
}

Test(shutdown_bounds, a_master_with_a_frozen_slave_and_a_pending_task_shuts_down_in_bounded_time, .timeout = 60,
     .fini = kill_children) {
  tu_proc slave = TU_PROC_INIT;
  const char *const extra[] = {"--heartbeat-ms", "0", NULL};
  uint16_t port = tu_spawn_sum_slave(&slave, SUM_SLAVE_PATH, CHANNEL, extra);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", slave.line);
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start_beat("m", CHANNEL, 0, 0, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "frozen", port, &conn, &err), &err);
  ia_task *t = tu_sleep_task_new(conn, 60000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS), IA_STATUS_STARTED);
  cr_assert(tu_proc_signal(&slave, SIGSTOP));

  uint64_t t0 = tu_now_ms();
  ia_master_shutdown(m);
  ia_master_join(m);
  uint64_t took = tu_now_ms() - t0;
  cr_log_info("the master shut down in %llu ms with a frozen slave", (unsigned long long)took);
  if (!tu_valgrind())
    cr_assert_leq(took, FINISH_BOUND_MS + SLACK_MS, "the master's shutdown took %llu ms", (unsigned long long)took);
  cr_assert(ia_status_is_terminal(ia_task_status(t)), "the pending task is still %s",
            ia_status_name(ia_task_status(t)));
  TU_ASSERT_STATUS(t, IA_STATUS_LOST);
  cr_assert_eq(ia_task_error(t)->code, IA_SHUTTING_DOWN, "code %d %s", ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code));
  cr_assert_eq(ia_conn_state_now(conn), IA_CONN_CLOSED, "state %s", ia_conn_state_name(ia_conn_state_now(conn)));
  ia_task_free(t);
  ia_conn_free(conn);
  ia_master_free(m);
  tu_proc_kill(&slave);
}
