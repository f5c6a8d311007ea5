/*
 * The slave side of the Interaction peer: the handlers of service
 * bench.Bench (bench.proto), written against the generated typed stubs of
 * bench.ia.h the way a user's slave is. A slave registers them with
 *
 *   bench_bench_serve(slave, &bench_ia_handlers, NULL);
 *
 * The master side (run_ia.c) calls the generated stubs directly:
 * bench_bench_sum(), bench_bench_echo(), bench_bench_stats(), and
 * bench_bench_sum_task() + bench_bench_sum_reply() for fan-out.
 */
#ifndef BENCH_IA_PEER_H
#define BENCH_IA_PEER_H

#include "bench.ia.h"

/* Sum, Echo, Hold (keeps the slot for `ms`, or until cancelled) and Stats
 * (the slave process's getrusage). `user` is unused. */
extern const bench_bench_handlers bench_ia_handlers;

#endif
