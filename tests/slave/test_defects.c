/* Regression tests for defects of the slave found in review: the order of
 * Accepted and the outcome of a task the loop takes over, the signal mask of
 * the library's threads, and modes that do not exist yet. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sum_handlers.h"

#define CHANNEL 127

/* ---- Accepted after the Result ---- */

/* Sleeps on the slave's "runs long" debug message (said on its loop between
 * taking the socket over and sending Accepted), to widen the window in which
 * the handler finishes first. Other messages pass. */
static void slow_long_log(ia_log_level level, const char *message, void *user) {
  atomic_int *seen = user;
  if (level >= IA_LOG_WARN) fprintf(stderr, "interaction: %s\n", message);
  if (strstr(message, "runs long") != NULL) {
    atomic_fetch_add(seen, 1);
    tu_sleep_ms(200);
  }
}

/* Defect 2: the slave's loop took the socket of a long handler over, let go
 * of the slave's lock, logged "runs long" and only then sent Accepted; a
 * handler that finished meanwhile sent its Result first. The master then met
 * Accepted for an id no longer pending: a protocol error, every task LOST,
 * and an immediate reconnect refused 501 (about 1 in 4,000 calls of ~1.5 ms).
 * A log handler that sleeps on that message makes it happen every time; the
 * call must complete and the connection stay up, whatever the slave logs. */
Test(slave_defects, accepted_never_follows_the_result, .timeout = 60) {
  atomic_int seen = 0;
  ia_log_set_handler(slow_long_log, &seen);
  ia_log_set_level(IA_LOG_DEBUG);
  fixture f = fixture_default(CHANNEL);
  size_t len;
  uint8_t *req = tu_sleep_task(50, &len); /* taken over after two 10 ms watchdog ticks */
  cr_assert_not_null(req);
  for (int round = 0; round < 3; round++) {
    void *reply = NULL;
    size_t reply_len = 0;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = ia_call(f.conn, SUM_METHOD_SLEEP, req, len, &reply, &reply_len, TU_WAIT_MS, &err);
    free(reply);
    cr_assert_eq(rc, IA_OK, "round %d: a 50 ms Sleep: %d %s: %s", round, rc, ia_code_name(rc), err.message);
    ia_error_clear(&err);
    tu_sleep_ms(400); /* an Accepted sent late arrives meanwhile */
    cr_assert(ia_conn_is_connected(f.conn), "round %d: the connection went down after the call", round);
  }
  assert_sum_works(f.conn, 5, 6);
  free(req);
  fixture_free(&f);
  ia_log_set_handler(NULL, NULL);
}

/* ---- the signal mask of library threads ---- */

typedef struct mask_seen {
  tu_flag flag;
  sigset_t set;
} mask_seen;

static mask_seen handler_mask, callback_mask;

static void mask_handler(ia_task_ctx *task, void *user) {
  pthread_sigmask(SIG_BLOCK, NULL, &handler_mask.set);
  tu_flag_raise(&handler_mask.flag);
  tu_handler(task, user);
}

static void mask_cb(ia_task *task, void *user) {
  (void)task;
  (void)user;
  pthread_sigmask(SIG_BLOCK, NULL, &callback_mask.set);
  tu_flag_raise(&callback_mask.flag);
}

static void assert_faults_unblocked(const sigset_t *set, const char *where) {
  const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
  const char *names[] = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL"};
  for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++)
    cr_assert_not(sigismember(set, faults[i]), "%s is blocked in %s", names[i], where);
}

/* Defect 12g: the library's threads were created with every signal blocked,
 * SIGSEGV included, so a crash in a handler (or in the library) killed the
 * process without a crash handler, ASan's included, ever running. Only
 * asynchronous signals (SIGINT, SIGTERM) should be blocked there: a handler
 * on a worker thread and a callback on the master's I/O thread must see
 * SIGSEGV, SIGBUS, SIGFPE and SIGILL unblocked. */
Test(slave_defects, library_threads_do_not_block_fault_signals, .timeout = 30) {
  tu_flag_init(&handler_mask.flag);
  tu_flag_init(&callback_mask.flag);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.handler = mask_handler;
  fixture f = fixture_start(&config, "signals");
  ia_task *t = tu_sum_task_new(f.conn, 1, 1);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_on_complete(t, mask_cb, NULL), IA_OK);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  ia_task_free(t);
  cr_assert(tu_flag_wait(&handler_mask.flag, 1, TU_WAIT_MS), "the handler never ran");
  cr_assert(tu_flag_wait(&callback_mask.flag, 1, TU_WAIT_MS), "the callback never ran");
  assert_faults_unblocked(&handler_mask.set, "a handler (slave worker thread)");
  assert_faults_unblocked(&callback_mask.set, "a callback (master I/O thread)");
  fixture_free(&f);
}

/* ---- modes that do not exist yet ---- */

/* Defect 12i (fix C): ia_slave_new() accepted the three modes that were
 * not implemented and advertised them in Welcome, while running every task
 * in the single non-blocking slot. All four exist now (tests/slave/
 * test_modes.c); what is refused is a mode that does not exist, and a
 * setting the mode does not have. */
Test(slave_defects, unknown_modes_and_settings_a_mode_lacks_are_refused, .timeout = 30) {
  const struct {
    ia_mode mode;
    uint32_t workers, queue;
  } bad[] = {
      {(ia_mode)99, 0, 0},
      {IA_MODE_NONBLOCKING_SINGLE, 2, 0}, /* one at a time */
      {IA_MODE_BLOCKING_SINGLE, 2, 0},
      {IA_MODE_NONBLOCKING_SINGLE, 0, 4}, /* no queue */
      {IA_MODE_NONBLOCKING_MULTI, 4, 4},
      {IA_MODE_NONBLOCKING_MULTI, 1000, 0}, /* over 256 workers */
      {IA_MODE_BLOCKING_MULTI, 2, 100000},  /* over 65536 waiting */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ia_slave_config config;
    tu_slave_config(&config, CHANNEL);
    config.mode = bad[i].mode;
    config.workers = bad[i].workers;
    config.queue = bad[i].queue;
    ia_slave *s = NULL;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = ia_slave_new(&config, &s, &err);
    cr_assert_eq(rc, IA_INVALID_ARGUMENT, "case %zu (mode %d): ia_slave_new returned %d %s", i, (int)bad[i].mode, rc,
                 ia_code_name(rc));
    cr_assert_null(s);
    cr_assert_neq(err.message[0], '\0', "case %zu: no message", i);
    ia_error_clear(&err);
  }
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.mode = IA_MODE_NONBLOCKING_SINGLE;
  fixture f = fixture_start(&config, "modes");
  assert_sum_works(f.conn, 1, 2);
  fixture_free(&f);
}
