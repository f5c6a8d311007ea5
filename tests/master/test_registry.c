/* The master's connection registry: connect, find, disconnect, unique names,
 * channel mismatch. Every slave is in-process on 127.0.0.1, port 0. */
#include <string.h>

#include "fixture.h"

#define CHANNEL 11

static ia_master *start_master(const char *name, uint32_t channel) {
  ia_error err = IA_ERROR_INIT;
  ia_master *master = NULL;
  TU_ASSERT_OK(tu_master_start(name, channel, &master, &err), &err);
  return master;
}

static ia_conn *connect_ok(ia_master *master, const char *name, ia_slave *slave) {
  ia_error err = IA_ERROR_INIT;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_connect(master, name, ia_slave_port(slave), &conn, &err), &err);
  cr_assert_not_null(conn);
  return conn;
}

Test(registry, connect_find_disconnect_and_reuse_the_name, .timeout = 30) {
  ia_slave *a = fixture_slave(CHANNEL);
  ia_slave *b = fixture_slave(CHANNEL);
  ia_master *m = start_master("registry-master", CHANNEL);

  ia_conn *conn = connect_ok(m, "learner", a);
  cr_assert(ia_conn_is_connected(conn));
  cr_assert_str_eq(ia_conn_name(conn), "learner");
  cr_assert_eq(tu_found(m, "learner"), conn);
  cr_assert_null(tu_found(m, "nobody"));
  assert_sum_works(conn, 2, 3);

  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_conn_disconnect(conn, NULL, 0, TU_WAIT_MS, &err), &err);
  cr_assert_not(ia_conn_is_connected(conn), "still connected after ia_conn_disconnect");
  cr_assert_null(tu_found(m, "learner"), "a disconnected name is still registered");
  ia_conn_free(conn);

  /* The name is free again, here for another slave... */
  ia_conn *again = connect_ok(m, "learner", b);
  cr_assert_eq(tu_found(m, "learner"), again);
  assert_sum_works(again, 10, 20);
  /* ...and the first slave is free for the next master connection. */
  ia_conn *back = connect_ok(m, "learner-2", a);
  cr_assert_eq(tu_found(m, "learner-2"), back);
  assert_sum_works(back, -5, 3);

  ia_conn_free(again);
  ia_conn_free(back);
  ia_master_free(m);
  ia_slave_free(a);
  ia_slave_free(b);
}

Test(registry, a_live_name_cannot_be_connected_twice, .timeout = 30) {
  ia_slave *a = fixture_slave(CHANNEL);
  ia_slave *b = fixture_slave(CHANNEL);
  ia_master *m = start_master("registry-master", CHANNEL);

  ia_conn *first = connect_ok(m, "collector", a);

  ia_error err = IA_ERROR_INIT;
  ia_conn *second = NULL;
  ia_code rc = tu_connect(m, "collector", ia_slave_port(b), &second, &err);
  cr_assert_eq(rc, IA_ALREADY_CONNECTED, "second connect with a live name: %d %s (%s)", rc, ia_code_name(rc),
               err.message);
  cr_assert_eq(err.code, IA_ALREADY_CONNECTED);
  cr_assert_null(second);
  ia_error_clear(&err);

  /* The first connection is untouched... */
  cr_assert_eq(tu_found(m, "collector"), first);
  cr_assert(ia_conn_is_connected(first));
  assert_sum_works(first, 1, 1);
  /* ...and the refused attempt left slave b free for a master. */
  ia_conn *other = connect_ok(m, "aggregator", b);
  assert_sum_works(other, 4, 4);

  ia_conn_free(first);
  ia_conn_free(other);
  ia_master_free(m);
  ia_slave_free(a);
  ia_slave_free(b);
}

Test(registry, channel_mismatch_is_202_and_registers_nothing, .timeout = 30) {
  ia_slave *s = fixture_slave(CHANNEL);
  ia_master *wrong = start_master("wrong-channel", CHANNEL + 1);

  ia_error err = IA_ERROR_INIT;
  ia_conn *conn = NULL;
  ia_code rc = tu_connect(wrong, "mismatch", ia_slave_port(s), &conn, &err);
  cr_assert_eq(rc, IA_CHANNEL_INVALID, "got %d %s (%s)", rc, ia_code_name(rc), err.message);
  cr_assert_eq(err.code, IA_CHANNEL_INVALID);
  cr_assert_neq(err.message[0], '\0', "the error has no message");
  cr_assert_null(conn);
  cr_assert_null(tu_found(wrong, "mismatch"));
  ia_error_clear(&err);

  /* The rejected handshake did not occupy the slave. */
  ia_master *right = start_master("right-channel", CHANNEL);
  ia_conn *ok = connect_ok(right, "mismatch", s);
  assert_sum_works(ok, 7, 8);

  ia_conn_free(ok);
  ia_master_free(right);
  ia_master_free(wrong);
  ia_slave_free(s);
}
