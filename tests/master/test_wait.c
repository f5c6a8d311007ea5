/* Waiting on many tasks at once (ia_task_join_all, ia_task_wait_any) under a
 * fan-out of 16 slaves with failures mixed in, and connecting by one
 * "HOST:PORT" string (ia_hostport_parse, ia_master_connect_addr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sum_handlers.h"

#define CHANNEL 61
#define FAN_OUT 16

TestSuite(wait, .timeout = 60);

typedef struct fan {
  ia_slave *slaves[FAN_OUT];
  ia_master *master;
  ia_conn *conns[FAN_OUT];
} fan;

static void fan_start(fan *f) {
  for (int i = 0; i < FAN_OUT; i++)
    f->slaves[i] = fixture_slave(CHANNEL);
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("waiter", CHANNEL, &f->master, &err), &err);
  for (int i = 0; i < FAN_OUT; i++) {
    char name[16];
    snprintf(name, sizeof name, "s%d", i);
    TU_ASSERT_OK(tu_connect(f->master, name, ia_slave_port(f->slaves[i]), &f->conns[i], &err), &err);
  }
}

static void fan_free(fan *f) {
  for (int i = 0; i < FAN_OUT; i++)
    ia_conn_free(f->conns[i]);
  ia_master_free(f->master);
  for (int i = 0; i < FAN_OUT; i++)
    ia_slave_free(f->slaves[i]);
}

/* A Sum without b: the sum handler fails it on purpose (603). */
static ia_task *failing_task(ia_conn *c) {
  size_t len = 0;
  uint8_t *req = tu_sum_task(1, 0, true, false, &len);
  cr_assert_not_null(req);
  ia_task *t = ia_conn_new_task(c, SUM_METHOD_SUM, req, len);
  free(req);
  return t;
}

/* Task i of the fan-out: every fourth fails, every fourth after that sleeps
 * (longer the lower its index), the rest are Sums of i and 100. */
static ia_task *nth_task(ia_conn *c, int i) {
  if (i % 4 == 0) return failing_task(c);
  if (i % 4 == 1) return tu_sleep_task_new(c, 150 + 50 * (uint32_t)(FAN_OUT - i));
  return tu_sum_task_new(c, i, 100);
}

static void assert_nth_outcome(ia_task *t, int i) {
  if (i % 4 == 0) {
    TU_ASSERT_STATUS(t, IA_STATUS_FAILED);
    cr_assert_eq(ia_task_error(t)->code, IA_TASK_FAILED, "task %d: code %d", i, ia_task_error(t)->code);
  } else if (i % 4 == 1) {
    TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  } else {
    assert_sum_task_done(t, i, i + 100);
  }
}

Test(wait, join_all_ends_when_every_task_has_ended_whatever_its_outcome) {
  fan f;
  fan_start(&f);
  ia_task *tasks[FAN_OUT];
  for (int i = 0; i < FAN_OUT; i++) {
    tasks[i] = nth_task(f.conns[i], i);
    cr_assert_eq(ia_task_start(tasks[i]), IA_OK);
  }
  cr_assert_eq(ia_task_join_all(tasks, FAN_OUT, 4 * TU_WAIT_MS), IA_OK);
  for (int i = 0; i < FAN_OUT; i++) {
    cr_assert(ia_task_status(tasks[i]) >= IA_STATUS_START_FAILED, "task %d is not terminal", i);
    assert_nth_outcome(tasks[i], i);
    ia_task_free(tasks[i]);
  }
  fan_free(&f);
}

Test(wait, wait_any_hands_out_each_task_once_as_it_ends) {
  fan f;
  fan_start(&f);
  ia_task *all[FAN_OUT], *left[FAN_OUT];
  int index_of[FAN_OUT];
  for (int i = 0; i < FAN_OUT; i++) {
    all[i] = left[i] = nth_task(f.conns[i], i);
    index_of[i] = i;
    cr_assert_eq(ia_task_start(all[i]), IA_OK);
  }
  bool seen[FAN_OUT] = {false};
  int order[FAN_OUT];
  size_t n = FAN_OUT;
  for (int got = 0; got < FAN_OUT; got++) {
    size_t at = SIZE_MAX;
    cr_assert_eq(ia_task_wait_any(left, n, 4 * TU_WAIT_MS, &at), IA_OK, "wait %d", got);
    cr_assert_lt(at, n);
    int i = index_of[at];
    cr_assert(!seen[i], "task %d handed out twice", i);
    seen[i] = true;
    order[got] = i;
    cr_assert(ia_task_status(left[at]) >= IA_STATUS_START_FAILED, "task %d is not terminal", i);
    assert_nth_outcome(left[at], i);
    /* Out of the set: the last one takes its place. */
    left[at] = left[n - 1];
    index_of[at] = index_of[n - 1];
    n--;
  }
  /* The Sleeps end last, the longest (lowest index) after every other. */
  cr_assert_neq(order[0] % 4, 1, "a Sleep came back before every Sum and failure");
  cr_assert_eq(order[FAN_OUT - 1], 1, "the longest Sleep (task 1) was not the last: %d", order[FAN_OUT - 1]);
  for (int i = 0; i < FAN_OUT; i++)
    ia_task_free(all[i]);
  fan_free(&f);
}

Test(wait, both_time_out_on_a_task_that_runs_on_and_leave_it_running) {
  fixture fx = fixture_default(CHANNEL);
  ia_task *t = tu_sleep_task_new(fx.conn, 3000);
  cr_assert_eq(ia_task_start(t), IA_OK);
  size_t at = 7;
  uint64_t t0 = tu_now_ms();
  cr_assert_eq(ia_task_wait_any(&t, 1, 50, &at), IA_TIMEOUT);
  cr_assert_eq(at, 7, "the index was written on a time-out");
  cr_assert_eq(ia_task_join_all(&t, 1, 50), IA_TIMEOUT);
  if (!tu_valgrind()) cr_assert_lt(tu_now_ms() - t0, TU_WAIT_MS, "the time-outs overran");
  ia_status st = ia_task_status(t);
  cr_assert(st == IA_STATUS_STARTING || st == IA_STATUS_STARTED, "a timed-out wait changed the task: %d", st);
  cr_assert_eq(ia_task_cancel(t), IA_OK);
  cr_assert_eq(ia_task_join_all(&t, 1, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_CANCELLED);
  ia_task_free(t);
  fixture_free(&fx);
}

Test(wait, what_cannot_be_waited_on_is_an_invalid_argument) {
  fixture a = fixture_default(CHANNEL);
  fixture b = fixture_default(CHANNEL);
  ia_task *idle = tu_sum_task_new(a.conn, 1, 2);
  size_t at = 0;
  cr_assert_eq(ia_task_wait_any(&idle, 1, 10, &at), IA_INVALID_ARGUMENT, "an IDLE task");
  cr_assert_eq(ia_task_join_all(&idle, 1, 10), IA_INVALID_ARGUMENT, "an IDLE task");
  cr_assert_eq(ia_task_wait_any(&idle, 0, 10, &at), IA_INVALID_ARGUMENT, "no tasks");
  cr_assert_eq(ia_task_join_all(NULL, 1, 10), IA_INVALID_ARGUMENT, "no array");
  ia_task *two[2] = {tu_sum_task_new(a.conn, 1, 2), tu_sum_task_new(b.conn, 3, 4)};
  cr_assert_eq(ia_task_start(two[0]), IA_OK);
  cr_assert_eq(ia_task_start(two[1]), IA_OK);
  cr_assert_eq(ia_task_wait_any(two, 2, 10, &at), IA_INVALID_ARGUMENT, "tasks of two masters");
  cr_assert_eq(ia_task_join_all(two, 2, TU_WAIT_MS), IA_OK, "join_all may span masters");
  assert_sum_task_done(two[0], 0, 3);
  assert_sum_task_done(two[1], 1, 7);
  ia_task_free(two[0]);
  ia_task_free(two[1]);
  ia_task_free(idle);
  fixture_free(&b);
  fixture_free(&a);
}

/* ---- HOST:PORT ---- */

Test(wait, hostport_parse_reads_names_v4_and_bracketed_v6_and_nothing_else) {
  char host[64];
  uint16_t port = 0;
  cr_assert(ia_hostport_parse("127.0.0.1:5000", host, sizeof host, &port));
  cr_assert_str_eq(host, "127.0.0.1");
  cr_assert_eq(port, 5000);
  cr_assert(ia_hostport_parse("learner-3.cluster:65535", host, sizeof host, &port));
  cr_assert_str_eq(host, "learner-3.cluster");
  cr_assert_eq(port, 65535);
  cr_assert(ia_hostport_parse("[::1]:1", host, sizeof host, &port));
  cr_assert_str_eq(host, "::1");
  cr_assert_eq(port, 1);
  const char *bad[] = {"",        "nope",     ":80",    "host:",   "host:0", "host:65536", "host:80x",
                       "host:-1", "host:+80", "::1:80", "[::1]80", "[]:80",  "[::1:80"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    port = 4321;
    cr_assert(!ia_hostport_parse(bad[i], host, sizeof host, &port), "'%s' was read", bad[i]);
    cr_assert_eq(port, 4321, "'%s' wrote the port", bad[i]);
  }
  char small[4];
  cr_assert(!ia_hostport_parse("localhost:80", small, sizeof small, &port), "a host that does not fit");
}

Test(wait, connect_addr_dials_host_port_and_refuses_what_is_not) {
  ia_slave *s = fixture_slave(CHANNEL);
  ia_master *m = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("addr", CHANNEL, &m, &err), &err);
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%u", (unsigned)ia_slave_port(s));
  ia_conn *c = NULL;
  TU_ASSERT_OK(ia_master_connect_addr(m, "slave", addr, NULL, 0, TU_WAIT_MS, &c, &err), &err);
  assert_sum_works(c, 5, 6);
  ia_conn *bad = (ia_conn *)1;
  cr_assert_eq(ia_master_connect_addr(m, "other", "127.0.0.1", NULL, 0, TU_WAIT_MS, &bad, &err),
               IA_INVALID_ARGUMENT);
  cr_assert_null(bad);
  cr_assert_not_null(strstr(err.message, "HOST:PORT"), "%s", err.message);
  ia_error_clear(&err);
  ia_conn_free(c);
  ia_master_free(m);
  ia_slave_free(s);
}
