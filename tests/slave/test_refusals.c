/* Requests the slave does not carry out: refused by its hooks (with the hook's
 * data delivered to the master) or because it already has a master. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sum_handlers.h"

#define CHANNEL 51

static const uint8_t task_refusal_data[] = {'n', 'o', 'p', 'e', 0, 0xff};
static const uint8_t conn_refusal_data[] = {1, 2, 3};
static const uint8_t disc_refusal_data[] = {'b', 'u', 's', 'y'};

/* What the hooks saw, written on the slave's I/O thread. */
typedef struct seen {
  pthread_mutex_t mu;
  int calls;
  char master_name[64];
  char method[64];
} seen;

static seen hook_seen = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void note(const char *master_name, const char *method) {
  pthread_mutex_lock(&hook_seen.mu);
  hook_seen.calls++;
  if (master_name) snprintf(hook_seen.master_name, sizeof hook_seen.master_name, "%s", master_name);
  if (method) snprintf(hook_seen.method, sizeof hook_seen.method, "%s", method);
  pthread_mutex_unlock(&hook_seen.mu);
}

/* Asserts what the hooks saw last, read under the lock. */
static void assert_seen(const char *master_name, const char *method) {
  seen copy;
  pthread_mutex_lock(&hook_seen.mu);
  copy = hook_seen;
  pthread_mutex_unlock(&hook_seen.mu);
  cr_assert_gt(copy.calls, 0, "the hook never ran");
  if (master_name) cr_assert_str_eq(copy.master_name, master_name);
  if (method) cr_assert_str_eq(copy.method, method);
}

/* Refuses Sum, accepts everything else. */
static bool before_task(const ia_task_ctx *task, ia_hook_reply *refusal, void *user) {
  (void)user;
  const char *method = ia_task_ctx_method(task);
  note(NULL, method);
  if (strcmp(method, SUM_METHOD_SUM) != 0) return true;
  ia_hook_reply_set(refusal, "no sums today", task_refusal_data, sizeof task_refusal_data);
  return false;
}

/* Accepts only masters that present "password". */
static bool before_connection(const char *master_name, const uint8_t *data, size_t len,
                              ia_hook_reply *refusal, void *user) {
  (void)user;
  note(master_name, NULL);
  if (len == 8 && memcmp(data, "password", 8) == 0) return true;
  ia_hook_reply_set(refusal, "go away", conn_refusal_data, sizeof conn_refusal_data);
  return false;
}

/* Refuses to let go unless the master says "bye". */
static bool before_disconnection(const char *master_name, const uint8_t *data, size_t len,
                                 ia_hook_reply *refusal, void *user) {
  (void)user;
  note(master_name, NULL);
  if (len == 3 && memcmp(data, "bye", 3) == 0) return true;
  ia_hook_reply_set(refusal, "stay a while", disc_refusal_data, sizeof disc_refusal_data);
  return false;
}

Test(refusals, before_task_refusal_is_602_with_the_hook_data, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.before_task = before_task;
  fixture f = fixture_start(&config, "refusals-master");

  ia_task *t = tu_sum_task_new(f.conn, 1, 2);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "the refused task never ended");
  TU_ASSERT_STATUS(t, IA_STATUS_START_FAILED);
  const ia_error *e = ia_task_error(t);
  cr_assert_eq(e->code, IA_TASK_REFUSED, "error %d %s", (int)e->code, ia_code_name(e->code));
  cr_assert(strstr(e->message, "no sums today") != NULL, "message \"%s\" lacks the hook's", e->message);
  cr_assert_eq(e->data_len, sizeof task_refusal_data);
  cr_assert_not_null(e->data);
  cr_assert_arr_eq(e->data, task_refusal_data, sizeof task_refusal_data);
  cr_assert_eq(tu_handler_calls(), 0, "a refused task reached the handler");
  assert_seen(NULL, SUM_METHOD_SUM);
  ia_task_free(t);

  /* ia_call gives the same code and data. */
  int64_t sum;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = tu_call_sum(f.conn, 1, 2, &sum, &err);
  cr_assert_eq(rc, IA_TASK_REFUSED, "ia_call: %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(err.data_len, sizeof task_refusal_data);
  cr_assert_arr_eq(err.data, task_refusal_data, sizeof task_refusal_data);
  ia_error_clear(&err);

  /* The hook accepts Sleep: accepted tasks still run. */
  ia_task *sleep = tu_sleep_task_new(f.conn, 10);
  cr_assert_eq(ia_task_start(sleep), IA_OK);
  cr_assert_eq(ia_task_join(sleep, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(sleep, IA_STATUS_COMPLETED);
  ia_task_free(sleep);
  fixture_free(&f);
}

Test(refusals, before_connection_refusal_is_503_with_the_hook_data, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.before_connection = before_connection;
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(tu_slave_start(&config, &slave, &err), &err);
  ia_master *m = NULL;
  TU_ASSERT_OK(tu_master_start("knocking-master", CHANNEL, &m, &err), &err);

  ia_conn *conn = NULL;
  ia_code rc =
      ia_master_connect(m, "guarded", TU_HOST, ia_slave_port(slave), "guess", 5, TU_WAIT_MS, &conn, &err);
  cr_assert_eq(rc, IA_CONNECTION_REFUSED, "connect: %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(err.code, IA_CONNECTION_REFUSED);
  cr_assert_eq(err.data_len, sizeof conn_refusal_data, "err.data_len %zu", err.data_len);
  cr_assert_not_null(err.data);
  cr_assert_arr_eq(err.data, conn_refusal_data, sizeof conn_refusal_data);
  cr_assert_null(conn);
  cr_assert_null(tu_found(m, "guarded"), "a refused connection is registered");
  assert_seen("knocking-master", NULL);
  ia_error_clear(&err);

  /* The hook saw the connect data: the right data gets in. */
  TU_ASSERT_OK(
      ia_master_connect(m, "guarded", TU_HOST, ia_slave_port(slave), "password", 8, TU_WAIT_MS, &conn, &err),
      &err);
  cr_assert_eq(tu_found(m, "guarded"), conn);
  assert_sum_works(conn, 5, 6);

  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(slave);
}

Test(refusals, before_disconnection_refusal_is_504_and_the_connection_stays, .timeout = 30) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.before_disconnection = before_disconnection;
  fixture f = fixture_start(&config, "leaving-master");

  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_conn_disconnect(f.conn, "later", 5, TU_WAIT_MS, &err);
  cr_assert_eq(rc, IA_DISCONNECTION_REFUSED, "disconnect: %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(err.code, IA_DISCONNECTION_REFUSED);
  cr_assert_eq(err.data_len, sizeof disc_refusal_data);
  cr_assert_arr_eq(err.data, disc_refusal_data, sizeof disc_refusal_data);
  ia_error_clear(&err);
  cr_assert(ia_conn_is_connected(f.conn), "the connection went down after a refused disconnect");
  cr_assert_eq(tu_found(f.master, "slave"), f.conn);
  assert_sum_works(f.conn, 8, 9);

  /* The hook accepts "bye". */
  TU_ASSERT_OK(ia_conn_disconnect(f.conn, "bye", 3, TU_WAIT_MS, &err), &err);
  cr_assert_not(ia_conn_is_connected(f.conn));
  assert_seen("leaving-master", NULL);
  fixture_free(&f);
}

Test(refusals, a_second_master_gets_501, .timeout = 30) {
  fixture f = fixture_default(CHANNEL);
  ia_error err = IA_ERROR_INIT;
  ia_master *second = NULL;
  TU_ASSERT_OK(tu_master_start("second-master", CHANNEL, &second, &err), &err);

  ia_conn *conn = NULL;
  ia_code rc = tu_connect(second, "slave", ia_slave_port(f.slave), &conn, &err);
  cr_assert_eq(rc, IA_ALREADY_CONNECTED, "second master: %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(err.code, IA_ALREADY_CONNECTED);
  cr_assert_null(conn);
  cr_assert_null(tu_found(second, "slave"));
  ia_error_clear(&err);

  /* The first master is undisturbed. */
  cr_assert(ia_conn_is_connected(f.conn));
  assert_sum_works(f.conn, 1, 2);

  /* Once it leaves, the slave is free for the second. */
  TU_ASSERT_OK(ia_conn_disconnect(f.conn, NULL, 0, TU_WAIT_MS, &err), &err);
  TU_ASSERT_OK(tu_connect(second, "slave", ia_slave_port(f.slave), &conn, &err), &err);
  assert_sum_works(conn, 3, 4);

  ia_conn_free(conn);
  ia_master_free(second);
  fixture_free(&f);
}
