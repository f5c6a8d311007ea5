/*
 * stress_log: the log level and handler changed from one thread while the
 * library logs from others.
 *
 * One thread flips ia_log_set_level() between DEBUG, INFO, WARN and OFF and
 * ia_log_set_handler() between two counting handlers, and reads
 * ia_log_get_level(), as fast as it can; three worker threads meanwhile make
 * the library log from its every thread: connects and disconnects (INFO on
 * both ends, from callers, slave loops and workers), Sums, and calls to a
 * method whose handler returns without a reply (a WARN from the slave's
 * worker, TASK_ERROR to the master). Known defect: the level is a plain
 * `volatile int`, read without the lock that its writers take.
 *
 * Checked: each handler gets its own user pointer and a sane level and
 * message; ia_log_get_level() only ever gives a level that was set; every
 * call and connection works (Sums right, the bad method 604); and, once the
 * flipping stops, OFF silences the library and INFO lets it speak again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stress.h"

#define CHANNEL 48
#define N_WORKERS 3
#define MAX_FLIPS 200000
#define MAX_CYCLES 3000 /* per worker */
#define BUDGET_MS 1000

static uint64_t deadline;
static atomic_bool stop;
static int tag_a, tag_b; /* the handlers' user pointers point here */
static atomic_long logged[2], bad_messages, flips, cycles, calls_ok, task_errors;

static void check_message(ia_log_level level, const char *message) {
  if (!STRESS_CHECK(level >= IA_LOG_DEBUG && level < IA_LOG_OFF && message != NULL && message[0] != '\0' &&
                        strnlen(message, 4096) < 4096,
                    "a log call with level %d and message %p", (int)level, (const void *)message))
    atomic_fetch_add(&bad_messages, 1);
}

static void handler_a(ia_log_level level, const char *message, void *user) {
  STRESS_CHECK(user == &tag_a, "handler A called with user %p, not %p", user, (void *)&tag_a);
  check_message(level, message);
  atomic_fetch_add(&logged[0], 1);
}

static void handler_b(ia_log_level level, const char *message, void *user) {
  STRESS_CHECK(user == &tag_b, "handler B called with user %p, not %p", user, (void *)&tag_b);
  check_message(level, message);
  atomic_fetch_add(&logged[1], 1);
}

static void *flipper_main(void *arg) {
  (void)arg;
  static const ia_log_level levels[] = {IA_LOG_DEBUG, IA_LOG_INFO, IA_LOG_WARN, IA_LOG_OFF};
  for (long i = 0; i < MAX_FLIPS && !atomic_load(&stop) && stress_before(deadline); i++) {
    ia_log_set_level(levels[i % 4]);
    if (i % 3 == 0) ia_log_set_handler(i % 2 ? handler_a : handler_b, i % 2 ? &tag_a : &tag_b);
    ia_log_level got = ia_log_get_level();
    STRESS_CHECK(got == IA_LOG_DEBUG || got == IA_LOG_INFO || got == IA_LOG_WARN || got == IA_LOG_OFF,
                 "ia_log_get_level() gave %d, never set", (int)got);
    atomic_fetch_add(&flips, 1);
    if (i % 16 == 0) tu_sleep_ms(0);
  }
  return NULL;
}

/* A call of the method whose handler gives no reply: TASK_ERROR, and a WARN. */
static void no_reply_call(ia_conn *c, const char *who) {
  void *reply = NULL;
  size_t len = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_call(c, TU_METHOD_NO_REPLY, NULL, 0, &reply, &len, TU_WAIT_MS, &err);
  if (STRESS_CHECK(rc == IA_TASK_ERROR, "%s: the no-reply method gave %s, not TASK_ERROR", who,
                   ia_code_name(rc)))
    atomic_fetch_add(&task_errors, 1);
  free(reply);
  ia_error_clear(&err);
}

typedef struct worker {
  ia_master *m;
  uint16_t port;
  int id;
} worker;

/* One connect / Sum / no-reply call / disconnect cycle; false after a failure. */
static bool cycle(worker *w, stress_rng *r, int i) {
  char name[32];
  snprintf(name, sizeof name, "log-%d", w->id);
  ia_code rc = IA_OK;
  ia_conn *c = stress_connect(w->m, name, w->port, &rc);
  if (!STRESS_CHECK(c != NULL, "%s: connect: %s", name, ia_code_name(rc))) return false;
  char why[IA_ERROR_MESSAGE_MAX];
  rc = stress_call_sum(c, r, i % 2 == 0, why);
  bool ok = STRESS_CHECK(rc == IA_OK, "%s: Sum: %s: %s", name, ia_code_name(rc), why);
  if (ok) atomic_fetch_add(&calls_ok, 1);
  if (i % 3 == 0) no_reply_call(c, name);
  ia_error err = IA_ERROR_INIT;
  rc = ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err);
  ok &= STRESS_CHECK(rc == IA_OK, "%s: disconnect: %s: %s", name, ia_code_name(rc), err.message);
  ia_error_clear(&err);
  ia_conn_free(c);
  return ok;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)w->id + 700);
  for (int i = 0; i < MAX_CYCLES && !atomic_load(&stop) && stress_before(deadline); i++) {
    if (!cycle(w, &r, i)) break;
    atomic_fetch_add(&cycles, 1);
  }
  return NULL;
}

int main(void) {
  stress_begin("stress_log",
               "ia_log_set_level/ia_log_set_handler flipped while the library logs from every thread", 60);
  ia_log_set_handler(handler_a, &tag_a);
  ia_slave *slaves[N_WORKERS] = {0};
  ia_master *m = stress_master("stress-log", CHANNEL);
  bool ready = m != NULL;
  for (int i = 0; ready && i < N_WORKERS; i++)
    ready = (slaves[i] = stress_slave(CHANNEL, 200)) != NULL;
  if (ready) {
    stress_phase("flipping level and handler while three workers make the library log");
    deadline = stress_deadline(BUDGET_MS);
    worker workers[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++)
      workers[i] = (worker){m, ia_slave_port(slaves[i]), i};
    pthread_t tf;
    bool up_f = stress_spawn(&tf, flipper_main, NULL);
    stress_run(N_WORKERS, worker_main, workers, sizeof workers[0], stress_ms(BUDGET_MS) + stress_ms(20000),
               "a logging worker");
    atomic_store(&stop, true);
    if (up_f) stress_join(tf, stress_ms(20000), "the flipper");

    stress_phase("after the flipping: OFF is silent, INFO speaks");
    stress_rng r;
    stress_rng_seed(&r, 799);
    ia_log_set_handler(handler_a, &tag_a);
    ia_log_set_level(IA_LOG_OFF);
    /* Let a log call still in flight in a library thread finish. */
    tu_sleep_ms(stress_ms(20));
    long before = atomic_load(&logged[0]) + atomic_load(&logged[1]);
    cycle(&workers[0], &r, 0);
    long after_off = atomic_load(&logged[0]) + atomic_load(&logged[1]);
    STRESS_CHECK(after_off == before, "%ld messages logged at level OFF", after_off - before);
    ia_log_set_level(IA_LOG_INFO);
    cycle(&workers[0], &r, 1);
    /* The slave's side of the disconnect logs on its loop thread, a moment later. */
    tu_sleep_ms(stress_ms(20));
    long after_info = atomic_load(&logged[0]) + atomic_load(&logged[1]);
    STRESS_CHECK(after_info > after_off, "nothing logged at level INFO during a connect/disconnect cycle");
  }
  ia_log_set_level(IA_LOG_WARN);
  ia_log_set_handler(NULL, NULL);

  stress_report("level/handler flips (with a check of ia_log_get_level)", atomic_load(&flips));
  stress_report("messages to handler A (its own user pointer, sane)", atomic_load(&logged[0]));
  stress_report("messages to handler B (its own user pointer, sane)", atomic_load(&logged[1]));
  stress_report("connect/Sum/disconnect cycles that worked", atomic_load(&cycles));
  stress_report("Sums with the right sum", atomic_load(&calls_ok));
  stress_report("no-reply calls reported TASK_ERROR", atomic_load(&task_errors));
  STRESS_CHECK(logged[0] > 0 && logged[1] > 0 && cycles > 0 && bad_messages == 0,
               "a handler got nothing, no cycle worked, or a message was bad");

  ia_master_free(m);
  for (int i = 0; i < N_WORKERS; i++)
    ia_slave_free(slaves[i]);
  return stress_end();
}
