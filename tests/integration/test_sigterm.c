/* sum-slave receives SIGTERM while a task runs: the task gets the grace
 * period, is then cancelled (the master sees CANCELLED), the connection goes
 * down and the process exits 0. */
#include <signal.h>
#include <sys/wait.h>

#include "fixture.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif

#define CHANNEL 81
#define GRACE_MS 300

static void kill_children(void) {
  tu_proc_kill_all();
}

Test(sigterm, running_task_is_cancelled_after_the_grace_and_the_slave_exits_0, .timeout = 30,
     .fini = kill_children) {
  tu_proc slave = TU_PROC_INIT;
  const char *extra[] = {"--grace-ms", "300", NULL};
  uint16_t port = tu_spawn_sum_slave(&slave, SUM_SLAVE_PATH, CHANNEL, extra);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", slave.line);

  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("sigterm-master", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", port, &conn, &err), &err);
  ia_task *t = tu_sleep_task_new(conn, 60000);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  ia_status s = tu_wait_status(t, IA_STATUS_STARTED, TU_WAIT_MS);
  cr_assert_eq(s, IA_STATUS_STARTED, "the Sleep task is %s before SIGTERM", ia_status_name(s));

  uint64_t t0 = tu_now_ms();
  cr_assert(tu_proc_signal(&slave, SIGTERM));
  cr_assert_eq(ia_task_join(t, 10000), IA_OK, "the task did not end within 10 s of SIGTERM");
  uint64_t elapsed = tu_now_ms() - t0;
  /* Cancelled because the slave shuts down: the master hears 101, not the
   * handler's CANCELLED (which would read as if the master had asked). */
  TU_ASSERT_STATUS(t, IA_STATUS_FAILED);
  cr_assert_eq(ia_task_error(t)->code, IA_SHUTTING_DOWN, "error %d %s", (int)ia_task_error(t)->code,
               ia_code_name(ia_task_error(t)->code));
  /* A lower bound only: the grace period was honoured, not a speed claim. */
  cr_assert_geq(elapsed, GRACE_MS - 50, "cancelled %llu ms after SIGTERM, before the %d ms grace",
                (unsigned long long)elapsed, GRACE_MS);

  cr_assert(tu_wait_connected(conn, false, TU_WAIT_MS), "the connection is still up after the slave left");
  cr_assert(tu_proc_wait(&slave, TU_WAIT_MS), "sum-slave did not exit within 5 s");
  cr_assert(WIFEXITED(slave.status), "sum-slave died of signal %d", WTERMSIG(slave.status));
  cr_assert_eq(WEXITSTATUS(slave.status), 0);

  ia_task_free(t);
  ia_conn_free(conn);
  ia_master_free(m);
}
