/* The test suite's shared helpers that speak the wire by hand: a raw
 * socket client, raw frames, and a fake slave on its own thread (see tu.h). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tu-internal.h"
#include "tu.h"

/* ---- raw socket ---- */

int tu_raw_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, TU_HOST, &sa.sin_addr);
  /* A loopback connect either succeeds or fails at once; the send timeout
   * bounds writes to a peer that stopped reading. */
  struct timeval tv = {.tv_sec = TU_WAIT_MS / 1000u};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool tu_raw_write(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= (size_t)n;
  }
  return true;
}

bool tu_raw_write_frame(int fd, const void *body, size_t len) {
  uint8_t hdr[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};
  return tu_raw_write(fd, hdr, sizeof hdr) && tu_raw_write(fd, body, len);
}

uint8_t *tu_frame_pack(const Interaction__V1__Frame *frame, size_t *len) {
  return tu__pack(&frame->base, len);
}

/* Reads exactly `len` bytes before `deadline`: 1 done, 0 EOF/reset, -1 timeout. */
static int read_exact(int fd, uint8_t *buf, size_t len, uint64_t deadline) {
  size_t have = 0;
  while (have < len) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    /* At the deadline, what is already there is still read: a frame whose
     * length prefix came in the last millisecond must not lose its body
     * (and the stream its framing) to the clock. */
    int ms = tu__remaining_ms(deadline);
    int pr = poll(&pfd, 1, ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) {
      if (ms == 0) return -1;
      continue;
    }
    ssize_t n = recv(fd, buf + have, len - have, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) return 0;
    if (n < 0) return -1;
    have += (size_t)n;
  }
  return 1;
}

int tu_raw_read_frame(int fd, uint32_t timeout_ms, Interaction__V1__Frame **frame) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  uint8_t hdr[4];
  *frame = NULL;
  int r = read_exact(fd, hdr, sizeof hdr, deadline);
  if (r <= 0) return r;
  uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
  if (len > (16u << 20)) return -1; /* nothing the tests expect is this big */
  uint8_t *body = malloc(len ? len : 1);
  if (body == NULL) return -1;
  r = read_exact(fd, body, len, deadline);
  if (r == 1) {
    *frame = interaction__v1__frame__unpack(NULL, len, body);
    if (*frame == NULL) r = -1;
  }
  free(body);
  return r;
}

bool tu_raw_expect_goodbye(int fd, uint32_t timeout_ms, uint32_t *code) {
  Interaction__V1__Frame *f = NULL;
  if (tu_raw_read_frame(fd, timeout_ms, &f) != 1) return false;
  bool ok = f->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE && f->goodbye != NULL;
  if (ok) *code = f->goodbye->has_code ? f->goodbye->code : 0;
  interaction__v1__frame__free_unpacked(f, NULL);
  return ok;
}

bool tu_raw_expect_eof(int fd, uint32_t timeout_ms) {
  uint8_t byte;
  return read_exact(fd, &byte, 1, tu_now_ms() + timeout_ms) == 0;
}

bool tu_raw_send(int fd, const Interaction__V1__Frame *frame) {
  size_t len;
  uint8_t *body = tu_frame_pack(frame, &len);
  bool ok = body != NULL && tu_raw_write_frame(fd, body, len);
  free(body);
  return ok;
}

bool tu_raw_send_hello(int fd, uint32_t channel, const char *name) {
  return tu_raw_send_hello_beat(fd, channel, name, false, 0, 0);
}

bool tu_raw_send_hello_beat(int fd, uint32_t channel, const char *name, bool has_beat, uint32_t beat_ms,
                            uint32_t beat_tol) {
  return tu_raw_send_hello_full(fd, channel, name, has_beat, beat_ms, beat_tol, false);
}

bool tu_raw_send_hello_full(int fd, uint32_t channel, const char *name, bool has_beat, uint32_t beat_ms,
                            uint32_t beat_tol, bool observe) {
  Interaction__V1__Hello hello = INTERACTION__V1__HELLO__INIT;
  hello.has_observe = observe;
  hello.observe = observe;
  hello.has_version = 1;
  hello.version = 1;
  hello.has_channel = 1;
  hello.channel = channel;
  hello.master_name = (char *)name;
  hello.has_heartbeat_ms = hello.has_heartbeat_tolerance_ms = has_beat;
  hello.heartbeat_ms = beat_ms;
  hello.heartbeat_tolerance_ms = beat_tol;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = 1;
  frame.body_case = INTERACTION__V1__FRAME__BODY_HELLO;
  frame.hello = &hello;
  return tu_raw_send(fd, &frame);
}

bool tu_raw_hello(int fd, uint32_t channel, const char *name) {
  if (!tu_raw_send_hello(fd, channel, name)) return false;
  Interaction__V1__Frame *answer = NULL;
  if (tu_raw_read_frame(fd, TU_WAIT_MS, &answer) != 1) return false;
  bool ok = answer->body_case == INTERACTION__V1__FRAME__BODY_WELCOME;
  interaction__v1__frame__free_unpacked(answer, NULL);
  return ok;
}

int tu_raw_listen(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  inet_pton(AF_INET, TU_HOST, &sa.sin_addr);
  socklen_t sl = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return -1;
  }
  *port = ntohs(sa.sin_port);
  return fd;
}

int tu_raw_accept(int listen_fd, uint32_t timeout_ms) {
  struct pollfd pfd = {.fd = listen_fd, .events = POLLIN};
  if (poll(&pfd, 1, (int)timeout_ms) != 1) return -1;
  int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
  if (fd < 0) return -1;
  struct timeval tv = {.tv_sec = TU_WAIT_MS / 1000u};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

bool tu_raw_welcome(int fd) {
  return tu_raw_welcome_beat(fd, false, 0, 0, NULL);
}

bool tu_raw_welcome_beat(int fd, bool has_beat, uint32_t beat_ms, uint32_t beat_tol, uint32_t proposed[2]) {
  Interaction__V1__Frame *hello = NULL;
  if (tu_raw_read_frame(fd, TU_WAIT_MS, &hello) != 1) return false;
  bool ok = hello->body_case == INTERACTION__V1__FRAME__BODY_HELLO;
  uint64_t id = hello->id;
  if (ok && proposed) {
    proposed[0] = hello->hello->has_heartbeat_ms ? hello->hello->heartbeat_ms : 0;
    proposed[1] = hello->hello->has_heartbeat_tolerance_ms ? hello->hello->heartbeat_tolerance_ms : 0;
  }
  interaction__v1__frame__free_unpacked(hello, NULL);
  if (!ok) return false;
  Interaction__V1__Welcome welcome = INTERACTION__V1__WELCOME__INIT;
  welcome.has_version = 1;
  welcome.version = 1;
  welcome.slave_name = "fake-slave";
  welcome.has_capacity = 1;
  welcome.capacity = 1;
  welcome.has_heartbeat_ms = welcome.has_heartbeat_tolerance_ms = has_beat;
  welcome.heartbeat_ms = beat_ms;
  welcome.heartbeat_tolerance_ms = beat_tol;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = id;
  frame.body_case = INTERACTION__V1__FRAME__BODY_WELCOME;
  frame.welcome = &welcome;
  return tu_raw_send(fd, &frame);
}

/* Whether /proc/net/tcp lists an established connection whose local port
 * is `port` (the slave's end of an accepted connection). */
static bool established(uint16_t port) {
  FILE *f = fopen("/proc/net/tcp", "r");
  if (f == NULL) return false;
  char line[256];
  bool found = false;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    unsigned local_port = 0, state = 0;
    /* "  sl  local_address rem_address   st ...": 0: 0100007F:1F90 0100007F:D2A4 01 */
    if (sscanf(line, " %*d: %*8x:%4x %*8x:%*4x %2x", &local_port, &state) == 2)
      found = local_port == port && state == 0x01;
  }
  fclose(f);
  return found;
}

bool tu_wait_established(uint16_t port, uint32_t timeout_ms) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  while (!established(port)) {
    if (tu_now_ms() >= deadline) return false;
    tu_sleep_ms(10);
  }
  return true;
}

bool tu_raw_send_status(int fd, uint64_t id, int kind, bool has_code, uint32_t code, const char *message) {
  /* TaskFail, Refusal and Goodbye share their first two fields: one message
   * of each kind, the right one filled. */
  Interaction__V1__TaskFail fail = INTERACTION__V1__TASK_FAIL__INIT;
  Interaction__V1__Refusal refusal = INTERACTION__V1__REFUSAL__INIT;
  Interaction__V1__Goodbye goodbye = INTERACTION__V1__GOODBYE__INIT;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = id;
  frame.body_case = (Interaction__V1__Frame__BodyCase)kind;
  switch (kind) {
  case INTERACTION__V1__FRAME__BODY_FAIL:
    fail.has_code = has_code;
    fail.code = code;
    fail.message = (char *)message;
    frame.fail = &fail;
    break;
  case INTERACTION__V1__FRAME__BODY_REFUSAL:
    refusal.has_code = has_code;
    refusal.code = code;
    refusal.message = (char *)message;
    frame.refusal = &refusal;
    break;
  case INTERACTION__V1__FRAME__BODY_GOODBYE:
    goodbye.has_code = has_code;
    goodbye.code = code;
    goodbye.message = (char *)message;
    frame.goodbye = &goodbye;
    break;
  default:
    return false;
  }
  return tu_raw_send(fd, &frame);
}

uint64_t tu_raw_next_task(int fd, const char *method) {
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  for (int i = 0; i < 64 && tu_now_ms() < deadline; i++) {
    Interaction__V1__Frame *f = NULL;
    if (tu_raw_read_frame(fd, TU_WAIT_MS, &f) != 1) return 0;
    bool task = f->body_case == INTERACTION__V1__FRAME__BODY_TASK;
    uint64_t id = task && (!method || (f->task->method && strcmp(f->task->method, method) == 0)) ? f->id : 0;
    interaction__v1__frame__free_unpacked(f, NULL);
    if (task) return id;
  }
  return 0;
}

bool tu_raw_send_empty(int fd, uint64_t id, int kind) {
  /* Every empty body encodes alike: its key and a zero length. */
  uint8_t body[16];
  size_t n = 0;
  body[n++] = 0x08; /* id = 1, varint */
  uint64_t v = id;
  while (v >= 0x80) {
    body[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  body[n++] = (uint8_t)v;
  body[n++] = (uint8_t)(kind << 3 | 2);
  body[n++] = 0;
  return tu_raw_write_frame(fd, body, n);
}

bool tu_raw_await_goodbye(int fd, uint32_t timeout_ms, uint32_t *code) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  for (int i = 0; i < 10000; i++) {
    Interaction__V1__Frame *f = NULL;
    int ms = tu__remaining_ms(deadline);
    if (ms == 0 || tu_raw_read_frame(fd, (uint32_t)ms, &f) != 1) return false;
    bool goodbye = f->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE && f->goodbye != NULL;
    if (goodbye) *code = f->goodbye->has_code ? f->goodbye->code : 0;
    interaction__v1__frame__free_unpacked(f, NULL);
    if (goodbye) return true;
  }
  return false;
}

bool tu_raw_expect_closed(int fd, uint32_t timeout_ms) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  uint8_t sink[4096];
  for (int i = 0; i < 100000; i++) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int ms = tu__remaining_ms(deadline);
    if (ms == 0) return false;
    int pr = poll(&pfd, 1, ms);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) continue;
    ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
  }
  return false;
}

bool tu_raw_quiet_for(int fd, uint32_t ms) {
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  uint64_t deadline = tu_now_ms() + ms;
  for (;;) {
    int left = tu__remaining_ms(deadline);
    if (left == 0) return true;
    int pr = poll(&pfd, 1, left);
    if (pr < 0 && errno == EINTR) continue;
    return pr == 0;
  }
}

/* ---- fake slave ---- */

static void *fake_main(void *arg) {
  tu_fake *f = arg;
  int fd = tu_raw_accept(f->listen_fd, TU_WAIT_MS);
  if (fd < 0) return NULL;
  f->accepted = true;
  f->script(f, fd);
  close(fd);
  return NULL;
}

bool tu_fake_start(tu_fake *fake, tu_fake_script script, void *user, int rcvbuf) {
  fake->started = false;
  fake->accepted = false;
  fake->script = script;
  fake->user = user;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  if (rcvbuf > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
  inet_pton(AF_INET, TU_HOST, &sa.sin_addr);
  socklen_t sl = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
    close(fd);
    return false;
  }
  fake->listen_fd = fd;
  fake->port = ntohs(sa.sin_port);
  if (pthread_create(&fake->thread, NULL, fake_main, fake) != 0) {
    close(fd);
    return false;
  }
  fake->started = true;
  return true;
}

void tu_fake_join(tu_fake *fake) {
  if (!fake->started) return;
  pthread_join(fake->thread, NULL);
  close(fake->listen_fd);
  fake->started = false;
}

bool tu_raw_send_task(int fd, uint64_t id, const char *method, const void *payload, size_t len) {
  Interaction__V1__Task task = INTERACTION__V1__TASK__INIT;
  task.method = (char *)method;
  task.has_payload = 1;
  task.payload.data = (uint8_t *)payload;
  task.payload.len = len;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = id;
  frame.body_case = INTERACTION__V1__FRAME__BODY_TASK;
  frame.task = &task;
  return tu_raw_send(fd, &frame);
}
