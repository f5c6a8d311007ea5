/* The cap on connections that have not finished their handshake,
 * ia_slave_config.max_pending (fix G; the default, 64, is covered in
 * tests/fault/test_hostile_peers.c). Written against that config field; see
 * the report of the regress branch for the variant run on 468917a, which
 * has no cap at all. */
#include <unistd.h>

#include "fixture.h"

#define CHANNEL 139
#define CAP 4
#define SILENT 10

/* Defect 4 (fix G): nothing capped the connections that had not said Hello:
 * silent peers piled up (each with its buffers) until their hello timeout.
 * With max_pending = 4, ten silent connections leave the newest four open
 * and the oldest six closed, and a real master still connects and is
 * served (its own connection evicts the oldest silent one left). */
Test(pending_cap, a_configured_cap_closes_the_oldest_silent_connections, .timeout = 60) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.hello_timeout_ms = 60000; /* only the cap closes anything here */
  config.max_pending = CAP;
  ia_slave *s = fixture_slave_start(&config);
  int fds[SILENT];
  for (int i = 0; i < SILENT; i++) {
    fds[i] = tu_raw_connect(ia_slave_port(s));
    cr_assert_geq(fds[i], 0, "connection %d failed", i);
  }
  for (int i = 0; i < SILENT - CAP; i++)
    cr_assert(tu_raw_expect_closed(fds[i], TU_WAIT_MS),
              "silent connection %d of %d is still open with max_pending %d", i, SILENT, CAP);
  for (int i = SILENT - CAP; i < SILENT; i++)
    cr_assert(tu_raw_quiet_for(fds[i], 100), "silent connection %d (one of the newest %d) was closed", i,
              CAP);

  ia_master *m = NULL;
  ia_conn *conn = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("capped", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);
  assert_sum_works(conn, 2, 2);
  cr_assert(tu_raw_expect_closed(fds[SILENT - CAP], TU_WAIT_MS),
            "the master's connection did not evict the oldest silent one");
  ia_conn_free(conn);
  ia_master_free(m);
  for (int i = 0; i < SILENT; i++)
    close(fds[i]);
  ia_slave_free(s);
}
