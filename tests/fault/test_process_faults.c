/* A peer process dies: a slave killed mid-task (its task ends LOST, the
 * connection is down), a master killed mid-task (the slave notices, fires
 * lost_connection and serves the next master). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "fixture.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif
#ifndef MASTER_PROC_PATH
#error "MASTER_PROC_PATH must name the master_proc helper"
#endif

#define CHANNEL 61

static void kill_children(void) {
  tu_proc_kill_all();
}

static void count_fail(ia_task *task, void *user) {
  (void)task;
  tu_flag_raise(user);
}

Test(process_faults, slave_killed_during_a_task_ends_it_lost, .timeout = 30, .fini = kill_children) {
  tu_proc slave = TU_PROC_INIT;
  uint16_t port = tu_spawn_sum_slave(&slave, SUM_SLAVE_PATH, CHANNEL, NULL);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", slave.line);

  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("survivor", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "victim", port, &conn, &err), &err);

  tu_flag failed;
  tu_flag_init(&failed);
  ia_task *t = tu_sleep_task_new(conn, 60000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_on_fail(t, count_fail, &failed), IA_OK);
  cr_assert_eq(ia_task_start(t), IA_OK);
  ia_status s = tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS);
  cr_assert_eq(s, IA_STATUS_STARTED, "the Sleep task is %s before the kill", ia_status_name(s));

  cr_assert(tu_proc_signal(&slave, SIGKILL));
  cr_assert_eq(ia_task_join(t, 5000), IA_OK, "the task of a killed slave did not end within 5 s");
  TU_ASSERT_STATUS(t, IA_STATUS_LOST);
  cr_assert_eq(tu_flag_count(&failed), 1, "on_fail ran %d times", tu_flag_count(&failed));
  cr_assert_not(ia_conn_is_connected(conn), "the connection to a killed slave is still 'connected'");

  cr_assert(tu_proc_wait(&slave, TU_WAIT_MS));
  cr_assert(WIFSIGNALED(slave.status) && WTERMSIG(slave.status) == SIGKILL);

  /* A dead connection is not a live one: the name must be free. */
  uint64_t deadline = tu_now_ms() + 1000;
  while (tu_found(m, "victim") != NULL && tu_now_ms() < deadline)
    tu_sleep_ms(5);
  cr_assert_null(tu_found(m, "victim"), "a lost connection is still registered");

  ia_task_free(t);
  ia_conn_free(conn);
  ia_master_free(m);
  tu_flag_destroy(&failed);
}

typedef struct lost_state {
  tu_flag lost;
  pthread_mutex_t mu;
  char master_name[64];
  ia_code why;
} lost_state;

static lost_state lost = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_lost(const char *master_name, ia_code why, void *user) {
  lost_state *st = user;
  pthread_mutex_lock(&st->mu);
  snprintf(st->master_name, sizeof st->master_name, "%s", master_name ? master_name : "(null)");
  st->why = why;
  pthread_mutex_unlock(&st->mu);
  tu_flag_raise(&st->lost);
}

Test(process_faults, master_killed_during_a_task_frees_the_slave, .timeout = 30, .fini = kill_children) {
  tu_flag_init(&lost.lost);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.lost_connection = on_lost;
  config.user = &lost;
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(tu_slave_start(&config, &slave, &err), &err);

  char port_text[8], channel_text[16];
  snprintf(port_text, sizeof port_text, "%u", ia_slave_port(slave));
  snprintf(channel_text, sizeof channel_text, "%u", CHANNEL);
  char beat[16], tol[16];
  snprintf(beat, sizeof beat, "%u", IA_HEARTBEAT_DEFAULT_MS);
  snprintf(tol, sizeof tol, "%u", IA_HEARTBEAT_TOLERANCE_DEFAULT_MS);
  char *argv[] = {MASTER_PROC_PATH, "hold", TU_HOST, port_text, channel_text, beat, tol, NULL};
  tu_proc master = TU_PROC_INIT;
  cr_assert(tu_spawn(&master, argv, "started", TU_WAIT_MS), "master_proc: %s", master.line);
  cr_assert(tu_wait_handler_calls(1, TU_WAIT_MS), "the master process's task is not running here");

  cr_assert(tu_proc_signal(&master, SIGKILL));
  cr_assert(tu_proc_wait(&master, TU_WAIT_MS), "the killed master was not reaped");

  cr_assert(tu_flag_wait(&lost.lost, 1, 5000), "lost_connection did not fire within 5 s");
  pthread_mutex_lock(&lost.mu);
  char name[64];
  snprintf(name, sizeof name, "%s", lost.master_name);
  ia_code why = lost.why;
  pthread_mutex_unlock(&lost.mu);
  cr_assert_str_eq(name, "master-proc");
  cr_assert_eq(why, IA_CONNECTION_LOST, "why = %d %s", why, ia_code_name(why));
  cr_assert_eq(tu_flag_count(&lost.lost), 1, "lost_connection fired %d times", tu_flag_count(&lost.lost));

  /* A new master connects and runs a sum. The orphaned 60 s Sleep must not
   * wedge the slave: its cancellation is cooperative and asynchronous, so a
   * TASK_ALREADY_EXIST is tolerated for a bounded 3 s, never longer. */
  ia_master *rescuer = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("rescuer", CHANNEL, &rescuer, &err), &err);
  TU_ASSERT_OK(tu_connect(rescuer, "slave", ia_slave_port(slave), &conn, &err), &err);
  int64_t sum = 0;
  ia_code rc;
  int busy = 0;
  uint64_t deadline = tu_now_ms() + 3000;
  for (;;) {
    ia_error_clear(&err);
    rc = tu_call_sum(conn, 30, 12, &sum, &err);
    if (rc != IA_TASK_ALREADY_EXIST || tu_now_ms() >= deadline) break;
    busy++;
    tu_sleep_ms(20);
  }
  cr_assert_eq(rc, IA_OK, "sum after the master died: %d %s (%s), busy %d times", rc, ia_code_name(rc),
               err.message, busy);
  cr_assert_eq(sum, 42);
  if (busy > 0) cr_log_info("the slave was still busy %d times after lost_connection", busy);

  ia_conn_free(conn);
  ia_master_free(rescuer);
  ia_slave_free(slave);
}
