/* Shared-secret authentication (runtime/auth.h): the right secret runs
 * tasks, observers included; no secret (301), a wrong one (302), a slave
 * that cannot prove it (301) or proves a wrong one (302), and a replayed
 * handshake (302) are refused on the right side with no task run; the
 * secret's bytes never cross the wire; unauthenticated floods and oversize
 * pre-auth frames are cut off while a proven master keeps working; the
 * secret comes from a file or IA_SECRET; a slave without one never loads
 * OpenSSL. Every byte the tests relay or
 * capture goes through their own sockets on 127.0.0.1. */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fixture.h"
#include "tu_relay.h"

#define CHANNEL 31
#define SECRET "correct horse battery staple: a secret the tests look for"

/* ---- secret files ---- */

/* A file holding `text` (mode 600), its path in `path`; removed by the
 * suite's .fini whatever happens to the test. */
static void secret_file(char path[TU_PATH_MAX], const char *text) {
  int fd = tu_temp_file(path, "secret", text, strlen(text));
  cr_assert_geq(fd, 0, "cannot make a secret file");
  close(fd);
}

TestSuite(auth, .fini = tu_temp_remove_all);

static ia_slave *secret_slave(const char *file) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.secret_file = file;
  return fixture_slave_start(&config);
}

static ia_master *secret_master(const char *file) {
  ia_master_config config;
  ia_master_config_init(&config);
  config.name = "auth-master";
  config.channel = CHANNEL;
  config.secret_file = file;
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_master_new(&config, &m, &err), &err);
  TU_ASSERT_OK(ia_master_start(m, &err), &err);
  return m;
}

/* Connects m to the slave on `port` and expects `want`. */
static void assert_connect(ia_master *m, uint16_t port, ia_code want) {
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = tu_connect(m, "slave", port, &c, &err);
  cr_assert_eq(rc, want, "connect: %s (%s), not %s", ia_code_name(rc), err.message ? err.message : "",
               ia_code_name(want));
  if (want != IA_OK) cr_assert_null(c);
  if (c) {
    assert_sum_works(c, 20, 22);
    ia_conn_free(c);
  }
  ia_error_clear(&err);
}

/* The frame at `at` of a captured stream (its header included): its length. */
static size_t frame_at(const tu_capture *c, size_t at) {
  cr_assert_leq(at + 4, c->n, "the capture ends inside a frame header");
  size_t len = (size_t)c->p[at] << 24 | (size_t)c->p[at + 1] << 16 | (size_t)c->p[at + 2] << 8 | c->p[at + 3];
  cr_assert_leq(at + 4 + len, c->n, "the capture ends inside a frame");
  return 4 + len;
}

static Interaction__V1__Frame *frame_unpack(const tu_capture *c, size_t at) {
  size_t n = frame_at(c, at);
  Interaction__V1__Frame *f = interaction__v1__frame__unpack(NULL, n - 4, c->p + at + 4);
  cr_assert_not_null(f);
  return f;
}

/* A slave and a master holding SECRET (its file in sf), and one proven
 * master's whole life recorded through a relay: connect, a Sum, disconnect. */
typedef struct recorded {
  char sf[TU_PATH_MAX];
  ia_slave *slave;
  ia_master *master;
  tu_relay r;
} recorded;

static void record_session(recorded *rec) {
  secret_file(rec->sf, SECRET);
  rec->slave = secret_slave(rec->sf);
  rec->master = secret_master(rec->sf);
  cr_assert(tu_relay_start(&rec->r, ia_slave_port(rec->slave)), "the relay did not start");
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_connect(rec->master, "slave", rec->r.port, &c, &err), &err);
  assert_sum_works(c, 1, 2);
  TU_ASSERT_OK(ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err), &err);
  ia_conn_free(c);
  tu_relay_join(&rec->r);
  cr_assert(!rec->r.failed, "the relay ran out of memory");
}

static void recorded_free(recorded *rec) {
  tu_relay_free(&rec->r);
  ia_master_free(rec->master);
  ia_slave_free(rec->slave);
  unlink(rec->sf);
}

/* ---- the tests ---- */

Test(auth, the_right_secret_runs_tasks_and_observers_prove_it_too, .timeout = 60) {
  char sf[TU_PATH_MAX], mf[TU_PATH_MAX];
  secret_file(sf, SECRET);
  secret_file(mf, SECRET "\n"); /* one trailing newline is not part of it */
  ia_slave *s = secret_slave(sf);
  ia_master *m = secret_master(mf);
  assert_connect(m, ia_slave_port(s), IA_OK);
  cr_assert_eq(tu_handler_calls(), 1);
  ia_conn *o = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_master_observe(m, "observer", TU_HOST, ia_slave_port(s), TU_WAIT_MS, &o, &err), &err);
  uint64_t rtt = 0;
  TU_ASSERT_OK(ia_conn_ping(o, TU_WAIT_MS, &rtt, &err), &err);
  ia_conn_free(o);
  ia_master_free(m);
  ia_slave_free(s);
  unlink(sf);
  unlink(mf);
}

Test(auth, a_master_without_the_secret_is_refused_301_and_runs_nothing, .timeout = 60) {
  char sf[TU_PATH_MAX];
  secret_file(sf, SECRET);
  ia_slave *s = secret_slave(sf);
  ia_master *none = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("no-secret", CHANNEL, &none, &err), &err);
  assert_connect(none, ia_slave_port(s), IA_TOKEN_NOT_FOUND);
  ia_conn *o = NULL;
  cr_assert_eq(ia_master_observe(none, "observer", TU_HOST, ia_slave_port(s), TU_WAIT_MS, &o, &err),
               IA_TOKEN_NOT_FOUND, "an observer without the secret got in");
  ia_error_clear(&err);
  /* Nothing it sent ran, and the slave serves the right master next. */
  cr_assert_eq(tu_handler_calls(), 0);
  ia_master *m = secret_master(sf);
  assert_connect(m, ia_slave_port(s), IA_OK);
  ia_master_free(m);
  ia_master_free(none);
  ia_slave_free(s);
  unlink(sf);
}

Test(auth, a_wrong_secret_is_refused_302, .timeout = 60) {
  char sf[TU_PATH_MAX], wf[TU_PATH_MAX];
  secret_file(sf, SECRET);
  secret_file(wf, SECRET "?");
  ia_slave *s = secret_slave(sf);
  ia_master *wrong = secret_master(wf);
  assert_connect(wrong, ia_slave_port(s), IA_TOKEN_INVALID);
  cr_assert_eq(tu_handler_calls(), 0);
  ia_master *m = secret_master(sf);
  assert_connect(m, ia_slave_port(s), IA_OK);
  ia_master_free(m);
  ia_master_free(wrong);
  ia_slave_free(s);
  unlink(sf);
  unlink(wf);
}

/* A master with a secret does not trust a slave that proves none: it says
 * Goodbye, and the slave's seat is free for the next master at once. */
Test(auth, a_slave_without_the_secret_is_not_trusted_301, .timeout = 60) {
  char mf[TU_PATH_MAX];
  secret_file(mf, SECRET);
  ia_slave *s = fixture_slave(CHANNEL);
  ia_master *m = secret_master(mf);
  assert_connect(m, ia_slave_port(s), IA_TOKEN_NOT_FOUND);
  ia_master *plain = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("plain", CHANNEL, &plain, &err), &err);
  assert_connect(plain, ia_slave_port(s), IA_OK);
  ia_master_free(plain);
  ia_master_free(m);
  ia_slave_free(s);
  unlink(mf);
}

/* A fake slave answers the Hello with a challenge whose proof it cannot
 * have made: the master refuses it (302), and says Goodbye instead of
 * giving a proof of its own. */
typedef struct impostor {
  bool got_hello, got_proof;
  uint32_t goodbye;
} impostor;

static void impostor_script(tu_fake *fake, int fd) {
  impostor *im = fake->user;
  Interaction__V1__Frame *f = NULL;
  if (tu_raw_read_frame(fd, TU_WAIT_MS, &f) != 1) return;
  im->got_hello = f->body_case == INTERACTION__V1__FRAME__BODY_HELLO && f->hello->has_auth_nonce;
  interaction__v1__frame__free_unpacked(f, NULL);
  uint8_t nonce[32], proof[32];
  memset(nonce, 7, sizeof nonce);
  memset(proof, 9, sizeof proof);
  Interaction__V1__AuthChallenge ch = INTERACTION__V1__AUTH_CHALLENGE__INIT;
  ch.has_nonce = ch.has_proof = 1;
  ch.nonce = (ProtobufCBinaryData){sizeof nonce, nonce};
  ch.proof = (ProtobufCBinaryData){sizeof proof, proof};
  Interaction__V1__Frame out = INTERACTION__V1__FRAME__INIT;
  out.body_case = INTERACTION__V1__FRAME__BODY_AUTH_CHALLENGE;
  out.auth_challenge = &ch;
  if (!tu_raw_send(fd, &out)) return;
  if (tu_raw_read_frame(fd, TU_WAIT_MS, &f) != 1) return;
  im->got_proof = f->body_case == INTERACTION__V1__FRAME__BODY_AUTH_PROOF;
  if (f->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE) im->goodbye = f->goodbye->code;
  interaction__v1__frame__free_unpacked(f, NULL);
}

Test(auth, an_impersonating_slave_is_refused_302_and_gets_no_proof, .timeout = 60) {
  char mf[TU_PATH_MAX];
  secret_file(mf, SECRET);
  ia_master *m = secret_master(mf);
  impostor im = {0};
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, impostor_script, &im, 0));
  assert_connect(m, fake.port, IA_TOKEN_INVALID);
  tu_fake_join(&fake);
  cr_assert(im.got_hello, "the fake slave got no Hello with a nonce");
  cr_assert_not(im.got_proof, "the master gave its proof to a slave that proved nothing");
  cr_assert_eq(im.goodbye, IA_TOKEN_INVALID, "the master's Goodbye said %u", im.goodbye);
  ia_master_free(m);
  unlink(mf);
}

/* The master->slave bytes of a proven session, replayed on a new
 * connection, prove nothing: the slave's nonce is fresh. */
Test(auth, a_replayed_handshake_is_refused_302, .timeout = 60) {
  recorded rec;
  record_session(&rec);
  const tu_capture *up = &rec.r.up;
  cr_assert_eq(tu_handler_calls(), 1);
  /* The recording: Hello, then AuthProof, then the rest. */
  size_t hello_n = frame_at(up, 0);
  Interaction__V1__Frame *f = frame_unpack(up, hello_n);
  cr_assert_eq(f->body_case, INTERACTION__V1__FRAME__BODY_AUTH_PROOF,
               "the master's second frame is no AuthProof");
  interaction__v1__frame__free_unpacked(f, NULL);
  int fd = tu_raw_connect(ia_slave_port(rec.slave));
  cr_assert_geq(fd, 0);
  cr_assert(tu_raw_write(fd, up->p, hello_n));
  cr_assert_eq(tu_raw_read_frame(fd, TU_WAIT_MS, &f), 1);
  cr_assert_eq(f->body_case, INTERACTION__V1__FRAME__BODY_AUTH_CHALLENGE);
  interaction__v1__frame__free_unpacked(f, NULL);
  /* The old proof, and the Sum behind it. */
  cr_assert(tu_raw_write(fd, up->p + hello_n, up->n - hello_n));
  cr_assert_eq(tu_raw_read_frame(fd, TU_WAIT_MS, &f), 1);
  cr_assert_eq(f->body_case, INTERACTION__V1__FRAME__BODY_REFUSAL, "the replay was not refused");
  cr_assert_eq(f->refusal->code, IA_TOKEN_INVALID, "refused with %u", f->refusal->code);
  interaction__v1__frame__free_unpacked(f, NULL);
  cr_assert(tu_raw_expect_closed(fd, TU_WAIT_MS));
  close(fd);
  cr_assert_eq(tu_handler_calls(), 1, "the replayed Sum ran");
  recorded_free(&rec);
}

Test(auth, the_secret_never_crosses_the_wire, .timeout = 60) {
  recorded rec;
  record_session(&rec);
  const tu_relay *r = &rec.r;
  const size_t n = strlen(SECRET);
  cr_assert_gt(r->up.n, 0);
  cr_assert_gt(r->down.n, 0);
  /* Not whole, and no 8-byte piece of it either. */
  for (size_t at = 0; at + 8 <= n; at++) {
    cr_assert_null(memmem(r->up.p, r->up.n, SECRET + at, 8), "the master sent part of the secret");
    cr_assert_null(memmem(r->down.p, r->down.n, SECRET + at, 8), "the slave sent part of the secret");
  }
  /* And the handshake was the authenticated one. */
  Interaction__V1__Frame *f = frame_unpack(&r->down, 0);
  cr_assert_eq(f->body_case, INTERACTION__V1__FRAME__BODY_AUTH_CHALLENGE);
  interaction__v1__frame__free_unpacked(f, NULL);
  recorded_free(&rec);
}

/* ---- floods ---- */

typedef struct flood {
  uint16_t port;
  int n;   /* connections to make */
  int cut; /* connections the slave closed */
} flood;

/* n connections, in turn: a Hello without a nonce, a frame over the
 * pre-auth limit, a Hello with a nonce and then silence, garbage. */
static void *flood_main(void *arg) {
  flood *fl = arg;
  for (int i = 0; i < fl->n; i++) {
    int fd = tu_raw_connect(fl->port);
    if (fd < 0) continue;
    bool ok = true;
    switch (i % 4) {
    case 0:
      ok = tu_raw_send_hello(fd, CHANNEL, "flood");
      break;
    case 1: {
      const uint8_t big[4] = {0, 0x10, 0, 0}; /* a 1 MiB frame: over 64 KiB before the Hello */
      ok = tu_raw_write(fd, big, sizeof big);
      break;
    }
    case 2: {
      uint8_t nonce[32] = {1};
      Interaction__V1__Hello h = INTERACTION__V1__HELLO__INIT;
      h.has_version = h.has_channel = h.has_auth_nonce = 1;
      h.version = 1;
      h.channel = CHANNEL;
      h.auth_nonce = (ProtobufCBinaryData){sizeof nonce, nonce};
      Interaction__V1__Frame f = INTERACTION__V1__FRAME__INIT;
      f.body_case = INTERACTION__V1__FRAME__BODY_HELLO;
      f.hello = &h;
      ok = tu_raw_send(fd, &f);
      break;
    }
    default:
      ok = tu_raw_write(fd, "GET / HTTP/1.1\r\n\r\n", 18);
    }
    if (ok && tu_raw_expect_closed(fd, 3 * TU_WAIT_MS)) fl->cut++;
    close(fd);
  }
  return NULL;
}

Test(auth, unauthenticated_floods_are_cut_off_while_a_proven_master_works, .timeout = 120) {
  char sf[TU_PATH_MAX];
  secret_file(sf, SECRET);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.secret_file = sf;
  /* Short, for the silent ones; but the proven master's handshake must fit
   * in it too, and under valgrind OpenSSL's first nonce alone (seeding the
   * CSPRNG) takes longer. */
  config.hello_timeout_ms = tu_valgrind() ? 5000 : 300;
  ia_slave *s = fixture_slave_start(&config);
  ia_master *m = secret_master(sf);
  assert_connect(m, ia_slave_port(s), IA_OK); /* both ends' OpenSSL warmed up */
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_connect(m, "slave", ia_slave_port(s), &c, &err), &err);
  flood fl = {.port = ia_slave_port(s), .n = tu_valgrind() ? 20 : 60};
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, flood_main, &fl), 0);
  int calls = 0;
  uint64_t end = tu_now_ms() + 2000;
  while (tu_now_ms() < end && calls < 5000) {
    assert_sum_works(c, calls, 1);
    calls++;
  }
  pthread_join(t, NULL);
  cr_assert_eq(fl.cut, fl.n, "only %d of %d unauthenticated connections were cut off", fl.cut, fl.n);
  assert_sum_works(c, 2, 3);
  cr_assert_eq(tu_handler_calls(), calls + 2, "%d tasks ran for %d calls", tu_handler_calls(), calls + 2);
  ia_conn_free(c);
  ia_master_free(m);
  ia_slave_free(s);
  unlink(sf);
}

/* ---- where the secret comes from ---- */

Test(auth, the_secret_comes_from_IA_SECRET_when_no_file_is_given, .timeout = 60) {
  cr_assert_eq(setenv("IA_SECRET", SECRET, 1), 0);
  ia_slave *s = secret_slave(NULL);
  ia_master *m = secret_master(NULL);
  assert_connect(m, ia_slave_port(s), IA_OK);
  char wf[TU_PATH_MAX];
  secret_file(wf, "another secret");
  ia_master *wrong = secret_master(wf); /* a file wins over IA_SECRET */
  assert_connect(wrong, ia_slave_port(s), IA_TOKEN_INVALID);
  unsetenv("IA_SECRET");
  ia_master *none = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("no-secret", CHANNEL, &none, &err), &err);
  assert_connect(none, ia_slave_port(s), IA_TOKEN_NOT_FOUND);
  ia_master_free(none);
  ia_master_free(wrong);
  ia_master_free(m);
  ia_slave_free(s);
  unlink(wf);
}

Test(auth, a_secret_file_that_cannot_be_used_is_a_clear_error, .timeout = 60) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  ia_slave *s = NULL;
  ia_error err = IA_ERROR_INIT;
  config.secret_file = "/nonexistent/ia-secret";
  cr_assert_eq(ia_slave_new(&config, &s, &err), IA_INVALID_ARGUMENT);
  cr_assert_not_null(strstr(err.message, "/nonexistent/ia-secret"), "%s", err.message);
  ia_error_clear(&err);
  char ef[TU_PATH_MAX];
  secret_file(ef, "\n");
  config.secret_file = ef;
  cr_assert_eq(ia_slave_new(&config, &s, &err), IA_INVALID_ARGUMENT);
  cr_assert_not_null(strstr(err.message, "empty"), "%s", err.message);
  ia_error_clear(&err);
  ia_master_config mc;
  ia_master_config_init(&mc);
  mc.secret_file = ef;
  ia_master *m = NULL;
  cr_assert_eq(ia_master_new(&mc, &m, &err), IA_INVALID_ARGUMENT);
  cr_assert_null(m);
  ia_error_clear(&err);
  unlink(ef);
}

/* OpenSSL is loaded only by a process that holds a secret: linked in, it
 * would add ~1.4 MB to every slave (shared/BENCH.md's RSS target). Seen in
 * sum-slave's own maps (this test program links libcrypto itself). */
static bool libcrypto_mapped(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  char line[512];
  bool found = false;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, "libcrypto") != NULL;
  fclose(f);
  return found;
}

Test(auth, a_slave_without_a_secret_never_loads_openssl, .timeout = 60) {
  unsetenv("IA_SECRET");
  tu_proc plain = TU_PROC_INIT, guarded = TU_PROC_INIT;
  uint16_t port = tu_spawn_sum_slave(&plain, SUM_SLAVE_PATH, CHANNEL, NULL);
  cr_assert_neq(port, 0, "sum-slave did not start: %s", plain.line);
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("plain", CHANNEL, &m, &err), &err);
  assert_connect(m, port, IA_OK);
  cr_assert_not(libcrypto_mapped(plain.pid), "a slave without a secret loaded libcrypto");
  char sf[TU_PATH_MAX];
  secret_file(sf, SECRET);
  const char *const extra[] = {"--secret-file", sf, NULL};
  cr_assert_neq(tu_spawn_sum_slave(&guarded, SUM_SLAVE_PATH, CHANNEL, extra), 0, "%s", guarded.line);
  cr_assert(libcrypto_mapped(guarded.pid), "a slave with a secret did not load libcrypto");
  tu_proc_kill(&guarded);
  tu_proc_kill(&plain);
  ia_master_free(m);
  unlink(sf);
}

/* ---- the warning for an open slave ---- */

static atomic_int open_warnings;

static void count_open_warnings(ia_log_level level, const char *message, void *user) {
  (void)user;
  if (level == IA_LOG_WARN && strstr(message, "beyond loopback without a secret"))
    atomic_fetch_add(&open_warnings, 1);
}

static void start_and_stop(const char *host, const char *secret) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.host = host;
  config.secret_file = secret;
  ia_slave_free(fixture_slave_start(&config));
}

/* A slave bound beyond loopback without a secret says so at start; one
 * with a secret, or on loopback, does not. 0.0.0.0 here is inside a network
 * namespace this test's process makes for itself: it has nothing but its
 * own loopback, so nothing beyond it can reach the slave. */
Test(auth, a_slave_bound_beyond_loopback_without_a_secret_warns, .timeout = 60) {
  if (unshare(CLONE_NEWNET) != 0) cr_skip_test("cannot make a network namespace: %s", strerror(errno));
  unsetenv("IA_SECRET");
  ia_log_set_handler(count_open_warnings, NULL);
  start_and_stop("0.0.0.0", NULL);
  cr_assert_eq(atomic_load(&open_warnings), 1, "no warning for 0.0.0.0 without a secret");
  char sf[TU_PATH_MAX];
  secret_file(sf, SECRET);
  start_and_stop("0.0.0.0", sf);
  start_and_stop("127.0.0.1", NULL);
  cr_assert_eq(atomic_load(&open_warnings), 1, "a warning for a slave with a secret, or on loopback");
  ia_log_set_handler(NULL, NULL);
  unlink(sf);
}
