/*
 * master_proc MODE HOST PORT CHANNEL HEARTBEAT_MS TOLERANCE_MS
 *
 * A master named "master-proc" in its own process, for the tests that kill
 * or freeze a master (SIGKILL, SIGSTOP) and those that run it inside a
 * network namespace (`ip netns exec NS master_proc ...`) and cut its link.
 *
 *   hold  connects, starts sum.Adder/Sleep for 60 s, waits until the slave
 *         holds it and prints "started"; then waits up to 60 s for the task
 *         to end and prints "ended STATUS CODE AT_MS" (AT_MS on
 *         CLOCK_MONOTONIC, which every namespace shares), and sleeps until
 *         it is killed.
 *   sum   connects (a slave still holding a seat answers 501: retried for
 *         3 s), runs a Sum of 30 and 12 and prints "sum N", or "error CODE
 *         MESSAGE".
 *
 * Exits 1 with a reason on stderr on a failure before that, and on its own
 * after five minutes at the latest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tu.h"

static int fail(const char *what, ia_code rc, const ia_error *err) {
  fprintf(stderr, "master_proc: %s: %s (%s)\n", what, ia_strerror(rc), err ? err->message : "");
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 7 || (strcmp(argv[1], "hold") != 0 && strcmp(argv[1], "sum") != 0)) {
    fprintf(stderr, "usage: master_proc hold|sum HOST PORT CHANNEL HEARTBEAT_MS TOLERANCE_MS\n");
    return 2;
  }
  const char *host = argv[2];
  uint16_t port = (uint16_t)strtoul(argv[3], NULL, 10);
  uint32_t channel = (uint32_t)strtoul(argv[4], NULL, 10);
  uint32_t beat = (uint32_t)strtoul(argv[5], NULL, 10), tol = (uint32_t)strtoul(argv[6], NULL, 10);
  ia_error err = IA_ERROR_INIT;
  ia_master *m = NULL;
  ia_code rc = tu_master_start_beat("master-proc", channel, beat, tol, &m, &err);
  if (rc != IA_OK) return fail("start", rc, &err);
  ia_conn *conn = NULL;
  uint64_t deadline = tu_now_ms() + 3000;
  while ((rc = ia_master_connect(m, "slave", host, port, NULL, 0, TU_WAIT_MS, &conn, &err)) == IA_ALREADY_CONNECTED &&
         tu_now_ms() < deadline) {
    ia_error_clear(&err);
    tu_sleep_ms(20);
  }
  if (rc != IA_OK) return fail("connect", rc, &err);
  if (strcmp(argv[1], "sum") == 0) {
    int64_t sum = 0;
    rc = tu_call_sum(conn, 30, 12, &sum, &err);
    if (rc == IA_OK)
      printf("sum %lld\n", (long long)sum);
    else
      printf("error %d %s\n", rc, err.message);
    fflush(stdout);
    ia_conn_free(conn);
    ia_master_free(m);
    return 0;
  }
  ia_task *task = tu_sleep_task_new(conn, 60000);
  if (task == NULL) return fail("new task", IA_NO_MEMORY, NULL);
  rc = ia_task_start(task);
  if (rc != IA_OK) return fail("start task", rc, ia_task_error(task));
  ia_status s = tu_wait_status(task, IA_STATUS_STARTED, TU_WAIT_MS);
  if (s != IA_STATUS_STARTED) {
    fprintf(stderr, "master_proc: the task is %s, not STARTED\n", ia_status_name(s));
    return 1;
  }
  printf("started\n");
  fflush(stdout);
  if (ia_task_join(task, 60000) == IA_OK) {
    printf("ended %s %d %llu\n", ia_status_name(ia_task_status(task)), ia_task_error(task)->code,
           (unsigned long long)tu_now_ms());
    fflush(stdout);
  }
  /* The test kills this process; the bound only guards against a lost test. */
  for (int i = 0; i < 300; i++)
    sleep(1);
  _exit(0);
}
