/*
 * stress_conns: connections made and ended from several threads at once.
 *
 *  - four worker threads, one slave each, loop: connect, a checked Sum,
 *    then one of: a graceful ia_conn_disconnect(); an ia_conn_free() of the
 *    live connection; a hand-over to a reaper thread that frees it (after a
 *    disconnect, or not); or a disconnect while an async task is in flight;
 *  - two threads fight over one connection name, each dialling its own
 *    slave: names are unique among live connections, so the winner must be
 *    alone, and the loser hears ALREADY_CONNECTED (501);
 *  - a disconnect while two other threads call on the same connection;
 *  - at the end every slave still takes a new master and serves it.
 *
 * Checked: every connect succeeds (the slave's 501 while it has not yet
 * seen its previous master go is waited out), every Sum is right, every
 * disconnect returns IA_OK and leaves ia_conn_is_connected() false, an
 * in-flight task ends COMPLETED with the right sum or LOST, a call beside a
 * disconnect gives the right sum or NOT_CONNECTED / CONNECTION_LOST (and
 * that disconnect IA_OK, even when a caller's send on the closed socket
 * failed before its answer was read), the
 * contested name is never held twice, and the master frees cleanly.
 */
#include <stdio.h>
#include <stdlib.h>

#include "stress.h"

#define CHANNEL 44
#define N_WORKERS 4
#define MAX_CYCLES 3000 /* per worker */
#define REAP_QUEUE 8
#define BUDGET_MS 1500

static uint64_t deadline;
static atomic_long cycles, disconnects, frees_live, reaped, inflight_done, inflight_lost;
static atomic_long contest_wins, contest_refused;
static atomic_long under_rounds, under_calls_ok, under_calls_down, under_disc_lost;
static atomic_int contest_live;

/* ---- the reaper: frees connections other threads made ---- */

static pthread_mutex_t reap_mu = PTHREAD_MUTEX_INITIALIZER;
static ia_conn *reap_q[REAP_QUEUE]; /* (reap_mu) */
static bool reap_disc[REAP_QUEUE];  /* (reap_mu) disconnect before freeing */
static int reap_n;                  /* (reap_mu) */
static tu_flag reap_pushed;

/* Hands c to the reaper; false if its queue is full (the caller frees c). */
static bool reap_push(ia_conn *c, bool disconnect) {
  pthread_mutex_lock(&reap_mu);
  bool ok = reap_n < REAP_QUEUE;
  if (ok) {
    reap_q[reap_n] = c;
    reap_disc[reap_n] = disconnect;
    reap_n++;
  }
  pthread_mutex_unlock(&reap_mu);
  if (ok) tu_flag_raise(&reap_pushed);
  return ok;
}

static void *reaper_main(void *arg) {
  (void)arg;
  for (int seen = 1;; seen++) {
    if (!tu_flag_wait(&reap_pushed, seen, stress_ms(30000))) stress_hang("the reaper was never woken again");
    /* One raise per push, and one more to stop: an empty queue means stop. */
    ia_conn *c = NULL;
    bool disc = false;
    pthread_mutex_lock(&reap_mu);
    if (reap_n > 0) {
      reap_n--;
      c = reap_q[reap_n];
      disc = reap_disc[reap_n];
    }
    pthread_mutex_unlock(&reap_mu);
    if (c == NULL) break;
    if (disc) {
      ia_error err = IA_ERROR_INIT;
      ia_code rc = ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err);
      STRESS_CHECK(rc == IA_OK, "reaper: disconnect of %s: %s: %s", ia_conn_name(c), ia_code_name(rc),
                   err.message);
      ia_error_clear(&err);
    }
    ia_conn_free(c);
    atomic_fetch_add(&reaped, 1);
  }
  return NULL;
}

/* ---- workers ---- */

static bool disconnect_ok(ia_conn *c, const char *who) {
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err);
  bool ok = STRESS_CHECK(rc == IA_OK, "%s: disconnect: %s: %s", who, ia_code_name(rc), err.message) &&
            STRESS_CHECK(!ia_conn_is_connected(c), "%s: still connected after a disconnect", who);
  ia_error_clear(&err);
  return ok;
}

/* Disconnects while an async task may still be in flight. */
static void disconnect_inflight(ia_conn *c, stress_rng *r, const char *who) {
  int64_t a = stress_operand(r), b = stress_operand(r);
  bool typed = stress_rng_below(r, 2) == 1;
  ia_task *t = stress_sum_task(c, a, b, typed);
  if (t == NULL) return;
  ia_code rc = ia_task_start(t);
  STRESS_CHECK(rc == IA_OK, "%s: starting the in-flight task: %s", who, ia_code_name(rc));
  disconnect_ok(c, who);
  ia_code jr = ia_task_join(t, TU_WAIT_MS);
  ia_status st = ia_task_status(t);
  if (st == IA_STATUS_LOST)
    atomic_fetch_add(&inflight_lost, 1);
  else if (STRESS_CHECK(jr == IA_OK && stress_task_sum_is(t, a + b, typed),
                        "%s: in-flight task ended %s (%s), not COMPLETED right or LOST", who,
                        ia_status_name(st), ia_code_name(ia_task_error(t)->code)))
    atomic_fetch_add(&inflight_done, 1);
  ia_task_free(t);
}

typedef struct worker_ctx {
  int id;
  uint16_t port;
  ia_master *m;
} worker_ctx;

static void *worker_main(void *arg) {
  worker_ctx *ctx = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)ctx->id + 100);
  for (int i = 0; i < MAX_CYCLES && stress_before(deadline); i++) {
    /* A name per cycle: a connection handed to the reaper keeps its name
     * until the reaper frees it (its slave, which serves one master at a
     * time, makes the next connect wait for that anyway). */
    char name[32];
    snprintf(name, sizeof name, "worker-%d-%d", ctx->id, i);
    ia_code rc = IA_OK;
    ia_conn *c = stress_connect(ctx->m, name, ctx->port, &rc);
    if (!STRESS_CHECK(c != NULL, "%s cycle %d: connect: %s", name, i, ia_code_name(rc))) break;
    char why[IA_ERROR_MESSAGE_MAX];
    rc = stress_call_sum(c, &r, i % 2 == 0, why);
    STRESS_CHECK(rc == IA_OK, "%s cycle %d: Sum: %s: %s", name, i, ia_code_name(rc), why);
    switch (stress_rng_below(&r, 5)) {
    case 0:
      if (disconnect_ok(c, name)) atomic_fetch_add(&disconnects, 1);
      ia_conn_free(c);
      break;
    case 1: /* freeing a live connection closes it at once */
      ia_conn_free(c);
      atomic_fetch_add(&frees_live, 1);
      break;
    case 2:
    case 3:
      if (!reap_push(c, stress_rng_below(&r, 2) == 0)) ia_conn_free(c);
      break;
    default:
      disconnect_inflight(c, &r, name);
      ia_conn_free(c);
      break;
    }
    atomic_fetch_add(&cycles, 1);
  }
  return NULL;
}

/* ---- the contested name ---- */

typedef struct contender {
  ia_master *m;
  uint16_t port;
  int id;
} contender;

static void *contender_main(void *arg) {
  contender *ct = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)ct->id + 200);
  for (int i = 0; i < MAX_CYCLES && stress_before(deadline); i++) {
    ia_code rc = IA_OK;
    ia_conn *c = stress_connect(ct->m, "contested", ct->port, &rc);
    if (c == NULL) {
      if (!STRESS_CHECK(rc == IA_ALREADY_CONNECTED, "contender %d: connect: %s", ct->id, ia_code_name(rc)))
        break;
      atomic_fetch_add(&contest_refused, 1);
      tu_sleep_ms(1);
      continue;
    }
    /* Taken before anybody else can connect the name, dropped before our
     * disconnect lets them: exactly one holder at a time. */
    int live = atomic_fetch_add(&contest_live, 1) + 1;
    STRESS_CHECK(live == 1, "the name 'contested' is held by %d live connections", live);
    char why[IA_ERROR_MESSAGE_MAX];
    rc = stress_call_sum(c, &r, i % 2 == 1, why);
    STRESS_CHECK(rc == IA_OK, "contender %d: Sum: %s: %s", ct->id, ia_code_name(rc), why);
    atomic_fetch_sub(&contest_live, 1);
    disconnect_ok(c, "contender");
    ia_conn_free(c);
    atomic_fetch_add(&contest_wins, 1);
  }
  return NULL;
}

/* ---- a disconnect while another thread calls on the same connection ---- */

typedef struct under {
  ia_conn *conn;
  int seed;
} under;

/* Calls until the connection is down: each call gives the right sum or says
 * the connection is gone. */
static void *under_caller_main(void *arg) {
  under *u = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)u->seed);
  for (int i = 0; i < 100000 && stress_before(deadline + stress_ms(5000)); i++) {
    int64_t a = stress_operand(&r), b = stress_operand(&r), sum = 0;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = tu_call_sum(u->conn, a, b, &sum, &err);
    if (rc == IA_OK) {
      if (STRESS_CHECK(sum == a + b, "a call beside a disconnect gave a wrong sum"))
        atomic_fetch_add(&under_calls_ok, 1);
    } else if (STRESS_CHECK(rc == IA_NOT_CONNECTED || rc == IA_CONNECTION_LOST,
                            "a call beside a disconnect: %s: %s", ia_code_name(rc), err.message)) {
      atomic_fetch_add(&under_calls_down, 1);
    }
    ia_error_clear(&err);
    if (rc != IA_OK) break;
  }
  return NULL;
}

static void disconnect_under_callers(ia_master *m, uint16_t port) {
  stress_rng r;
  stress_rng_seed(&r, 900);
  uint64_t until = stress_deadline(BUDGET_MS / 2);
  for (int round = 0; round < 500 && stress_before(until) && stress_failures() == 0; round++) {
    ia_code rc = IA_OK;
    ia_conn *c = stress_connect(m, "under", port, &rc);
    if (!STRESS_CHECK(c != NULL, "under-%d: connect: %s", round, ia_code_name(rc))) break;
    under us[2] = {{c, round * 2}, {c, round * 2 + 1}};
    pthread_t t[2];
    bool up[2];
    for (int i = 0; i < 2; i++)
      up[i] = stress_spawn(&t[i], under_caller_main, &us[i]);
    tu_sleep_ms(stress_rng_below(&r, 3));
    /* The slave closes once it answered the Disconnect; a caller's next send
     * can fail (EPIPE) before anybody read that answer. That failure must not
     * end the Disconnect, whose answer is on its way (on 468917a it did,
     * as CONNECTION_LOST: 5 of 500 rounds under TSan). */
    ia_error err = IA_ERROR_INIT;
    rc = ia_conn_disconnect(c, NULL, 0, TU_WAIT_MS, &err);
    if (rc == IA_CONNECTION_LOST) atomic_fetch_add(&under_disc_lost, 1);
    STRESS_CHECK(rc == IA_OK, "under-%d: disconnect beside two callers: %s: %s", round, ia_code_name(rc),
                 err.message);
    ia_error_clear(&err);
    STRESS_CHECK(!ia_conn_is_connected(c), "under-%d: still connected after the disconnect", round);
    for (int i = 0; i < 2; i++)
      if (up[i]) stress_join(t[i], stress_ms(10000), "a caller beside a disconnect");
    ia_conn_free(c);
    atomic_fetch_add(&under_rounds, 1);
  }
}

int main(void) {
  stress_begin("stress_conns", "connect, disconnect and ia_conn_free from several threads, a contested name",
               90);
  tu_flag_init(&reap_pushed);
  enum { N_SLAVES = N_WORKERS + 2 };
  ia_slave *slaves[N_SLAVES] = {0};
  bool ready = true;
  for (int i = 0; i < N_SLAVES; i++)
    ready &= (slaves[i] = stress_slave(CHANNEL, 2000)) != NULL;
  ia_master *m = stress_master("stress-conns", CHANNEL);
  ready &= m != NULL;

  if (ready) {
    stress_phase("workers, reaper and contenders");
    deadline = stress_deadline(BUDGET_MS);
    pthread_t reaper;
    bool reaper_up = stress_spawn(&reaper, reaper_main, NULL);
    worker_ctx workers[N_WORKERS];
    pthread_t tw[N_WORKERS], tcn[2];
    bool up_w[N_WORKERS], up_cn[2];
    for (int i = 0; i < N_WORKERS; i++) {
      workers[i] = (worker_ctx){i, ia_slave_port(slaves[i]), m};
      up_w[i] = stress_spawn(&tw[i], worker_main, &workers[i]);
    }
    contender contenders[2];
    for (int i = 0; i < 2; i++) {
      contenders[i] = (contender){m, ia_slave_port(slaves[N_WORKERS + i]), i};
      up_cn[i] = stress_spawn(&tcn[i], contender_main, &contenders[i]);
    }
    uint32_t bound = stress_ms(BUDGET_MS) + stress_ms(20000);
    for (int i = 0; i < N_WORKERS; i++)
      if (up_w[i]) stress_join(tw[i], bound, "a worker");
    for (int i = 0; i < 2; i++)
      if (up_cn[i]) stress_join(tcn[i], bound, "a contender");
    tu_flag_raise(&reap_pushed);
    if (reaper_up) stress_join(reaper, bound, "the reaper");

    stress_phase("a disconnect while two threads call on the same connection");
    disconnect_under_callers(m, ia_slave_port(slaves[0]));

    stress_phase("every slave takes a new master");
    stress_rng r;
    stress_rng_seed(&r, 5);
    for (int i = 0; i < N_SLAVES; i++) {
      char name[32];
      snprintf(name, sizeof name, "final-%d", i);
      ia_code rc = IA_OK;
      ia_conn *c = stress_connect(m, name, ia_slave_port(slaves[i]), &rc);
      if (!STRESS_CHECK(c != NULL, "final connect to slave %d: %s", i, ia_code_name(rc))) continue;
      char why[IA_ERROR_MESSAGE_MAX];
      rc = stress_call_sum(c, &r, false, why);
      STRESS_CHECK(rc == IA_OK, "final Sum on slave %d: %s: %s", i, ia_code_name(rc), why);
      disconnect_ok(c, name);
      ia_conn_free(c);
    }
  }

  stress_report("connect + Sum cycles", atomic_load(&cycles));
  stress_report("graceful disconnects (then not connected)", atomic_load(&disconnects));
  stress_report("live connections freed without a disconnect", atomic_load(&frees_live));
  stress_report("connections freed by the reaper thread", atomic_load(&reaped));
  stress_report("disconnects with a task in flight: task COMPLETED right", atomic_load(&inflight_done));
  stress_report("disconnects with a task in flight: task LOST", atomic_load(&inflight_lost));
  stress_report("contested name won (alone)", atomic_load(&contest_wins));
  stress_report("contested name refused 501", atomic_load(&contest_refused));
  stress_report("disconnects beside two callers on the same connection", atomic_load(&under_rounds));
  stress_report("  their calls with the right sum", atomic_load(&under_calls_ok));
  stress_report("  their calls told the connection was gone (502/701)", atomic_load(&under_calls_down));
  stress_report("  disconnects among them that said CONNECTION_LOST (a caller's send failed first)",
                atomic_load(&under_disc_lost));
  STRESS_CHECK(cycles > 0 && reaped > 0 && contest_wins > 0,
               "workers, the reaper or the contenders did nothing");

  ia_master_free(m);
  for (int i = 0; i < N_SLAVES; i++)
    ia_slave_free(slaves[i]);
  tu_flag_destroy(&reap_pushed);
  return stress_end();
}
