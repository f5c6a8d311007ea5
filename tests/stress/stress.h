/*
 * Shared helpers of the stress programs in tests/stress: checks that count
 * failures instead of aborting, time budgets scaled to the build (a
 * ThreadSanitizer build runs 5-15 times slower), threads joined with a
 * deadline, a guard that ends a hung program, and the sum calls every
 * program makes, each checking its result.
 *
 * The programs use only the public API (include/interaction) and the test
 * helpers of tests/common/tu.h, so that they survive a restructuring of the
 * library's internals. Every loop in them is bounded by a count and by a
 * time budget; every wait has a timeout.
 */
#ifndef IA_TESTS_STRESS_H
#define IA_TESTS_STRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tu.h"

/* 1 in a ThreadSanitizer build (gcc defines __SANITIZE_THREAD__, clang has
 * __has_feature). */
#if defined(__SANITIZE_THREAD__)
#define STRESS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRESS_TSAN 1
#endif
#endif
#ifndef STRESS_TSAN
#define STRESS_TSAN 0
#endif
/* 1 in an AddressSanitizer build. */
#if defined(__SANITIZE_ADDRESS__)
#define STRESS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_ASAN 1
#endif
#endif
#ifndef STRESS_ASAN
#define STRESS_ASAN 0
#endif

/* ---- the program ---- */

/* Prints what the program checks and arms the hang guard: a program still
 * running `limit_s` seconds later (scaled like the budgets) prints the
 * phase it hung in and exits with status 2. */
void stress_begin(const char *program, const char *what, uint32_t limit_s);
/* Names the phase now running (printed, and named by the hang guard). */
void stress_phase(const char *name);
/* Prints one line of the summary: `n` things of `what` were checked. */
void stress_report(const char *what, long n);
/* Prints the verdict; the exit status of main(): 0 only if no check failed. */
int stress_end(void);

/* Records one failed check and prints it (the first 30). Thread-safe. */
void stress_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The check itself: true if `cond` holds, else records the failure. */
#define STRESS_CHECK(cond, ...) ((cond) ? true : (stress_fail(__VA_ARGS__), false))
/* Failed checks so far. */
int stress_failures(void);
/* Ends the program at once after a wait that never ended (a hang). */
_Noreturn void stress_hang(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- time ---- */

/* A budget of `plain_ms` in a plain build, scaled for sanitizer builds
 * (TSan 4x, ASan 2x), under valgrind (IA_VALGRIND set: 10x more) and by the
 * IA_STRESS_SCALE environment variable (a factor, for longer soaks). */
uint32_t stress_ms(uint32_t plain_ms);
/* tu_now_ms() + stress_ms(plain_ms). */
uint64_t stress_deadline(uint32_t plain_ms);
/* True while tu_now_ms() is before `deadline`. */
bool stress_before(uint64_t deadline);
/* Sleeps `us` microseconds (tu_sleep_ms() is too coarse for a polling loop). */
void stress_sleep_us(uint32_t us);

/* ---- randomness: one generator per thread ---- */

typedef struct stress_rng {
  uint64_t s;
} stress_rng;

void stress_rng_seed(stress_rng *r, uint64_t seed);
uint64_t stress_rng_next(stress_rng *r);
/* Uniform in [0, n). */
uint32_t stress_rng_below(stress_rng *r, uint32_t n);

/* ---- threads ---- */

typedef void *(*stress_fn)(void *arg);

/* Starts a thread; a failure is a failed check. */
bool stress_spawn(pthread_t *t, stress_fn fn, void *arg);
/* Joins `t` within timeout_ms, or ends the program as hung in `what`. */
void stress_join(pthread_t t, uint32_t timeout_ms, const char *what);
/* Runs fn on `n` threads, thread i getting (char *)args + i * stride, and
 * joins them all within timeout_ms (else: a hang in `what`). */
void stress_run(int n, stress_fn fn, void *args, size_t stride, uint32_t timeout_ms, const char *what);
/* Runs fn(arg) on a thread of its own and waits timeout_ms for it: for a
 * library call that might never return (a join, a free). */
void stress_bounded(void (*fn)(void *arg), void *arg, uint32_t timeout_ms, const char *what);

/* ---- slaves, masters, connections ---- */

/* A started in-process test slave (tu_handler: the sum example's methods)
 * on `channel` with the given grace period; NULL after a failed check. */
ia_slave *stress_slave(uint32_t channel, uint32_t grace_ms);
/* A started master; NULL after a failed check. */
ia_master *stress_master(const char *name, uint32_t channel);
/* Connects `name` to the slave on `port`. A slave answers
 * ALREADY_CONNECTED until it has seen its previous master go, so that
 * answer is retried for TU_WAIT_MS. Returns the connection, or NULL with
 * the last code in *code (may be NULL). */
ia_conn *stress_connect(ia_master *m, const char *name, uint16_t port, ia_code *code);

/* ---- sums ---- */

/* A random sum operand, large enough that a wrong result cannot pass by luck. */
int64_t stress_operand(stress_rng *r);

/*
 * One blocking Sum of two random operands: through ia_call, or through the
 * typed stub sum_adder_sum() when `typed`. While the slave answers 601 (its
 * slot is busy: the loop took the socket over from a handler it saw running
 * long) the call is retried, up to TU_WAIT_MS. On IA_OK the sum is checked
 * (a wrong one is a failed check); any other code is returned for the
 * caller to judge, with its message in `why` (may be NULL, at least
 * IA_ERROR_MESSAGE_MAX bytes).
 */
ia_code stress_call_sum(ia_conn *conn, stress_rng *r, bool typed, char *why);

/* A Sum task of a + b in IDLE (typed or untyped); NULL after a failed check. */
ia_task *stress_sum_task(ia_conn *conn, int64_t a, int64_t b, bool typed);
/* True if the finished task is COMPLETED with the result a + b (decoded
 * with the typed stub or by hand). */
bool stress_task_sum_is(const ia_task *task, int64_t want, bool typed);

#endif
