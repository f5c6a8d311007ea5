/* A hand-written client sends what no real master would: an oversize length,
 * garbage, a truncated frame, a half frame, a Task before Hello. Each time the
 * slave answers Goodbye with the code and closes that connection, and a proper
 * master is served right after by the same slave. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "sum_handlers.h"

#define CHANNEL 71
#define MAX_FRAME 1024

typedef struct lost_state {
  tu_flag lost;
  pthread_mutex_t mu;
  ia_code why;
} lost_state;

static lost_state lost = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void on_lost(const char *master_name, ia_code why, void *user) {
  (void)master_name;
  lost_state *st = user;
  pthread_mutex_lock(&st->mu);
  st->why = why;
  pthread_mutex_unlock(&st->mu);
  tu_flag_raise(&st->lost);
}

static ia_slave *start_slave(void) {
  tu_flag_init(&lost.lost);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.max_frame = MAX_FRAME;
  config.lost_connection = on_lost;
  config.user = &lost;
  return fixture_slave_start(&config);
}

/* A raw connection, handshaken with a Hello first when `hello` is set. */
static int raw_open(ia_slave *slave, bool hello) {
  int fd = tu_raw_connect(ia_slave_port(slave));
  cr_assert_geq(fd, 0, "raw connect failed");
  if (hello) cr_assert(tu_raw_hello(fd, CHANNEL, "raw-master"), "the raw Hello was not welcomed");
  return fd;
}

static void expect_goodbye_and_close(int fd, uint32_t want) {
  uint32_t code = 0;
  cr_assert(tu_raw_expect_goodbye(fd, TU_WAIT_MS, &code), "no Goodbye frame came back");
  cr_assert_eq(code, want, "Goodbye code %u %s, expected %u %s", code, ia_code_name((int)code), want,
               ia_code_name((int)want));
  cr_assert(tu_raw_expect_eof(fd, TU_WAIT_MS), "the slave did not close the connection after Goodbye");
  close(fd);
}

/* After a handshaken raw master misbehaved, the slave reports it lost with `why`. */
static void expect_lost(ia_code want) {
  cr_assert(tu_flag_wait(&lost.lost, 1, TU_WAIT_MS), "lost_connection did not fire");
  pthread_mutex_lock(&lost.mu);
  ia_code why = lost.why;
  pthread_mutex_unlock(&lost.mu);
  cr_assert_eq(why, want, "lost_connection why = %d %s, expected %d %s", why, ia_code_name(why), want,
               ia_code_name(want));
}

/* A proper master connects to the same slave and runs a sum. When the raw
 * client closed without the slave saying Goodbye, the slave learns of it
 * asynchronously; then ALREADY_CONNECTED is tolerated for a bounded time. */
static void expect_slave_serves(ia_slave *slave, bool allow_busy) {
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("proper-master", CHANNEL, &m, &err), &err);
  ia_conn *conn = NULL;
  ia_code rc;
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  for (;;) {
    ia_error_clear(&err);
    rc = tu_connect(m, "slave", ia_slave_port(slave), &conn, &err);
    if (!allow_busy || rc != IA_ALREADY_CONNECTED || tu_now_ms() >= deadline) break;
    tu_sleep_ms(20);
  }
  cr_assert_eq(rc, IA_OK, "a proper master could not connect: %d %s (%s)", rc, ia_code_name(rc), err.message);
  assert_sum_works(conn, 100, 23);
  ia_conn_free(conn);
  ia_master_free(m);
}

static void send_oversize_header(int fd) {
  /* Only the header: the slave must refuse on the length alone, before any
   * body is buffered (and with nothing unread, its close is a clean FIN). */
  const uint8_t header[4] = {0x00, 0x10, 0x00, 0x00}; /* 1 MiB */
  cr_assert(tu_raw_write(fd, header, sizeof header));
}

static void send_garbage(int fd) {
  uint8_t garbage[64];
  memset(garbage, 0xff, sizeof garbage); /* a varint that never ends */
  cr_assert(tu_raw_write_frame(fd, garbage, sizeof garbage));
}

Test(raw_frames, oversize_length_before_hello_is_703, .timeout = 30) {
  ia_slave *slave = start_slave();
  int fd = raw_open(slave, false);
  send_oversize_header(fd);
  expect_goodbye_and_close(fd, IA_FRAME_TOO_LARGE);
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}

Test(raw_frames, oversize_length_after_hello_is_703, .timeout = 30) {
  ia_slave *slave = start_slave();
  int fd = raw_open(slave, true);
  send_oversize_header(fd);
  expect_goodbye_and_close(fd, IA_FRAME_TOO_LARGE);
  expect_lost(IA_FRAME_TOO_LARGE);
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}

Test(raw_frames, garbage_body_before_hello_is_704, .timeout = 30) {
  ia_slave *slave = start_slave();
  int fd = raw_open(slave, false);
  send_garbage(fd);
  expect_goodbye_and_close(fd, IA_PROTOCOL_ERROR);
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}

Test(raw_frames, garbage_body_after_hello_is_704, .timeout = 30) {
  ia_slave *slave = start_slave();
  int fd = raw_open(slave, true);
  send_garbage(fd);
  expect_goodbye_and_close(fd, IA_PROTOCOL_ERROR);
  expect_lost(IA_PROTOCOL_ERROR);
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}

Test(raw_frames, truncated_hello_is_704, .timeout = 30) {
  ia_slave *slave = start_slave();
  Interaction__V1__Hello hello = INTERACTION__V1__HELLO__INIT;
  hello.has_version = 1;
  hello.version = 1;
  hello.has_channel = 1;
  hello.channel = CHANNEL;
  hello.master_name = "a-master-whose-hello-is-cut-short";
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = 1;
  frame.body_case = INTERACTION__V1__FRAME__BODY_HELLO;
  frame.hello = &hello;
  size_t len;
  uint8_t *body = tu_frame_pack(&frame, &len);
  cr_assert_not_null(body);
  cr_assert_gt(len, 10);
  /* Sanity: the whole body is a valid Frame, the cut one is not. */
  Interaction__V1__Frame *check = interaction__v1__frame__unpack(NULL, len, body);
  cr_assert_not_null(check);
  interaction__v1__frame__free_unpacked(check, NULL);
  size_t cut = len - 5;
  cr_assert_null(interaction__v1__frame__unpack(NULL, cut, body), "the cut body still decodes");

  int fd = raw_open(slave, false);
  cr_assert(tu_raw_write_frame(fd, body, cut));
  free(body);
  expect_goodbye_and_close(fd, IA_PROTOCOL_ERROR);
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}

Test(raw_frames, frame_without_a_known_body_after_hello_is_704, .timeout = 30) {
  ia_slave *slave = start_slave();
  /* id = 1, then field 99 (a body kind from the future), empty. */
  const uint8_t body[] = {0x08, 0x01, 0x9a, 0x06, 0x00};
  Interaction__V1__Frame *check = interaction__v1__frame__unpack(NULL, sizeof body, body);
  cr_assert_not_null(check, "the crafted frame is not valid protobuf");
  cr_assert_eq(check->body_case, INTERACTION__V1__FRAME__BODY__NOT_SET);
  interaction__v1__frame__free_unpacked(check, NULL);

  int fd = raw_open(slave, true);
  cr_assert(tu_raw_write_frame(fd, body, sizeof body));
  expect_goodbye_and_close(fd, IA_PROTOCOL_ERROR);
  expect_lost(IA_PROTOCOL_ERROR);
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}

Test(raw_frames, partial_frame_then_close_before_hello, .timeout = 30) {
  ia_slave *slave = start_slave();
  int fd = raw_open(slave, false);
  const uint8_t partial[] = {0x00, 0x00, 0x00, 0x40, 0x08, 0x01, 0x12}; /* 64 bytes announced, 3 sent */
  cr_assert(tu_raw_write(fd, partial, sizeof partial));
  close(fd);
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}

Test(raw_frames, partial_frame_then_close_after_hello, .timeout = 30) {
  ia_slave *slave = start_slave();
  int fd = raw_open(slave, true);
  const uint8_t partial[] = {0x00, 0x00, 0x00, 0x40, 0x08, 0x02}; /* 64 bytes announced, 2 sent */
  cr_assert(tu_raw_write(fd, partial, sizeof partial));
  close(fd);
  expect_lost(IA_CONNECTION_LOST);
  expect_slave_serves(slave, true);
  ia_slave_free(slave);
}

Test(raw_frames, task_before_hello_is_704, .timeout = 30) {
  ia_slave *slave = start_slave();
  size_t plen;
  uint8_t *payload = tu_sum_task(1, 2, true, true, &plen);
  int fd = raw_open(slave, false);
  cr_assert(tu_raw_send_task(fd, 1, SUM_METHOD_SUM, payload, plen));
  free(payload);
  expect_goodbye_and_close(fd, IA_PROTOCOL_ERROR);
  cr_assert_eq(tu_handler_calls(), 0, "a task before Hello reached the handler");
  expect_slave_serves(slave, false);
  ia_slave_free(slave);
}
