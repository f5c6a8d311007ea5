/*
 * Interaction's master in the benchmark: blocking typed calls for the
 * sequential workloads, async tasks restarted from their on_complete
 * callback (on the master's I/O thread) for fan-out, and connect +
 * handshake + graceful disconnect for `connect`. Every call goes through the
 * typed stubs generated from bench.proto (bench.ia.h), the way a user's
 * program calls a service: the typed call encodes, sends, waits, receives
 * and decodes, and all of that is inside the timed region; freeing the
 * decoded reply (protoc-c's free_unpacked) is outside it. For the TLS
 * workloads the master verifies every slave's certificate against the
 * run's CA (ia_master_config.tls_ca) and the address it dials, 127.0.0.1.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.ia.h"
#include "run.h"

#define HOST "127.0.0.1"
/* A call, connect or disconnect that waits longer than this has failed. */
#define IO_TIMEOUT_MS 10000u

typedef struct ia_state {
  ia_master *m;
  ia_conn **work;  /* n_work; NULL entries for `connect` */
  ia_conn **stats; /* n_procs; separate connections only if stats_separate */
  ia_task *hold;   /* `busy`: the task that holds the slot */
  bool leak;       /* a fan-out timed out: callbacks may still run, free nothing */
} ia_state;

static const ia_call_opts call_opts = {.timeout_ms = IO_TIMEOUT_MS};

static int fail_err(bench_env *env, const char *what, ia_code rc, const ia_error *err) {
  return bench_fail(env, "interaction: %s: %s%s%s", what, ia_strerror(rc), err && err->message[0] ? ": " : "",
                    err ? err->message : "");
}

static int connect_to(bench_env *env, ia_state *s, const char *name, uint16_t port, ia_conn **out) {
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_master_connect(s->m, name, HOST, port, NULL, 0, IO_TIMEOUT_MS, out, &err);
  int r = rc == IA_OK ? 0 : fail_err(env, "connect", rc, &err);
  ia_error_clear(&err);
  return r;
}

/* Sends sum calls until one is refused as busy: the hold task has the slot. */
static int wait_until_held(bench_env *env, ia_state *s) {
  uint64_t until = bench_now_ns() + 5000000000ull;
  for (;;) {
    Bench__SumRequest req = BENCH__SUM_REQUEST__INIT;
    req.has_a = req.has_b = 1;
    Bench__SumReply *reply = NULL;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = bench_bench_sum(s->work[0], &req, &reply, &call_opts, &err);
    if (reply) bench__sum_reply__free_unpacked(reply, NULL);
    if (rc == IA_TASK_ALREADY_EXIST) {
      ia_error_clear(&err);
      return 0;
    }
    if (rc != IA_OK || bench_now_ns() > until) {
      int r = fail_err(env, "waiting for the hold task to take the slot", rc, &err);
      ia_error_clear(&err);
      return r;
    }
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

static int ia_open(bench_env *env, void **out) {
  ia_state *s = calloc(1, sizeof *s);
  if (s == NULL) return bench_fail(env, "out of memory");
  *out = s;
  if (getenv("IA_LOG") == NULL) ia_log_set_level(IA_LOG_WARN);
  s->work = calloc(env->n_work, sizeof *s->work);
  s->stats = calloc(env->n_procs, sizeof *s->stats);
  if (!s->work || !s->stats) return bench_fail(env, "out of memory");
  ia_master_config cfg;
  ia_master_config_init(&cfg);
  cfg.name = "bench-run";
  cfg.tls_ca = env->tls ? env->tls->ca : NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_master_new(&cfg, &s->m, &err);
  if (rc == IA_OK) rc = ia_master_start(s->m, &err);
  if (rc != IA_OK) {
    s->m = NULL;
    int r = fail_err(env, "master", rc, &err);
    ia_error_clear(&err);
    return r;
  }
  char name[32];
  if (env->w->kind != BENCH_CONNECT)
    for (size_t i = 0; i < env->n_work; i++) {
      snprintf(name, sizeof name, "w%zu", i);
      if (connect_to(env, s, name, env->work_ports[i], &s->work[i]) != 0) return -1;
    }
  for (unsigned p = 0; p < env->n_procs; p++) {
    if (!env->stats_separate) {
      s->stats[p] = s->work[(size_t)p * env->w->per_proc];
      continue;
    }
    snprintf(name, sizeof name, "stats%u", p);
    if (connect_to(env, s, name, env->stats_ports[p], &s->stats[p]) != 0) return -1;
  }
  if (env->w->kind == BENCH_BUSY) {
    Bench__HoldRequest req = BENCH__HOLD_REQUEST__INIT;
    req.has_ms = 1;
    req.ms = (uint32_t)((env->deadline_ns - bench_now_ns()) / 1000000u + 1000u); /* outlives the pass */
    s->hold = bench_bench_hold_task(s->work[0], &req, NULL);
    if (s->hold == NULL) return bench_fail(env, "out of memory");
    rc = ia_task_start(s->hold);
    if (rc != IA_OK) return fail_err(env, "starting the hold task", rc, ia_task_error(s->hold));
    if (wait_until_held(env, s) != 0) return -1;
  }
  return 0;
}

static int ia_usage(void *state, bench_env *env, unsigned proc, bench_usage *out) {
  ia_state *s = state;
  Bench__StatsRequest req = BENCH__STATS_REQUEST__INIT;
  Bench__StatsReply *reply = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = bench_bench_stats(s->stats[proc], &req, &reply, &call_opts, &err);
  if (rc != IA_OK) {
    int r = fail_err(env, "Stats", rc, &err);
    ia_error_clear(&err);
    return r;
  }
  out->cpu_us = reply->user_us + reply->sys_us;
  out->maxrss_kb = reply->maxrss_kb;
  bench__stats_reply__free_unpacked(reply, NULL);
  return 0;
}

/* `sum` and `busy`: sequential blocking calls. */
static int run_sequential(void *state, bench_env *env, uint64_t first, uint64_t count, uint64_t *lat) {
  ia_state *s = state;
  bool busy = env->w->kind == BENCH_BUSY;
  ia_conn *c = s->work[0];
  ia_error err = IA_ERROR_INIT;
  for (uint64_t k = 0; k < count; k++) {
    uint64_t i = first + k;
    uint64_t t0 = bench_now_ns();
    Bench__SumRequest req = BENCH__SUM_REQUEST__INIT;
    req.has_a = req.has_b = 1;
    req.a = bench_sum_a(i);
    req.b = bench_sum_b(i);
    Bench__SumReply *reply = NULL;
    ia_code rc = bench_bench_sum(c, &req, &reply, &call_opts, &err);
    uint64_t t1 = bench_now_ns();
    bool ok = busy ? rc == IA_TASK_ALREADY_EXIST
                   : rc == IA_OK && reply->has_sum && reply->sum == bench_sum_a(i) + bench_sum_b(i);
    if (reply) bench__sum_reply__free_unpacked(reply, NULL);
    if (!ok) {
      int r = fail_err(env, busy ? "busy call not refused as TASK_ALREADY_EXIST" : "sum call", rc, &err);
      ia_error_clear(&err);
      return r;
    }
    if (rc != IA_OK) ia_error_clear(&err);
    if (lat) lat[k] = t1 - t0;
    if ((k & 255) == 0 && bench_expired(env)) return bench_fail(env, "out of time");
  }
  return 0;
}

static int run_blob(void *state, bench_env *env, uint64_t count, uint64_t *lat) {
  ia_state *s = state;
  ia_error err = IA_ERROR_INIT;
  for (uint64_t k = 0; k < count; k++) {
    uint64_t t0 = bench_now_ns();
    Bench__Blob req = BENCH__BLOB__INIT;
    req.has_data = 1;
    req.data.data = (uint8_t *)env->blob;
    req.data.len = env->w->blob_len;
    Bench__Blob *reply = NULL;
    ia_code rc = bench_bench_echo(s->work[0], &req, &reply, &call_opts, &err);
    uint64_t t1 = bench_now_ns();
    if (rc != IA_OK) {
      int r = fail_err(env, "echo", rc, &err);
      ia_error_clear(&err);
      return r;
    }
    bool ok = reply->has_data && bench_blob_ok(env, reply->data.data, reply->data.len, lat == NULL);
    bench__blob__free_unpacked(reply, NULL);
    if (!ok) return bench_fail(env, "interaction: echo %llu: wrong reply", (unsigned long long)k);
    if (lat) lat[k] = t1 - t0;
    if (bench_expired(env)) return bench_fail(env, "out of time");
  }
  return 0;
}

/* ---- fan-out: one task in flight per slave (in_flight of them for
 * pipeline-4), restarted on completion ---- */

typedef struct fan fan;

typedef struct fan_slot {
  fan *f;
  ia_conn *conn;
  ia_task *last;     /* the slot's finished task, freed when the next one finishes */
  uint64_t idx;      /* the call in flight */
  uint64_t start_ns; /* when it was started */
} fan_slot;

struct fan {
  bench_env *env;
  fan_slot *slots;
  size_t n;
  uint64_t first, end;
  uint64_t *lat;
  atomic_uint_fast64_t next;
  atomic_uint_fast64_t done;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool finished; /* under mu */
  char error[200];
};

static void fan_finish(fan *f, const char *error) {
  pthread_mutex_lock(&f->mu);
  if (error && !f->error[0]) snprintf(f->error, sizeof f->error, "%s", error);
  f->finished = true;
  pthread_cond_signal(&f->cond);
  pthread_mutex_unlock(&f->mu);
}

static void on_complete(ia_task *t, void *user);
static void on_fail(ia_task *t, void *user);

/* Starts call `idx` on the slot. A task that cannot start ends at once in
 * START_FAILED and reports through on_fail. */
static void fan_start(fan_slot *s, uint64_t idx) {
  Bench__SumRequest req = BENCH__SUM_REQUEST__INIT;
  req.has_a = req.has_b = 1;
  req.a = bench_sum_a(idx);
  req.b = bench_sum_b(idx);
  s->idx = idx;
  s->start_ns = bench_now_ns();
  ia_task *t = bench_bench_sum_task(s->conn, &req, NULL);
  if (t == NULL || ia_task_on_complete(t, on_complete, s) != IA_OK ||
      ia_task_on_fail(t, on_fail, s) != IA_OK) {
    ia_task_free(t);
    fan_finish(s->f, "cannot create a task");
    return;
  }
  /* A failed start ends the task in START_FAILED: on_fail reports it. */
  ia_code rc = ia_task_start(t);
  (void)rc;
}

static void on_complete(ia_task *t, void *user) {
  fan_slot *s = user;
  fan *f = s->f;
  /* The typed reply is decoded inside the timed region, freed outside it. */
  Bench__SumReply *reply = NULL;
  ia_code rc = bench_bench_sum_reply(t, &reply);
  uint64_t t1 = bench_now_ns();
  bool ok = rc == IA_OK && reply->has_sum && reply->sum == bench_sum_a(s->idx) + bench_sum_b(s->idx);
  if (reply) bench__sum_reply__free_unpacked(reply, NULL);
  if (!ok) {
    fan_finish(f, "wrong sum in a fan-out reply");
    return;
  }
  if (f->lat) f->lat[s->idx - f->first] = t1 - s->start_ns;
  /* The previous task finished on this thread before this one; it is safe
   * to free now (never the one whose callback this is). */
  ia_task_free(s->last);
  s->last = t;
  uint64_t idx = atomic_fetch_add(&f->next, 1);
  if (idx < f->end) fan_start(s, idx);
  if (atomic_fetch_add(&f->done, 1) + 1 == f->end - f->first) fan_finish(f, NULL);
}

static void on_fail(ia_task *t, void *user) {
  fan_slot *s = user;
  char msg[200];
  const ia_error *e = ia_task_error(t);
  snprintf(msg, sizeof msg, "fan-out task %llu ended %s: %.120s", (unsigned long long)s->idx,
           ia_status_name(ia_task_status(t)), e->message);
  fan_finish(s->f, msg);
}

static int run_fanout(void *state, bench_env *env, uint64_t first, uint64_t count, uint64_t *lat) {
  ia_state *s = state;
  if (count == 0) return 0;
  fan *f = calloc(1, sizeof *f);
  size_t per = bench_in_flight(env->w);
  if (f) f->slots = calloc(env->n_work * per, sizeof *f->slots);
  if (!f || !f->slots) return bench_fail(env, "out of memory");
  f->env = env;
  f->n = env->n_work * per;
  f->first = first;
  f->end = first + count;
  f->lat = lat;
  atomic_init(&f->next, first);
  atomic_init(&f->done, 0);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cond, NULL);
  for (size_t j = 0; j < f->n; j++) {
    f->slots[j].f = f;
    f->slots[j].conn = s->work[j / per]; /* pipeline-4: four slots on one connection */
  }
  for (size_t j = 0; j < f->n; j++) {
    uint64_t idx = atomic_fetch_add(&f->next, 1);
    if (idx >= f->end) break;
    fan_start(&f->slots[j], idx);
  }
  /* Wait for the last completion, a failure, or the time bound (checked
   * every 100 ms). */
  pthread_mutex_lock(&f->mu);
  while (!f->finished && !bench_expired(env)) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 100000000;
    if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&f->cond, &f->mu, &ts);
  }
  bool finished = f->finished;
  pthread_mutex_unlock(&f->mu);
  if (!finished || f->error[0]) {
    /* Tasks may still be in flight and their callbacks would find freed
     * slots: leave everything allocated; the driver is about to exit. */
    s->leak = true;
    return bench_fail(env, "interaction: %s", f->error[0] ? f->error : "fan-out out of time");
  }
  for (size_t j = 0; j < f->n; j++) {
    if (f->slots[j].last == NULL) continue;
    /* Its callbacks have run; join waits until the library is done with it. */
    if (ia_task_join(f->slots[j].last, IO_TIMEOUT_MS) == IA_OK) ia_task_free(f->slots[j].last);
  }
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cond);
  free(f->slots);
  free(f);
  return 0;
}

/* connect + handshake + graceful disconnect. */
static int run_connect(void *state, bench_env *env, uint64_t count, uint64_t *lat) {
  ia_state *s = state;
  ia_error err = IA_ERROR_INIT;
  for (uint64_t k = 0; k < count; k++) {
    uint64_t t0 = bench_now_ns();
    ia_conn *c = NULL;
    ia_code rc = ia_master_connect(s->m, "c", HOST, env->work_ports[0], NULL, 0, IO_TIMEOUT_MS, &c, &err);
    const char *what = "connect";
    if (rc == IA_OK) {
      rc = ia_conn_disconnect(c, NULL, 0, IO_TIMEOUT_MS, &err);
      what = "disconnect";
      ia_conn_free(c);
    }
    uint64_t t1 = bench_now_ns();
    if (rc != IA_OK) {
      char msg[64];
      snprintf(msg, sizeof msg, "%s %llu", what, (unsigned long long)k);
      int r = fail_err(env, msg, rc, &err);
      ia_error_clear(&err);
      return r;
    }
    if (lat) lat[k] = t1 - t0;
    if ((k & 63) == 0 && bench_expired(env)) return bench_fail(env, "out of time");
  }
  return 0;
}

static void ia_close(void *state, bench_env *env) {
  ia_state *s = state;
  if (s == NULL || s->leak) return;
  if (s->hold) {
    if (ia_task_status(s->hold) != IA_STATUS_IDLE) {
      /* A hold that does not end in time is dropped with its slave. */
      ia_code rc = ia_task_cancel(s->hold); /* refused only if it ended meanwhile */
      (void)rc;
      if (ia_task_join(s->hold, 3000) != IA_OK) fprintf(stderr, "bench-run: the hold task did not end\n");
    }
    ia_task_free(s->hold);
  }
  for (size_t i = 0; s->work && i < env->n_work; i++)
    ia_conn_free(s->work[i]);
  for (unsigned p = 0; env->stats_separate && s->stats && p < env->n_procs; p++)
    ia_conn_free(s->stats[p]);
  ia_master_free(s->m);
  free(s->work);
  free(s->stats);
  free(s);
}

const bench_peer bench_peer_interaction = {
    .name = "interaction",
    .slave_prog = "bench-ia-slave",
    .open = ia_open,
    .usage = ia_usage,
    .sequential = run_sequential,
    .blob = run_blob,
    .fanout = run_fanout,
    .connect = run_connect,
    .close = ia_close,
};
