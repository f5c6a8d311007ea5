/*
 * Interop: an independent second implementation of the wire format.
 *
 * A master written with nanopb only (nanopb_master.c: plain POSIX sockets,
 * the 4-byte big-endian length prefix, nanopb codecs generated at build time
 * from the same proto/interaction.proto and examples/sum/sum.proto) talks to
 * a real `sum-slave` process. Nothing here links libinteraction or
 * protobuf-c, so every frame the slave sends is decoded by a protobuf
 * implementation that shares no code with the one that encoded it, and every
 * frame the slave accepts was encoded the same way. That is what "the wire
 * stays plain protobuf" (shared/DESIGN.md, "Wire protocol") means in
 * practice; `wire.canonical` asserts that every frame was also byte-for-byte
 * nanopb's canonical encoding.
 *
 * Each Test runs in its own process (criterion), spawns its own sum-slave on
 * 127.0.0.1 port 0, bounds every wait, and kills (by pid) and reaps the
 * slave in .fini.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <pb_decode.h>

#include "nanopb_master.h"

#define TEST_TIMEOUT 30.0 /* seconds, per Test */
#define FAIL_MESSAGE "A or B not found in task data."

static void setup(void) {
  spawn_slave(CHANNEL);
}

/* Task sum.Adder/Sum {a=20, b=22} → TaskResult{SumResult{sum=42}}. */
static void check_sum(int fd, uint64_t id, interaction_v1_Task_MetadataEntry *md, pb_size_t md_count,
                      uint64_t deadline_ms) {
  send_task(fd, id, "sum.Adder/Sum", sum_task(true, 20, true, 22), md, md_count, deadline_ms);
  interaction_v1_Frame r;
  recv_reply(fd, id, &r);
  if (r.which_body == interaction_v1_Frame_fail_tag)
    cr_assert_fail("the sum failed: TaskFail{%u, \"%s\"}", r.body.fail.code,
                   r.body.fail.message ? r.body.fail.message : "");
  if (r.which_body == interaction_v1_Frame_refusal_tag)
    cr_assert_fail("the sum was refused: Refusal{%u, \"%s\"}", r.body.refusal.code,
                   r.body.refusal.message ? r.body.refusal.message : "");
  cr_assert_eq(r.which_body, interaction_v1_Frame_result_tag, "the sum's reply has body %u", r.which_body);
  sum_SumResult res = sum_SumResult_init_zero;
  decode_payload(r.body.result.payload, &sum_SumResult_msg, &res, "TaskResult.payload as sum.SumResult");
  cr_assert(res.has_sum, "SumResult without sum");
  cr_assert_eq(res.sum, 42);
  pb_release(&interaction_v1_Frame_msg, &r);
}

/* Task sum.Adder/Sum {a=1} (no b) → TaskFail{603, FAIL_MESSAGE, FailInfo{"ab not found"}}. */
static void check_sum_fail(int fd, uint64_t id) {
  send_task(fd, id, "sum.Adder/Sum", sum_task(true, 1, false, 0), NULL, 0, 0);
  interaction_v1_Frame r;
  recv_reply(fd, id, &r);
  cr_assert_eq(r.which_body, interaction_v1_Frame_fail_tag, "the failing sum's reply has body %u",
               r.which_body);
  const interaction_v1_TaskFail *f = &r.body.fail;
  cr_assert(f->has_code, "TaskFail without code");
  cr_assert_eq(f->code, 603);
  cr_assert_not_null(f->message, "TaskFail without message");
  cr_assert_str_eq(f->message, FAIL_MESSAGE);
  sum_FailInfo info = sum_FailInfo_init_zero;
  decode_payload(f->result, &sum_FailInfo_msg, &info, "TaskFail.result as sum.FailInfo");
  cr_assert_not_null(info.message, "FailInfo without message");
  cr_assert_str_eq(info.message, "ab not found");
  pb_release(&sum_FailInfo_msg, &info);
  pb_release(&interaction_v1_Frame_msg, &r);
}

/* An unknown method → Refusal{606} or TaskFail{606}. */
static void check_unknown_method(int fd, uint64_t id) {
  send_task(fd, id, "sum.Adder/Nope", sum_task(true, 1, true, 2), NULL, 0, 0);
  interaction_v1_Frame r;
  recv_reply(fd, id, &r);
  if (r.which_body == interaction_v1_Frame_refusal_tag) {
    cr_assert(r.body.refusal.has_code, "Refusal without code");
    cr_assert_eq(r.body.refusal.code, 606);
    cr_assert_not_null(r.body.refusal.message, "Refusal without message");
  } else {
    cr_assert_eq(r.which_body, interaction_v1_Frame_fail_tag, "an unknown method got body %u", r.which_body);
    cr_assert(r.body.fail.has_code, "TaskFail without code");
    cr_assert_eq(r.body.fail.code, 606);
  }
  pb_release(&interaction_v1_Frame_msg, &r);
}

/* Ping → Pong with the same id. */
static void check_ping(int fd, uint64_t id) {
  send_empty(fd, id, interaction_v1_Frame_ping_tag);
  interaction_v1_Frame r;
  recv_frame(fd, &r);
  cr_assert_eq(r.which_body, interaction_v1_Frame_pong_tag, "a Ping got body %u", r.which_body);
  cr_assert(r.has_id && r.id == id, "the Pong's id is %llu, not %llu", (unsigned long long)r.id,
            (unsigned long long)id);
  pb_release(&interaction_v1_Frame_msg, &r);
}

/* Disconnect{} → Goodbye{code=0} with the same id, then EOF. Closes fd. */
static void check_disconnect(int fd, uint64_t id) {
  send_empty(fd, id, interaction_v1_Frame_disconnect_tag); /* Disconnect{} */
  interaction_v1_Frame r;
  recv_frame(fd, &r);
  cr_assert_eq(r.which_body, interaction_v1_Frame_goodbye_tag, "Disconnect got body %u", r.which_body);
  cr_assert(r.has_id && r.id == id, "the Goodbye's id is %llu, not %llu", (unsigned long long)r.id,
            (unsigned long long)id);
  cr_assert_eq(r.body.goodbye.has_code ? r.body.goodbye.code : 0, 0, "Goodbye{%u, \"%s\"}",
               r.body.goodbye.code, r.body.goodbye.message ? r.body.goodbye.message : "");
  pb_release(&interaction_v1_Frame_msg, &r);
  cr_assert(expect_eof(fd), "the slave kept the connection open after its Goodbye");
  close(fd);
}

/* ---- tests ---- */

TestSuite(nanopb, .init = setup, .fini = stop_slave, .timeout = TEST_TIMEOUT);

Test(nanopb, handshake) {
  int fd = dial();
  interaction_v1_Frame w;
  hello(fd, CHANNEL, &w);
  expect_welcome(&w);
  const interaction_v1_Welcome *wel = &w.body.welcome;
  cr_assert_not_null(wel->slave_name, "the Welcome has no slave_name");
  cr_assert_str_eq(wel->slave_name, "sum-slave");
  if (wel->has_capacity) cr_assert_geq(wel->capacity, 1);
  if (wel->has_max_frame) cr_assert_gt(wel->max_frame, 0);
  pb_release(&interaction_v1_Frame_msg, &w);
  check_disconnect(fd, 2);
}

Test(nanopb, sum) {
  int fd = connect_and_hello();
  check_sum(fd, 2, NULL, 0, 0);
  check_disconnect(fd, 3);
}

Test(nanopb, sum_fail) {
  int fd = connect_and_hello();
  check_sum_fail(fd, 3);
  check_disconnect(fd, 4);
}

Test(nanopb, unknown_method) {
  int fd = connect_and_hello();
  check_unknown_method(fd, 4);
  /* The connection is still usable afterwards. */
  check_sum(fd, 5, NULL, 0, 0);
  check_disconnect(fd, 6);
}

/* A Task with everything nanopb can put in it: a map (repeated entries) and a
 * deadline. The slave must decode nanopb's map encoding. */
Test(nanopb, sum_with_metadata_and_deadline) {
  int fd = connect_and_hello();
  interaction_v1_Task_MetadataEntry md[2] = {{(char *)"trace-id", (char *)"abc123"},
                                             {(char *)"empty", (char *)""}};
  check_sum(fd, 2, md, 2, 60000);
  check_disconnect(fd, 3);
}

Test(nanopb, ping) {
  int fd = connect_and_hello();
  check_ping(fd, 2);
  check_disconnect(fd, 3);
}

/* While a Sleep holds the only slot, the slave still answers a Ping and
 * refuses a second task with 601 TASK_ALREADY_EXIST; then the Sleep's result
 * comes. Replies may interleave, so frames are matched by id. */
Test(nanopb, busy_slave) {
  int fd = connect_and_hello();
  send_task(fd, 10, "sum.Adder/Sleep", sleep_task(300), NULL, 0, 0);
  send_empty(fd, 11, interaction_v1_Frame_ping_tag);
  send_task(fd, 12, "sum.Adder/Sum", sum_task(true, 1, true, 2), NULL, 0, 0);
  bool pong = false, refused = false, done = false;
  int accepted = 0;
  for (int i = 0; i < 16 && !(pong && refused && done); i++) {
    interaction_v1_Frame r;
    recv_frame(fd, &r);
    cr_assert(r.has_id, "a frame (body %u) without id", r.which_body);
    if (r.id == 11) {
      cr_assert_eq(r.which_body, interaction_v1_Frame_pong_tag, "the Ping got body %u", r.which_body);
      cr_assert_not(pong, "two Pongs");
      pong = true;
    } else if (r.id == 12) {
      cr_assert_eq(r.which_body, interaction_v1_Frame_refusal_tag, "the task sent while busy got body %u",
                   r.which_body);
      cr_assert(r.body.refusal.has_code && r.body.refusal.code == 601, "Refusal{%u, \"%s\"}, not 601",
                r.body.refusal.code, r.body.refusal.message ? r.body.refusal.message : "");
      refused = true;
    } else {
      cr_assert_eq(r.id, 10, "a frame (body %u) with id %llu", r.which_body, (unsigned long long)r.id);
      cr_assert_not(done, "a frame (body %u) after the Sleep's result", r.which_body);
      if (r.which_body == interaction_v1_Frame_accepted_tag) {
        cr_assert_eq(++accepted, 1, "the Sleep was Accepted twice");
      } else {
        cr_assert_eq(r.which_body, interaction_v1_Frame_result_tag, "the Sleep's reply has body %u",
                     r.which_body);
        sum_SleepResult res = sum_SleepResult_init_zero;
        decode_payload(r.body.result.payload, &sum_SleepResult_msg, &res,
                       "TaskResult.payload as sum.SleepResult");
        cr_assert(res.has_slept_ms, "SleepResult without slept_ms");
        cr_assert_eq(res.slept_ms, 300);
        done = true;
      }
    }
    pb_release(&interaction_v1_Frame_msg, &r);
  }
  cr_assert(pong && refused && done, "missing replies: pong %d, refusal %d, result %d", pong, refused, done);
  check_disconnect(fd, 13);
}

/* Cancel (the frame's id names the task) stops a long Sleep early: the task
 * ends with code 608 CANCELLED, well before its 10 s. */
Test(nanopb, cancel) {
  int fd = connect_and_hello();
  uint64_t start = now_ms();
  send_task(fd, 20, "sum.Adder/Sleep", sleep_task(10000), NULL, 0, 0);
  usleep(50 * 1000); /* let it start; a Cancel that arrives first must work too, but is another test */
  send_empty(fd, 20, interaction_v1_Frame_cancel_tag);
  interaction_v1_Frame r;
  recv_reply(fd, 20, &r);
  cr_assert_lt(now_ms() - start, WAIT_MS, "the cancelled Sleep ran on");
  if (r.which_body == interaction_v1_Frame_fail_tag)
    cr_assert(r.body.fail.has_code && r.body.fail.code == 608, "TaskFail{%u, \"%s\"}, not 608",
              r.body.fail.code, r.body.fail.message ? r.body.fail.message : "");
  else
    cr_assert(r.which_body == interaction_v1_Frame_refusal_tag && r.body.refusal.code == 608,
              "the cancelled Sleep got body %u", r.which_body);
  pb_release(&interaction_v1_Frame_msg, &r);
  check_disconnect(fd, 21);
}

/* The whole session of the brief on one connection, ids 1..5, then the slave
 * still exits 0 on SIGTERM. */
Test(nanopb, session) {
  int fd = connect_and_hello(); /* id 1 */
  check_sum(fd, 2, NULL, 0, 0);
  check_sum_fail(fd, 3);
  check_unknown_method(fd, 4);
  check_disconnect(fd, 5);
  /* Free for the next master: a second connection works. */
  fd = connect_and_hello();
  check_sum(fd, 2, NULL, 0, 0);
  check_disconnect(fd, 3);
  cr_assert_eq(kill(slave_pid, SIGTERM), 0);
  cr_assert(reap_slave(WAIT_MS), "sum-slave did not exit within %u ms of SIGTERM", WAIT_MS);
  cr_assert(WIFEXITED(slave_status) && WEXITSTATUS(slave_status) == 0, "sum-slave ended with status 0x%x",
            slave_status);
}

Test(nanopb, wrong_channel) {
  int fd = dial();
  interaction_v1_Frame r;
  hello(fd, CHANNEL + 1, &r);
  cr_assert_eq(r.which_body, interaction_v1_Frame_refusal_tag, "a wrong channel got body %u, not a Refusal",
               r.which_body);
  cr_assert(r.has_id && r.id == 1, "the Refusal's id is %llu, not 1", (unsigned long long)r.id);
  cr_assert(r.body.refusal.has_code, "Refusal without code");
  cr_assert_eq(r.body.refusal.code, 202);
  cr_assert_not_null(r.body.refusal.message, "Refusal without message");
  pb_release(&interaction_v1_Frame_msg, &r);
  close(fd);
}

/* Every frame the C library sent in a whole session is byte-for-byte what
 * nanopb would have encoded: no padding, field order as protobuf's canonical
 * encoding. (Valid non-canonical protobuf would still be readable; this
 * pins down that the hand-written fast-path encoder emits the canonical form.) */
Test(wire, canonical, .init = setup, .fini = stop_slave, .timeout = TEST_TIMEOUT) {
  int fd = connect_and_hello();
  interaction_v1_Task_MetadataEntry md[1] = {{(char *)"k", (char *)"v"}};
  check_sum(fd, 2, md, 1, 1000);
  check_sum_fail(fd, 3);
  check_unknown_method(fd, 4);
  check_ping(fd, 5);
  send_task(fd, 6, "sum.Adder/Sleep", sleep_task(300), NULL, 0, 0); /* long enough to be Accepted */
  interaction_v1_Frame r;
  recv_reply(fd, 6, &r);
  cr_assert_eq(r.which_body, interaction_v1_Frame_result_tag, "the Sleep's reply has body %u", r.which_body);
  pb_release(&interaction_v1_Frame_msg, &r);
  check_disconnect(fd, 7);
  fd = dial();
  hello(fd, CHANNEL + 1, &r);
  pb_release(&interaction_v1_Frame_msg, &r);
  close(fd);
  cr_assert_geq(frames_received, 8);
  cr_assert_eq(frames_noncanonical, 0, "%zu of %zu frames were not in canonical encoding (see the warnings)",
               frames_noncanonical, frames_received);
}
