/* `interaction call --proto`: requests and replies in protobuf text format,
 * through protoc, against a real sum-slave process. What goes to stdout (the
 * reply's text, nothing else), what goes to stderr (a TaskFail and its result
 * as text; protoc's own complaint), and that a request protoc cannot make, a
 * method or type the .proto lacks, a missing .proto or protoc, and a protoc
 * that hangs all end with exit 1 before anything is sent. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif
#ifndef SUM_PROTO_PATH
#error "SUM_PROTO_PATH must name examples/sum/sum.proto"
#endif
#ifndef SUM_PROTO_DIR
#error "SUM_PROTO_DIR must name examples/sum"
#endif
#ifndef IA_PROTOC_PATH
#error "IA_PROTOC_PATH must name the protoc the build found"
#endif

#define CHANNEL 7

#include "cli_run.h"

/* ---- the slave ---- */

static tu_proc slave = TU_PROC_INIT;
static char address[64];

static void start_slave(void) {
  uint16_t port = tu_spawn_sum_slave(&slave, SUM_SLAVE_PATH, CHANNEL, NULL);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", slave.line);
  snprintf(address, sizeof address, "%s:%u", TU_HOST, (unsigned)port);
}

static void stop_slave(void) {
  tu_proc_kill(&slave);
  tu_temp_remove_all();
}

/* An address nothing listens on: a call that got as far as connecting would
 * exit 3 there, so exit 1 shows it stopped before. */
static const char *closed_address(void) {
  static char text[64];
  snprintf(text, sizeof text, "%s:%u", TU_HOST, (unsigned)cli_closed_port());
  return text;
}

#define ASSERT_STDOUT_IS(r, want)                                                                            \
  cr_assert_str_eq((r).out != NULL ? (char *)(r).out : "", (want), "stdout differs; stderr: %s", (r).err)

/* ---- text requests and replies ---- */

TestSuite(cli_text, .init = start_slave, .fini = stop_slave, .timeout = 60);

Test(cli_text, sum_from_text_prints_the_reply_as_text) {
  const char *args[] = {"call",   address,     "--channel",     "7", "--proto", SUM_PROTO_PATH,
                        "--text", "a: 2 b: 3", "sum.Adder/Sum", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 0);
  ASSERT_STDOUT_IS(r, "sum: 5\n");
  cr_assert_eq(r.err_len, 0, "stderr: %s", r.err);
  run_free(&r);
}

/* Without --text the text comes from stdin (or --in), lines and all; -I
 * names the import path explicitly. */
Test(cli_text, text_from_stdin_with_an_import_path) {
  const char text[] = "# a comment, as protoc's text format allows\na: 40\nb: 2\n";
  const char *args[] = {"call", address,       "--channel",     "7", "--proto", SUM_PROTO_PATH,
                        "-I",   SUM_PROTO_DIR, "sum.Adder/Sum", NULL};
  run r = run_cli(args, text, sizeof text - 1);
  ASSERT_EXIT(r, 0);
  ASSERT_STDOUT_IS(r, "sum: 42\n");
  run_free(&r);

  const char *sleep[] = {"call",    address,        "--channel",       "7",
                         "--proto", SUM_PROTO_PATH, "--proto-path",    SUM_PROTO_DIR,
                         "--text",  "ms: 1",        "sum.Adder/Sleep", NULL};
  r = run_cli(sleep, NULL, 0);
  ASSERT_EXIT(r, 0);
  ASSERT_STDOUT_IS(r, "slept_ms: 1\n");
  run_free(&r);
}

/* sum-slave fails a Sum without b with 603 and a FailInfo{"ab not found"}
 * as the result: with --fail-type it is printed as that message, without
 * by field number; stdout stays empty and the exit status is 5 either way. */
Test(cli_text, sum_without_b_prints_the_task_fail_and_its_result_as_text) {
  const char *typed[] = {"call",        address,        "--channel",     "7",
                         "--proto",     SUM_PROTO_PATH, "--text",        "a: 2",
                         "--fail-type", "sum.FailInfo", "sum.Adder/Sum", NULL};
  run r = run_cli(typed, NULL, 0);
  ASSERT_EXIT(r, 5);
  cr_assert_eq(r.out_len, 0, "stdout must stay empty on failure, got: %s", (char *)r.out);
  cr_assert_str_eq(r.err, "interaction: call failed: 603 TASK_FAILED: A or B not found in task data. "
                          "(14 bytes of result data)\n"
                          "interaction: the result data as sum.FailInfo:\n"
                          "message: \"ab not found\"\n");
  run_free(&r);

  const char *raw[] = {"call",   address, "--channel",     "7", "--proto", SUM_PROTO_PATH,
                       "--text", "a: 2",  "sum.Adder/Sum", NULL};
  r = run_cli(raw, NULL, 0);
  ASSERT_EXIT(r, 5);
  cr_assert_eq(r.out_len, 0);
  ASSERT_STDERR_HAS(r, "603 TASK_FAILED: A or B not found in task data.");
  ASSERT_STDERR_HAS(r,
                    "the result data by field number (--fail-type names its type):\n1: \"ab not found\"\n");
  run_free(&r);
}

/* Without --proto the bytes pipe is as before: protoc --encode into the
 * tool, the raw reply into protoc --decode (the README's example). */
Test(cli_text, without_proto_the_raw_bytes_pipe_through_protoc_works) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "echo 'a: 20 b: 22' | '%s' --encode=sum.SumTask -I '%s' sum.proto"
           " | '%s' call %s --channel 7 sum.Adder/Sum"
           " | '%s' --decode=sum.SumResult -I '%s' sum.proto",
           IA_PROTOC_PATH, SUM_PROTO_DIR, IA_CLI_PATH, address, IA_PROTOC_PATH, SUM_PROTO_DIR);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  char out[256] = "";
  size_t n = fread(out, 1, sizeof out - 1, p);
  out[n] = '\0';
  cr_assert_eq(pclose(p), 0, "the pipe failed: %s", cmd);
  cr_assert_str_eq(out, "sum: 42\n");
}

/* ---- what stops a call before it connects: exit 1, nothing sent ---- */

Test(cli_text_errors, a_bad_text_request_is_protocs_complaint_and_nothing_is_sent, .timeout = 30) {
  const char *args[] = {"call",   closed_address(), "--proto",       SUM_PROTO_PATH,
                        "--text", "a: nope",        "sum.Adder/Sum", NULL};
  run r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 1);
  cr_assert_eq(r.out_len, 0);
  cr_assert_str_eq(r.err, "interaction: the request is not a sum.SumTask in text format: protoc exited with "
                          "status 1:\n"
                          "  input:1:4: Expected integer, got: nope\n"
                          "  Failed to parse input.\n");
  run_free(&r);
}

Test(cli_text_errors, a_method_or_type_the_proto_lacks_is_named_with_what_it_has, .timeout = 30) {
  const char *method[] = {"call",   closed_address(), "--proto",        SUM_PROTO_PATH,
                          "--text", "a: 1",           "sum.Adder/Nope", NULL};
  run r = run_cli(method, NULL, 0);
  ASSERT_EXIT(r, 1);
  cr_assert_eq(r.out_len, 0);
  char want[512];
  snprintf(want, sizeof want,
           "interaction: %s (with its imports) has no method sum.Adder/Nope; it has: sum.Adder/Sum, "
           "sum.Adder/Sleep\n",
           SUM_PROTO_PATH);
  cr_assert_str_eq(r.err, want);
  run_free(&r);

  const char *service[] = {"call", closed_address(), "--proto", SUM_PROTO_PATH, "--text",
                           "",     "no.Such/Sum",    NULL};
  r = run_cli(service, NULL, 0);
  ASSERT_EXIT(r, 1);
  ASSERT_STDERR_HAS(r, "has no method no.Such/Sum; it has: sum.Adder/Sum, sum.Adder/Sleep");
  run_free(&r);

  const char *bare[] = {"call", closed_address(), "--proto", SUM_PROTO_PATH, "--text", "", "Sum", NULL};
  r = run_cli(bare, NULL, 0);
  ASSERT_EXIT(r, 1);
  ASSERT_STDERR_HAS(r, "has no method Sum (METHOD is SERVICE/METHOD)");
  run_free(&r);

  const char *type[] = {"call", closed_address(), "--proto",  SUM_PROTO_PATH,  "--text",
                        "a: 1", "--fail-type",    "sum.Nope", "sum.Adder/Sum", NULL};
  r = run_cli(type, NULL, 0);
  ASSERT_EXIT(r, 1);
  ASSERT_STDERR_HAS(r, "--fail-type sum.Nope: ");
  ASSERT_STDERR_HAS(r, "defines no such message");
  run_free(&r);
}

Test(cli_text_errors, a_missing_or_broken_proto_file_is_named, .timeout = 30, .fini = tu_temp_remove_all) {
  const char *missing[] = {"call",   closed_address(), "--proto",       "/nonexistent/ia-cli.proto",
                           "--text", "a: 1",           "sum.Adder/Sum", NULL};
  run r = run_cli(missing, NULL, 0);
  ASSERT_EXIT(r, 1);
  cr_assert_str_eq(
      r.err,
      "interaction: cannot read the proto file /nonexistent/ia-cli.proto: No such file or directory\n");
  run_free(&r);

  static const char broken[] = "syntax = \"proto2\";\nmessage {\n";
  char path[TU_PATH_MAX];
  int fd = tu_temp_file(path, "cli-broken", broken, sizeof broken - 1);
  cr_assert_geq(fd, 0);
  close(fd);
  const char *args[] = {"call", closed_address(), "--proto", path, "--text", "a: 1", "sum.Adder/Sum", NULL};
  r = run_cli(args, NULL, 0);
  ASSERT_EXIT(r, 1);
  ASSERT_STDERR_HAS(r, "cannot read the services of ");
  ASSERT_STDERR_HAS(r, ":2:9: Expected message name."); /* protoc's words, passed through */
  run_free(&r);
}

Test(cli_text_errors, a_missing_protoc_is_said_so, .timeout = 30) {
  const char *given[] = {"call",          closed_address(),
                         "--proto",       SUM_PROTO_PATH,
                         "--text",        "a: 1",
                         "--protoc",      "/nonexistent/protoc",
                         "sum.Adder/Sum", NULL};
  run r = run_cli(given, NULL, 0);
  ASSERT_EXIT(r, 1);
  ASSERT_STDERR_HAS(r, "cannot run /nonexistent/protoc: No such file or directory");
  run_free(&r);

  /* The worker process of this test only: the tool inherits it. */
  cr_assert_eq(setenv("PATH", "/nonexistent", 1), 0);
  const char *path[] = {"call",   closed_address(), "--proto",       SUM_PROTO_PATH,
                        "--text", "a: 1",           "sum.Adder/Sum", NULL};
  r = run_cli(path, NULL, 0);
  ASSERT_EXIT(r, 1);
  cr_assert_str_eq(r.err,
                   "interaction: --proto needs protoc, and there is none on PATH (or give --protoc PATH)\n");
  run_free(&r);
}

/* A protoc that never finishes is killed at --timeout, and the tool says so
 * at once instead of hanging. */
Test(cli_text_errors, a_hanging_protoc_is_killed_at_the_timeout, .timeout = 30, .fini = tu_temp_remove_all) {
  static const char script[] = "#!/bin/sh\nexec sleep 30\n";
  char protoc[TU_PATH_MAX];
  int fd = tu_temp_file(protoc, "cli-protoc", script, sizeof script - 1);
  cr_assert_geq(fd, 0);
  close(fd);
  cr_assert_eq(chmod(protoc, 0700), 0);
  const char *args[] = {"call",     closed_address(), "--timeout", "300",  "--proto",       SUM_PROTO_PATH,
                        "--protoc", protoc,           "--text",    "a: 1", "sum.Adder/Sum", NULL};
  uint64_t t0 = tu_now_ms();
  run r = run_cli(args, NULL, 0);
  uint64_t took = tu_now_ms() - t0;
  ASSERT_EXIT(r, 1);
  ASSERT_STDERR_HAS(r, "protoc did not finish within 300 ms and was killed (--timeout)");
  cr_assert_lt(took, 5000, "the tool took %llu ms", (unsigned long long)took);
  run_free(&r);
}

/* ---- the command line ---- */

Test(cli_text_usage, proto_options_are_checked_and_documented, .timeout = 30) {
  const char *const cases[][10] = {
      {"call", "127.0.0.1:1", "--text", "a: 1", "sum.Adder/Sum", NULL},
      {"call", "127.0.0.1:1", "-I", "/tmp", "sum.Adder/Sum", NULL},
      {"call", "127.0.0.1:1", "--fail-type", "sum.FailInfo", "sum.Adder/Sum", NULL},
      {"call", "127.0.0.1:1", "--proto", SUM_PROTO_PATH, "--text", "a: 1", "--in", "x", "sum.Adder/Sum",
       NULL},
      {"call", "127.0.0.1:1", "--proto", "", "sum.Adder/Sum", NULL},
      {"ping", "127.0.0.1:1", "--proto", SUM_PROTO_PATH, NULL},
      {"stats", "127.0.0.1:1", "-I", "/tmp", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    run r = run_cli(cases[i], NULL, 0);
    cr_assert_eq(r.exit_code, 2, "case %zu: exit %d; stderr: %s", i, r.exit_code, r.err);
    cr_assert_eq(r.out_len, 0, "case %zu", i);
    cr_assert_not_null(strstr(r.err, "usage: interaction"), "case %zu: %s", i, r.err);
    run_free(&r);
  }
  const char *help[] = {"call", "--help", NULL};
  run r = run_cli(help, NULL, 0);
  ASSERT_EXIT(r, 0);
  cr_assert_not_null(strstr((char *)r.out, "--proto FILE"), "%s", (char *)r.out);
  cr_assert_not_null(strstr((char *)r.out, "--text TEXT"), "%s", (char *)r.out);
  cr_assert_not_null(strstr((char *)r.out, "found on PATH"), "%s", (char *)r.out);
  run_free(&r);
}
