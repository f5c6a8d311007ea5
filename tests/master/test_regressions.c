/* Regression tests for bugs found in the master and the slave, each named
 * for what it guards. */
#include "fixture.h"

#define CHANNEL 13
#define CYCLES 100

/* The slave used to send its Goodbye before it let go of its master, so a
 * master that reconnected at once was refused with ALREADY_CONNECTED. */
Test(regressions, reconnect_right_after_disconnect_is_accepted, .timeout = 60) {
  ia_slave *s = fixture_slave(CHANNEL);
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("reconnect", CHANNEL, &m, &err), &err);
  for (int i = 0; i < CYCLES; i++) {
    ia_conn *c = NULL;
    TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &c, &err), &err);
    TU_ASSERT_OK(ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err), &err);
    cr_assert_not(ia_conn_is_connected(c));
    ia_conn_free(c);
  }
  ia_master_free(m);
  ia_slave_free(s);
}

/* The master's I/O thread read the Goodbye answering a Disconnect after the
 * caller had freed its handle, and went on using the freed connection. */
Test(regressions, disconnect_after_async_task_then_free_is_safe, .timeout = 60) {
  ia_slave *s = fixture_slave(CHANNEL);
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("async-free", CHANNEL, &m, &err), &err);
  for (int i = 0; i < CYCLES; i++) {
    ia_conn *c = NULL;
    TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &c, &err), &err);
    ia_task *t = tu_sum_task_new(c, i, 1);
    cr_assert_not_null(t);
    cr_assert_eq(ia_task_start(t), IA_OK);
    cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
    TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
    ia_task_free(t);
    TU_ASSERT_OK(ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err), &err);
    ia_conn_free(c);
  }
  ia_master_free(m);
  ia_slave_free(s);
}

/* ia_conn_free() closed a live connection without a word, so the slave
 * took every master that freed its handle for one it had lost
 * (lost_connection with CONNECTION_LOST). It says Goodbye now. */
Test(regressions, a_freed_connection_says_goodbye_and_is_not_lost, .timeout = 60) {
  tu_lost lost;
  tu_lost_init(&lost);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.lost_connection = tu_on_lost;
  config.user = &lost;
  ia_slave *s = fixture_slave_start(&config);
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("freer", CHANNEL, &m, &err), &err);
  for (int i = 0; i < 10; i++) {
    ia_conn *c = NULL;
    TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &c, &err), &err);
    assert_sum_works(c, i, 1);
    ia_conn_free(c);
  }
  ia_master_free(m);
  ia_slave_free(s); /* lost_connection runs on the slave's loop: all of it has run by now */
  cr_assert_eq(tu_flag_count(&lost.calls), 0, "lost_connection fired %d times for masters that freed their handle",
               tu_flag_count(&lost.calls));
}
