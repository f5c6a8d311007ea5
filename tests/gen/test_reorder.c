/* Reordering the methods of a service between the master's and the slave's
 * generated code keeps calls working: this process uses stubs generated from
 * reorder_a/reorder.proto, and talks to gen_reorder_slave, a separate process
 * built from reorder_b/reorder.proto, where the same methods (and messages)
 * come in another order. Methods travel by full name, so each call must reach
 * its own handler: a dispatch by index would add where it should multiply. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "reorder.ia.h"
#include "tu_assert.h"

#ifndef REORDER_SLAVE_PATH
#error "REORDER_SLAVE_PATH must name the gen_reorder_slave executable"
#endif

#define CHANNEL 81

static void kill_children(void) {
  tu_proc_kill_all();
}

typedef struct peer {
  tu_proc proc;
  ia_master *master;
  ia_conn *conn;
} peer;

static void peer_start(peer *p) {
  p->proc = (tu_proc)TU_PROC_INIT;
  uint16_t port = tu_spawn_sum_slave(&p->proc, REORDER_SLAVE_PATH, CHANNEL, NULL);
  cr_assert_neq(port, 0, "gen_reorder_slave did not start: %s", p->proc.line);
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(tu_master_start("reorder-master", CHANNEL, &p->master, &err), &err);
  TU_ASSERT_OK(tu_connect(p->master, "reorder", port, &p->conn, &err), &err);
}

/* Frees the master, then stops the slave with SIGTERM and checks that it
 * exits cleanly, within a bound; tu_proc_kill() reaps it whatever happens. */
static void peer_stop(peer *p) {
  ia_conn_free(p->conn);
  ia_master_free(p->master);
  cr_assert(tu_proc_signal(&p->proc, SIGTERM));
  bool exited = tu_proc_wait(&p->proc, TU_WAIT_MS);
  int status = p->proc.status;
  tu_proc_kill(&p->proc);
  cr_assert(exited, "gen_reorder_slave did not exit within %u ms of SIGTERM", TU_WAIT_MS);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "gen_reorder_slave exited with status %d", status);
}

static int64_t call_pair(ia_code (*fn)(ia_conn *, const Ia__Reorder__Pair *, Ia__Reorder__Num **,
                                       const ia_call_opts *, ia_error *),
                         ia_conn *conn, int64_t a, int64_t b) {
  Ia__Reorder__Pair pair = IA__REORDER__PAIR__INIT;
  pair.has_a = pair.has_b = 1;
  pair.a = a;
  pair.b = b;
  Ia__Reorder__Num *num = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_call_opts opts = {.timeout_ms = TU_WAIT_MS};
  TU_ASSERT_OK(fn(conn, &pair, &num, &opts, &err), &err);
  cr_assert(num->has_value);
  int64_t value = num->value;
  ia__reorder__num__free_unpacked(num, NULL);
  return value;
}

Test(gen_reorder, blocking_calls_reach_their_own_handlers, .timeout = 30, .fini = kill_children) {
  peer p;
  peer_start(&p);

  cr_assert_eq(call_pair(ia_reorder_calc_add, p.conn, 6, 7), 13);
  cr_assert_eq(call_pair(ia_reorder_calc_mul, p.conn, 6, 7), 42);

  ia_error err = IA_ERROR_INIT;
  ia_call_opts opts = {.timeout_ms = TU_WAIT_MS};
  Ia__Reorder__Num num = IA__REORDER__NUM__INIT;
  num.has_value = 1;
  num.value = 5;
  Ia__Reorder__Num *negated = NULL;
  TU_ASSERT_OK(ia_reorder_calc_neg(p.conn, &num, &negated, &opts, &err), &err);
  cr_assert_eq(negated->value, -5);
  ia__reorder__num__free_unpacked(negated, NULL);

  num.value = 1234;
  Ia__Reorder__Text *text = NULL;
  TU_ASSERT_OK(ia_reorder_calc_describe(p.conn, &num, &text, &opts, &err), &err);
  cr_assert_str_eq(text->text, "1234");
  ia__reorder__text__free_unpacked(text, NULL);

  peer_stop(&p);
}

Test(gen_reorder, async_tasks_reach_their_own_handlers, .timeout = 30, .fini = kill_children) {
  peer p;
  peer_start(&p);

  Ia__Reorder__Pair pair = IA__REORDER__PAIR__INIT;
  pair.has_a = pair.has_b = 1;
  pair.a = 3;
  pair.b = 4;
  Ia__Reorder__Num num = IA__REORDER__NUM__INIT;
  num.has_value = 1;
  num.value = 9;

  /* One task per method, started in yet another order, all joined. */
  ia_task *describe = ia_reorder_calc_describe_start(p.conn, &num, NULL);
  ia_task *mul = ia_reorder_calc_mul_start(p.conn, &pair, NULL);
  ia_task *neg = ia_reorder_calc_neg_start(p.conn, &num, NULL);
  ia_task *add = ia_reorder_calc_add_start(p.conn, &pair, NULL);
  ia_task *tasks[] = {describe, mul, neg, add};
  for (size_t i = 0; i < 4; i++) {
    cr_assert_not_null(tasks[i]);
    cr_assert_eq(ia_task_join(tasks[i], TU_WAIT_MS), IA_OK, "task %zu did not end", i);
    TU_ASSERT_STATUS(tasks[i], IA_STATUS_COMPLETED);
  }

  Ia__Reorder__Text *text = NULL;
  Ia__Reorder__Num *out = NULL;
  cr_assert_eq(ia_reorder_calc_describe_reply(describe, &text), IA_OK);
  cr_assert_str_eq(text->text, "9");
  ia__reorder__text__free_unpacked(text, NULL);
  cr_assert_eq(ia_reorder_calc_mul_reply(mul, &out), IA_OK);
  cr_assert_eq(out->value, 12);
  ia__reorder__num__free_unpacked(out, NULL);
  cr_assert_eq(ia_reorder_calc_neg_reply(neg, &out), IA_OK);
  cr_assert_eq(out->value, -9);
  ia__reorder__num__free_unpacked(out, NULL);
  cr_assert_eq(ia_reorder_calc_add_reply(add, &out), IA_OK);
  cr_assert_eq(out->value, 7);
  ia__reorder__num__free_unpacked(out, NULL);

  for (size_t i = 0; i < 4; i++)
    ia_task_free(tasks[i]);
  peer_stop(&p);
}
