/* ia_slave_main(), the library's whole main() of a slave program, as
 * sum-slave runs it: its command line (--help, usage errors, config errors),
 * the `listening on H:P` line, and a clean exit on SIGTERM. cli_run.h runs
 * "the tool": here it is sum-slave (IA_CLI_PATH). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "cli_run.h"
#include "tu.h"

TestSuite(slave_main, .fini = tu_proc_kill_all, .timeout = 60);

/* Runs sum-slave with args: it must exit with `code` and `text` must be in
 * its stdout (out) or stderr. */
static void assert_exits(const char *const args[], int code, bool out, const char *text) {
  run r = run_cli(args, NULL, 0);
  cr_assert(!r.timed_out, "sum-slave did not exit");
  cr_assert_eq(r.exit_code, code, "exit %d, not %d; stderr: %s", r.exit_code, code, r.err);
  if (out)
    cr_assert(r.out && memmem(r.out, r.out_len, text, strlen(text)), "stdout lacks \"%s\": %.*s", text,
              (int)r.out_len, r.out ? (const char *)r.out : "");
  else
    cr_assert(r.err && strstr(r.err, text), "stderr lacks \"%s\": %s", text, r.err);
  run_free(&r);
}

Test(slave_main, help_lists_every_flag_and_exits_0) {
  const char *const args[] = {"--help", NULL};
  const char *flags[] = {"usage: sum-slave",   "--host H",        "--port P",       "--channel C",
                         "--mode M",           "--workers N",     "--queue N",      "--metrics HOST:PORT",
                         "--secret-file PATH", "--tls-cert PATH", "--tls-key PATH", "--tls-ca PATH"};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
    assert_exits(args, 0, true, flags[i]);
}

Test(slave_main, usage_errors_say_what_is_wrong_and_exit_2) {
  const char *const bad_number[] = {"--port", "nope", NULL};
  assert_exits(bad_number, 2, false, "invalid number 'nope'");
  const char *const too_big[] = {"--port", "65536", NULL};
  assert_exits(too_big, 2, false, "invalid number '65536'");
  const char *const bad_mode[] = {"--mode", "fast", NULL};
  assert_exits(bad_mode, 2, false, "unknown mode 'fast'");
  const char *const extra[] = {"--port", "0", "extra", NULL};
  assert_exits(extra, 2, false, "unexpected argument 'extra'");
  const char *const bad_metrics[] = {"--metrics", "9100", NULL};
  assert_exits(bad_metrics, 2, false, "--metrics takes HOST:PORT");
}

Test(slave_main, a_config_the_slave_cannot_use_exits_1_with_the_reason) {
  const char *const no_file[] = {
      "--port", "0", "--tls-cert", "/nonexistent/slave.pem", "--tls-key", "/nonexistent/slave.key", NULL};
  assert_exits(no_file, 1, false, "cannot read the certificate /nonexistent/slave.pem");
  const char *const half[] = {"--port", "0", "--tls-cert", "/nonexistent/slave.pem", NULL};
  assert_exits(half, 1, false, "needs both tls_cert and tls_key");
}

Test(slave_main, it_says_where_it_listens_serves_and_exits_0_on_sigterm) {
  tu_proc p = TU_PROC_INIT;
  const char *const extra[] = {"--name", "main-test", NULL};
  uint16_t port = tu_spawn_sum_slave(&p, IA_CLI_PATH, 9, extra);
  cr_assert_neq(port, 0, "no `listening on 127.0.0.1:PORT` line: %s", p.line);
  char want[64];
  snprintf(want, sizeof want, "listening on 127.0.0.1:%u", (unsigned)port);
  cr_assert_str_eq(p.line, want);
  cr_assert(tu_proc_signal(&p, SIGTERM));
  cr_assert(tu_proc_wait(&p, TU_WAIT_MS), "sum-slave did not stop on SIGTERM");
  cr_assert(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0, "status %d", p.status);
}
