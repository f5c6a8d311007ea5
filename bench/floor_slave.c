/*
 * bench-floor-slave: the raw-TCP floor's slaves, K in one process.
 *
 *   bench-floor-slave --port 0 --count K
 *   bench-floor-tls-slave --port 0 --count K --tls-cert PATH --tls-key PATH
 *
 * Each slave is one thread with a blocking listening socket on 127.0.0.1,
 * serving one connection at a time with blocking reads and writes
 * (TCP_NODELAY): the least work one request/reply round trip can cost.
 * Prints one `listening on 127.0.0.1:PORT` line per slave; serves until
 * SIGINT or SIGTERM. bench-floor-tls-slave is this program linked with
 * floor_tls.c: with a certificate, each connection starts with a TLS 1.3
 * handshake and the same frames go through SSL_read/SSL_write; the plain
 * one links floor_tls_none.c and refuses certificates.
 *
 * Never: do more per frame than the wire needs, or serve a connection over
 * plain TCP when TLS was asked for.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "floor.h"
#include "floor_tls.h"

typedef struct floor_slave {
  int listen_fd;
  uint16_t port;
  floor_tls *tls; /* NULL: plain TCP */
  pthread_t thread;
} floor_slave;

static int reply_kind(floor_link *l, uint8_t kind) {
  uint8_t out[5] = {0, 0, 0, 1, kind};
  return floor_write_all(l, out, sizeof out);
}

static uint64_t tv_us(struct timeval tv) {
  return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

/* Serves one master until it closes. The hold flag belongs to the
 * connection, like an Interaction slot held by that master's task. */
static void serve(floor_link *l, floor_reader *r) {
  bool hold = false;
  for (;;) {
    uint8_t *f;
    uint32_t len;
    if (floor_read_frame(l, r, &f, &len) != 0) return;
    int rc = 0;
    switch (f[4]) {
    case FLOOR_SUM:
      if (len != 17) return;
      if (hold) {
        rc = reply_kind(l, FLOOR_BUSY);
      } else {
        uint8_t out[13];
        floor_put32(out, 9);
        out[4] = FLOOR_SUM;
        floor_put64(out + 5, floor_get64(f + 5) + floor_get64(f + 13));
        rc = floor_write_all(l, out, sizeof out);
      }
      break;
    case FLOOR_ECHO:
      /* The frame goes back as it came in: same bytes, same buffer. */
      rc = floor_write_all(l, f, 4 + (size_t)len);
      break;
    case FLOOR_STATS: {
      struct rusage ru;
      getrusage(RUSAGE_SELF, &ru);
      uint8_t out[29];
      floor_put32(out, 25);
      out[4] = FLOOR_STATS;
      floor_put64(out + 5, tv_us(ru.ru_utime));
      floor_put64(out + 13, tv_us(ru.ru_stime));
      floor_put64(out + 21, (uint64_t)ru.ru_maxrss);
      rc = floor_write_all(l, out, sizeof out);
      break;
    }
    case FLOOR_HOLD:
    case FLOOR_RELEASE:
      hold = f[4] == FLOOR_HOLD;
      rc = reply_kind(l, f[4]);
      break;
    case FLOOR_HELLO:
      rc = reply_kind(l, FLOOR_HELLO);
      break;
    default:
      return;
    }
    if (rc != 0) return;
  }
}

static void *slave_main(void *arg) {
  floor_slave *s = arg;
  floor_reader r;
  if (floor_reader_init(&r, 4096) != 0) return NULL;
  for (;;) {
    floor_link l = {.fd = accept(s->listen_fd, NULL, NULL)};
    if (l.fd < 0) continue;
    int one = 1;
    setsockopt(l.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    r.have = r.used = 0;
    if (s->tls == NULL || floor_tls_accept(s->tls, &l) == 0) serve(&l, &r);
    floor_link_close(&l);
  }
  return NULL;
}

static int listen_on(uint16_t port, floor_slave *s) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t alen = sizeof a;
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
    close(fd);
    return -1;
  }
  s->listen_fd = fd;
  s->port = ntohs(a.sin_port);
  return 0;
}

int main(int argc, char **argv) {
  bench_slave_args args;
  int st = bench_slave_parse_args("bench-floor-slave", argc, argv, &args);
  if (st >= 0) return st;
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop;
  bench_block_stop_signals(&stop);

  /* One context for all slaves: OpenSSL's SSL_CTX is shared by threads. */
  floor_tls *tls = NULL;
  if (args.tls_cert) {
    char err[300];
    tls = floor_tls_server_new(args.tls_cert, args.tls_key, err, sizeof err);
    if (tls == NULL) {
      fprintf(stderr, "bench-floor-slave: %s\n", err);
      return 1;
    }
  }
  static floor_slave slaves[BENCH_MAX_PER_PROC];
  for (unsigned i = 0; i < args.count; i++) {
    slaves[i].tls = tls;
    if (listen_on(args.port ? (uint16_t)(args.port + i) : 0, &slaves[i]) != 0) {
      perror("bench-floor-slave: listen");
      return 1;
    }
    if (pthread_create(&slaves[i].thread, NULL, slave_main, &slaves[i]) != 0) {
      fprintf(stderr, "bench-floor-slave: cannot start a thread\n");
      return 1;
    }
  }
  for (unsigned i = 0; i < args.count; i++)
    printf("listening on 127.0.0.1:%u\n", slaves[i].port);
  fflush(stdout);
  int sig;
  sigwait(&stop, &sig);
  /* The threads hold nothing that outlives the process. */
  return 0;
}
