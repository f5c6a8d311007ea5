/*
 * runtime: the bottom part, shared by both ends -- status codes and errors,
 * logging, time, threads, socket helpers (sock.h), framing (wire.h), the
 * write side of a connection (wstream.h) and the epoll set outside libevent
 * (epset.h).
 *
 * Nothing in runtime/ knows a master or a slave: it includes neither end's
 * header and calls nothing above it. It owns no thread and no event base,
 * and it never blocks except in the functions that take a deadline.
 */
#ifndef IA__RUNTIME_INTERNAL_H
#define IA__RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "interaction.pb-c.h"
#include "interaction/status.h"

#define IA__PROTOCOL_VERSION 1u
#define IA__FRAME_HEADER 4u
/* The Frame bodies this version knows: Hello (2) to AuthProof (17). */
#define IA__BODY_FIRST INTERACTION__V1__FRAME__BODY_HELLO
#define IA__BODY_LAST INTERACTION__V1__FRAME__BODY_AUTH_PROOF
#define IA__MAX_FRAME_DEFAULT (64u << 20)
#define IA__MAX_FRAME_CAP (1u << 30)
/* The largest frame a peer may send before its Hello was accepted: a Hello
 * is a few dozen bytes plus its data for before_connection. An
 * unauthenticated peer must not make anyone reserve more. */
#define IA__PREAUTH_MAX_FRAME (64u << 10)

/* ---- branch and code placement ---- */

/* IA__COLD marks a function that runs on error, teardown or logging only:
 * the compiler predicts every path into it untaken and moves those paths
 * out of the hot functions' lines. On the fan-out path, where every call
 * starts with cold caches, what a task costs is the number of cache lines
 * its code touches (bench/ANALYSIS.md). */
#define IA__COLD __attribute__((cold))

/* ---- errors and logging ---- */

/* Sets code and a printf-style message on `err` (NULL allowed); returns code. */
IA__COLD ia_code ia__error_set(ia_error *err, ia_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same with a plain message, copied (and cut to fit) without printf:
 * a task's end on the hot path of refusals. */
ia_code ia__error_set_msg(ia_error *err, ia_code code, const char *message);
/* Copies `len` bytes of peer data into `err` (replacing any). */
void ia__error_set_data(ia_error *err, const void *data, size_t len);
/* Deep-copies src into dst (dst is cleared first). */
void ia__error_copy(ia_error *dst, const ia_error *src);

IA__COLD void ia__log(ia_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define IA__DEBUG(...) ia__log(IA_LOG_DEBUG, __VA_ARGS__)
#define IA__INFO(...) ia__log(IA_LOG_INFO, __VA_ARGS__)
#define IA__WARN(...) ia__log(IA_LOG_WARN, __VA_ARGS__)
#define IA__ERROR(...) ia__log(IA_LOG_ERROR, __VA_ARGS__)

/* Effective max_frame for a configured value (0 means the default; capped). */
uint32_t ia__max_frame(uint32_t configured);

/* ---- time ---- */

/* CLOCK_MONOTONIC in milliseconds and in nanoseconds. */
uint64_t ia__now_ms(void);
uint64_t ia__now_ns(void);
/* Fills an absolute CLOCK_MONOTONIC timespec `ms` from now. */
struct timespec;
void ia__deadline_ts(struct timespec *ts, uint32_t ms);
/* now + ms, or UINT64_MAX for UINT32_MAX ("no limit"). */
uint64_t ia__deadline_after(uint32_t ms);
/* An interval clock for the durations the hot path measures (a task's run
 * on the slave, its latency on the master): the CPU's time-stamp counter
 * where the kernel itself keeps time with it, which is one instruction and
 * touches no memory, else CLOCK_MONOTONIC in ns (a vDSO call and its data
 * page: some 5 cold cache lines a read on the fan-out path). Ticks are
 * only ever subtracted, and converted with ia__ticks_ns. */
extern double ia__ns_per_tick; /* 0 until ia__clock_init found the TSC usable */
/* Calibrates the TSC against CLOCK_MONOTONIC (about 2 ms, once per process);
 * ia__threads_init calls it, before any master or slave exists. */
void ia__clock_init(void);
static inline uint64_t ia__ticks(void) {
#if defined(__x86_64__)
  if (ia__ns_per_tick > 0) return __builtin_ia32_rdtsc();
#endif
  return ia__now_ns();
}
/* The ns from tick `from` to tick `to` (0 if `to` is not later: the
 * counters of two CPUs may differ by a few ticks). */
static inline uint64_t ia__ticks_ns(uint64_t from, uint64_t to) {
  if (to <= from) return 0;
  uint64_t d = to - from;
  return ia__ns_per_tick > 0 ? (uint64_t)((double)d * ia__ns_per_tick) : d;
}
/* Initialises a condition variable that waits on CLOCK_MONOTONIC. */
void ia__cond_init(pthread_cond_t *cond);

/* ---- threads ---- */

/* Makes libevent thread-safe (evthread_use_pthreads) once per process; call
 * before any event_base_new(). */
void ia__threads_init(void);
/* pthread_create with the asynchronous signals (SIGINT, SIGTERM, SIGPIPE...)
 * blocked in the new thread, so that they reach the program's own threads
 * (ia_slave_run), never ours. The synchronous ones (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL, SIGTRAP, SIGSYS, SIGABRT) stay deliverable: a crash in a library
 * thread must crash visibly, not hang it. */
IA_MUST_CHECK int ia__thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
