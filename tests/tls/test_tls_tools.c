/* TLS in the programs (issue 11): a sum-slave process given --tls-cert and
 * --tls-key prints its address as before and serves TLS masters only, and
 * `interaction ping` reaches it with --tls-ca and fails, saying TLS,
 * without. */
#define _GNU_SOURCE /* cli_run.h: pipe2, close_range */
#include <stdio.h>
#include <string.h>

#include "tls_fixture.h"

#include "cli_run.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif

static tu_proc slave = TU_PROC_INIT;
static uint16_t slave_port;
static char address[64];

static void start_tls_slave(void) {
  tls_suite_init();
  const char *const extra[] = {"--tls-cert", certs.slave_cert, "--tls-key", certs.slave_key, NULL};
  slave_port = tu_spawn_sum_slave(&slave, SUM_SLAVE_PATH, TLS_CHANNEL, extra);
  cr_assert_neq(slave_port, 0, "sum-slave with TLS did not start: %s", slave.line);
  snprintf(address, sizeof address, "%s:%u", TU_HOST, (unsigned)slave_port);
}

/* tls_suite_fini() kills the slave (tu_proc_kill_all()). */
TestSuite(tls_tools, .init = start_tls_slave, .fini = tls_suite_fini, .timeout = 60);

Test(tls_tools, sum_slave_with_TLS_prints_its_address_and_serves_TLS_masters_only) {
  char want[96];
  snprintf(want, sizeof want, "listening on %s", address);
  size_t n = strlen(want);
  cr_assert(strncmp(slave.line, want, n) == 0 && (slave.line[n] == '\0' || slave.line[n] == '\n'),
            "sum-slave said \"%s\", not \"%s\"", slave.line, want);
  ia_master *m = tls_master("tls-master", certs.ca);
  assert_connects(m, slave_port);
  ia_master *plain = tls_master("plain-master", NULL);
  assert_refused(plain, slave_port, IA_TOKEN_NOT_FOUND, "TLS");
  assert_connects(m, slave_port);
  ia_master_free(plain);
  ia_master_free(m);
}

Test(tls_tools, interaction_ping_with_the_CA_succeeds) {
  const char *args[] = {"ping",     address,  "--channel", TLS_STR(TLS_CHANNEL), "--count", "2",
                        "--tls-ca", certs.ca, NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 0);
  cr_assert_not_null(strstr((char *)r.out, "2 of 2 pings answered"), "stdout: %s", (char *)r.out);
  run_free(&r);
}

Test(tls_tools, interaction_ping_without_TLS_fails_and_says_TLS) {
  const char *args[] = {"ping", address, "--channel", TLS_STR(TLS_CHANNEL), "--count", "1", NULL};
  run r = run_cli(args, NULL, 0);
  cr_assert_neq(r.exit_code, 0, "a plaintext ping of a TLS slave succeeded: %s", (char *)r.out);
  cr_assert_eq(r.signal, 0, "the tool died of signal %d", r.signal);
  ASSERT_STDERR_HAS(r, "TLS");
  run_free(&r);
  /* And the slave still answers a TLS ping. */
  const char *tls[] = {"ping",     address,  "--channel", TLS_STR(TLS_CHANNEL), "--count", "1",
                       "--tls-ca", certs.ca, NULL};
  r = run_cli(tls, NULL, 0);
  ASSERT_EXIT(r, 0);
  run_free(&r);
}
