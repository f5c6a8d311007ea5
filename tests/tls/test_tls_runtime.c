/* runtime/tls.c driven directly, on a TCP pair of the test's own: what the
 * connections above it rely on and cannot show on their own. A regression
 * test for each defect found below the public API. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/tls.h"
#include "tls_fixture.h"

TestSuite(tls_runtime, .init = tls_suite_init, .fini = tls_suite_fini, .timeout = 60);

typedef struct pair {
  int sfd, cfd;
  ia__tls_ctx *sctx, *cctx;
  ia__tls *s, *c;
} pair;

/* A TLS connection over 127.0.0.1, both handshakes done. */
static pair pair_up(void) {
  pair p;
  uint16_t port = 0;
  int l = tu_raw_listen(&port);
  cr_assert_geq(l, 0);
  p.cfd = tu_raw_connect(port);
  p.sfd = tu_raw_accept(l, TU_WAIT_MS);
  close(l);
  cr_assert(p.cfd >= 0 && p.sfd >= 0);
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia__tls_ctx_server(certs.slave_cert, certs.slave_key, NULL, &p.sctx, &err), &err);
  TU_ASSERT_OK(ia__tls_ctx_client(certs.ca, NULL, NULL, &p.cctx, &err), &err);
  p.s = ia__tls_new(p.sctx, p.sfd, NULL);
  p.c = ia__tls_new(p.cctx, p.cfd, "127.0.0.1");
  cr_assert(p.s && p.c);
  ia__tls_step cs = IA__TLS_WANT_READ, ss = IA__TLS_WANT_READ;
  uint64_t end = tu_now_ms() + TU_WAIT_MS;
  while ((cs != IA__TLS_UP || ss != IA__TLS_UP) && tu_now_ms() < end) {
    if (cs != IA__TLS_UP) cs = ia__tls_handshake(p.c);
    if (ss != IA__TLS_UP) ss = ia__tls_handshake(p.s);
    cr_assert(cs != IA__TLS_FAILED && ss != IA__TLS_FAILED, "handshake: %s / %s", ia__tls_reason(p.c),
              ia__tls_reason(p.s));
    struct pollfd fds[2] = {{.fd = p.cfd, .events = POLLIN}, {.fd = p.sfd, .events = POLLIN}};
    (void)poll(fds, 2, 5);
  }
  cr_assert(cs == IA__TLS_UP && ss == IA__TLS_UP, "the handshakes did not finish");
  return p;
}

static void pair_free(pair *p) {
  ia__tls_free(p->s);
  ia__tls_free(p->c);
  ia__tls_ctx_free(p->sctx);
  ia__tls_ctx_free(p->cctx);
  close(p->sfd);
  close(p->cfd);
}

Test(tls_runtime, bytes_sent_come_out_decrypted_on_the_other_side) {
  pair p = pair_up();
  struct iovec v[3] = {{"fr", 2}, {"am", 2}, {"e!", 2}};
  cr_assert_eq(ia__tls_send(p.c, v, 3), 6);
  ia__inbuf in = {0};
  cr_assert(ia__inbuf_grow(&in, 64));
  size_t got = 0;
  uint64_t end = tu_now_ms() + TU_WAIT_MS;
  while (got < 6 && tu_now_ms() < end) {
    ssize_t r = ia__tls_recv(p.s, &in, MSG_DONTWAIT, false, NULL);
    if (r > 0)
      got += (size_t)r;
    else
      cr_assert(r < 0 && errno == EAGAIN, "recv: %zd (%s)", r, strerror(errno));
    tu_sleep_ms(1);
  }
  cr_assert_eq(got, 6);
  cr_assert_eq(memcmp(in.buf + in.start, "frame!", 6), 0);
  ia__inbuf_free(&in);
  pair_free(&p);
}

/* fuzz_tls found it (tests/fuzz/regressions/fuzz_tls): a write on a socket
 * the slave had shut down failed with EPIPE, OpenSSL still said "writing",
 * and the send was taken for a full socket -- the worker then waited for a
 * writable socket that always was, for 10 s, and served nobody. */
Test(tls_runtime, a_send_on_a_socket_that_failed_is_an_error_not_a_full_socket) {
  pair p = pair_up();
  cr_assert_eq(shutdown(p.sfd, SHUT_RDWR), 0);
  struct iovec v = {"outcome", 7};
  errno = 0;
  ssize_t r = ia__tls_send(p.s, &v, 1);
  cr_assert_eq(r, -1, "a send on a shut-down socket returned %zd, as if the socket were full", r);
  cr_assert_eq(errno, EPIPE, "errno %d (%s)", errno, strerror(errno));
  /* And it stays failed. */
  cr_assert_eq(ia__tls_send(p.s, &v, 1), -1);
  pair_free(&p);
}
