/*
 * stress_calls: many threads on one master at once.
 *
 *  - caller threads doing blocking Sum calls, untyped (ia_call) and typed
 *    (sum_adder_sum), on ONE shared connection, and others on three more
 *    connections (one slave each) at the same time;
 *  - threads running chains of async Sum tasks on the shared connection:
 *    each task's on_complete callback checks the result and starts the next
 *    task (from whichever thread read the reply: the master's I/O thread or
 *    a caller blocked on the same connection); every other callback frees
 *    its own task, the rest are kept and checked (join, status, result) by
 *    the chain's thread;
 *  - threads pinging the shared connection and one other while all of that
 *    runs.
 *
 * Checked: every call returns IA_OK with a + b (a 601 from a slot that the
 * slave's loop took over is retried), every task ends COMPLETED with a + b
 * before its chain goes on, every ping answers, and every connection is
 * still up and serving at the end.
 */
#include <stdio.h>
#include <stdlib.h>

#include "stress.h"

#define CHANNEL 41
#define N_SIDE 3         /* connections besides the shared one */
#define SHARED_CALLERS 4 /* caller threads on the shared connection */
#define CHAIN_THREADS 2  /* async chain threads on the shared connection */
#define PINGERS 2        /* ping threads: the shared connection, then side connection 0 */
#define MAX_CALLS 20000  /* per caller thread */
#define MAX_PINGS 5000   /* per ping thread */
#define CHAIN_LINKS 24   /* tasks per chain */
#define MAX_CHAINS 1000  /* per chain thread */
#define MAX_RETRIES 500  /* 601s one chain may retry */
#define BUDGET_MS 800    /* plain-build time for the whole mixed phase */

static atomic_long calls_ok[2]; /* [typed] */
static atomic_long links_ok[2]; /* [kept]: freed in the callback, or kept and checked */
static atomic_long retried_601;
static atomic_long pings_ok;
static uint64_t deadline;

/* ---- blocking callers ---- */

typedef struct caller {
  ia_conn *conn;
  const char *conn_name;
  int seed;
} caller;

static void *caller_main(void *arg) {
  caller *c = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)c->seed);
  for (int i = 0; i < MAX_CALLS && stress_before(deadline); i++) {
    bool typed = (i + c->seed) % 2 == 1;
    char why[IA_ERROR_MESSAGE_MAX];
    ia_code rc = stress_call_sum(c->conn, &r, typed, why);
    if (!STRESS_CHECK(rc == IA_OK, "%s call %d on %s: %s: %s", typed ? "typed" : "ia_call", i, c->conn_name,
                      ia_code_name(rc), why))
      break;
    atomic_fetch_add(&calls_ok[typed], 1);
  }
  return NULL;
}

/* ---- pingers ---- */

static void *pinger_main(void *arg) {
  caller *c = arg;
  for (int i = 0; i < MAX_PINGS && stress_before(deadline); i++) {
    ia_error err = IA_ERROR_INIT;
    uint64_t rtt = 0;
    ia_code rc = ia_conn_ping(c->conn, TU_WAIT_MS, &rtt, &err);
    bool ok =
        STRESS_CHECK(rc == IA_OK, "ping %d on %s: %s: %s", i, c->conn_name, ia_code_name(rc), err.message);
    ia_error_clear(&err);
    if (!ok) break;
    atomic_fetch_add(&pings_ok, 1);
    tu_sleep_ms(1);
  }
  return NULL;
}

/* ---- async chains ---- */

typedef struct chain chain;

/* What one task of a chain carries to its callbacks. */
typedef struct link {
  chain *ch;
  int index;
  int64_t want;
  bool keep; /* kept for the chain's thread to check; else freed by its callback */
} link;

struct chain {
  ia_conn *conn;
  bool typed;
  pthread_mutex_t mu;
  stress_rng rng;               /* (mu) */
  int retries;                  /* (mu) */
  ia_task *kept[CHAIN_LINKS];   /* (mu) */
  link *kept_link[CHAIN_LINKS]; /* (mu) */
  int n_kept;                   /* (mu) */
  bool ok;                      /* (mu) every link so far completed right */
  tu_flag end;                  /* raised once when the chain is over */
};

/* The task this thread is starting: a task that cannot be sent ends in
 * START_FAILED inside ia_task_start(), its callbacks running on this thread
 * with only the starter's reference left, so there the starter frees it,
 * not the callback. */
static _Thread_local ia_task *starting;

static void link_done(ia_task *t, void *user);
static void link_failed(ia_task *t, void *user);

static void chain_over(chain *ch, bool ok) {
  pthread_mutex_lock(&ch->mu);
  ch->ok &= ok;
  pthread_mutex_unlock(&ch->mu);
  tu_flag_raise(&ch->end);
}

/* Starts link `index` of the chain (from its thread or from a callback). */
static void link_start(chain *ch, int index) {
  link *l = malloc(sizeof *l);
  if (!STRESS_CHECK(l != NULL, "no memory for a link")) {
    chain_over(ch, false);
    return;
  }
  pthread_mutex_lock(&ch->mu);
  int64_t a = stress_operand(&ch->rng), b = stress_operand(&ch->rng);
  pthread_mutex_unlock(&ch->mu);
  *l = (link){ch, index, a + b, index % 2 == 1};
  ia_task *t = stress_sum_task(ch->conn, a, b, ch->typed);
  if (t == NULL || !STRESS_CHECK(ia_task_on_complete(t, link_done, l) == IA_OK &&
                                     ia_task_on_fail(t, link_failed, l) == IA_OK,
                                 "registering callbacks on an IDLE task failed")) {
    ia_task_free(t);
    free(l);
    chain_over(ch, false);
    return;
  }
  starting = t;
  ia_code rc = ia_task_start(t);
  starting = NULL;
  /* On IA_OK the task may be finished, and freed by its callback, already. */
  if (rc != IA_OK) ia_task_free(t);
}

static void link_done(ia_task *t, void *user) {
  link *l = user;
  chain *ch = l->ch;
  bool ok =
      STRESS_CHECK(stress_task_sum_is(t, l->want, ch->typed), "link %d: status %s, not COMPLETED with %lld",
                   l->index, ia_status_name(ia_task_status(t)), (long long)l->want);
  int next = l->index + 1;
  if (l->keep) {
    pthread_mutex_lock(&ch->mu);
    ch->kept[ch->n_kept] = t;
    ch->kept_link[ch->n_kept] = l;
    ch->n_kept++;
    pthread_mutex_unlock(&ch->mu);
  } else {
    if (ok) atomic_fetch_add(&links_ok[0], 1);
    free(l);
    ia_task_free(t); /* the library keeps its own reference until the callbacks are over */
  }
  if (ok && next < CHAIN_LINKS)
    link_start(ch, next);
  else
    chain_over(ch, ok);
}

static void link_failed(ia_task *t, void *user) {
  link *l = user;
  chain *ch = l->ch;
  ia_status st = ia_task_status(t);
  const ia_error *e = ia_task_error(t);
  /* 601: the slave's loop held the socket (it took it over from a handler
   * it saw running long) and refused the task; the link is tried again. */
  bool busy = st == IA_STATUS_START_FAILED && e->code == IA_TASK_ALREADY_EXIST;
  pthread_mutex_lock(&ch->mu);
  bool retry = busy && ch->retries++ < MAX_RETRIES;
  pthread_mutex_unlock(&ch->mu);
  STRESS_CHECK(retry, "link %d ended %s (%s: %s)", l->index, ia_status_name(st), ia_code_name(e->code),
               e->message);
  int index = l->index;
  free(l);
  if (t != starting) ia_task_free(t);
  if (retry) {
    atomic_fetch_add(&retried_601, 1);
    link_start(ch, index);
  } else {
    chain_over(ch, false);
  }
}

typedef struct chain_thread {
  ia_conn *conn;
  int seed;
} chain_thread;

static void *chain_main(void *arg) {
  chain_thread *ct = arg;
  for (int n = 0; n < MAX_CHAINS && stress_before(deadline); n++) {
    chain ch = {.conn = ct->conn, .typed = (n + ct->seed) % 2 == 0, .ok = true};
    pthread_mutex_init(&ch.mu, NULL);
    stress_rng_seed(&ch.rng, (uint64_t)(ct->seed * 1000 + n));
    tu_flag_init(&ch.end);
    link_start(&ch, 0);
    /* A chain that never ends has a task that never reached a terminal
     * status: the program cannot go on (the callbacks hold &ch). */
    if (!tu_flag_wait(&ch.end, 1, stress_ms(10000)))
      stress_hang("async chain %d: a task never reached a terminal status", n);
    pthread_mutex_lock(&ch.mu);
    bool ok = ch.ok;
    int n_kept = ch.n_kept;
    pthread_mutex_unlock(&ch.mu);
    for (int i = 0; i < n_kept; i++) {
      ia_task *t = ch.kept[i];
      link *l = ch.kept_link[i];
      /* The callbacks ran: join returns at once (at most the library's own
       * bookkeeping after the last callback is left). */
      ia_code jr = ia_task_join(t, TU_WAIT_MS);
      if (STRESS_CHECK(jr == IA_OK && stress_task_sum_is(t, l->want, ch.typed),
                       "kept link %d: join %s, status %s", l->index, ia_code_name(jr),
                       ia_status_name(ia_task_status(t))))
        atomic_fetch_add(&links_ok[1], 1);
      ia_task_free(t);
      free(l);
    }
    tu_flag_destroy(&ch.end);
    pthread_mutex_destroy(&ch.mu);
    if (!ok) break;
  }
  return NULL;
}

/* ---- main ---- */

int main(void) {
  stress_begin("stress_calls",
               "concurrent blocking, typed and async calls and pings on shared and separate connections", 60);
  ia_slave *slaves[1 + N_SIDE] = {0};
  ia_conn *conns[1 + N_SIDE] = {0};
  static const char *names[1 + N_SIDE] = {"shared", "side-0", "side-1", "side-2"};
  ia_master *m = stress_master("stress-calls", CHANNEL);
  bool ready = m != NULL;
  for (int i = 0; ready && i < 1 + N_SIDE; i++) {
    slaves[i] = stress_slave(CHANNEL, 2000);
    ia_code rc = IA_OK;
    conns[i] = slaves[i] ? stress_connect(m, names[i], ia_slave_port(slaves[i]), &rc) : NULL;
    ready = STRESS_CHECK(conns[i] != NULL, "connecting %s: %s", names[i], ia_code_name(rc));
  }

  if (ready) {
    stress_phase("callers, async chains and pingers, all at once");
    deadline = stress_deadline(BUDGET_MS);
    enum { N_CALLERS = SHARED_CALLERS + N_SIDE };
    caller callers[N_CALLERS];
    for (int i = 0; i < N_CALLERS; i++) {
      int conn = i < SHARED_CALLERS ? 0 : 1 + (i - SHARED_CALLERS);
      callers[i] = (caller){conns[conn], names[conn], i + 1};
    }
    caller pingers[PINGERS] = {{conns[0], names[0], 0}, {conns[1], names[1], 0}};
    chain_thread chains[CHAIN_THREADS];
    for (int i = 0; i < CHAIN_THREADS; i++)
      chains[i] = (chain_thread){conns[0], i + 1};

    pthread_t tc[N_CALLERS], tp[PINGERS], tch[CHAIN_THREADS];
    bool up_c[N_CALLERS], up_p[PINGERS], up_ch[CHAIN_THREADS];
    for (int i = 0; i < N_CALLERS; i++)
      up_c[i] = stress_spawn(&tc[i], caller_main, &callers[i]);
    for (int i = 0; i < CHAIN_THREADS; i++)
      up_ch[i] = stress_spawn(&tch[i], chain_main, &chains[i]);
    for (int i = 0; i < PINGERS; i++)
      up_p[i] = stress_spawn(&tp[i], pinger_main, &pingers[i]);
    uint32_t bound = stress_ms(BUDGET_MS) + stress_ms(15000);
    for (int i = 0; i < N_CALLERS; i++)
      if (up_c[i]) stress_join(tc[i], bound, "a caller thread");
    for (int i = 0; i < CHAIN_THREADS; i++)
      if (up_ch[i]) stress_join(tch[i], bound, "an async chain thread");
    for (int i = 0; i < PINGERS; i++)
      if (up_p[i]) stress_join(tp[i], bound, "a ping thread");

    stress_phase("every connection still up and serving");
    stress_rng r;
    stress_rng_seed(&r, 99);
    for (int i = 0; i < 1 + N_SIDE; i++) {
      STRESS_CHECK(ia_conn_is_connected(conns[i]), "%s is down after the load", names[i]);
      char why[IA_ERROR_MESSAGE_MAX];
      ia_code rc = stress_call_sum(conns[i], &r, i % 2 == 0, why);
      STRESS_CHECK(rc == IA_OK, "final call on %s: %s: %s", names[i], ia_code_name(rc), why);
    }
  }

  stress_report("blocking ia_call Sums with the right result", atomic_load(&calls_ok[0]));
  stress_report("blocking typed sum_adder_sum calls with the right result", atomic_load(&calls_ok[1]));
  stress_report("async tasks COMPLETED right, freed by their own callback", atomic_load(&links_ok[0]));
  stress_report("async tasks COMPLETED right, kept and checked after join", atomic_load(&links_ok[1]));
  stress_report("601 refusals retried (slot taken over by the slave's loop)", atomic_load(&retried_601));
  stress_report("pings answered", atomic_load(&pings_ok));
  STRESS_CHECK(atomic_load(&calls_ok[0]) > 0 && atomic_load(&calls_ok[1]) > 0 &&
                   atomic_load(&links_ok[0]) > 0 && atomic_load(&links_ok[1]) > 0 &&
                   atomic_load(&pings_ok) > 0,
               "some kind of operation never succeeded");

  for (int i = 0; i < 1 + N_SIDE; i++)
    ia_conn_free(conns[i]);
  ia_master_free(m);
  for (int i = 0; i < 1 + N_SIDE; i++)
    ia_slave_free(slaves[i]);
  return stress_end();
}
