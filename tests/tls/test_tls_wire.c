/* TLS as the wire sees it (issue 11): a session relayed through the test's
 * own sockets shows none of the method name, master name or payload it
 * carried (and, as the control, all of them without TLS); the shared
 * secret still decides over TLS; peers that never finish a TLS handshake
 * -- silent, garbage, a huge record or handshake length, a ClientHello
 * begun and left -- are cut off within the slave's hello timeout and
 * connection cap while a TLS master's calls keep succeeding. */
#define _GNU_SOURCE /* memmem */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tls_fixture.h"
#include "tu_relay.h"

TestSuite(tls_wire, .init = tls_suite_init, .fini = tls_suite_fini, .timeout = 60);

/* ---- what crosses the wire ---- */

/* One marker for each place a session carries a user's text. */
#define MARK_METHOD "mark-method-Q7zP4w"
#define MARK_NAME "mark-name-X3kdV8"
#define MARK_PAYLOAD "mark-payload-W9vBn2"

static const char *const marks[] = {MARK_METHOD, MARK_NAME, MARK_PAYLOAD};

/* A slave and a master (TLS when `tls`), and one session of theirs
 * recorded through a relay: the master, named after MARK_NAME, connects,
 * has a TLS_ECHO method named after MARK_METHOD echo a payload holding
 * MARK_PAYLOAD (the echo must come back whole), and disconnects. */
static void record_session(bool tls, tu_relay *r) {
  ia_slave_config sc;
  tls_slave_config(&sc, tls ? certs.slave_cert : NULL, tls ? certs.slave_key : NULL, NULL);
  ia_slave *s = fixture_slave_start(&sc);
  ia_master *m = tls_master("master-" MARK_NAME, tls ? certs.ca : NULL);
  cr_assert(tu_relay_start(r, ia_slave_port(s)), "cannot start the relay");
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_connect(m, "slave", r->port, &c, &err), &err);
  const char payload[] = "payload [" MARK_PAYLOAD "] payload";
  void *reply = NULL;
  size_t reply_len = 0;
  TU_ASSERT_OK(
      ia_call(c, TLS_ECHO MARK_METHOD, payload, sizeof payload, &reply, &reply_len, TU_WAIT_MS, &err), &err);
  cr_assert_eq(reply_len, sizeof payload);
  cr_assert_eq(memcmp(reply, payload, sizeof payload), 0, "the echo differs");
  free(reply);
  TU_ASSERT_OK(ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err), &err);
  ia_conn_free(c);
  tu_relay_join(r);
  cr_assert_not(r->failed, "the relay ran out of memory");
  cr_assert_gt(r->up.n, 0, "nothing went from the master to the slave");
  cr_assert_gt(r->down.n, 0, "nothing went from the slave to the master");
  ia_master_free(m);
  ia_slave_free(s);
}

/* True if any 8 bytes of `mark` are in the capture. */
static bool mark_seen(const tu_capture *c, const char *mark) {
  for (size_t at = 0; at + 8 <= strlen(mark); at++)
    if (memmem(c->p, c->n, mark + at, 8) != NULL) return true;
  return false;
}

Test(tls_wire, under_TLS_no_method_name_or_payload_crosses_the_wire) {
  tu_relay r;
  record_session(true, &r);
  /* Both directions open with a TLS handshake record. */
  cr_assert(r.up.n >= 3 && r.up.p[0] == 0x16 && r.up.p[1] == 0x03,
            "the master did not start with a TLS record");
  cr_assert(r.down.n >= 3 && r.down.p[0] == 0x16 && r.down.p[1] == 0x03,
            "the slave did not answer with a TLS record");
  for (size_t i = 0; i < sizeof marks / sizeof *marks; i++) {
    cr_assert_not(mark_seen(&r.up, marks[i]), "\"%s\" went from the master in clear", marks[i]);
    cr_assert_not(mark_seen(&r.down, marks[i]), "\"%s\" came from the slave in clear", marks[i]);
  }
  tu_relay_free(&r);
}

/* The control: the same session in plain TCP shows every marker, so the
 * capture above would have seen them. */
Test(tls_wire, without_TLS_the_capture_sees_every_marker) {
  tu_relay r;
  record_session(false, &r);
  for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
    cr_assert_not_null(memmem(r.up.p, r.up.n, marks[i], strlen(marks[i])), "\"%s\" not seen going up",
                       marks[i]);
  cr_assert_not_null(memmem(r.down.p, r.down.n, MARK_PAYLOAD, strlen(MARK_PAYLOAD)), "the echo not seen");
  tu_relay_free(&r);
}

/* ---- the shared secret over TLS ---- */

#define SECRET "a secret that TLS does not replace"

static void secret_file(char path[TU_PATH_MAX], const char *text) {
  int fd = tu_temp_file(path, "tls-secret", text, strlen(text));
  cr_assert_geq(fd, 0, "cannot make a secret file");
  close(fd);
}

static ia_master *secret_master(const char *name, const char *file) {
  ia_master_config config;
  tls_master_config(&config, name, certs.ca);
  config.secret_file = file;
  return tls_master_start(&config);
}

Test(tls_wire, the_shared_secret_decides_over_TLS_as_without) {
  unsetenv("IA_SECRET");
  char sf[TU_PATH_MAX], wf[TU_PATH_MAX];
  secret_file(sf, SECRET);
  secret_file(wf, SECRET "?");
  ia_slave_config config;
  tls_slave_config(&config, certs.slave_cert, certs.slave_key, NULL);
  config.secret_file = sf;
  ia_slave *s = fixture_slave_start(&config);
  ia_master *right = secret_master("right-secret", sf);
  assert_connects(right, ia_slave_port(s));
  ia_master *wrong = secret_master("wrong-secret", wf);
  assert_refused(wrong, ia_slave_port(s), IA_TOKEN_INVALID, NULL);
  ia_master *none = secret_master("no-secret", NULL);
  assert_refused(none, ia_slave_port(s), IA_TOKEN_NOT_FOUND, NULL);
  cr_assert_eq(tu_handler_calls(), 1);
  assert_connects(right, ia_slave_port(s));
  ia_master_free(none);
  ia_master_free(wrong);
  ia_master_free(right);
  ia_slave_free(s);
  unlink(sf);
  unlink(wf);
}

/* ---- hostile peers before the handshake ---- */

#define SILENT 24 /* three times the cap */
#define PENDING_CAP 8
#define GARBAGE 12

typedef struct hostile {
  uint16_t port;
  uint32_t bound_ms; /* the hello timeout and then some */
  int tried, cut;    /* connections made, and those the slave closed */
  atomic_bool done;
} hostile;

/* The slave must close fd within the bound; its answer (a plaintext
 * refusal, a TLS alert) is read and dropped. */
static void expect_cut(hostile *h, int fd) {
  h->tried++;
  if (fd >= 0 && tu_raw_expect_closed(fd, h->bound_ms)) h->cut++;
  if (fd >= 0) close(fd);
}

/* Connects and sends `len` bytes (which may fail once the slave has cut
 * the connection: that is what is wanted anyway). */
static void send_and_expect_cut(hostile *h, const void *bytes, size_t len) {
  int fd = tu_raw_connect(h->port);
  if (fd >= 0) (void)tu_raw_write(fd, bytes, len);
  expect_cut(h, fd);
}

static void *hostile_main(void *arg) {
  hostile *h = arg;
  /* Silent, all at once: the cap closes the oldest, the timeout the rest. */
  int fds[SILENT];
  for (int i = 0; i < SILENT; i++)
    fds[i] = tu_raw_connect(h->port);
  for (int i = 0; i < SILENT; i++)
    expect_cut(h, fds[i]);
  /* Garbage: text, a plaintext frame, a TLS record of nonsense. */
  static const uint8_t frame[] = {0, 0, 0, 5, 1, 2, 3, 4, 5};
  static const uint8_t record[] = {0x16, 0x03, 0x01, 0x00, 0x08, 0xde, 0xad,
                                   0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef};
  for (int i = 0; i < GARBAGE; i++) {
    if (i % 3 == 0) send_and_expect_cut(h, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
    if (i % 3 == 1) send_and_expect_cut(h, frame, sizeof frame);
    if (i % 3 == 2) send_and_expect_cut(h, record, sizeof record);
  }
  /* A record header declaring 64 KiB (over TLS's 16 KiB and then some),
   * and a ClientHello declaring 16 MiB; nothing after either. */
  static const uint8_t huge_record[] = {0x16, 0x03, 0x01, 0xff, 0xff};
  static const uint8_t huge_hello[] = {0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0xff, 0xff, 0xff};
  send_and_expect_cut(h, huge_record, sizeof huge_record);
  send_and_expect_cut(h, huge_hello, sizeof huge_hello);
  /* The start of a plausible ClientHello, and then silence: only the
   * hello timeout ends it. */
  static const uint8_t stalled[] = {0x16, 0x03, 0x01, 0x00, 0x80, 0x01, 0x00, 0x00, 0x7c, 0x03, 0x03};
  send_and_expect_cut(h, stalled, sizeof stalled);
  atomic_store(&h->done, true);
  return NULL;
}

Test(tls_wire, peers_that_never_finish_the_handshake_are_cut_off_while_a_TLS_master_works, .timeout = 120) {
  ia_slave_config config;
  tls_slave_config(&config, certs.slave_cert, certs.slave_key, NULL);
  /* Short, for the silent ones; the good master's handshake must fit in
   * it too (longer under valgrind). */
  config.hello_timeout_ms = tu_valgrind() ? 5000 : 500;
  config.max_pending = PENDING_CAP;
  ia_slave *s = fixture_slave_start(&config);
  ia_master *m = tls_master("good-master", certs.ca);
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &c, &err), &err);
  hostile h = {.port = ia_slave_port(s), .bound_ms = config.hello_timeout_ms + TU_WAIT_MS};
  atomic_init(&h.done, false);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, hostile_main, &h), 0);
  int calls = 0;
  uint64_t end = tu_now_ms() + 90000;
  do {
    assert_sum_works(c, calls, 1);
    calls++;
  } while (!atomic_load(&h.done) && tu_now_ms() < end);
  pthread_join(t, NULL);
  cr_assert_eq(h.tried, SILENT + GARBAGE + 3);
  cr_assert_eq(h.cut, h.tried, "only %d of %d hostile connections were cut off within %u ms", h.cut, h.tried,
               h.bound_ms);
  assert_sum_works(c, 2, 3);
  cr_assert_eq(tu_handler_calls(), calls + 1, "%d tasks ran for %d calls", tu_handler_calls(), calls + 1);
  ia_conn_free(c);
  ia_master_free(m);
  ia_slave_free(s);
}
