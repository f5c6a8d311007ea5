/*
 * sleepy_master PORT CHANNEL NAME [HEARTBEAT_MS HEARTBEAT_TOLERANCE_MS]
 *
 * A master in its own process, for the test that kills a master: connects to
 * 127.0.0.1:PORT as NAME on CHANNEL, starts sum.Adder/Sleep for 60 s, waits
 * until the slave holds it (STARTED), prints "started" (flushed) and then
 * sleeps until it is killed (or frozen with SIGSTOP, and then killed). The
 * heartbeat is the default unless given. Exits 1 with a reason on stderr on any failure,
 * and on its own after five minutes at the latest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tu.h"

static int fail(const char *what, ia_code rc, const ia_error *err) {
  fprintf(stderr, "sleepy_master: %s: %s (%s)\n", what, ia_strerror(rc), err ? err->message : "");
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 4 && argc != 6) {
    fprintf(stderr, "usage: sleepy_master PORT CHANNEL NAME [HEARTBEAT_MS HEARTBEAT_TOLERANCE_MS]\n");
    return 2;
  }
  uint32_t beat_ms = argc == 6 ? (uint32_t)strtoul(argv[4], NULL, 10) : IA_HEARTBEAT_DEFAULT_MS;
  uint32_t beat_tol = argc == 6 ? (uint32_t)strtoul(argv[5], NULL, 10) : IA_HEARTBEAT_TOLERANCE_DEFAULT_MS;
  uint16_t port = (uint16_t)strtoul(argv[1], NULL, 10);
  uint32_t channel = (uint32_t)strtoul(argv[2], NULL, 10);
  ia_error err = IA_ERROR_INIT;
  ia_master *master = NULL;
  ia_code rc = tu_master_start_beat(argv[3], channel, beat_ms, beat_tol, &master, &err);
  if (rc != IA_OK) return fail("start", rc, &err);
  ia_conn *conn = NULL;
  rc = tu_connect(master, "slave", port, &conn, &err);
  if (rc != IA_OK) return fail("connect", rc, &err);
  ia_task *task = tu_sleep_task_new(conn, 60000);
  if (task == NULL) return fail("new task", IA_NO_MEMORY, NULL);
  rc = ia_task_start(task);
  if (rc != IA_OK) return fail("start task", rc, ia_task_error(task));
  ia_status s = tu_wait_status(task, IA_STATUS_STARTED, TU_WAIT_MS);
  if (s != IA_STATUS_STARTED) {
    fprintf(stderr, "sleepy_master: the task is %s, not STARTED\n", ia_status_name(s));
    return 1;
  }
  printf("started\n");
  fflush(stdout);
  /* The test kills this process; the bound only guards against a lost test. */
  for (int i = 0; i < 300; i++)
    sleep(1);
  _exit(0);
}
