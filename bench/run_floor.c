/*
 * The raw-TCP floor's master: blocking sockets with TCP_NODELAY, the frames
 * of floor.h packed by hand, blobs sent from and received into buffers
 * without copies, and fan-out driven by one epoll loop. It is the speed limit
 * of a TCP round trip on this machine, measured the same way as Interaction.
 * For the TLS workloads the same frames go over TLS 1.3 sessions
 * (floor_tls.h), the slave's certificate verified against the run's CA and
 * 127.0.0.1: the TLS floor.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "floor.h"
#include "floor_tls.h"
#include "run.h"

#define HOST "127.0.0.1"

/* A blocking call that waits longer than this has failed. */
#define IO_TIMEOUT_S 10

#define FLOOR_IN_FLIGHT_MAX 16

typedef struct floor_conn {
  floor_link link;
  floor_reader rd;
  /* fan-out: the calls in flight, oldest first (the server answers in order) */
  uint64_t idx[FLOOR_IN_FLIGHT_MAX];
  uint64_t start_ns[FLOOR_IN_FLIGHT_MAX];
  unsigned head, n;
} floor_conn;

typedef struct floor_state {
  floor_conn *work;  /* n_work, except for `connect` */
  floor_conn *stats; /* n_procs; aliases of work[] unless stats_separate */
  floor_tls *tls;    /* TLS workloads: the client context; NULL: plain TCP */
  bool held;
} floor_state;

static int dial(bench_env *env, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return bench_fail(env, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {IO_TIMEOUT_S, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    bench_fail(env, "connect " HOST ":%u: %s", (unsigned)port, strerror(errno));
    close(fd);
    return -1;
  }
  return fd;
}

/* Connects, with the TLS handshake if `tls` is set. */
static int conn_open(bench_env *env, floor_tls *tls, floor_conn *c, uint16_t port, size_t cap) {
  c->link.fd = dial(env, port);
  if (c->link.fd < 0) return -1;
  char err[300];
  if (tls && floor_tls_connect(tls, &c->link, HOST, err, sizeof err) != 0)
    return bench_fail(env, "floor: " HOST ":%u: %s", (unsigned)port, err);
  if (floor_reader_init(&c->rd, cap) != 0) return bench_fail(env, "out of memory");
  return 0;
}

static void conn_close(floor_conn *c) {
  floor_link_close(&c->link);
  floor_reader_free(&c->rd);
}

/* Sends a body-less frame of `kind` and expects the same kind back. */
static int simple_call(bench_env *env, floor_conn *c, uint8_t kind, uint8_t **reply, uint32_t *len) {
  uint8_t req[5] = {0, 0, 0, 1, kind};
  if (floor_write_all(&c->link, req, sizeof req) != 0 || floor_read_frame(&c->link, &c->rd, reply, len) != 0)
    return bench_fail(env, "floor: request %u: %s", (unsigned)kind, strerror(errno));
  if ((*reply)[4] != kind) return bench_fail(env, "floor: request %u answered with %u", kind, (*reply)[4]);
  return 0;
}

static void floor_close(void *state, bench_env *env);

static int floor_open(bench_env *env, void **out) {
  floor_state *s = calloc(1, sizeof *s);
  if (s == NULL) return bench_fail(env, "out of memory");
  *out = s;
  size_t cap = env->w->kind == BENCH_BLOB ? 5 + env->w->blob_len : 256;
  s->work = calloc(env->n_work, sizeof *s->work);
  s->stats = calloc(env->n_procs, sizeof *s->stats);
  if (!s->work || !s->stats) return bench_fail(env, "out of memory");
  for (size_t i = 0; i < env->n_work; i++)
    s->work[i].link.fd = -1;
  for (size_t i = 0; i < env->n_procs; i++)
    s->stats[i].link.fd = -1;
  if (env->tls) {
    char err[300];
    s->tls = floor_tls_client_new(env->tls->ca, err, sizeof err);
    if (s->tls == NULL) return bench_fail(env, "floor: %s", err);
  }
  if (env->w->kind != BENCH_CONNECT)
    for (size_t i = 0; i < env->n_work; i++)
      if (conn_open(env, s->tls, &s->work[i], env->work_ports[i], cap) != 0) return -1;
  if (env->stats_separate)
    for (unsigned p = 0; p < env->n_procs; p++)
      if (conn_open(env, s->tls, &s->stats[p], env->stats_ports[p], 256) != 0) return -1;
  if (env->w->kind == BENCH_BUSY) {
    uint8_t *f;
    uint32_t len;
    if (simple_call(env, &s->work[0], FLOOR_HOLD, &f, &len) != 0) return -1;
    s->held = true;
  }
  return 0;
}

static floor_conn *stats_conn(floor_state *s, bench_env *env, unsigned proc) {
  return env->stats_separate ? &s->stats[proc] : &s->work[(size_t)proc * env->w->per_proc];
}

static int floor_usage(void *state, bench_env *env, unsigned proc, bench_usage *out) {
  uint8_t *f;
  uint32_t len;
  if (simple_call(env, stats_conn(state, env, proc), FLOOR_STATS, &f, &len) != 0) return -1;
  if (len != 25) return bench_fail(env, "floor: short Stats reply");
  out->cpu_us = floor_get64(f + 5) + floor_get64(f + 13);
  out->maxrss_kb = floor_get64(f + 21);
  return 0;
}

static void pack_sum(uint8_t req[21], uint64_t i) {
  floor_put32(req, 17);
  req[4] = FLOOR_SUM;
  floor_put64(req + 5, (uint64_t)bench_sum_a(i));
  floor_put64(req + 13, (uint64_t)bench_sum_b(i));
}

static bool sum_ok(const uint8_t *f, uint32_t len, uint64_t i) {
  return len == 9 && f[4] == FLOOR_SUM && (int64_t)floor_get64(f + 5) == bench_sum_a(i) + bench_sum_b(i);
}

/* `sum` and `busy`: sequential calls, the reply a sum or a busy refusal. */
static int run_sequential(void *state, bench_env *env, uint64_t first, uint64_t count, uint64_t *lat) {
  floor_state *s = state;
  floor_conn *c = &s->work[0];
  bool busy = env->w->kind == BENCH_BUSY;
  for (uint64_t k = 0; k < count; k++) {
    uint64_t i = first + k;
    uint8_t req[21], *f;
    uint32_t len;
    uint64_t t0 = bench_now_ns();
    pack_sum(req, i);
    if (floor_write_all(&c->link, req, sizeof req) != 0 || floor_read_frame(&c->link, &c->rd, &f, &len) != 0)
      return bench_fail(env, "floor: call %llu: %s", (unsigned long long)i, strerror(errno));
    bool ok = busy ? len == 1 && f[4] == FLOOR_BUSY : sum_ok(f, len, i);
    uint64_t t1 = bench_now_ns();
    if (!ok) return bench_fail(env, "floor: call %llu: wrong reply", (unsigned long long)i);
    if (lat) lat[k] = t1 - t0;
    if ((k & 255) == 0 && bench_expired(env)) return bench_fail(env, "out of time");
  }
  return 0;
}

static int run_blob(void *state, bench_env *env, uint64_t count, uint64_t *lat) {
  floor_state *s = state;
  floor_conn *c = &s->work[0];
  size_t n = env->w->blob_len;
  for (uint64_t k = 0; k < count; k++) {
    uint8_t hdr[5], *f;
    uint32_t len;
    uint64_t t0 = bench_now_ns();
    floor_put32(hdr, (uint32_t)(1 + n));
    hdr[4] = FLOOR_ECHO;
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)env->blob, n}};
    if (floor_writev_all(&c->link, iov, 2) != 0 || floor_read_frame(&c->link, &c->rd, &f, &len) != 0)
      return bench_fail(env, "floor: echo %llu: %s", (unsigned long long)k, strerror(errno));
    bool ok = f[4] == FLOOR_ECHO && bench_blob_ok(env, f + 5, len - 1, lat == NULL);
    uint64_t t1 = bench_now_ns();
    if (!ok) return bench_fail(env, "floor: echo %llu: wrong reply", (unsigned long long)k);
    if (lat) lat[k] = t1 - t0;
    if (bench_expired(env)) return bench_fail(env, "out of time");
  }
  return 0;
}

/* Sends call `idx` on c, behind the ones in flight. */
static int fan_send(bench_env *env, floor_conn *c, uint64_t idx) {
  unsigned k = (c->head + c->n) % FLOOR_IN_FLIGHT_MAX;
  c->idx[k] = idx;
  c->start_ns[k] = bench_now_ns();
  c->n++;
  uint8_t req[21];
  pack_sum(req, idx);
  return floor_write_all(&c->link, req, sizeof req) == 0
             ? 0
             : bench_fail(env, "floor: send: %s", strerror(errno));
}

/* in_flight sums in flight per slave (one for fan-out, four for
 * pipeline-4, on one connection); each reply sends that slave its next
 * call. Plain TCP only: epoll does not see replies a TLS session has
 * buffered. */
static int run_fanout(void *state, bench_env *env, uint64_t first, uint64_t count, uint64_t *lat) {
  floor_state *s = state;
  unsigned per = bench_in_flight(env->w);
  if (per > FLOOR_IN_FLIGHT_MAX) return bench_fail(env, "floor: at most %d in flight", FLOOR_IN_FLIGHT_MAX);
  if (s->tls) return bench_fail(env, "floor: no fan-out over TLS");
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return bench_fail(env, "epoll_create1: %s", strerror(errno));
  uint64_t next = first, end = first + count, done = 0;
  int rc = 0;
  for (size_t j = 0; j < env->n_work && rc == 0; j++) {
    floor_conn *c = &s->work[j];
    c->head = c->n = 0;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->link.fd, &ev) != 0)
      rc = bench_fail(env, "epoll_ctl: %s", strerror(errno));
    for (unsigned k = 0; k < per && next < end && rc == 0; k++)
      rc = fan_send(env, c, next++);
  }
  struct epoll_event evs[256];
  while (rc == 0 && done < count) {
    int n = epoll_wait(ep, evs, 256, 1000);
    if (n < 0 && errno != EINTR) rc = bench_fail(env, "epoll_wait: %s", strerror(errno));
    for (int e = 0; e < n && rc == 0; e++) {
      floor_conn *c = evs[e].data.ptr;
      /* Every reply this wake-up brought, the ones already buffered too:
       * epoll says nothing of those. */
      do {
        uint8_t *f;
        uint32_t len;
        if (c->n == 0 || floor_read_frame(&c->link, &c->rd, &f, &len) != 0) {
          rc = bench_fail(env, "floor: receive: %s", c->n ? strerror(errno) : "a reply to nothing");
          break;
        }
        uint64_t t1 = bench_now_ns(), idx = c->idx[c->head], t0 = c->start_ns[c->head];
        c->head = (c->head + 1) % FLOOR_IN_FLIGHT_MAX;
        c->n--;
        if (!sum_ok(f, len, idx)) {
          rc = bench_fail(env, "floor: call %llu: wrong reply", (unsigned long long)idx);
          break;
        }
        if (lat) lat[idx - first] = t1 - t0;
        done++;
        if (next < end) rc = fan_send(env, c, next++);
      } while (rc == 0 && floor_frame_buffered(&c->rd));
    }
    if (rc == 0 && bench_expired(env)) rc = bench_fail(env, "out of time");
  }
  close(ep);
  return rc;
}

/* TCP connect, a one-frame hello and its ack, close. Plain TCP only. */
static int run_connect(void *state, bench_env *env, uint64_t count, uint64_t *lat) {
  floor_state *s = state;
  if (s->tls) return bench_fail(env, "floor: no connect workload over TLS");
  for (uint64_t k = 0; k < count; k++) {
    uint64_t t0 = bench_now_ns();
    floor_link l = {.fd = dial(env, env->work_ports[0])};
    if (l.fd < 0) return -1;
    uint8_t hello[5] = {0, 0, 0, 1, FLOOR_HELLO}, ack[5];
    ssize_t got = -1;
    if (floor_write_all(&l, hello, sizeof hello) == 0) got = recv(l.fd, ack, sizeof ack, MSG_WAITALL);
    floor_link_close(&l);
    uint64_t t1 = bench_now_ns();
    if (got != (ssize_t)sizeof ack || ack[4] != FLOOR_HELLO)
      return bench_fail(env, "floor: hello %llu failed", (unsigned long long)k);
    if (lat) lat[k] = t1 - t0;
    if ((k & 63) == 0 && bench_expired(env)) return bench_fail(env, "out of time");
  }
  return 0;
}

static void floor_close(void *state, bench_env *env) {
  floor_state *s = state;
  if (s == NULL) return;
  if (s->held) {
    uint8_t *f;
    uint32_t len;
    (void)simple_call(env, &s->work[0], FLOOR_RELEASE, &f, &len);
  }
  for (size_t i = 0; s->work && i < env->n_work; i++)
    conn_close(&s->work[i]);
  for (size_t i = 0; s->stats && i < env->n_procs; i++)
    conn_close(&s->stats[i]);
  floor_tls_free(s->tls);
  free(s->work);
  free(s->stats);
  free(s);
}

const bench_peer bench_peer_floor = {
    .name = "floor",
    .slave_prog = "bench-floor-slave",
    .tls_slave_prog = "bench-floor-tls-slave",
    .open = floor_open,
    .usage = floor_usage,
    .sequential = run_sequential,
    .blob = run_blob,
    .fanout = run_fanout,
    .connect = run_connect,
    .close = floor_close,
};
