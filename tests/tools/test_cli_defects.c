/* The `interaction` command-line tool against an in-process slave whose
 * max_frame is small: a request the master itself finds too large is a
 * local error (exit 1), not a refusal by the slave (exit 6). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#include "cli_run.h"

#define CHANNEL 141
#define SLAVE_MAX_FRAME 4096

/* Runs `interaction call` with a request of `len` bytes (from a file) to
 * the slave on `port`. */
static run call_with_request(uint16_t port, size_t len) {
  uint8_t *req = calloc(1, len);
  cr_assert_not_null(req);
  char path[TU_PATH_MAX];
  int fd = tu_temp_file(path, "cli-large", req, len);
  cr_assert_geq(fd, 0);
  close(fd);
  free(req);
  char address[64];
  snprintf(address, sizeof address, "%s:%u", TU_HOST, (unsigned)port);
  const char *args[] = {"call", address,     "--channel", "141",           "--in",
                        path,   "--timeout", "5000",      "sum.Adder/Sum", NULL};
  run r = run_cli(args, NULL, 0);
  unlink(path);
  return r;
}

/* Defect 12e (fix J, with B): `interaction call` exited 6, "the slave
 * refused the task", for a 703 that its own master detected before sending
 * anything: the request is larger than the slave's max_frame. That is a
 * local error, exit 1, with the code on stderr; nothing went out, so the
 * slave is not disturbed. Both a request over max_frame and one just under
 * it whose frame is over it (the master checks the whole frame). */
Test(cli_defects, a_request_over_the_slaves_max_frame_is_a_local_error, .timeout = 60) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.max_frame = SLAVE_MAX_FRAME;
  ia_slave *s = fixture_slave_start(&config);
  const size_t sizes[] = {2 * SLAVE_MAX_FRAME, SLAVE_MAX_FRAME - 6};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    run r = call_with_request(ia_slave_port(s), sizes[i]);
    cr_assert_eq(r.exit_code, 1,
                 "a %zu-byte request to a slave with max_frame %d: exit %d, expected 1; stderr: %s", sizes[i],
                 SLAVE_MAX_FRAME, r.exit_code, r.err);
    ASSERT_STDERR_HAS(r, "703 FRAME_TOO_LARGE");
    cr_assert_eq(r.out_len, 0);
    run_free(&r);
  }
  /* The slave is free and serves the next master. */
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("after-cli", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &conn, &err), &err);
  assert_sum_works(conn, 3, 4);
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(s);
}
