/*
 * The handlers behind fz_methods (fuzz_slave_script.h), which the slaves of
 * fuzz_slave and fuzz_tls register, and whose outcomes fuzz_slave_check.c
 * expects: Sum replies with the payload's byte sum (8 bytes, little-endian),
 * Fail fails with 603 and the payload, Nothing returns without an outcome,
 * Sleep and Long echo the payload after a few milliseconds unless
 * cancelled, Meta replies with the metadata value of "k".
 *
 * They run on the slave's threads: they must never touch harness state but
 * the atomic count of handlers run (and fz_fail for an end that failed).
 */
#include <stdatomic.h>
#include <string.h>

#include "fuzz_slave.h"
#include "fuzz_slave_script.h"

static atomic_ulong runs;

unsigned long fzs_handled(void) {
  return atomic_load(&runs);
}

/* A handler ends a fresh task exactly once: that cannot fail. */
static void ended(ia_code rc) {
  if (rc != IA_OK) fz_fail("handler_end", "ending a task failed: %s", ia_code_name(rc));
}

static void h_sum(ia_task_ctx *t, void *u) {
  (void)u;
  atomic_fetch_add(&runs, 1);
  size_t n;
  const uint8_t *p = ia_task_ctx_payload(t, &n);
  uint64_t sum = 0;
  for (size_t i = 0; i < n; i++)
    sum += p[i];
  uint8_t out[8];
  for (int i = 0; i < 8; i++)
    out[i] = (uint8_t)(sum >> (8 * i));
  ended(ia_task_ctx_reply(t, out, sizeof out));
}

static void h_fail(ia_task_ctx *t, void *u) {
  (void)u;
  atomic_fetch_add(&runs, 1);
  size_t n;
  const uint8_t *p = ia_task_ctx_payload(t, &n);
  ended(ia_task_ctx_fail(t, IA_TASK_FAILED, "failed on purpose", p, n));
}

static void h_nothing(ia_task_ctx *t, void *u) {
  (void)t;
  (void)u;
  atomic_fetch_add(&runs, 1);
}

/* Sleep: 0-3 ms, Long: 10-30 ms (the payload's first byte picks), polling
 * for cancellation; `u` is the method's index. */
static void h_sleep(ia_task_ctx *t, void *u) {
  atomic_fetch_add(&runs, 1);
  size_t n;
  const uint8_t *p = ia_task_ctx_payload(t, &n);
  unsigned b = n ? p[0] : 0;
  uint64_t ms = (uintptr_t)u == FZ_M_LONG ? 10u + b % 21u : b % 4u;
  uint64_t until = fz_now_us() + ms * 1000u;
  while (fz_now_us() < until) {
    if (ia_task_ctx_cancelled(t)) {
      ended(ia_task_ctx_fail(t, IA_CANCELLED, "cancelled", NULL, 0));
      return;
    }
    fz_sleep_us(100);
  }
  ended(ia_task_ctx_reply(t, p, n));
}

static void h_meta(ia_task_ctx *t, void *u) {
  (void)u;
  atomic_fetch_add(&runs, 1);
  const char *v = ia_task_ctx_metadata(t, "k");
  ended(ia_task_ctx_reply(t, v ? v : "", v ? strlen(v) : 0));
}

ia_code fzs_register(ia_slave *s) {
  ia_code rc = ia_slave_register(s, fz_methods[FZ_M_SUM], h_sum, NULL);
  if (rc == IA_OK) rc = ia_slave_register(s, fz_methods[FZ_M_FAIL], h_fail, NULL);
  if (rc == IA_OK) rc = ia_slave_register(s, fz_methods[FZ_M_NOTHING], h_nothing, NULL);
  if (rc == IA_OK) rc = ia_slave_register(s, fz_methods[FZ_M_SLEEP], h_sleep, (void *)(uintptr_t)FZ_M_SLEEP);
  if (rc == IA_OK) rc = ia_slave_register(s, fz_methods[FZ_M_LONG], h_sleep, (void *)(uintptr_t)FZ_M_LONG);
  if (rc == IA_OK) rc = ia_slave_register(s, fz_methods[FZ_M_META], h_meta, NULL);
  return rc;
}
