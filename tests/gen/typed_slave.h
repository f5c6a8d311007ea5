/* The test protos' services on one in-process slave, for the typed-call
 * tests (test_typed_calls.c, test_typed_failures.c): every service's
 * handlers, a slave that serves them (or answers Echo with bytes that are no
 * Point), a master connected to it, and the Batch these tests send with the
 * check of what Summarize makes of it. Criterion-asserting, so only tests
 * use it.
 *
 * Never: register a handler for Calc/Unserved (its calls must get 606). */
#ifndef IA_TESTS_GEN_TYPED_SLAVE_H
#define IA_TESTS_GEN_TYPED_SLAVE_H

/* Standard headers first, on purpose: `errno`, `assert`, `true` and `linux`
 * are macros from here on, and the generated headers must still compile. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic.ia.h"
#include "c_package.ia.h"
#include "keyword_package.ia.h"
#include "keywords.ia.h"
#include "nested/deep.ia.h"
#include "no_method.ia.h"
#include "proto3.ia.h"
#include "types_only.ia.h"

#include "fixture.h"

/* Every call's options: TU_WAIT_MS to answer. */
extern const ia_call_opts typed_opts;

/* Starts a slave with no catch-all handler, lets `serve` register its
 * methods, then connects a master; free it with fixture_free(). */
fixture typed_start(void (*serve)(ia_slave *));

/* Every service of the test protos. */
void typed_serve_all(ia_slave *slave);

/* Echo alone, answered with bytes that are no Point. */
void typed_serve_garbage(ia_slave *slave);

/* A Batch with values 1..n (written to `values`), origin (10, 20) and counts
 * {b: 2, a: 1, c: 3}. Static storage: valid for the whole test. */
Ia__Test__Batch typed_batch(int64_t *values, size_t n);

/* Checks the BatchResult Summarize makes of typed_batch(values, n). */
void typed_assert_summary(const Ia__Test__BatchResult *res, size_t n);

#endif
