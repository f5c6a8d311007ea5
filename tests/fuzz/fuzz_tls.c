/*
 * fuzz_tls: a slave that serves TLS 1.3, fed byte streams -- raw ones before
 * any handshake, and plaintext through a real TLS client, cut into records
 * and TCP segments every which way.
 *
 * One slave (tls_cert and tls_key: the fixed test-only certificate below;
 * the handlers of fz_methods, fuzz_slave_handlers.c) and one master (tls_ca:
 * the same certificate) run in this process for the whole run, public API
 * only. Each input is played on a fresh TCP connection to the slave; bit 0
 * of its first byte picks the mode:
 *
 *  (a) clear: raw. The rest is written as it is, before any handshake
 *      (garbage, cut or odd ClientHellos, plain frames).
 *  (b) set: TLS. This process's own OpenSSL client completes the handshake
 *      (verifying the slave's certificate against itself, for 127.0.0.1),
 *      then SSL_writes a plaintext stream. Byte 1 is the number k (% 16) of
 *      schedule bytes that follow (cycled), the rest is the stream; bit 1 of
 *      byte 0 puts a valid Hello in front of it, bit 2 sends close_notify
 *      before the half-close. A schedule entry's low 6 bits give the
 *      plaintext of one record (fz_chunk_size), bit 6 keeps its ciphertext
 *      back to go out with the next record's, bit 7 sends the ciphertext in
 *      pieces of that size, each its own send() (record headers cut too).
 *
 * Then the connection is half-closed and everything the slave sends is read
 * until it closes (bounded).
 *
 * Invariants: (a) the slave sends nothing but whole TLS records -- or, when
 * our first byte is not a handshake record's (22), exactly one plain Goodbye
 * with 301 (TOKEN_NOT_FOUND); no handler runs. (b) everything the slave
 * sends decrypts, no record is left cut short at its end, and the plaintext
 * is frames that fuzz_slave_check.c's model of the protocol allows for the
 * stream written (Welcome only for a first valid Hello, Pongs, Refusals,
 * Goodbyes, and outcomes only of our own tasks, as their methods imply).
 * Both: the slave closes after our EOF, and after every input the master
 * still connects over TLS and runs a Sum.
 *
 * Internal functions called: none. It must never wait without a bound,
 * connect anywhere but its own slave on 127.0.0.1, or leave the
 * certificate's temporary files behind (they are removed as soon as the
 * slave, the master and the client have read them).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include "fuzz_slave.h"
#include "fuzz_slave_script.h"
#include "interaction.pb-c.h"
#include "interaction/interaction.h"

#define EOF_WAIT_MS 5000       /* the slave must close within this after our EOF */
#define HANDSHAKE_WAIT_MS 2000 /* ... and finish a handshake within this */
/* The slave's hello timeout, which the handshake counts against: long
 * enough for two handshakes at once on a loaded machine. Every input ends
 * with our EOF, so it never costs time. */
#define TLS_HELLO_TIMEOUT_MS 1000
#define MAX_REPLY (4u << 20)
#define TLS_HANDSHAKE 22u          /* the first byte of a handshake record */
#define MAX_RECORD (16384u + 256u) /* the largest TLS 1.3 record body */

/* Test-only, for this target alone: an EC P-256 key and its self-signed
 * certificate (CN interaction-fuzz, subjectAltName IP:127.0.0.1, CA:TRUE,
 * valid from 2000 to 2099), made with `openssl req` and `openssl ca
 * -selfsign -startdate 20000101000000Z -enddate 20991231235959Z`. */
static const char cert_pem[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBejCCASCgAwIBAgIBATAKBggqhkjOPQQDAjAbMRkwFwYDVQQDDBBpbnRlcmFj\n"
                               "dGlvbi1mdXp6MCAXDTAwMDEwMTAwMDAwMFoYDzIwOTkxMjMxMjM1OTU5WjAbMRkw\n"
                               "FwYDVQQDDBBpbnRlcmFjdGlvbi1mdXp6MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcD\n"
                               "QgAEZvKpCoPaQUxs7SgdJrYPz3A9UWig/tQxvhGFRzn/gngM1iMOW83J2lzTAndK\n"
                               "UgNRIojFYHL3G4opkAEougjNU6NTMFEwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8B\n"
                               "Af8EBAMCAoQwDwYDVR0RBAgwBocEfwAAATAdBgNVHQ4EFgQU2/YCVgU4PWUL4L6y\n"
                               "5owgdtdiWX8wCgYIKoZIzj0EAwIDSAAwRQIgSNq5Huelq/cx3t61EGI6LkRi6sk9\n"
                               "iYu8B1agXlVewxYCIQC4AMNHKJZBBUD66NV8SHljxpX9vW+hFSvqUz48OYGfYg==\n"
                               "-----END CERTIFICATE-----\n";
static const char key_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                              "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4ybtJ8gABc1jA5Wk\n"
                              "Cw/30r1FLVcjJnue4N2iCUzb6Q6hRANCAARm8qkKg9pBTGztKB0mtg/PcD1RaKD+\n"
                              "1DG+EYVHOf+CeAzWIw5bzcnaXNMCd0pSA1EiiMVgcvcbiimQASi6CM1T\n"
                              "-----END PRIVATE KEY-----\n";

static ia_slave *slave;
static ia_master *master;
static SSL_CTX *client; /* the fuzzer's own TLS client */
static uint16_t port;
static bool trace; /* IA_FUZZ_TRACE: fuzz_slave_check.c prints every frame */

static void probe(void) {
  fz_probe(master, port, fz_methods[FZ_M_SUM], 8, "tls_master_refused");
}

static void stop_all(void) {
  ia_master_free(master);
  ia_slave_free(slave);
  SSL_CTX_free(client);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fz_init();
  trace = getenv("IA_FUZZ_TRACE") != NULL;
  char cert[256], key[256];
  fz_temp_file(cert, sizeof cert, "fuzz-tls-cert", cert_pem);
  fz_temp_file(key, sizeof key, "fuzz-tls-key", key_pem);
  /* The client first: OpenSSL registers its cleanup at exit now, and
   * stop_all, registered after it, runs before it. */
  client = SSL_CTX_new(TLS_client_method());
  bool ok = client && SSL_CTX_set_min_proto_version(client, TLS1_3_VERSION) == 1 &&
            SSL_CTX_load_verify_locations(client, cert, NULL) == 1;
  if (client) SSL_CTX_set_verify(client, SSL_VERIFY_PEER, NULL);
  ia_slave_config c;
  ia_slave_config_init(&c);
  c.channel = FZ_CHANNEL;
  c.name = "fuzz-tls";
  c.max_frame = FZ_MAX_FRAME;
  c.hello_timeout_ms = TLS_HELLO_TIMEOUT_MS;
  c.grace_ms = 100;
  c.tls_cert = cert;
  c.tls_key = key;
  ia_master_config mc;
  ia_master_config_init(&mc);
  mc.channel = FZ_CHANNEL;
  mc.tls_ca = cert;
  ia_error err = IA_ERROR_INIT;
  ok = ok && ia_slave_new(&c, &slave, &err) == IA_OK && fzs_register(slave) == IA_OK &&
       ia_slave_start(slave, &err) == IA_OK && ia_master_new(&mc, &master, &err) == IA_OK &&
       ia_master_start(master, &err) == IA_OK;
  unlink(cert); /* read by now: the slave and the master keep only contexts */
  unlink(key);
  if (!ok) {
    fprintf(stderr, "fuzz_tls: cannot start: %s\n", err.message[0] ? err.message : "the OpenSSL client");
    exit(1);
  }
  port = ia_slave_port(slave);
  probe();
  atexit(stop_all);
  return 0;
}

/* ---- (a) raw bytes before any handshake ---- */

static void check_raw(const uint8_t *sent, size_t n, const fz_buf *in) {
  if (n > 0 && sent[0] != TLS_HANDSHAKE) {
    uint32_t len = 0;
    Interaction__V1__Frame *f = NULL;
    if (fz_split_next(in->p, in->n, 0, FZ_MAX_FRAME, &len) == FZ_SPLIT_READY && 4 + (size_t)len == in->n)
      f = interaction__v1__frame__unpack(NULL, len, in->p + 4);
    bool told = f && f->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE && f->goodbye->has_code &&
                f->goodbye->code == IA_TOKEN_NOT_FOUND;
    if (f) interaction__v1__frame__free_unpacked(f, NULL);
    if (!told)
      fz_fail("plain_not_told", "a plain first byte 0x%02x got %zu bytes back, not one Goodbye 301", sent[0],
              in->n);
    return;
  }
  for (size_t at = 0; at < in->n;) {
    const uint8_t *r = in->p + at;
    if (in->n - at < 5) {
      fz_fail("slave_tls_cut_short", "%zu bytes of a record header at the end", in->n - at);
      return;
    }
    size_t len = (size_t)r[3] << 8 | r[4];
    if (r[0] < 20 || r[0] > 23 || r[1] != 3 || r[2] < 1 || r[2] > 4 || len > MAX_RECORD) {
      fz_fail("slave_not_tls", "not a TLS record at %zu: %02x %02x%02x %zu", at, r[0], r[1], r[2], len);
      return;
    }
    if (in->n - at - 5 < len) {
      fz_fail("slave_tls_cut_short", "a record of %zu bytes with %zu at the end", len, in->n - at - 5);
      return;
    }
    at += 5 + len;
  }
}

static void play_raw(const uint8_t *p, size_t n) {
  unsigned long ran = fzs_handled();
  fz_buf in = {0};
  int fd = fz_dial(port);
  if (fz_send_all(fd, p, n, &in)) shutdown(fd, SHUT_WR);
  fz_read_to_eof(fd, &in, EOF_WAIT_MS, MAX_REPLY);
  close(fd);
  check_raw(p, n, &in);
  if (fzs_handled() != ran) fz_fail("raw_task_ran", "a handler ran for a peer that spoke no TLS");
  fz_buf_free(&in);
}

/* ---- (b) plaintext through a TLS client ---- */

typedef struct tls_conn {
  conn c; /* as fuzz_slave_check.c reads it: stream is the plaintext, in what the records held */
  SSL *ssl;
  BIO *rbio, *wbio; /* the SSL's: ciphertext from the slave, and to it */
  bool up;          /* the handshake is done: what comes is decrypted */
  bool notified;    /* the slave's close_notify came, or its records failed */
  fz_buf out;       /* ciphertext not sent yet */
  size_t out_upto;  /* the plaintext its records end at */
} tls_conn;

/* OpenSSL's reason for the last failure; clears the queue. */
static const char *ssl_reason(void) {
  static char buf[256];
  unsigned long e = ERR_get_error();
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return e ? buf : "no reason given";
}

/* Decrypts what rbio holds into c.in. */
static void decrypt(tls_conn *t) {
  uint8_t tmp[16384];
  while (!t->notified) {
    size_t n = 0;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, tmp, sizeof tmp, &n);
    if (r == 1) {
      fz_buf_put(&t->c.in, tmp, n);
      if (t->c.in.n > MAX_REPLY) fz_fail("slave_flood", "the slave sent over %u bytes", MAX_REPLY);
      continue;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ) return;
    t->notified = true;
    if (e != SSL_ERROR_ZERO_RETURN) fz_fail("slave_tls_garbage", "the slave's records: %s", ssl_reason());
  }
}

/* What the socket has, without waiting: into rbio, and decrypted once up. */
static void pull(tls_conn *t) {
  uint8_t tmp[16384];
  for (int i = 0; i < 64 && !t->c.eof; i++) {
    ssize_t r = recv(t->c.fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (r > 0) {
      if (BIO_write(t->rbio, tmp, (int)r) != (int)r) abort();
      continue;
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) t->c.eof = true;
    break;
  }
  if (t->up) decrypt(t);
}

/* Sends the ciphertext OpenSSL wrote, in pieces of `piece` bytes (0: as the
 * socket takes it), reading meanwhile; then the plaintext its records hold
 * counts as written (for the model, as much as the slave may have read). */
static void send_out(tls_conn *t, size_t piece) {
  uint8_t tmp[16384];
  int got;
  while ((got = BIO_read(t->wbio, tmp, sizeof tmp)) > 0)
    fz_buf_put(&t->out, tmp, (size_t)got);
  size_t at = 0;
  uint64_t until = fz_now_us() + 2000000u;
  while (at < t->out.n && !t->c.dead) {
    size_t want = t->out.n - at;
    if (piece && want > piece) want = piece;
    ssize_t w = send(t->c.fd, t->out.p + at, want, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      at += (size_t)w;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      t->c.dead = true; /* EPIPE, ECONNRESET: the slave closed */
      break;
    }
    if (fz_now_us() > until) {
      fz_fail("slave_not_reading", "the slave took nothing for 2 s");
      t->c.dead = true;
      break;
    }
    struct pollfd p = {t->c.fd, POLLIN | POLLOUT, 0};
    poll(&p, 1, 10);
    pull(t);
  }
  t->out.n = 0;
  if (t->out_upto > t->c.written) {
    t->c.written = t->out_upto;
    uint64_t mark[2] = {t->c.written, fz_now_us()};
    fz_buf_put(&t->c.times, mark, sizeof mark);
  }
}

static bool handshake(tls_conn *t) {
  uint64_t until = fz_now_us() + HANDSHAKE_WAIT_MS * 1000u;
  for (;;) {
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    send_out(t, 0);
    if (r == 1) return true;
    if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ || t->c.eof || t->c.dead || fz_now_us() > until)
      return false;
    struct pollfd p = {t->c.fd, POLLIN, 0};
    poll(&p, 1, 10);
    pull(t);
  }
}

/* The stream as the schedule cuts it into records and segments. */
static void write_plain(tls_conn *t, const uint8_t *sched, size_t n_sched) {
  const fz_buf *s = &t->c.stream;
  size_t at = 0;
  for (size_t turn = 0; at < s->n && !t->c.dead; turn++) {
    uint8_t e = n_sched ? sched[turn % n_sched] : 0x3f;
    size_t len = fz_chunk_size(e), w = 0;
    if (len > s->n - at) len = s->n - at;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, s->p + at, len, &w) != 1 || w != len) {
      fz_fail("tls_client_failed", "SSL_write: %s", ssl_reason());
      return;
    }
    at += len;
    t->out_upto = at;
    if ((e & 0x40) && at < s->n) continue;
    send_out(t, (e & 0x80) ? fz_chunk_size(e) : 0);
    pull(t);
  }
  send_out(t, 0);
}

static void play_tls(const uint8_t *data, size_t size) {
  fz_reader r = {data, size};
  uint8_t flags = fz_u8(&r);
  size_t n_sched;
  const uint8_t *sched = fz_bytes(&r, fz_u8(&r) % 16, &n_sched);
  tls_conn t = {.c.hello_timeout_ms = TLS_HELLO_TIMEOUT_MS};
  if (flags & 2) fz_buf_hello(&t.c.stream, 1, FZ_CHANNEL, false);
  fz_buf_put(&t.c.stream, r.p, r.n);
  t.c.fd = fz_dial(port);
  t.c.t0 = fz_now_us();
  t.ssl = SSL_new(client);
  t.rbio = BIO_new(BIO_s_mem());
  t.wbio = BIO_new(BIO_s_mem());
  if (!t.ssl || !t.rbio || !t.wbio) abort();
  SSL_set_bio(t.ssl, t.rbio, t.wbio);
  SSL_set_connect_state(t.ssl);
  if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t.ssl), "127.0.0.1") != 1) abort();
  if (handshake(&t)) {
    t.up = true;
    write_plain(&t, sched, n_sched);
    if (flags & 4) {
      SSL_shutdown(t.ssl); /* our close_notify; the slave's is not waited for */
      send_out(&t, 0);
    }
  } else if (fz_now_us() - t.c.t0 > TLS_HELLO_TIMEOUT_MS * 1000u) {
    fz_note("tls_handshake_late"); /* the slave's hello timeout: a loaded machine */
  } else {
    long v = SSL_get_verify_result(t.ssl);
    fz_fail("tls_handshake_failed", "%s (verify: %s)", ssl_reason(), X509_verify_cert_error_string(v));
  }
  shutdown(t.c.fd, SHUT_WR);
  uint64_t until = fz_now_us() + EOF_WAIT_MS * 1000u;
  while (!t.c.eof && fz_now_us() < until) {
    struct pollfd p = {t.c.fd, POLLIN, 0};
    poll(&p, 1, 10);
    pull(&t);
  }
  if (!t.c.eof) fz_fail("slave_keeps_open", "the slave did not close within %d ms of our EOF", EOF_WAIT_MS);
  close(t.c.fd);
  if (t.up && !t.notified && (BIO_ctrl_pending(t.rbio) > 0 || SSL_has_pending(t.ssl)))
    fz_fail("slave_tls_cut_short", "the slave's last record is cut short");
  if (t.up) fzs_check(&t.c, trace);
  SSL_free(t.ssl); /* and both BIOs */
  fz_buf_free(&t.out);
  fz_buf_free(&t.c.in);
  fz_buf_free(&t.c.stream);
  fz_buf_free(&t.c.times);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_input(data, size);
  if (size < 1) return 0;
  if (data[0] & 1)
    play_tls(data, size);
  else
    play_raw(data + 1, size - 1);
  probe();
  return 0;
}
