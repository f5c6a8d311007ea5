/*
 * fuzz_auth: a slave that holds a shared secret, fed byte streams by a
 * peer that does not know it -- the surface every host on the network
 * reaches.
 *
 * One slave (with a secret) and one master (with the same secret) run in
 * this process for the whole run, public API only. Each input is played on
 * a fresh TCP connection to the slave: its first byte picks a prefix (0:
 * none; 1: a valid Hello with a nonce, so that what follows meets a slave
 * that has challenged; 2: a valid Hello without one), the rest is written
 * as it is, then the connection is half-closed and everything the slave
 * sends is read until it closes (bounded).
 *
 * Invariants: every frame the slave sends parses with protobuf-c and none
 * is cut short; it sends nothing but one AuthChallenge (with a 32-byte
 * nonce and proof, as its first answer),
 * Refusals and Goodbyes -- never a Welcome, never an answer to anything
 * else; no handler ever runs; it closes after our EOF; and after every
 * input the master, which holds the secret, still connects and runs a Sum.
 *
 * It must never wait without a bound, or connect anywhere but its own slave
 * on 127.0.0.1.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "interaction.pb-c.h"
#include "interaction/interaction.h"

#define CHANNEL 5
#define EOF_WAIT_MS 5000
#define MAX_REPLY (1u << 20)

static ia_slave *slave;
static ia_master *master;
static uint16_t port;
static char secret_path[256];
static atomic_int handled; /* tasks any handler ran */
static int probes;         /* tasks the proven master ran */

static void h_sum(ia_task_ctx *task, void *user) {
  (void)user;
  atomic_fetch_add(&handled, 1);
  size_t n = 0;
  const uint8_t *p = ia_task_ctx_payload(task, &n);
  ia_code rc = ia_task_ctx_reply(task, p, n);
  (void)rc;
}

static void stop_all(void) {
  ia_master_free(master);
  ia_slave_free(slave);
  unlink(secret_path);
}

static void probe(void);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_init();
  fz_temp_file(secret_path, sizeof secret_path, "fuzz-auth-secret", "fuzz_auth's secret\n");
  ia_slave_config c;
  ia_slave_config_init(&c);
  c.channel = CHANNEL;
  c.secret_file = secret_path;
  c.hello_timeout_ms = 500;
  ia_master_config mc;
  ia_master_config_init(&mc);
  mc.channel = CHANNEL;
  mc.secret_file = secret_path;
  ia_error err = IA_ERROR_INIT;
  if (ia_slave_new(&c, &slave, &err) != IA_OK || ia_slave_register(slave, "sum", h_sum, NULL) != IA_OK ||
      ia_slave_start(slave, &err) != IA_OK || ia_master_new(&mc, &master, &err) != IA_OK ||
      ia_master_start(master, &err) != IA_OK) {
    fprintf(stderr, "fuzz_auth: cannot start: %s\n", err.message);
    exit(1);
  }
  port = ia_slave_port(slave);
  /* A first handshake loads and starts OpenSSL, which registers its own
   * cleanup at exit: stop_all, registered after it, runs before it, and the
   * slave's threads end while OpenSSL can still free what they hold. */
  probe();
  atexit(stop_all);
  return 0;
}

/* What the slave sent, against what it may send an unproven peer. */
static void check_sent(const fz_buf *in) {
  size_t at = 0;
  uint32_t len;
  int challenges = 0;
  fz_split s;
  while ((s = fz_split_next(in->p, in->n, at, 1u << 20, &len)) == FZ_SPLIT_READY) {
    Interaction__V1__Frame *f = interaction__v1__frame__unpack(NULL, len, in->p + at + 4);
    if (!f) fz_fail("slave_malformed", "a frame from the slave does not parse");
    switch (f->body_case) {
    case INTERACTION__V1__FRAME__BODY_AUTH_CHALLENGE:
      if (++challenges > 1 || at != 0)
        fz_fail("unasked_challenge", "a challenge that is not the first answer");
      if (!f->auth_challenge->has_nonce || f->auth_challenge->nonce.len != 32 ||
          !f->auth_challenge->has_proof || f->auth_challenge->proof.len != 32)
        fz_fail("bad_challenge", "a challenge without a 32-byte nonce and proof");
      break;
    case INTERACTION__V1__FRAME__BODY_REFUSAL:
    case INTERACTION__V1__FRAME__BODY_GOODBYE:
      break;
    case INTERACTION__V1__FRAME__BODY_WELCOME:
      fz_fail("unproven_welcomed", "a peer without the secret was welcomed");
      break;
    default:
      fz_fail("unproven_answered", "the slave answered an unproven peer with body %d", f->body_case);
    }
    interaction__v1__frame__free_unpacked(f, NULL);
    at += 4 + (size_t)len;
  }
  if (at != in->n) fz_fail("slave_cut_short", "the slave's last frame is cut short");
}

/* The master that holds the secret still gets in, and its Sum runs. */
static void probe(void) {
  fz_probe(master, port, "sum", 1, "proven_refused");
  probes++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input(data, size);
  if (size < 1) return 0;
  uint8_t mode = data[0] % 3;
  fz_buf out = {0}, in = {0};
  if (mode) fz_buf_hello(&out, 1, CHANNEL, mode == 1);
  fz_buf_put(&out, data + 1, size - 1);
  int fd = fz_dial(port);
  if (fz_send_all(fd, out.p, out.n, &in)) shutdown(fd, SHUT_WR);
  fz_read_to_eof(fd, &in, EOF_WAIT_MS, MAX_REPLY);
  close(fd);
  check_sent(&in);
  if (atomic_load(&handled) != probes) fz_fail("task_ran", "a task ran for a peer without the secret");
  probe();
  fz_buf_free(&out);
  fz_buf_free(&in);
  return 0;
}
