/* One in-process slave, one master and one connection: the setup most slave
 * tests share. Criterion-asserting, so only tests include it. */
#ifndef IA_TESTS_FIXTURE_H
#define IA_TESTS_FIXTURE_H

#include "tu_assert.h"

typedef struct fixture {
  ia_slave *slave;
  ia_master *master;
  ia_conn *conn;
} fixture;

/* Starts the slave of `config`; free it with ia_slave_free(). */
static inline ia_slave *fixture_slave_start(const ia_slave_config *config) {
  ia_error err = IA_ERROR_INIT;
  ia_slave *slave = NULL;
  TU_ASSERT_OK(tu_slave_start(config, &slave, &err), &err);
  cr_assert_neq(ia_slave_port(slave), 0, "ia_slave_port() is 0 after start");
  return slave;
}

/* Starts a default test slave on `channel`; free it with ia_slave_free(). */
static inline ia_slave *fixture_slave(uint32_t channel) {
  ia_slave_config config;
  tu_slave_config(&config, channel);
  return fixture_slave_start(&config);
}

/* Starts the slave of `config` and connects a master named `master_name` on
 * the config's channel to it as connection "slave". */
static inline fixture fixture_start(const ia_slave_config *config, const char *master_name) {
  fixture f = {0};
  ia_error err = IA_ERROR_INIT;
  f.slave = fixture_slave_start(config);
  TU_ASSERT_OK(tu_master_start(master_name, config->channel, &f.master, &err), &err);
  TU_ASSERT_OK(tu_connect(f.master, "slave", ia_slave_port(f.slave), &f.conn, &err), &err);
  return f;
}

/* A default test slave on `channel`. */
static inline fixture fixture_default(uint32_t channel) {
  ia_slave_config config;
  tu_slave_config(&config, channel);
  return fixture_start(&config, "test-master");
}

/* A fake slave (tu_fake, running `script` with `user`), a master on
 * `channel` and its connection "fake" to it. */
typedef struct fake_fixture {
  tu_fake fake;
  ia_master *master;
  ia_conn *conn;
} fake_fixture;

static inline void fake_fixture_start(fake_fixture *r, tu_fake_script script, void *user, uint32_t channel,
                                      const char *master_name) {
  cr_assert(tu_fake_start(&r->fake, script, user, 0), "cannot start the fake slave");
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start(master_name, channel, &r->master, &err), &err);
  TU_ASSERT_OK(tu_connect(r->master, "fake", r->fake.port, &r->conn, &err), &err);
}

/* Frees the connection and the master, then joins the fake slave. */
static inline void fake_fixture_free(fake_fixture *r) {
  ia_conn_free(r->conn);
  ia_master_free(r->master);
  tu_fake_join(&r->fake);
}

static inline void fixture_free(fixture *f) {
  ia_conn_free(f->conn);
  ia_master_free(f->master);
  ia_slave_free(f->slave);
}

/* Asserts that ia_call of a Sum on `conn` returns a + b. */
static inline void assert_sum_works(ia_conn *conn, int64_t a, int64_t b) {
  ia_error err = IA_ERROR_INIT;
  int64_t sum = 0;
  TU_ASSERT_OK(tu_call_sum(conn, a, b, &sum, &err), &err);
  cr_assert_eq(sum, a + b);
  ia_error_clear(&err);
}

/* Asserts that the started Sum task `i` ends within TU_WAIT_MS, COMPLETED
 * with `want`. */
static inline void assert_sum_task_done(ia_task *t, int i, int64_t want) {
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "task %d did not end in time", i);
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  size_t len = 0;
  const uint8_t *result = ia_task_result(t, &len);
  int64_t sum = 0;
  cr_assert(result != NULL && tu_sum_result(result, len, &sum), "task %d: no SumResult", i);
  cr_assert_eq(sum, want, "task %d: sum %lld, not %lld", i, (long long)sum, (long long)want);
}

/* Asserts that a Sum without `b` on `conn` fails: TASK_FAILED (the handler's
 * TaskFail). */
static inline void assert_sum_without_b_fails(ia_conn *conn) {
  size_t len = 0;
  uint8_t *no_b = tu_sum_task(1, 0, true, false, &len);
  cr_assert_not_null(no_b);
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_call(conn, "sum.Adder/Sum", no_b, len, &reply, &reply_len, TU_WAIT_MS, &err);
  free(no_b);
  free(reply);
  cr_assert_eq(rc, IA_TASK_FAILED, "a Sum without b: %d %s (%s)", rc, ia_code_name(rc), err.message);
  ia_error_clear(&err);
}

#endif
