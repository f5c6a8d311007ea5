/*
 * stress_modes: the workers and queue of the multi and blocking modes under
 * threads (pool.c), for TSan above all.
 *
 * A blocking-multi slave (3 workers, a queue of 6) serves one connection on
 * which four threads keep async tasks in flight -- Sums and short Sleeps,
 * some cancelled at once, some with a deadline shorter than their Sleep --
 * while a fifth makes blocking Sums. Then masters connect, fill the queue
 * and go away with tasks waiting, again and again, while the workers run.
 *
 * Checked: every task ends, in a state its story allows (a Sum COMPLETED
 * with the right sum or refused with 605; a cancelled task CANCELLED,
 * COMPLETED or refused; an overdue one TIMED_OUT, COMPLETED or refused);
 * no blocking Sum is wrong; the slave serves a new master after every
 * master that went away.
 */
#include <stdio.h>
#include <stdlib.h>

#include "stress.h"
#include "sum_handlers.h"

#define CHANNEL 48
#define N_ASYNC 4
#define IN_FLIGHT 3 /* tasks each async thread keeps going: 12 + 1 against 3 + 6 places */
#define LOAD_MS 1500
#define MAX_TASKS 20000
#define GONE_ROUNDS 20

static uint64_t deadline;
static atomic_long sums_ok, refused, cancelled, timed_out, blocking_ok, gone_ok, cancels_missed;

static ia_slave *pool_slave(void) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.mode = IA_MODE_BLOCKING_MULTI;
  config.workers = 3;
  config.queue = 6;
  config.grace_ms = 100;
  ia_error err = IA_ERROR_INIT;
  ia_slave *s = NULL;
  ia_code rc = tu_slave_start(&config, &s, &err);
  STRESS_CHECK(rc == IA_OK, "slave: %s", err.message);
  return s;
}

typedef struct slot {
  ia_task *t;
  int kind; /* 0 Sum, 1 cancelled Sleep, 2 overdue Sleep */
  int64_t a, b;
} slot;

static void start_one(ia_conn *c, stress_rng *r, slot *s) {
  s->kind = (int)stress_rng_below(r, 3);
  if (s->kind == 0) {
    s->a = stress_operand(r);
    s->b = stress_operand(r);
    s->t = tu_sum_task_new(c, s->a, s->b);
  } else {
    s->t = tu_sleep_task_new(c, s->kind == 1 ? 200 : 50);
    if (s->t && s->kind == 2) STRESS_CHECK(ia_task_set_deadline(s->t, 5) == IA_OK, "set a deadline");
  }
  if (!STRESS_CHECK(s->t != NULL, "no task")) return;
  STRESS_CHECK(ia_task_start(s->t) == IA_OK, "start");
  /* Too early (still STARTING) or too late (ended) is refused: both are fine. */
  if (s->kind == 1 && ia_task_cancel(s->t) != IA_OK) atomic_fetch_add(&cancels_missed, 1);
}

static void end_one(slot *s) {
  if (!s->t) return;
  if (!STRESS_CHECK(ia_task_join(s->t, stress_ms(10000)) == IA_OK, "a task never ended")) return;
  ia_status st = ia_task_status(s->t);
  ia_code code = ia_task_error(s->t)->code;
  if (st == IA_STATUS_START_FAILED) {
    if (STRESS_CHECK(code == IA_QUEUE_FULL, "refused with %s", ia_code_name(code))) atomic_fetch_add(&refused, 1);
  } else if (s->kind == 0) {
    int64_t sum = 0;
    size_t len = 0;
    const uint8_t *res = ia_task_result(s->t, &len);
    bool ok = st == IA_STATUS_COMPLETED && tu_sum_result(res, len, &sum) && sum == s->a + s->b;
    if (STRESS_CHECK(ok, "Sum: %s %s", ia_status_name(st), ia_code_name(code))) atomic_fetch_add(&sums_ok, 1);
  } else if (s->kind == 1) {
    bool ok = st == IA_STATUS_CANCELLED || st == IA_STATUS_COMPLETED;
    if (STRESS_CHECK(ok, "cancelled Sleep: %s %s", ia_status_name(st), ia_code_name(code)))
      atomic_fetch_add(&cancelled, 1);
  } else {
    bool ok = (st == IA_STATUS_TIMED_OUT && code == IA_DEADLINE_EXCEEDED) || st == IA_STATUS_COMPLETED;
    if (STRESS_CHECK(ok, "overdue Sleep: %s %s", ia_status_name(st), ia_code_name(code)))
      atomic_fetch_add(&timed_out, 1);
  }
  ia_task_free(s->t);
  s->t = NULL;
}

static void *async_main(void *arg) {
  ia_conn *c = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)(uintptr_t)&r);
  slot slots[IN_FLIGHT] = {0};
  for (int n = 0; n < MAX_TASKS && stress_before(deadline); n++) {
    slot *s = &slots[n % IN_FLIGHT];
    end_one(s);
    start_one(c, &r, s);
  }
  for (int i = 0; i < IN_FLIGHT; i++)
    end_one(&slots[i]);
  return NULL;
}

static void *blocking_main(void *arg) {
  ia_conn *c = arg;
  stress_rng r;
  stress_rng_seed(&r, 7);
  for (int n = 0; n < MAX_TASKS && stress_before(deadline); n++) {
    int64_t a = stress_operand(&r), b = stress_operand(&r), sum = 0;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = tu_call_sum(c, a, b, &sum, &err);
    if (rc == IA_QUEUE_FULL) {
      ia_error_clear(&err);
      continue;
    }
    if (STRESS_CHECK(rc == IA_OK && sum == a + b, "blocking Sum: %s (%s)", ia_code_name(rc), err.message))
      atomic_fetch_add(&blocking_ok, 1);
    ia_error_clear(&err);
  }
  return NULL;
}

static void load_phase(ia_slave *s) {
  ia_master *m = stress_master("pool", CHANNEL);
  ia_code rc;
  ia_conn *c = m ? stress_connect(m, "slave", ia_slave_port(s), &rc) : NULL;
  if (c) {
    stress_phase("async Sums, cancelled and overdue Sleeps, blocking Sums on 3 workers and a queue of 6");
    deadline = stress_deadline(LOAD_MS);
    pthread_t t[N_ASYNC + 1];
    bool up[N_ASYNC + 1];
    for (int i = 0; i < N_ASYNC; i++)
      up[i] = stress_spawn(&t[i], async_main, c);
    up[N_ASYNC] = stress_spawn(&t[N_ASYNC], blocking_main, c);
    for (int i = 0; i <= N_ASYNC; i++)
      if (up[i]) stress_join(t[i], stress_ms(60000), "a caller of the pool");
    STRESS_CHECK(ia_conn_is_connected(c), "the loaded connection went down");
  }
  ia_conn_free(c);
  ia_master_free(m);
}

/* Masters that fill the queue and leave: their waiting tasks must never
 * run for the next master, and the slave must be free again. */
static void gone_phase(ia_slave *s) {
  stress_phase("masters that go away with tasks waiting");
  ia_master *m = stress_master("leaver", CHANNEL);
  for (int round = 0; m && round < GONE_ROUNDS; round++) {
    ia_code rc;
    ia_conn *c = NULL;
    uint64_t until = stress_deadline(5000);
    while (!(c = stress_connect(m, "slave", ia_slave_port(s), &rc)) && rc == IA_ALREADY_CONNECTED &&
           stress_before(until))
      stress_sleep_us(2000);
    if (!STRESS_CHECK(c != NULL, "round %d: cannot connect: %s", round, ia_code_name(rc))) break;
    ia_task *t[9];
    for (int i = 0; i < 9; i++) {
      t[i] = tu_sleep_task_new(c, 30);
      if (t[i]) STRESS_CHECK(ia_task_start(t[i]) == IA_OK, "start");
    }
    ia_conn_free(c); /* 3 running are cancelled, up to 6 waiting dropped */
    for (int i = 0; i < 9; i++)
      if (t[i]) {
        STRESS_CHECK(ia_task_join(t[i], stress_ms(5000)) == IA_OK, "a task of a freed connection never ended");
        ia_task_free(t[i]);
      }
    atomic_fetch_add(&gone_ok, 1);
  }
  ia_master_free(m);
}

int main(void) {
  stress_begin("stress_modes", "the pool's workers and queue under threads; masters leaving with tasks waiting", 120);
  ia_slave *s = pool_slave();
  if (s) {
    load_phase(s);
    gone_phase(s);
  }
  ia_slave_free(s);
  stress_report("async Sums right", atomic_load(&sums_ok));
  stress_report("tasks refused with 605", atomic_load(&refused));
  stress_report("cancelled Sleeps ended", atomic_load(&cancelled));
  stress_report("overdue Sleeps ended", atomic_load(&timed_out));
  stress_report("blocking Sums right", atomic_load(&blocking_ok));
  stress_report("masters gone with tasks waiting", atomic_load(&gone_ok));
  STRESS_CHECK(atomic_load(&sums_ok) > 0 && atomic_load(&blocking_ok) > 0, "the load phase did nothing");
  return stress_end();
}
