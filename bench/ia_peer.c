/*
 * The handlers of bench.Bench (see ia_peer.h). Each receives its request
 * decoded by the generated stub (which frees it when the handler returns)
 * and ends the task with the generated _reply_ok() function, which packs the
 * reply: the decode and encode work a user's slave does, charged to
 * Interaction as in a user's program.
 */
#include "ia_peer.h"

#include <sys/resource.h>

/* Ending a task fails only if it had an outcome already or memory ran out,
 * and the master hears of the task either way: the benchmark goes on. */
static void ended(ia_code rc) {
  (void)rc;
}

static void handle_sum(ia_task_ctx *task, const Bench__SumRequest *req, void *user) {
  (void)user;
  if (!req->has_a || !req->has_b) {
    ended(ia_pb_fail(task, IA_TASK_FAILED, "A or B not found in task data.", NULL));
    return;
  }
  Bench__SumReply res = BENCH__SUM_REPLY__INIT;
  res.has_sum = 1;
  res.sum = (int64_t)((uint64_t)req->a + (uint64_t)req->b);
  ended(bench_bench_sum_reply_ok(task, &res));
}

static void handle_echo(ia_task_ctx *task, const Bench__Blob *req, void *user) {
  (void)user;
  Bench__Blob res = BENCH__BLOB__INIT;
  res.has_data = req->has_data;
  res.data = req->data;
  ended(bench_bench_echo_reply_ok(task, &res));
}

static void handle_hold(ia_task_ctx *task, const Bench__HoldRequest *req, void *user) {
  (void)user;
  uint32_t ms = req->has_ms ? req->ms : 0;
  if (!ia_task_ctx_sleep(task, ms)) {
    ended(ia_pb_fail(task, IA_CANCELLED, "cancelled", NULL));
    return;
  }
  Bench__HoldReply res = BENCH__HOLD_REPLY__INIT;
  res.has_held_ms = 1;
  res.held_ms = ms;
  ended(bench_bench_hold_reply_ok(task, &res));
}

static void handle_stats(ia_task_ctx *task, const Bench__StatsRequest *req, void *user) {
  (void)req;
  (void)user;
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  Bench__StatsReply res = BENCH__STATS_REPLY__INIT;
  res.has_user_us = res.has_sys_us = res.has_maxrss_kb = 1;
  res.user_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
  res.sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
  res.maxrss_kb = (uint64_t)ru.ru_maxrss;
  ended(bench_bench_stats_reply_ok(task, &res));
}

const bench_bench_handlers bench_ia_handlers = {
    .sum = handle_sum,
    .echo = handle_echo,
    .hold = handle_hold,
    .stats = handle_stats,
};
