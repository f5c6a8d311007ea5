/* The task's own memory (ia_task_ctx_alloc): a handler builds its reply or
 * its fail result in it, small (the task's arena) and large (malloc'd
 * blocks, several per task); what it sends arrives byte-exact, and nothing
 * is leaked or freed early (ASan and valgrind run this file too). */
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define CHANNEL 62
#define BUILD "arena.Build/"

/* The request: a size (4 bytes, big-endian) and a seed byte; the reply is
 * that many bytes, byte k = seed + k. "Fail" fails with them as its result,
 * "Many" makes eight blocks first and replies from the fifth. */
static void fill(uint8_t *p, size_t n, uint8_t seed) {
  for (size_t k = 0; k < n; k++)
    p[k] = (uint8_t)(seed + k);
}

static void build(ia_task_ctx *task, void *user) {
  (void)user;
  size_t len = 0;
  const uint8_t *req = ia_task_ctx_payload(task, &len);
  if (len != 5) {
    tu_ended(ia_task_ctx_fail(task, IA_TASK_FAILED, "bad request", NULL, 0));
    return;
  }
  size_t n = (size_t)req[0] << 24 | (size_t)req[1] << 16 | (size_t)req[2] << 8 | req[3];
  const char *method = ia_task_ctx_method(task) + strlen(BUILD);
  uint8_t *out = NULL;
  if (strcmp(method, "Many") == 0) {
    for (int i = 0; i < 8; i++) {
      uint8_t *p = ia_task_ctx_alloc(task, n);
      cr_assert_not_null(p);
      fill(p, n, (uint8_t)(req[4] + i - 4));
      if (i == 4) out = p;
    }
  } else {
    out = ia_task_ctx_alloc(task, n);
    cr_assert_not_null(out);
    fill(out, n, req[4]);
  }
  if (strcmp(method, "Fail") == 0)
    tu_ended(ia_task_ctx_fail(task, IA_TASK_FAILED, "failed on purpose", out, n));
  else
    tu_ended(ia_task_ctx_reply(task, out, n));
}

static fixture start(void) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.handler = build;
  return fixture_start(&config, "arena-master");
}

/* Calls METHOD for n bytes from `seed`: the reply (or the fail result) is
 * checked byte for byte. */
static void assert_built(ia_conn *c, const char *method, size_t n, uint8_t seed) {
  uint8_t req[5] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n, seed};
  void *reply = NULL;
  size_t reply_len = 0;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = ia_call(c, method, req, sizeof req, &reply, &reply_len, 2 * TU_WAIT_MS, &err);
  bool fail = strstr(method, "Fail") != NULL;
  const uint8_t *got = fail ? err.data : reply;
  size_t got_len = fail ? err.data_len : reply_len;
  cr_assert_eq(rc, fail ? IA_TASK_FAILED : IA_OK, "%s of %zu: %s (%s)", method, n, ia_code_name(rc),
               err.message);
  cr_assert_eq(got_len, n, "%s of %zu: %zu bytes came back", method, n, got_len);
  for (size_t k = 0; k < n; k++)
    if (got[k] != (uint8_t)(seed + k)) cr_assert_fail("%s of %zu: byte %zu is %u", method, n, k, got[k]);
  free(reply);
  ia_error_clear(&err);
}

TestSuite(task_arena, .timeout = 60);

Test(task_arena, a_reply_built_in_the_tasks_memory_arrives_byte_exact_small_and_large) {
  fixture f = start();
  const size_t sizes[] = {0, 1, 100, 400, 4096, 1u << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    assert_built(f.conn, BUILD "Reply", sizes[i], (uint8_t)(7 * i + 1));
    assert_built(f.conn, BUILD "Fail", sizes[i], (uint8_t)(7 * i + 2));
  }
  fixture_free(&f);
}

Test(task_arena, many_blocks_a_task_are_released_with_it_and_the_next_task_starts_clean) {
  fixture f = start();
  for (int round = 0; round < 50; round++) {
    assert_built(f.conn, BUILD "Many", round % 2 ? 300 : 70000, (uint8_t)round);
    assert_built(f.conn, BUILD "Reply", 64, (uint8_t)(round + 100)); /* the arena again, from its start */
  }
  fixture_free(&f);
}
