/*
 * stress_land: large typed replies landed (master/land.c) while several
 * threads share one connection.
 *
 *  - a slave in non-blocking multi mode (16 workers) answers "land.Blob"
 *    with a TaskFail message whose last field is a blob of the size and
 *    seed the request asked for (200 KiB to 1.5 MiB), built in the task's
 *    own memory;
 *  - 4 caller threads make typed calls (ia_pb_call) on the one connection,
 *    so that whichever of them holds the read side (or the master's loop)
 *    receives, and lands, the others' replies; one call in six has a 2 ms
 *    timeout, and may give up while its blob is half in;
 *  - one thread makes Sum calls on the same connection all along.
 *
 * Checked: every reply that comes back OK is byte for byte what was asked
 * for; the short calls end OK or TIMEOUT, the others OK (a 601 while
 * every worker is busy with calls given up on is retried); every Sum is
 * right; the connection is up and serving at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "interaction.pb-c.h"
#include "interaction/pb.h"
#include "stress.h"
#include "sum.pb-c.h"

#define CHANNEL 47
#define CALLERS 4
#define MAX_CALLS 60 /* per caller thread */
#define MAX_SUMS 5000
#define MIN_BLOB (200u << 10)
#define MAX_BLOB (1536u << 10)
#define BUDGET_MS 1500
#define WORKERS 16      /* the slave's: calls given up on still run there */
#define MAX_RETRIES 200 /* 601s (every worker busy) one caller may retry */

static atomic_long blobs_ok, timed_out, sums_ok, retried_601;
static uint64_t deadline;

static uint8_t pattern(uint64_t seed, size_t i) {
  return (uint8_t)(i * 167u + seed * 31u + (i >> 9));
}

static void fail(ia_task_ctx *task, ia_code code, const char *why) {
  ia_code rc = ia_task_ctx_fail(task, code, why, NULL, 0);
  (void)rc; /* a fresh task has no outcome yet: this cannot fail */
}

static void blob_handler(ia_task_ctx *task, void *user) {
  (void)user;
  size_t len;
  const uint8_t *req = ia_task_ctx_payload(task, &len);
  Sum__SumTask *st = len ? sum__sum_task__unpack(NULL, len, req) : NULL;
  if (!st || !st->has_a || !st->has_b || st->b < 1 || st->b > (int64_t)MAX_BLOB) {
    if (st) sum__sum_task__free_unpacked(st, NULL);
    fail(task, IA_TASK_FAILED, "a bad blob request");
    return;
  }
  uint64_t seed = (uint64_t)st->a;
  size_t n = (size_t)st->b;
  sum__sum_task__free_unpacked(st, NULL);
  uint8_t *blob = malloc(n);
  if (!blob) {
    fail(task, IA_NO_MEMORY, "no memory");
    return;
  }
  for (size_t i = 0; i < n; i++)
    blob[i] = pattern(seed, i);
  Interaction__V1__TaskFail tf = INTERACTION__V1__TASK_FAIL__INIT;
  tf.has_code = 1;
  tf.code = (uint32_t)(seed & 0xffff);
  tf.message = "landed";
  tf.has_result = 1;
  tf.result = (ProtobufCBinaryData){n, blob};
  size_t out_len = interaction__v1__task_fail__get_packed_size(&tf);
  uint8_t *out = ia_task_ctx_alloc(task, out_len);
  if (out) interaction__v1__task_fail__pack(&tf, out);
  free(blob);
  if (!out || ia_task_ctx_reply(task, out, out_len) != IA_OK)
    fail(task, IA_NO_MEMORY, "no memory for the reply");
}

typedef struct caller {
  ia_conn *conn;
  int seed;
} caller;

static bool blob_right(const Interaction__V1__TaskFail *tf, uint64_t seed, size_t n, char *why) {
  if (!tf->has_code || tf->code != (uint32_t)(seed & 0xffff) || !tf->message ||
      strcmp(tf->message, "landed")) {
    snprintf(why, 200, "the fields before the blob are wrong");
    return false;
  }
  if (!tf->has_result || tf->result.len != n) {
    snprintf(why, 200, "a blob of %zu bytes came back as %zu", n, tf->result.len);
    return false;
  }
  for (size_t i = 0; i < n; i++)
    if (tf->result.data[i] != pattern(seed, i)) {
      snprintf(why, 200, "byte %zu of %zu is wrong", i, n);
      return false;
    }
  return true;
}

static void *caller_main(void *arg) {
  caller *c = arg;
  stress_rng r;
  stress_rng_seed(&r, (uint64_t)c->seed);
  int retries = 0;
  for (int i = 0; i < MAX_CALLS && stress_before(deadline); i++) {
    uint64_t seed = stress_rng_next(&r);
    size_t n = MIN_BLOB + stress_rng_below(&r, MAX_BLOB - MIN_BLOB);
    bool quick = stress_rng_below(&r, 6) == 0;
    Sum__SumTask req = SUM__SUM_TASK__INIT;
    req.has_a = req.has_b = 1;
    req.a = (int64_t)seed;
    req.b = (int64_t)n;
    const ia_call_opts opts = {.timeout_ms = quick ? 2 : stress_ms(TU_WAIT_MS)};
    Interaction__V1__TaskFail *tf = NULL;
    ia_error err = IA_ERROR_INIT;
    ia_code rc = ia_pb_call(c->conn, "land.Blob", &req.base, &interaction__v1__task_fail__descriptor,
                            (ProtobufCMessage **)&tf, &opts, &err);
    if (rc == IA_TASK_ALREADY_EXIST && retries < MAX_RETRIES) {
      /* Every worker busy: calls given up on still run there. Again. */
      retries++;
      atomic_fetch_add(&retried_601, 1);
      ia_error_clear(&err);
      i--;
      stress_sleep_us(500);
      continue;
    }
    char why[200] = "";
    bool ok = rc == IA_OK ? blob_right(tf, seed, n, why) : quick && rc == IA_TIMEOUT;
    if (rc != IA_OK && !ok) snprintf(why, sizeof why, "%s: %.150s", ia_code_name(rc), err.message);
    ia_error_clear(&err);
    if (tf) interaction__v1__task_fail__free_unpacked(tf, NULL);
    if (!STRESS_CHECK(ok, "caller %d, call %d (%zu bytes%s): %s", c->seed, i, n, quick ? ", 2 ms" : "", why))
      break;
    atomic_fetch_add(rc == IA_OK ? &blobs_ok : &timed_out, 1);
  }
  return NULL;
}

static void *summer_main(void *arg) {
  caller *c = arg;
  stress_rng r;
  stress_rng_seed(&r, 7);
  for (int i = 0; i < MAX_SUMS && stress_before(deadline); i++) {
    char why[IA_ERROR_MESSAGE_MAX];
    ia_code rc = stress_call_sum(c->conn, &r, i % 2 == 0, why);
    if (!STRESS_CHECK(rc == IA_OK, "sum %d beside the blobs: %s: %s", i, ia_code_name(rc), why)) break;
    atomic_fetch_add(&sums_ok, 1);
  }
  return NULL;
}

static ia_slave *blob_slave(void) {
  ia_slave_config cfg;
  tu_slave_config(&cfg, CHANNEL);
  cfg.mode = IA_MODE_NONBLOCKING_MULTI;
  cfg.workers = WORKERS;
  ia_slave *s = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_slave_new(&cfg, &s, &err);
  if (rc == IA_OK) rc = ia_slave_register(s, "land.Blob", blob_handler, NULL);
  if (rc == IA_OK) rc = ia_slave_start(s, &err);
  STRESS_CHECK(rc == IA_OK, "the blob slave: %s: %s", ia_code_name(rc), err.message);
  ia_error_clear(&err);
  if (rc == IA_OK) return s;
  ia_slave_free(s);
  return NULL;
}

int main(void) {
  stress_begin("stress_land", "typed blob replies landed while callers share a connection", 60);
  ia_slave *s = blob_slave();
  ia_master *m = s ? stress_master("stress-land", CHANNEL) : NULL;
  ia_code rc = IA_OK;
  ia_conn *conn = m ? stress_connect(m, "blobs", ia_slave_port(s), &rc) : NULL;
  if (conn) {
    stress_phase("blob callers and a summer on one connection");
    deadline = stress_deadline(BUDGET_MS);
    caller callers[CALLERS + 1];
    pthread_t t[CALLERS + 1];
    bool up[CALLERS + 1];
    for (int i = 0; i <= CALLERS; i++) {
      callers[i] = (caller){conn, i + 1};
      up[i] = stress_spawn(&t[i], i < CALLERS ? caller_main : summer_main, &callers[i]);
    }
    uint32_t bound = stress_ms(BUDGET_MS) + stress_ms(15000);
    for (int i = 0; i <= CALLERS; i++)
      if (up[i]) stress_join(t[i], bound, i < CALLERS ? "a blob caller" : "the summer");

    stress_phase("the connection still up and serving");
    STRESS_CHECK(ia_conn_is_connected(conn), "the connection is down after the load");
    stress_rng r;
    stress_rng_seed(&r, 99);
    char why[IA_ERROR_MESSAGE_MAX];
    rc = stress_call_sum(conn, &r, true, why);
    STRESS_CHECK(rc == IA_OK, "the final call: %s: %s", ia_code_name(rc), why);
  } else {
    stress_fail("no connection to the blob slave: %s", ia_code_name(rc));
  }
  stress_report("blob replies byte for byte right", atomic_load(&blobs_ok));
  stress_report("2 ms blob calls timed out", atomic_load(&timed_out));
  stress_report("sums right beside them", atomic_load(&sums_ok));
  stress_report("601s retried (every worker busy)", atomic_load(&retried_601));
  STRESS_CHECK(atomic_load(&blobs_ok) > 0 && atomic_load(&sums_ok) > 0, "no blob or no sum ever came back");
  ia_conn_free(conn);
  ia_master_free(m);
  ia_slave_free(s);
  return stress_end();
}
