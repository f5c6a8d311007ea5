/*
 * A peer's last frame and its FIN arriving together, while the reading loop
 * is busy. The loops watch their epoll sets edge-triggered and read a
 * socket until a short read; data and the end that came with it are one
 * event, so a reader that stopped at the short read left the end unread
 * with no edge to come: the connection stayed up for good. Both ends read
 * to the end when the set reports the peer's end (EPOLLRDHUP).
 *
 * To make "together while busy" certain rather than likely, the loop is
 * held up on purpose: in the master by a completion callback that sleeps,
 * in the slave by a log handler that sleeps on the take-over message.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixture.h"

#define CHANNEL 151
#define BUSY_MS 200
#define NOTICE_MS 2000

/* ---- the master ---- */

static tu_flag in_callback;

/* The fake slave: Welcome, read both Tasks, answer the first; once the
 * master's loop is inside that answer's callback, answer the second and
 * close at once (the script returning closes the socket). */
static void answer_then_close(tu_fake *fake, int fd) {
  (void)fake;
  if (!tu_raw_welcome(fd)) return;
  uint64_t ids[2];
  for (int i = 0; i < 2; i++) {
    Interaction__V1__Frame *f = NULL;
    if (tu_raw_read_frame(fd, TU_WAIT_MS, &f) != 1) return;
    ids[i] = f->id;
    interaction__v1__frame__free_unpacked(f, NULL);
  }
  Interaction__V1__TaskResult result = INTERACTION__V1__TASK_RESULT__INIT;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.body_case = INTERACTION__V1__FRAME__BODY_RESULT;
  frame.result = &result;
  frame.id = ids[0];
  if (!tu_raw_send(fd, &frame)) return;
  if (!tu_flag_wait(&in_callback, 1, TU_WAIT_MS)) return;
  frame.id = ids[1];
  (void)tu_raw_send(fd, &frame);
}

static void busy_callback(ia_task *task, void *user) {
  (void)task;
  (void)user;
  tu_flag_raise(&in_callback);
  tu_sleep_ms(BUSY_MS); /* holds the master's loop: fault injection */
}

/* Found by the fuzz_slave target in the new slave; the master had it since
 * its loop watched its set edge-triggered (7d52c7d): on 468917a the second
 * reply completed its task but the connection stayed up. */
Test(eof_with_data, master_sees_a_slave_that_closes_right_after_its_last_reply, .timeout = 30) {
  tu_flag_init(&in_callback);
  tu_fake fake;
  cr_assert(tu_fake_start(&fake, answer_then_close, NULL, 0));
  ia_master *m = NULL;
  ia_conn *conn = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("eof-master", CHANNEL, &m, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "fake", fake.port, &conn, &err), &err);
  ia_task *a = ia_conn_new_task(conn, "t.T/A", "a", 1);
  ia_task *b = ia_conn_new_task(conn, "t.T/B", "b", 1);
  cr_assert(a && b);
  cr_assert_eq(ia_task_on_complete(a, busy_callback, NULL), IA_OK);
  cr_assert_eq(ia_task_start(a), IA_OK);
  cr_assert_eq(ia_task_start(b), IA_OK);
  cr_assert_eq(ia_task_join(a, TU_WAIT_MS), IA_OK);
  cr_assert_eq(ia_task_join(b, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(b, IA_STATUS_COMPLETED);
  cr_assert(tu_wait_connected(conn, false, NOTICE_MS),
            "the slave closed right after its last reply, and the master still says connected");
  tu_fake_join(&fake);
  ia_task_free(a);
  ia_task_free(b);
  ia_conn_free(conn);
  ia_master_free(m);
  tu_flag_destroy(&in_callback);
}

/* ---- the slave ---- */

static tu_flag lost;

static void on_lost(const char *master_name, ia_code why, void *user) {
  (void)master_name;
  (void)why;
  (void)user;
  tu_flag_raise(&lost);
}

/* Holds the slave's loop just after it took the socket over from a long
 * handler; every other message is dropped. */
static void slow_log(ia_log_level level, const char *message, void *user) {
  (void)level;
  (void)user;
  if (strstr(message, "runs long")) tu_sleep_ms(BUSY_MS);
}

/* The slave's loop, reading for a long handler, got a master's Ping and its
 * FIN in one event: it read the Ping, stopped at the short read, and never
 * saw the master go (the shared, edge-triggered epoll set of the
 * restructure; its fuzz_slave found it). */
Test(eof_with_data, slave_sees_a_master_that_closes_right_after_a_frame, .timeout = 30) {
  tu_flag_init(&lost);
  ia_log_set_handler(slow_log, NULL);
  ia_log_set_level(IA_LOG_DEBUG);
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.lost_connection = on_lost;
  ia_slave *s = fixture_slave_start(&config);
  int fd = tu_raw_connect(ia_slave_port(s));
  cr_assert_geq(fd, 0);
  cr_assert(tu_raw_hello(fd, CHANNEL, "eof-master"));
  size_t len = 0;
  uint8_t *sleep_req = tu_sleep_task(5000, &len);
  cr_assert(tu_raw_send_task(fd, 2, "sum.Adder/Sleep", sleep_req, len));
  free(sleep_req);
  /* Accepted: the loop has the socket, and now sleeps in the log handler. */
  Interaction__V1__Frame *f = NULL;
  cr_assert_eq(tu_raw_read_frame(fd, TU_WAIT_MS, &f), 1);
  cr_assert_eq(f->body_case, INTERACTION__V1__FRAME__BODY_ACCEPTED, "got body %d", f->body_case);
  interaction__v1__frame__free_unpacked(f, NULL);
  cr_assert(tu_raw_send_empty(fd, 3, INTERACTION__V1__FRAME__BODY_PING));
  /* The FIN right behind the Ping, both while the loop sleeps. Only our
   * sending side closes: what the slave sends back is read, so no reset
   * tells it what the FIN did not. */
  shutdown(fd, SHUT_WR);
  cr_assert(tu_flag_wait(&lost, 1, NOTICE_MS + BUSY_MS), "the master closed and the slave did not notice");
  close(fd);
  ia_slave_free(s);
  ia_log_set_handler(NULL, NULL);
  tu_flag_destroy(&lost);
}
