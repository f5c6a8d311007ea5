/* Who reads a connection while a blocking call and async tasks share it
 * (master/reader.c): a blocking call with a small request takes the read
 * side before it sends, even from the loop; while it holds it, it reads
 * for the async tasks too; once it lets go, the loop reads for the ones
 * still pending. A multi-slot slave runs the tasks side by side. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "sum_handlers.h"

#define CHANNEL 131

static fixture start_multi(uint32_t workers) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.mode = IA_MODE_NONBLOCKING_MULTI;
  config.workers = workers;
  return fixture_start(&config, "reader-test");
}

/* A blocking Sleep through ia_call(). */
static ia_code call_sleep(ia_conn *conn, uint32_t ms, ia_error *err) {
  size_t len;
  uint8_t *req = tu_sleep_task(ms, &len);
  cr_assert_not_null(req);
  void *reply = NULL;
  size_t reply_len = 0;
  ia_code rc = ia_call(conn, SUM_METHOD_SLEEP, req, len, &reply, &reply_len, TU_WAIT_MS, err);
  uint32_t slept = 0;
  if (rc == IA_OK) cr_assert(tu_sleep_result(reply, reply_len, &slept) && slept == ms, "slept %u", slept);
  free(req);
  free(reply);
  return rc;
}

typedef struct done_at {
  atomic_ullong ms; /* tu_now_ms() when on_complete ran; 0 before */
} done_at;

static void note_done(ia_task *task, void *user) {
  (void)task;
  atomic_store(&((done_at *)user)->ms, tu_now_ms());
}

/* The async task's result comes in while the call's caller holds the read
 * side: the caller hands it on at once, not when its own call returns. */
Test(reader, an_async_result_during_a_call_is_delivered_while_the_call_waits, .timeout = 60) {
  fixture f = start_multi(2);
  done_at done = {0};
  ia_task *async = tu_sleep_task_new(f.conn, 100);
  cr_assert_not_null(async);
  cr_assert_eq(ia_task_on_complete(async, note_done, &done), IA_OK);
  cr_assert_eq(ia_task_start(async), IA_OK);
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(call_sleep(f.conn, 1500, &err), &err);
  uint64_t returned = tu_now_ms();
  TU_ASSERT_STATUS(async, IA_STATUS_COMPLETED);
  uint64_t at = atomic_load(&done.ms);
  cr_assert_neq(at, 0, "the async task's callback never ran");
  cr_assert_lt(at + 700, returned, "the async result waited for the call to return (%llu ms before it)",
               (unsigned long long)(returned - at));
  ia_task_free(async);
  fixture_free(&f);
}

/* Calls made while a task is pending take the read side from the loop and
 * give it back: the task's result, coming after them, is still read. */
Test(reader, the_loop_reads_for_a_pending_task_after_calls_let_go, .timeout = 60) {
  fixture f = start_multi(2);
  ia_task *async = tu_sleep_task_new(f.conn, 400);
  cr_assert_not_null(async);
  cr_assert_eq(ia_task_start(async), IA_OK);
  for (int i = 0; i < 50; i++) {
    int64_t sum = 0;
    ia_error err = IA_ERROR_INIT;
    TU_ASSERT_OK(tu_call_sum(f.conn, i, 2 * i, &sum, &err), &err);
    cr_assert_eq(sum, 3 * i);
  }
  cr_assert_neq(ia_task_status(async), IA_STATUS_COMPLETED, "the Sleep ended before the calls did");
  cr_assert_eq(ia_task_join(async, TU_WAIT_MS), IA_OK, "the pending task's result was never read");
  TU_ASSERT_STATUS(async, IA_STATUS_COMPLETED);
  ia_task_free(async);
  fixture_free(&f);
}

/* ---- callers on many threads, async tasks beside them ---- */

#define CALLERS 4
#define CALLS 150
#define ASYNC 150

typedef struct caller {
  ia_conn *conn;
  int base;
  int bad;
  char why[400];
} caller;

static void *caller_main(void *arg) {
  caller *k = arg;
  for (int i = 0; i < CALLS && !k->bad; i++) {
    int64_t sum = -1;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = tu_call_sum(k->conn, k->base + i, 1000, &sum, &err);
    if (rc != IA_OK || sum != k->base + i + 1000) {
      k->bad = 1;
      snprintf(k->why, sizeof k->why, "call %d: %s %s (sum %lld)", i, ia_code_name(rc), err.message,
               (long long)sum);
    }
    ia_error_clear(&err);
  }
  return NULL;
}

/* Every call and every task ends with its own right answer, whoever read
 * it: the read side passes between callers, the loop and back. */
Test(reader, calls_on_four_threads_and_async_tasks_all_get_their_own_answers, .timeout = 120) {
  fixture f = start_multi(8);
  caller k[CALLERS];
  pthread_t th[CALLERS];
  for (int i = 0; i < CALLERS; i++) {
    k[i] = (caller){.conn = f.conn, .base = 100000 * (i + 1)};
    cr_assert_eq(pthread_create(&th[i], NULL, caller_main, &k[i]), 0);
  }
  ia_task *t[ASYNC];
  for (int i = 0; i < ASYNC; i++) {
    t[i] = tu_sum_task_new(f.conn, i, 7);
    cr_assert_not_null(t[i]);
    cr_assert_eq(ia_task_start(t[i]), IA_OK);
  }
  for (int i = 0; i < ASYNC; i++) {
    cr_assert_eq(ia_task_join(t[i], TU_WAIT_MS), IA_OK, "async task %d never ended", i);
    TU_ASSERT_STATUS(t[i], IA_STATUS_COMPLETED);
    size_t len = 0;
    const uint8_t *r = ia_task_result(t[i], &len);
    int64_t sum = -1;
    cr_assert(r && tu_sum_result(r, len, &sum) && sum == i + 7, "async task %d: sum %lld", i, (long long)sum);
    ia_task_free(t[i]);
  }
  for (int i = 0; i < CALLERS; i++) {
    pthread_join(th[i], NULL);
    cr_assert_eq(k[i].bad, 0, "caller %d: %s", i, k[i].why);
  }
  fixture_free(&f);
}
