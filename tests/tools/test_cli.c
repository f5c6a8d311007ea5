/* The `interaction` command-line tool against a real sum-slave process: the
 * exit status of each outcome, what goes to stdout (the raw reply, nothing
 * else) and what goes to stderr (code, name and the slave's message). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif
#ifndef IA_CLI_PATH
#error "IA_CLI_PATH must name the interaction executable"
#endif

#define CHANNEL 7

#include "cli_run.h"

/* ---- the slave ---- */

static tu_proc slave = TU_PROC_INIT;
static char address[64];
static uint16_t slave_port;

static void start_slave(void) {
  uint16_t port = slave_port = tu_spawn_sum_slave(&slave, SUM_SLAVE_PATH, CHANNEL, NULL);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", slave.line);
  snprintf(address, sizeof address, "%s:%u", TU_HOST, (unsigned)port);
}

static void stop_slave(void) {
  tu_proc_kill(&slave);
  tu_temp_remove_all();
}

/* ---- tests ---- */

TestSuite(cli, .init = start_slave, .fini = stop_slave, .timeout = 60);

Test(cli, ping_succeeds_and_reports_handshake_and_round_trips) {
  const char *args[] = {"ping", address, "--channel", "7", "--count", "3", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 0);
  char want[256];
  snprintf(want, sizeof want, "connected to %s (channel 7) in ", address);
  cr_assert_not_null(strstr((char *)r.out, want), "stdout: %s", (char *)r.out);
  for (int seq = 1; seq <= 3; seq++) {
    snprintf(want, sizeof want, "pong from %s: seq=%d rtt=", address, seq);
    cr_assert_not_null(strstr((char *)r.out, want), "no \"%s\" in stdout: %s", want, (char *)r.out);
  }
  cr_assert_not_null(strstr((char *)r.out, "3 of 3 pings answered"), "stdout: %s", (char *)r.out);
  cr_assert_not_null(strstr((char *)r.out, "slave sum-slave: mode nonblocking-single, capacity 1\n"),
                     "no slave name, mode and capacity in stdout: %s", (char *)r.out);
  cr_assert_eq(r.err_len, 0, "stderr: %s", r.err);
  run_free(&r);
}

Test(cli, call_sum_from_stdin_writes_the_raw_reply) {
  size_t len = 0;
  uint8_t *req = tu_sum_task(2, 3, true, true, &len);
  cr_assert_not_null(req);
  const char *args[] = {"call", address, "--channel", "7", "sum.Adder/Sum", NULL};
  run r = run_cli(args, req, len);
  free(req);
  ASSERT_EXIT(r, 0);
  int64_t sum = 0;
  cr_assert(tu_sum_result(r.out, r.out_len, &sum), "stdout (%zu bytes) is not a SumResult", r.out_len);
  cr_assert_eq(sum, 5);
  cr_assert_eq(r.err_len, 0, "stderr: %s", r.err);
  run_free(&r);
}

Test(cli, call_sum_with_in_file) {
  size_t len = 0;
  uint8_t *req = tu_sum_task(40, 2, true, true, &len);
  cr_assert_not_null(req);
  char path[TU_PATH_MAX];
  int fd = tu_temp_file(path, "cli-test", req, len);
  cr_assert_geq(fd, 0, "cannot make the request file: %s", strerror(errno));
  close(fd);
  free(req);
  const char *args[] = {"call", "--in", path, "--channel=7", address, "sum.Adder/Sum", NULL};
  run r = run_cli(args, NULL, 0);
  unlink(path);
  ASSERT_EXIT(r, 0);
  int64_t sum = 0;
  cr_assert(tu_sum_result(r.out, r.out_len, &sum), "stdout (%zu bytes) is not a SumResult", r.out_len);
  cr_assert_eq(sum, 42);
  run_free(&r);
}

Test(cli, call_with_a_missing_input_file_is_a_local_error) {
  const char *args[] = {"call",          "--in", "/nonexistent/ia-cli-request", "--channel", "7", address,
                        "sum.Adder/Sum", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 1);
  ASSERT_STDERR_HAS(r, "/nonexistent/ia-cli-request");
  cr_assert_eq(r.out_len, 0);
  run_free(&r);
}

Test(cli, call_sum_without_b_exits_5_with_the_task_fail) {
  size_t len = 0;
  uint8_t *req = tu_sum_task(2, 0, true, false, &len);
  cr_assert_not_null(req);
  const char *args[] = {"call", address, "--channel", "7", "--in", "-", "sum.Adder/Sum", NULL};
  run r = run_cli(args, req, len);
  free(req);
  ASSERT_EXIT(r, 5);
  cr_assert_eq(r.out_len, 0, "stdout must stay empty on failure, got %zu bytes", r.out_len);
  ASSERT_STDERR_HAS(r, "call failed: 603 TASK_FAILED: ");
  ASSERT_STDERR_HAS(r, "A or B not found");
  ASSERT_STDERR_HAS(r, "bytes of result data");
  run_free(&r);
}

Test(cli, call_of_an_unknown_method_exits_6) {
  const char *args[] = {"call", address, "--channel", "7", "sum.Adder/Nope", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 6);
  cr_assert_eq(r.out_len, 0);
  ASSERT_STDERR_HAS(r, "606 UNKNOWN_METHOD");
  run_free(&r);
}

Test(cli, call_without_answer_in_time_exits_5_and_frees_the_slave) {
  size_t len = 0;
  uint8_t *req = tu_sleep_task(5000, &len);
  cr_assert_not_null(req);
  const char *args[] = {"call", address, "--channel", "7", "--timeout", "300", "sum.Adder/Sleep", NULL};
  run r = run_cli(args, req, len);
  free(req);
  ASSERT_EXIT(r, 5);
  cr_assert_eq(r.out_len, 0);
  ASSERT_STDERR_HAS(r, "702 TIMEOUT");
  run_free(&r);

  /* The cancelled Sleep and the closed connection leave the slave usable. */
  const char *ping[] = {"ping", address, "--channel", "7", "--count", "1", NULL};
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  do {
    r = run_cli(ping, NULL, 0);
    if (r.exit_code == 0) break;
    run_free(&r);
    tu_sleep_ms(50);
  } while (tu_now_ms() < deadline);
  ASSERT_EXIT(r, 0);
  run_free(&r);
}

/* Kills the slave once the tool has connected to it and sent its Sleep
 * (however slowly the tool starts: under valgrind it takes seconds). */
static void *kill_slave_later(void *arg) {
  (void)arg;
  tu_wait_established(slave_port, 30000);
  tu_sleep_ms(300);
  tu_proc_kill(&slave);
  return NULL;
}

Test(cli, slave_killed_during_the_call_exits_7) {
  size_t len = 0;
  uint8_t *req = tu_sleep_task(8000, &len);
  cr_assert_not_null(req);
  /* The tool connects within milliseconds; the slave dies a second later,
   * in the middle of the Sleep. */
  pthread_t killer;
  cr_assert_eq(pthread_create(&killer, NULL, kill_slave_later, NULL), 0);
  const char *args[] = {"call", address, "--channel", "7", "--timeout", "9000", "sum.Adder/Sleep", NULL};
  run r = run_cli(args, req, len);
  pthread_join(killer, NULL);
  free(req);
  ASSERT_EXIT(r, 7);
  cr_assert_eq(r.out_len, 0);
  char want[256];
  snprintf(want, sizeof want, "interaction: connection to %s lost during the call: 701 CONNECTION_LOST",
           address);
  ASSERT_STDERR_HAS(r, want);
  run_free(&r);
}

Test(cli, wrong_channel_exits_4_with_the_slaves_202_message) {
  const char *args[] = {"ping", address, "--channel", "8", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 4);
  char want[256];
  snprintf(want, sizeof want, "interaction: cannot connect to %s: 202 CHANNEL_INVALID: ", address);
  ASSERT_STDERR_HAS(r, want);
  ASSERT_STDERR_HAS(r, "does not match");
  cr_assert_null(strstr((char *)(r.out ? r.out : (uint8_t *)""), "pong"));
  run_free(&r);

  const char *call[] = {"call", address, "--channel", "8", "sum.Adder/Sum", NULL};
  r = run_cli(call, NULL, 0);
  ASSERT_EXIT(r, 4);
  ASSERT_STDERR_HAS(r, "202 CHANNEL_INVALID");
  cr_assert_eq(r.out_len, 0);
  run_free(&r);
}

/* ping observes: it works while a coordinator is attached (it used to be
 * refused with 501 like a second master); call runs a task, so it is a
 * master and still gets 501. */
Test(cli, ping_works_while_a_master_is_attached_and_call_gets_501) {
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("first-master", CHANNEL, &m, &err), &err);
  char *colon = strrchr(address, ':');
  TU_ASSERT_OK(tu_connect(m, "slave", (uint16_t)atoi(colon + 1), &conn, &err), &err);
  const char *ping[] = {"ping", address, "--channel", "7", "--count", "2", NULL};
  run r = run_cli(ping, NULL, 0);
  ASSERT_EXIT(r, 0);
  cr_assert_not_null(strstr((char *)r.out, "2 of 2 pings answered"), "stdout: %s", (char *)r.out);
  run_free(&r);
  const char *call[] = {"call", address, "--channel", "7", "sum.Adder/Sum", NULL};
  r = run_cli(call, NULL, 0);
  ASSERT_EXIT(r, 4);
  ASSERT_STDERR_HAS(r, "501 ALREADY_CONNECTED");
  run_free(&r);
  assert_sum_works(conn, 1, 2); /* the coordinator never noticed */
  ia_conn_free(conn);
  ia_master_free(m);
}

Test(cli, unreachable_port_exits_3) {
  char unreachable[64];
  snprintf(unreachable, sizeof unreachable, "%s:%u", TU_HOST, (unsigned)cli_closed_port());
  const char *args[] = {"ping", unreachable, "--channel", "7", "--timeout", "2000", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 3);
  char want[256];
  snprintf(want, sizeof want, "interaction: cannot connect to %s: 706 IO_ERROR: ", unreachable);
  ASSERT_STDERR_HAS(r, want);
  run_free(&r);

  const char *call[] = {"call", unreachable, "sum.Adder/Sum", NULL};
  r = run_cli(call, NULL, 0);
  ASSERT_EXIT(r, 3);
  cr_assert_eq(r.out_len, 0);
  run_free(&r);
}

/* ---- the command line, without a slave ---- */

Test(cli_usage, help_exits_0_on_stdout_for_the_tool_and_every_command, .timeout = 60) {
  const char *const cases[][4] = {
      {"--help", NULL, NULL},        {"-h", NULL, NULL},
      {"ping", "--help", NULL},      {"ping", "-h", NULL},
      {"call", "--help", NULL},      {"call", "-h", NULL},
      {"help", NULL, NULL},          {"ping", "127.0.0.1:1", "-h"},
      {"call", "127.0.0.1:1", "-h"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run r = run_cli(cases[i], NULL, 0);
    ASSERT_EXIT(r, 0);
    cr_assert_not_null(r.out, "case %zu: no usage on stdout", i);
    cr_assert_not_null(strstr((char *)r.out, "usage: interaction"), "case %zu: %s", i, (char *)r.out);
    cr_assert_not_null(strstr((char *)r.out, "exit status:"), "case %zu: exit codes undocumented", i);
    cr_assert_eq(r.err_len, 0, "case %zu: stderr: %s", i, r.err);
    run_free(&r);
  }
}

Test(cli_usage, bad_command_lines_exit_2_with_usage_on_stderr, .timeout = 60) {
  const char *const cases[][6] = {
      {NULL},
      {"frobnicate", NULL},
      {"ping", NULL},
      {"ping", "127.0.0.1", NULL},
      {"ping", "127.0.0.1:", NULL},
      {"ping", ":5000", NULL},
      {"ping", "127.0.0.1:0", NULL},
      {"ping", "127.0.0.1:65536", NULL},
      {"ping", "127.0.0.1:99999999999999999999", NULL},
      {"ping", "127.0.0.1:50x0", NULL},
      {"ping", "127.0.0.1:-1", NULL},
      {"ping", "::1:5000", NULL},
      {"ping", "[::1:5000", NULL},
      {"ping", "127.0.0.1:5000", "--channel", "-1", NULL},
      {"ping", "127.0.0.1:5000", "--channel", "4294967296", NULL},
      {"ping", "127.0.0.1:5000", "--count", "0", NULL},
      {"ping", "127.0.0.1:5000", "--timeout", "0", NULL},
      {"ping", "127.0.0.1:5000", "--channel", NULL},
      {"ping", "127.0.0.1:5000", "--bogus", NULL},
      {"ping", "127.0.0.1:5000", "extra", NULL},
      {"ping", "127.0.0.1:5000", "--in", "x", NULL},
      {"call", "127.0.0.1:5000", NULL},
      {"call", "127.0.0.1:5000", "--count", "2", "m", NULL},
      {"call", "127.0.0.1:5000", "a", "b", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run r = run_cli(cases[i], NULL, 0);
    cr_assert_eq(r.exit_code, 2, "case %zu (%s %s): exit %d; stderr: %s", i, cases[i][0] ? cases[i][0] : "",
                 cases[i][0] && cases[i][1] ? cases[i][1] : "", r.exit_code, r.err);
    cr_assert_eq(r.out_len, 0, "case %zu: usage errors go to stderr only", i);
    cr_assert_not_null(strstr(r.err, "usage: interaction"), "case %zu: no usage on stderr: %s", i, r.err);
    run_free(&r);
  }
}

Test(cli_usage, address_errors_say_what_is_wrong, .timeout = 30) {
  const char *missing[] = {"ping", "127.0.0.1", NULL};
  run r = run_cli(missing, NULL, 0);
  ASSERT_EXIT(r, 2);
  ASSERT_STDERR_HAS(r, "missing port");
  run_free(&r);
  const char *range[] = {"ping", "127.0.0.1:70000", NULL};
  r = run_cli(range, NULL, 0);
  ASSERT_EXIT(r, 2);
  ASSERT_STDERR_HAS(r, "port must be a number from 1 to 65535");
  run_free(&r);
}

/* sum-slave --mode/--workers: the Welcome says them, and ping prints them. */
Test(cli_modes, ping_prints_the_mode_and_capacity_sum_slave_was_given, .timeout = 60) {
  tu_proc multi = TU_PROC_INIT;
  const char *const extra[] = {"--mode", "nonblocking-multi", "--workers", "3", NULL};
  uint16_t port = tu_spawn_sum_slave(&multi, SUM_SLAVE_PATH, CHANNEL, extra);
  cr_assert_neq(port, 0, "sum-slave --mode nonblocking-multi did not start: %s", multi.line);
  char addr[64];
  snprintf(addr, sizeof addr, "%s:%u", TU_HOST, (unsigned)port);
  const char *args[] = {"ping", addr, "--channel", "7", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 0);
  cr_assert_not_null(strstr((char *)r.out, "slave sum-slave: mode nonblocking-multi, capacity 3\n"),
                     "stdout: %s", (char *)r.out);
  run_free(&r);
  tu_proc_kill(&multi);
}

/* interaction stats --json, read by Python's json module, holds exactly
 * what a master did, and works while that master is attached. */
Test(cli_stats, stats_json_counts_exactly_while_a_master_is_attached, .timeout = 60) {
  tu_proc proc = TU_PROC_INIT;
  uint16_t port = tu_spawn_sum_slave(&proc, SUM_SLAVE_PATH, CHANNEL, NULL);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", proc.line);
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  TU_ASSERT_OK(tu_master_start("coordinator", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", port, &conn, &err), &err);
  assert_sum_works(conn, 1, 2);
  assert_sum_works(conn, 3, 4);
  assert_sum_without_b_fails(conn);
  void *reply = NULL;
  size_t reply_len = 0;
  cr_assert_eq(ia_call(conn, "no.Such/Thing", "", 0, &reply, &reply_len, TU_WAIT_MS, &err),
               IA_UNKNOWN_METHOD);
  ia_error_clear(&err);

  char addr[64];
  snprintf(addr, sizeof addr, "%s:%u", TU_HOST, (unsigned)port);
  const char *args[] = {"stats", addr, "--channel", "7", "--json", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 0);
  char path[TU_PATH_MAX];
  int fd = tu_temp_file(path, "stats", r.out, r.out_len);
  cr_assert_geq(fd, 0);
  close(fd);
  run_free(&r);
  char cmd[640];
  snprintf(
      cmd, sizeof cmd,
      "/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
      "m={x[\"method\"]: x for x in d[\"methods\"]}; s=m[\"sum.Adder/Sum\"]; "
      "print(d[\"slave\"], d[\"mode\"], s[\"tasks\"][\"completed\"], s[\"tasks\"][\"failed\"], s[\"runs\"], "
      "d[\"refusals\"][\"unknown_method\"], d[\"refusals\"][\"busy\"], d[\"connections\"], d[\"running\"])' "
      "%s",
      path);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  char line[256] = "";
  cr_assert_not_null(fgets(line, sizeof line, p), "python read no JSON");
  cr_assert_eq(pclose(p), 0, "python could not read the JSON");
  unlink(path);
  /* completed 2, failed 1, 3 runs, 1 unknown method, 0 busy, 2 connections
   * (the master and the observer asking), 0 running. */
  cr_assert_str_eq(line, "sum-slave nonblocking-single 2 1 3 1 0 2 0\n");
  assert_sum_works(conn, 5, 6); /* the master never noticed */
  ia_conn_free(conn);
  ia_master_free(m);
  tu_proc_kill(&proc);
}

/* sum-slave --secret-file admits only masters that prove the secret; the
 * CLI proves it from its own --secret-file or from IA_SECRET, and exits 4
 * with the slave's 301 or 302 otherwise. */
Test(cli_auth, sum_slave_and_the_cli_take_the_secret_from_a_file_or_IA_SECRET, .timeout = 60,
     .fini = tu_temp_remove_all) {
  char path[TU_PATH_MAX];
  int fd = tu_temp_file(path, "cli-secret", "s3cret\n", 7);
  cr_assert_geq(fd, 0);
  close(fd);
  unsetenv("IA_SECRET");
  tu_proc guarded = TU_PROC_INIT;
  const char *const extra[] = {"--secret-file", path, NULL};
  uint16_t port = tu_spawn_sum_slave(&guarded, SUM_SLAVE_PATH, CHANNEL, extra);
  cr_assert_neq(port, 0, "sum-slave --secret-file did not start: %s", guarded.line);
  char addr[64];
  snprintf(addr, sizeof addr, "%s:%u", TU_HOST, (unsigned)port);

  const char *none[] = {"ping", addr, "--channel", "7", "--count", "1", NULL};
  run r = run_cli(none, NULL, 0);
  ASSERT_EXIT(r, 4);
  ASSERT_STDERR_HAS(r, "301 TOKEN_NOT_FOUND");
  run_free(&r);

  const char *with[] = {"ping", addr, "--channel", "7", "--count", "1", "--secret-file", path, NULL};
  r = run_cli(with, NULL, 0);
  ASSERT_EXIT(r, 0);
  cr_assert_not_null(strstr((char *)r.out, "1 of 1 pings answered"), "stdout: %s", (char *)r.out);
  run_free(&r);

  cr_assert_eq(setenv("IA_SECRET", "s3cret", 1), 0);
  r = run_cli(none, NULL, 0);
  ASSERT_EXIT(r, 0);
  run_free(&r);
  const char *stats[] = {"stats", addr, "--channel", "7", "--json", NULL};
  r = run_cli(stats, NULL, 0);
  ASSERT_EXIT(r, 0);
  run_free(&r);

  cr_assert_eq(setenv("IA_SECRET", "not it", 1), 0);
  r = run_cli(none, NULL, 0);
  ASSERT_EXIT(r, 4);
  ASSERT_STDERR_HAS(r, "302 TOKEN_INVALID");
  run_free(&r);
  unsetenv("IA_SECRET");
  tu_proc_kill(&guarded);
  unlink(path);
}
