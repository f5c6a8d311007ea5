/*
 * The Interaction side of the benchmark behind one small seam: typed calls
 * and handlers of service bench.Bench (bench.proto).
 *
 * This is what the generated typed stubs will provide (bench_bench_sum(),
 * bench_bench_serve(), ...). Until the protoc plugin lands, ia_peer.c packs
 * and unpacks the messages with protobuf-c and goes through ia_call() and
 * ia_conn_new_task() the way the stubs will, so that swapping the stubs in
 * touches this file pair only.
 */
#ifndef BENCH_IA_PEER_H
#define BENCH_IA_PEER_H

#include "bench.pb-c.h"
#include "interaction/interaction.h"

#define BENCH_IA_METHOD_SUM "bench.Bench/Sum"
#define BENCH_IA_METHOD_ECHO "bench.Bench/Echo"
#define BENCH_IA_METHOD_HOLD "bench.Bench/Hold"
#define BENCH_IA_METHOD_STATS "bench.Bench/Stats"

/* Registers the four handlers of bench.Bench on `slave` (before it starts). */
IA_MUST_CHECK ia_code bench_ia_serve(ia_slave *slave);

/*
 * Blocking typed calls. On IA_OK *reply is a message unpacked by protobuf-c:
 * release it with the matching bench__*__free_unpacked(reply, NULL). On any
 * other code *reply is NULL and `err` says why. Thread-safe as ia_call().
 */
IA_MUST_CHECK ia_code bench_ia_sum(ia_conn *conn, const Bench__SumRequest *req, Bench__SumReply **reply,
                                   const ia_call_opts *opts, ia_error *err);
IA_MUST_CHECK ia_code bench_ia_echo(ia_conn *conn, const Bench__Blob *req, Bench__Blob **reply,
                                    const ia_call_opts *opts, ia_error *err);
IA_MUST_CHECK ia_code bench_ia_stats(ia_conn *conn, const Bench__StatsRequest *req, Bench__StatsReply **reply,
                                     const ia_call_opts *opts, ia_error *err);

/* Async forms: a task in IDLE carrying the packed request, ready for
 * callbacks and ia_task_start(); NULL if out of memory. Free with
 * ia_task_free(). */
ia_task *bench_ia_sum_task(ia_conn *conn, const Bench__SumRequest *req);
ia_task *bench_ia_hold_task(ia_conn *conn, const Bench__HoldRequest *req);

/* The decoded reply of a COMPLETED Sum task, or NULL (not completed, or not
 * a SumReply). Free with bench__sum_reply__free_unpacked(reply, NULL). */
Bench__SumReply *bench_ia_sum_task_reply(const ia_task *task);

#endif
