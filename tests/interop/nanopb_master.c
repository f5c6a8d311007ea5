/*
 * A master written with nanopb only, for the interop tests (test_nanopb.c):
 * it spawns a real `sum-slave`, speaks the wire over plain POSIX sockets
 * with the 4-byte big-endian length prefix, and encodes and decodes every
 * frame with nanopb codecs generated at build time from the same
 * proto/interaction.proto and examples/sum/sum.proto. Every received frame
 * is decoded strictly (nanopb must consume all of it) and re-encoded; a
 * frame whose bytes differ from nanopb's canonical encoding is logged and
 * counted (frames_noncanonical).
 *
 * Never: link libinteraction or protobuf-c (the point is a second
 * implementation that shares no code with the first), or wait without a
 * bound: every wait here ends within WAIT_MS, and failures are criterion
 * assertions.
 */
#define _GNU_SOURCE /* pipe2 */
#include "nanopb_master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <pb_decode.h>
#include <pb_encode.h>

#ifndef SUM_SLAVE_PATH
#error "SUM_SLAVE_PATH must name the sum-slave executable"
#endif

#define MAX_FRAME_IN (16u << 20) /* larger frames from the slave fail the test */

/* ---- time ---- */

uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds left until `deadline`, for poll(). */
static int left_ms(uint64_t deadline) {
  uint64_t now = now_ms();
  return now >= deadline ? 0 : (int)(deadline - now);
}

/* ---- the spawned sum-slave ---- */

pid_t slave_pid = 0;       /* 0 once reaped */
static int slave_out = -1; /* its stdout, kept open so it never gets SIGPIPE */
static uint16_t slave_port = 0;
int slave_status = 0; /* waitpid status once reaped */

/* fork + execv of sum-slave on 127.0.0.1 port 0, then waits (bounded) for its
 * `listening on 127.0.0.1:PORT` line. Asserts on failure. */
void spawn_slave(uint32_t channel) {
  char chan[16];
  snprintf(chan, sizeof chan, "%u", channel);
  char *const argv[] = {SUM_SLAVE_PATH, "--host", HOST, "--port", "0", "--channel", chan, NULL};
  int p[2];
  cr_assert_eq(pipe2(p, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
  if (pid == 0) {
    /* Only async-signal-safe calls until exec. The child dies with us. */
    if (dup2(p[1], STDOUT_FILENO) < 0) _exit(126);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);
    execv(argv[0], argv);
    _exit(127);
  }
  close(p[1]);
  slave_pid = pid;
  slave_out = p[0];

  char line[256];
  size_t have = 0;
  uint64_t deadline = now_ms() + WAIT_MS;
  for (;;) {
    char *nl = memchr(line, '\n', have);
    if (nl != NULL) {
      *nl = '\0';
      break;
    }
    cr_assert_lt(have, sizeof line - 1, "sum-slave: no newline in its first %zu bytes", have);
    struct pollfd pfd = {.fd = slave_out, .events = POLLIN};
    int r = poll(&pfd, 1, left_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    cr_assert_gt(r, 0, "sum-slave printed no `listening on` line within %u ms", WAIT_MS);
    ssize_t n = read(slave_out, line + have, sizeof line - 1 - have);
    if (n < 0 && errno == EINTR) continue;
    cr_assert_gt(n, 0, "sum-slave closed its stdout before `listening on` (did it start? %s)",
                 SUM_SLAVE_PATH);
    have += (size_t)n;
  }
  unsigned port = 0;
  int used = 0;
  cr_assert_eq(sscanf(line, "listening on " HOST ":%u%n", &port, &used), 1, "unexpected first line: \"%s\"",
               line);
  cr_assert(used == (int)strlen(line) && port > 0 && port <= UINT16_MAX, "unexpected first line: \"%s\"",
            line);
  slave_port = (uint16_t)port;
}

/* Waits up to timeout_ms for the slave to exit; true once reaped. */
bool reap_slave(uint32_t timeout_ms) {
  uint64_t deadline = now_ms() + timeout_ms;
  while (slave_pid > 0) {
    pid_t r = waitpid(slave_pid, &slave_status, WNOHANG);
    if (r == slave_pid || (r < 0 && errno == ECHILD)) {
      slave_pid = 0;
      break;
    }
    if (now_ms() >= deadline) return false;
    usleep(5000);
  }
  return true;
}

/* SIGTERM, a bounded wait, then SIGKILL; always reaps. Idempotent. */
void stop_slave(void) {
  if (slave_pid > 0) {
    kill(slave_pid, SIGTERM);
    if (!reap_slave(WAIT_MS)) {
      kill(slave_pid, SIGKILL);
      waitpid(slave_pid, &slave_status, 0);
      slave_pid = 0;
    }
  }
  if (slave_out >= 0) {
    close(slave_out);
    slave_out = -1;
  }
}
/* ---- plain POSIX socket I/O, every wait bounded ---- */

/* A non-blocking TCP connection to 127.0.0.1:slave_port, established within
 * WAIT_MS. Asserts on failure. */
int dial(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(slave_port)};
  inet_pton(AF_INET, HOST, &sa.sin_addr);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    cr_assert_eq(errno, EINPROGRESS, "connect: %s", strerror(errno));
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    cr_assert_eq(poll(&pfd, 1, (int)WAIT_MS), 1, "connect to %s:%u timed out", HOST, slave_port);
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    cr_assert_eq(err, 0, "connect: %s", strerror(err));
  }
  return fd;
}

static void write_all(int fd, const uint8_t *p, size_t n) {
  uint64_t deadline = now_ms() + WAIT_MS;
  while (n > 0) {
    ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
    if (r > 0) {
      p += r;
      n -= (size_t)r;
      continue;
    }
    cr_assert(r < 0 && (errno == EAGAIN || errno == EINTR), "send: %s", strerror(errno));
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    cr_assert_geq(poll(&pfd, 1, left_ms(deadline)), 0, "poll: %s", strerror(errno));
    cr_assert_lt(now_ms(), deadline, "send timed out");
  }
}

/* Reads exactly n bytes by `deadline`: 1 done, 0 EOF before the first byte,
 * -1 EOF or reset in the middle, -2 timeout. */
static int read_exact(int fd, uint8_t *p, size_t n, uint64_t deadline) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, p + got, n - got, 0);
    if (r > 0) {
      got += (size_t)r;
      continue;
    }
    if (r == 0) return got == 0 ? 0 : -1;
    if (errno == ECONNRESET) return -1;
    cr_assert(errno == EAGAIN || errno == EINTR, "recv: %s", strerror(errno));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, left_ms(deadline));
    if (pr == 0) return -2;
    cr_assert(pr > 0 || errno == EINTR, "poll: %s", strerror(errno));
  }
  return 1;
}

/* ---- nanopb codecs ---- */

size_t frames_received = 0;
size_t frames_noncanonical = 0;

static void hexdump(const char *what, const uint8_t *p, size_t n) {
  char line[3 * 32 + 1];
  cr_log_warn("%s (%zu bytes):", what, n);
  for (size_t i = 0; i < n; i += 32) {
    size_t k = 0;
    for (size_t j = i; j < n && j < i + 32; j++)
      k += (size_t)snprintf(line + k, sizeof line - k, "%02x ", p[j]);
    cr_log_warn("  %04zx: %s", i, line);
  }
}

/* Encodes `msg` with nanopb into a malloc'd buffer (4 spare bytes in front
 * when `prefix`, filled with the big-endian length). */
static uint8_t *encode(const pb_msgdesc_t *desc, const void *msg, bool prefix, size_t *len) {
  size_t n = 0;
  cr_assert(pb_get_encoded_size(&n, desc, msg), "nanopb cannot size the message");
  size_t off = prefix ? 4 : 0;
  uint8_t *buf = malloc(off + n + 1);
  cr_assert_not_null(buf);
  pb_ostream_t os = pb_ostream_from_buffer(buf + off, n);
  cr_assert(pb_encode(&os, desc, msg), "nanopb encode: %s", PB_GET_ERROR(&os));
  cr_assert_eq(os.bytes_written, n);
  if (prefix) {
    cr_assert_leq(n, UINT32_MAX);
    buf[0] = (uint8_t)(n >> 24);
    buf[1] = (uint8_t)(n >> 16);
    buf[2] = (uint8_t)(n >> 8);
    buf[3] = (uint8_t)n;
  }
  *len = off + n;
  return buf;
}

/* A payload for a `bytes` field (FT_POINTER): the nanopb encoding of `msg`. */
static pb_bytes_array_t *encode_payload(const pb_msgdesc_t *desc, const void *msg) {
  size_t n = 0;
  uint8_t *body = encode(desc, msg, false, &n);
  cr_assert_leq(n, PB_SIZE_MAX);
  /* (PB_BYTES_ARRAY_T_ALLOCSIZE does not parenthesise its argument.) */
  size_t cap = n > 0 ? n : 1;
  pb_bytes_array_t *b = malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(cap));
  cr_assert_not_null(b);
  b->size = (pb_size_t)n;
  memcpy(b->bytes, body, n);
  free(body);
  return b;
}

/* Decodes `bytes` as `desc` into `msg` (zeroed first); asserts that nanopb
 * took every byte. */
void decode_payload(const pb_bytes_array_t *bytes, const pb_msgdesc_t *desc, void *msg, const char *what) {
  cr_assert_not_null(bytes, "%s: the bytes field is absent", what);
  pb_istream_t is = pb_istream_from_buffer(bytes->bytes, bytes->size);
  cr_assert(pb_decode(&is, desc, msg), "%s: nanopb cannot decode the payload: %s", what, PB_GET_ERROR(&is));
  cr_assert_eq(is.bytes_left, 0, "%s: %zu bytes left undecoded", what, is.bytes_left);
}

void send_frame(int fd, const interaction_v1_Frame *frame) {
  size_t n = 0;
  uint8_t *buf = encode(&interaction_v1_Frame_msg, frame, true, &n);
  write_all(fd, buf, n);
  free(buf);
}

/* Reads one frame within WAIT_MS and decodes it with nanopb into *frame
 * (release with pb_release). Asserts that a whole frame came, that nanopb
 * decodes every byte of it, and that it has a body; compares it with nanopb's
 * own encoding of what it decoded. */
static void recv_one_frame(int fd, interaction_v1_Frame *frame) {
  uint64_t deadline = now_ms() + WAIT_MS;
  uint8_t head[4];
  int r = read_exact(fd, head, 4, deadline);
  cr_assert_neq(r, 0, "the slave closed the connection instead of replying");
  cr_assert_neq(r, -2, "no frame from the slave within %u ms", WAIT_MS);
  cr_assert_eq(r, 1, "connection lost in a frame's length prefix");
  uint32_t len = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 | (uint32_t)head[2] << 8 | head[3];
  cr_assert_leq(len, MAX_FRAME_IN, "frame of %u bytes", len);
  uint8_t *body = malloc(len ? len : 1);
  cr_assert_not_null(body);
  r = read_exact(fd, body, len, deadline);
  cr_assert_eq(r, 1, "truncated frame: %u bytes announced", len);

  memset(frame, 0, sizeof *frame);
  pb_istream_t is = pb_istream_from_buffer(body, len);
  bool ok = pb_decode(&is, &interaction_v1_Frame_msg, frame);
  if (!ok) hexdump("undecodable frame", body, len);
  cr_assert(ok, "WIRE BUG: nanopb cannot decode a %u-byte frame from the slave: %s", len, PB_GET_ERROR(&is));
  cr_assert_eq(is.bytes_left, 0, "WIRE BUG: %zu bytes of the frame left undecoded", is.bytes_left);
  cr_assert_neq(frame->which_body, 0, "a frame without a body");
  frames_received++;

  size_t n = 0;
  uint8_t *again = encode(&interaction_v1_Frame_msg, frame, false, &n);
  if (n != len || memcmp(again, body, len) != 0) {
    frames_noncanonical++;
    cr_log_warn("frame (body %u) is valid protobuf but not byte-identical to nanopb's encoding",
                frame->which_body);
    hexdump("received", body, len);
    hexdump("nanopb re-encoding", again, n);
  }
  free(again);
  free(body);
}

/* The next frame other than a heartbeat: the slave pings a master that
 * proposed no heartbeats, as this one does, and every peer answers a Ping
 * (Pong with the same id, 0 for a heartbeat). */
void recv_frame(int fd, interaction_v1_Frame *frame) {
  for (int i = 0; i < 16; i++) {
    recv_one_frame(fd, frame);
    if (frame->which_body != interaction_v1_Frame_ping_tag || (frame->has_id && frame->id != 0)) return;
    interaction_v1_Frame pong = interaction_v1_Frame_init_zero;
    pong.which_body = interaction_v1_Frame_pong_tag;
    send_frame(fd, &pong);
    pb_release(&interaction_v1_Frame_msg, frame);
  }
  cr_assert_fail("16 heartbeat Pings in a row from the slave");
}

/* True if the slave closes the connection (EOF, or a reset) within WAIT_MS
 * with no further data. */
bool expect_eof(int fd) {
  uint8_t b;
  int r = read_exact(fd, &b, 1, now_ms() + WAIT_MS);
  return r == 0 || r == -1;
}

/* ---- the master's side of the protocol ---- */

/* Hello{version=1, channel, master_name="nanopb"} with id=1; returns the
 * decoded reply (Welcome or Refusal), not checked. */
void hello(int fd, uint32_t channel, interaction_v1_Frame *reply) {
  interaction_v1_Frame f = interaction_v1_Frame_init_zero;
  f.has_id = true;
  f.id = 1;
  f.which_body = interaction_v1_Frame_hello_tag;
  f.body.hello.has_version = true;
  f.body.hello.version = 1;
  f.body.hello.has_channel = true;
  f.body.hello.channel = channel;
  f.body.hello.master_name = (char *)"nanopb";
  send_frame(fd, &f);
  recv_frame(fd, reply);
}

void expect_welcome(const interaction_v1_Frame *w) {
  cr_assert_eq(w->which_body, interaction_v1_Frame_welcome_tag, "Hello got body %u, not a Welcome",
               w->which_body);
  cr_assert(w->has_id && w->id == 1, "the Welcome's id is %llu, not 1", (unsigned long long)w->id);
  cr_assert(w->body.welcome.has_version, "the Welcome has no version");
  cr_assert_eq(w->body.welcome.version, 1);
}

/* Dials the slave and completes the handshake; asserts on the Welcome. */
int connect_and_hello(void) {
  int fd = dial();
  interaction_v1_Frame w;
  hello(fd, CHANNEL, &w);
  expect_welcome(&w);
  pb_release(&interaction_v1_Frame_msg, &w);
  return fd;
}

/* Sends Task{method, payload} (payload consumed) with `id`, plus the
 * optional metadata entries and deadline. */
void send_task(int fd, uint64_t id, const char *method, pb_bytes_array_t *payload,
               interaction_v1_Task_MetadataEntry *metadata, pb_size_t metadata_count, uint64_t deadline_ms) {
  interaction_v1_Frame f = interaction_v1_Frame_init_zero;
  f.has_id = true;
  f.id = id;
  f.which_body = interaction_v1_Frame_task_tag;
  f.body.task.method = (char *)method;
  f.body.task.payload = payload;
  f.body.task.metadata = metadata;
  f.body.task.metadata_count = metadata_count;
  f.body.task.has_deadline_ms = deadline_ms > 0;
  f.body.task.deadline_ms = deadline_ms;
  send_frame(fd, &f);
  free(payload);
}

pb_bytes_array_t *sum_task(bool has_a, int64_t a, bool has_b, int64_t b) {
  sum_SumTask t = sum_SumTask_init_zero;
  t.has_a = has_a;
  t.a = a;
  t.has_b = has_b;
  t.b = b;
  return encode_payload(&sum_SumTask_msg, &t);
}

pb_bytes_array_t *sleep_task(uint32_t ms) {
  sum_SleepTask t = sum_SleepTask_init_zero;
  t.has_ms = true;
  t.ms = ms;
  return encode_payload(&sum_SleepTask_msg, &t);
}

void send_empty(int fd, uint64_t id, pb_size_t body) {
  interaction_v1_Frame f = interaction_v1_Frame_init_zero;
  f.has_id = true;
  f.id = id;
  f.which_body = body;
  send_frame(fd, &f);
}

/* Reads the reply to task `id`: skips one Accepted (and answers any Ping),
 * then returns the first other frame, which must carry `id`. */
void recv_reply(int fd, uint64_t id, interaction_v1_Frame *reply) {
  int accepted = 0;
  for (int i = 0; i < 16; i++) {
    recv_frame(fd, reply);
    if (reply->which_body == interaction_v1_Frame_ping_tag) {
      interaction_v1_Frame pong = interaction_v1_Frame_init_zero;
      pong.has_id = reply->has_id;
      pong.id = reply->id;
      pong.which_body = interaction_v1_Frame_pong_tag;
      send_frame(fd, &pong);
      continue;
    }
    cr_assert(reply->has_id && reply->id == id, "a reply (body %u) with id %llu to task %llu",
              reply->which_body, (unsigned long long)reply->id, (unsigned long long)id);
    if (reply->which_body != interaction_v1_Frame_accepted_tag) return;
    cr_assert_eq(++accepted, 1, "task %llu was Accepted twice", (unsigned long long)id);
  }
  cr_assert_fail("no reply to task %llu after 16 frames", (unsigned long long)id);
}
