/* A hand-written fake slave sends a master what no real slave would: a reply
 * to an id that was never sent (the original's result thread died of it),
 * garbage, an oversize frame. Each time the master says Goodbye with the code
 * and closes that one connection; its pending task ends LOST and its other
 * connections are undisturbed. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

#define CHANNEL 91
#define MASTER_MAX_FRAME 1024

typedef enum script {
  UNKNOWN_ID_RESULT, /* right after Welcome: a TaskResult for id 424242 */
  GARBAGE_AFTER_TASK,
  OVERSIZE_AFTER_TASK,
} script;

/* The fake slave's thread and what it saw. Its fields are written by the
 * thread and read by the test only after pthread_join(). */
typedef struct fake_slave {
  script what;
  int listen_fd;
  uint16_t port;
  pthread_t thread;
  bool welcomed, got_task, got_goodbye, got_eof;
  uint32_t goodbye_code;
} fake_slave;

static void send_unknown_result(int fd) {
  Interaction__V1__TaskResult result = INTERACTION__V1__TASK_RESULT__INIT;
  Interaction__V1__Frame frame = INTERACTION__V1__FRAME__INIT;
  frame.has_id = 1;
  frame.id = 424242;
  frame.body_case = INTERACTION__V1__FRAME__BODY_RESULT;
  frame.result = &result;
  tu_raw_send(fd, &frame);
}

static void *fake_main(void *arg) {
  fake_slave *f = arg;
  int fd = tu_raw_accept(f->listen_fd, TU_WAIT_MS);
  if (fd < 0) return NULL;
  f->welcomed = tu_raw_welcome(fd);
  if (f->welcomed) {
    if (f->what == UNKNOWN_ID_RESULT) {
      send_unknown_result(fd);
    } else {
      Interaction__V1__Frame *task = NULL;
      f->got_task = tu_raw_read_frame(fd, TU_WAIT_MS, &task) == 1 &&
                    task->body_case == INTERACTION__V1__FRAME__BODY_TASK;
      if (task) interaction__v1__frame__free_unpacked(task, NULL);
      if (f->what == GARBAGE_AFTER_TASK) {
        uint8_t garbage[32];
        memset(garbage, 0xff, sizeof garbage);
        tu_raw_write_frame(fd, garbage, sizeof garbage);
      } else {
        const uint8_t header[4] = {0x00, 0x10, 0x00, 0x00}; /* 1 MiB, over the master's 1 KiB */
        tu_raw_write(fd, header, sizeof header);
      }
    }
    /* Whatever the master sends next (a ping, say) until its Goodbye and EOF. */
    uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
    for (int i = 0; i < 64 && tu_now_ms() < deadline; i++) {
      Interaction__V1__Frame *frame = NULL;
      int r = tu_raw_read_frame(fd, (uint32_t)(deadline - tu_now_ms()), &frame);
      if (r == 0) f->got_eof = true;
      if (r != 1) break;
      if (frame->body_case == INTERACTION__V1__FRAME__BODY_GOODBYE) {
        f->got_goodbye = true;
        f->goodbye_code = frame->goodbye->has_code ? frame->goodbye->code : 0;
      }
      interaction__v1__frame__free_unpacked(frame, NULL);
    }
  }
  close(fd);
  return NULL;
}

static void run(script what, uint32_t want_code) {
  fake_slave fake = {.what = what};
  fake.listen_fd = tu_raw_listen(&fake.port);
  cr_assert_geq(fake.listen_fd, 0, "cannot listen");
  cr_assert_eq(pthread_create(&fake.thread, NULL, fake_main, &fake), 0);

  /* A real slave beside it, on the same master. */
  ia_slave_config sc;
  tu_slave_config(&sc, CHANNEL);
  ia_error err = IA_ERROR_INIT;
  ia_slave *real = NULL;
  TU_ASSERT_OK(tu_slave_start(&sc, &real, &err), &err);

  ia_master_config mc;
  ia_master_config_init(&mc);
  mc.name = "raw-slave-master";
  mc.channel = CHANNEL;
  mc.max_frame = MASTER_MAX_FRAME;
  ia_master *m = NULL;
  TU_ASSERT_OK(ia_master_new(&mc, &m, &err), &err);
  TU_ASSERT_OK(ia_master_start(m, &err), &err);
  ia_conn *good = NULL, *bad = NULL;
  TU_ASSERT_OK(tu_connect(m, "real", ia_slave_port(real), &good, &err), &err);
  TU_ASSERT_OK(tu_connect(m, "fake", fake.port, &bad, &err), &err);

  ia_task *t = NULL;
  if (what != UNKNOWN_ID_RESULT) {
    t = tu_sum_task_new(bad, 1, 1);
    cr_assert_not_null(t);
    cr_assert_eq(ia_task_start(t), IA_OK);
    cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "the task on a misbehaving slave never ended");
    TU_ASSERT_STATUS(t, IA_STATUS_LOST);
  }
  cr_assert(tu_wait_connected(bad, false, TU_WAIT_MS), "the misbehaving connection is still up");
  pthread_join(fake.thread, NULL);
  close(fake.listen_fd);
  cr_assert(fake.welcomed, "the master never said Hello to the fake slave");
  if (what != UNKNOWN_ID_RESULT) cr_assert(fake.got_task, "the fake slave got no Task");
  /* Only that connection suffered. */
  uint64_t deadline = tu_now_ms() + 1000;
  while (tu_found(m, "fake") != NULL && tu_now_ms() < deadline)
    tu_sleep_ms(5);
  cr_assert_null(tu_found(m, "fake"), "the closed connection is still registered");
  cr_assert(ia_conn_is_connected(good));
  assert_sum_works(good, 11, 31);

  ia_task_free(t);
  ia_conn_free(bad);
  ia_conn_free(good);
  ia_master_free(m);
  ia_slave_free(real);

  /* Checked last, after the cleanup: what the fake slave heard. */
  cr_assert(fake.got_goodbye, "no Goodbye from the master (the connection %s)",
            fake.got_eof ? "was closed without one" : "stayed open");
  cr_assert_eq(fake.goodbye_code, want_code, "Goodbye code %u %s, expected %u %s", fake.goodbye_code,
               ia_code_name((int)fake.goodbye_code), want_code, ia_code_name((int)want_code));
  cr_assert(fake.got_eof, "the master did not close after its Goodbye");
}

Test(raw_slave, a_reply_to_an_id_never_sent_is_704_on_that_connection_only, .timeout = 30) {
  run(UNKNOWN_ID_RESULT, IA_PROTOCOL_ERROR);
}

Test(raw_slave, garbage_from_the_slave_is_704_and_the_task_is_lost, .timeout = 30) {
  run(GARBAGE_AFTER_TASK, IA_PROTOCOL_ERROR);
}

Test(raw_slave, an_oversize_frame_from_the_slave_is_703_and_the_task_is_lost, .timeout = 30) {
  run(OVERSIZE_AFTER_TASK, IA_FRAME_TOO_LARGE);
}
