/*
 * The master: the task-issuing end. It dials slaves, keeps a registry of live
 * connections by name, and runs tasks on them: blocking (ia_call) or
 * asynchronous (ia_task_start / ia_task_join), many slaves at once from one
 * I/O thread.
 *
 * Threads. Every function here may be called from any thread unless its
 * comment says otherwise. The master has one I/O thread of its own; task
 * callbacks run either there or on a thread blocked in a call on the same
 * connection, and must not block. Functions that block (connect, call,
 * join, disconnect, ping) refuse to run on the I/O thread
 * (IA_INVALID_ARGUMENT), so they cannot be called from a callback.
 *
 * Ownership. Configs, names, payloads and data passed in are copied (or,
 * for a blocking call's request, only read until the call returns). What an
 * ia_error holds is released by ia_error_clear(); ia_call's reply is
 * free()d by the caller; a task's result and error live until ia_task_free().
 */
#ifndef INTERACTION_MASTER_H
#define INTERACTION_MASTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "interaction/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ia_master ia_master;
typedef struct ia_conn ia_conn;
typedef struct ia_task ia_task;

typedef struct ia_master_config {
  const char *name;   /* sent in Hello; NULL means "master" */
  uint32_t channel;   /* must match the slave's channel */
  uint32_t max_frame; /* largest accepted frame; 0 means 64 MiB (cap 1 GiB); sent in Hello */
  /* Heartbeats (either 0: off). The master sends a Ping every heartbeat_ms
   * and drops a connection on which nothing at all arrived for
   * heartbeat_tolerance_ms. Both are proposals: each connection uses the
   * setting agreed with its slave in the handshake -- the longer interval
   * and the longer tolerance of the two ends, off if either end has them
   * off -- so that a mismatch never drops a healthy connection. */
  uint32_t heartbeat_ms;
  uint32_t heartbeat_tolerance_ms;
  /* "HOST:PORT" to serve Prometheus text at /metrics and a probe at
   * /healthz (200 while running, 503 once shutting down) over HTTP; port 0
   * picks a free one (ia_master_metrics_port()). NULL: none. */
  const char *metrics_addr;
  /* The shared secret (see ia_slave_config.secret_file): a file of its
   * bytes, read by ia_master_new(); NULL: the IA_SECRET environment
   * variable if it is set, else none. A master with a secret proves it to
   * each slave and connects only to a slave that proves it too: one that
   * cannot, or proves a wrong one, fails the connect with
   * IA_TOKEN_NOT_FOUND or IA_TOKEN_INVALID. */
  const char *secret_file;
  /* TLS 1.3 (OpenSSL): a CA file (PEM) that every slave's certificate is
   * verified against, together with the host it is connected to (a DNS
   * name, or an IP address), or tls_server_name. With it every connection
   * is TLS; a slave whose certificate is not accepted (another CA, another
   * name, expired) fails the connect with IA_TOKEN_INVALID, and a slave
   * that does not speak TLS with IA_PROTOCOL_ERROR. NULL: plain TCP. */
  const char *tls_ca;
  /* The master's own certificate chain and key (PEM), for slaves that ask
   * for one (mutual TLS); both or neither, and only with tls_ca. */
  const char *tls_cert;
  const char *tls_key;
  /* The name the slaves' certificates must carry, instead of the host
   * given to ia_master_connect(): NULL for that host. */
  const char *tls_server_name;
} ia_master_config;

/* Fills a config with the defaults (name "master", channel 0, 64 MiB,
 * the default heartbeat). */
void ia_master_config_init(ia_master_config *config);

/* Creates a master from `config` (copied). *out is the caller's, released
 * with ia_master_free(). */
IA_MUST_CHECK ia_code ia_master_new(const ia_master_config *config, ia_master **out, ia_error *err);
/* Starts the I/O thread. Once per master. */
IA_MUST_CHECK ia_code ia_master_start(ia_master *master, ia_error *err);
/* Says Goodbye to every slave and ends pending tasks with SHUTTING_DOWN
 * (callbacks run on the I/O thread). Returns at once; callable from a
 * callback. */
void ia_master_shutdown(ia_master *master);
/* Waits until the I/O thread stopped (after ia_master_shutdown). Not from a
 * callback. */
void ia_master_join(ia_master *master);
/* Shuts down, joins and frees the master together with every connection the
 * user has not freed (those handles are dead afterwards). Free every task
 * first. NULL is allowed. Not from a callback. */
void ia_master_free(ia_master *master);

/*
 * Dials host:port, says Hello (with `data`, at most ~64 KiB, for the slave's
 * before_connection hook) and waits for Welcome, all within timeout_ms
 * (UINT32_MAX: no limit). `name` must be unique among live connections
 * (IA_ALREADY_CONNECTED otherwise). On refusal (channel mismatch,
 * before_connection hook, a busy slave) the code, message and the slave's
 * data come back in `err` and nothing is registered. On success *out is the
 * caller's handle, released with ia_conn_free(). Blocking; not on the I/O
 * thread.
 */
IA_MUST_CHECK ia_code ia_master_connect(ia_master *master, const char *name, const char *host, uint16_t port,
                                        const void *data, size_t len, uint32_t timeout_ms, ia_conn **out,
                                        ia_error *err);

/* ia_master_connect() to "HOST:PORT" (as ia_hostport_parse() reads it; not
 * that form: IA_INVALID_ARGUMENT). */
IA_MUST_CHECK ia_code ia_master_connect_addr(ia_master *master, const char *name, const char *addr,
                                             const void *data, size_t len, uint32_t timeout_ms, ia_conn **out,
                                             ia_error *err);

/* Like ia_master_connect(), as an observer: the slave welcomes it beside
 * its master (it never takes the master's seat, and the slave's
 * before_connection hook is not asked), answers its Pings, and refuses its
 * tasks with IA_TASK_REFUSED. A slave welcomes a few observers at once
 * (8); more are refused with IA_CONNECTION_REFUSED. For monitors and the
 * CLI. */
IA_MUST_CHECK ia_code ia_master_observe(ia_master *master, const char *name, const char *host, uint16_t port,
                                        uint32_t timeout_ms, ia_conn **out, ia_error *err);

/* What the slave's Welcome said: its name ("" if none), its task mode (an
 * ia_mode of interaction/slave.h) and how many tasks it runs at once. Valid
 * as long as the handle. */
const char *ia_conn_slave_name(const ia_conn *conn);
uint32_t ia_conn_slave_mode(const ia_conn *conn);
uint32_t ia_conn_slave_capacity(const ia_conn *conn);

/* The slave's counters (interaction/slave.h, ia_slave_stats), asked for
 * with a StatsRequest and answered by Stats: what ia_slave_stats_get()
 * says on the slave. Works on an observer's connection while another
 * master is attached. Blocking, up to timeout_ms; *out is released with
 * ia_slave_stats_clear(). */
struct ia_slave_stats;
IA_MUST_CHECK ia_code ia_conn_slave_stats(ia_conn *conn, uint32_t timeout_ms, struct ia_slave_stats *out,
                                          ia_error *err);

/* ---- statistics (ia_conn_stats_get, and /metrics) ---- */

/* How a task of the connection ended: its outcome index. */
enum {
  IA_OUTCOME_COMPLETED = 0,
  IA_OUTCOME_FAILED,    /* TaskFail */
  IA_OUTCOME_LOST,      /* the connection went away */
  IA_OUTCOME_TIMED_OUT, /* its deadline or its call's timeout passed */
  IA_OUTCOME_CANCELLED,
  IA_OUTCOME_REFUSED, /* START_FAILED: refused, or never sent */
  IA_OUTCOMES
};
/* The name /metrics uses for an outcome ("completed", ...); NULL out of range. */
const char *ia_conn_outcome_name(int outcome);

typedef struct ia_conn_stats {
  uint32_t in_flight;                     /* started, not ended */
  uint64_t tasks[IA_OUTCOMES];            /* ended tasks (calls included) by outcome */
  uint64_t latency[IA_STATS_BUCKETS + 1]; /* start to end, by bucket (status.h); not cumulative */
  double latency_sum_s, latency_max_s;
  /* Estimates from the histogram: the upper bound of the bucket the 50th
   * and 99th percentile fall in (latency_max_s for the last bucket). */
  double latency_p50_s, latency_p99_s;
} ia_conn_stats;

/* A snapshot of the connection's counters (user tasks and calls; not the
 * internal Pings and Disconnects). Any thread. */
IA_MUST_CHECK ia_code ia_conn_stats_get(ia_conn *conn, ia_conn_stats *out);
/* The port the master's /metrics and /healthz are served on, 0 if none. */
uint16_t ia_master_metrics_port(const ia_master *master);

/* The live connection registered under `name`, or NULL. The result is a new
 * reference of the caller's: it stays valid, whatever another thread does,
 * until the caller passes it to ia_conn_release() (which never closes the
 * connection). */
IA_MUST_CHECK ia_conn *ia_master_find(ia_master *master, const char *name);
/* Drops a reference from ia_master_find(). NULL is allowed. */
void ia_conn_release(ia_conn *conn);

/* The connection's name; valid as long as the handle. */
const char *ia_conn_name(const ia_conn *conn);
/* True while the TCP connection is up and handshaken: false as soon as it
 * is lost (a reset, a protocol error, a peer silent past the heartbeat
 * tolerance) or closed. */
bool ia_conn_is_connected(const ia_conn *conn);

/* A connection's state: CONNECTED from ia_master_connect() until it ends,
 * once, in LOST (the slave vanished, reset, went silent past the heartbeat
 * tolerance, broke the protocol) or CLOSED (ia_conn_disconnect(),
 * ia_conn_free(), the slave said Goodbye, the master shut down). */
typedef enum ia_conn_state {
  IA_CONN_CONNECTED = 0,
  IA_CONN_LOST,
  IA_CONN_CLOSED,
} ia_conn_state;

/* The state's name ("LOST"); static, never NULL. */
const char *ia_conn_state_name(ia_conn_state state);
/* The connection's state now. */
ia_conn_state ia_conn_state_now(const ia_conn *conn);

/* Called once when the connection leaves CONNECTED, with the new state and
 * why (`why->code`: IA_CONNECTION_LOST, a protocol error's code, the
 * slave's Goodbye code, IA_OK for a graceful disconnect; `why` is valid
 * during the call). It runs on the thread that noticed -- the I/O thread,
 * a thread blocked in a call on the connection, or the caller of
 * ia_conn_disconnect(), ia_conn_free() or ia_master_free() -- after every
 * pending task has ended, and must not block. */
typedef void (*ia_conn_state_fn)(ia_conn *conn, ia_conn_state state, const ia_error *why, void *user);

/* Registers the state callback (one per connection; a second replaces the
 * first). If the connection has already ended, fn runs at once on this
 * thread. */
IA_MUST_CHECK ia_code ia_conn_on_state(ia_conn *conn, ia_conn_state_fn fn, void *user);

/*
 * Graceful disconnect (the original's `del master[name]`): sends Disconnect
 * with `data` and waits up to timeout_ms. The slave's before_disconnection
 * hook may refuse (IA_DISCONNECTION_REFUSED, the connection stays up). On
 * success, or IA_TIMEOUT (then the connection is closed anyway), the name
 * is free for reuse; the handle stays the caller's. Blocking.
 */
IA_MUST_CHECK ia_code ia_conn_disconnect(ia_conn *conn, const void *data, size_t len, uint32_t timeout_ms,
                                         ia_error *err);

/* Sends a Ping and waits up to timeout_ms for the Pong; *rtt_us (may be
 * NULL) gets the round trip in microseconds. Blocking. */
IA_MUST_CHECK ia_code ia_conn_ping(ia_conn *conn, uint32_t timeout_ms, uint64_t *rtt_us, ia_error *err);

/* Drops the handle ia_master_connect() gave. A still-live connection is
 * closed at once with a Goodbye (pending tasks end LOST; the slave closes
 * it as a master that left, not one it lost). Tasks made on it stay valid
 * until they are freed. NULL is allowed. */
void ia_conn_free(ia_conn *conn);

/* ---- tasks ---- */

typedef enum ia_status {
  IA_STATUS_IDLE = 0,
  IA_STATUS_STARTING,     /* sent, no answer yet */
  IA_STATUS_STARTED,      /* the slave holds it in a slot */
  IA_STATUS_START_FAILED, /* refused or not sent; ia_task_error() says why */
  IA_STATUS_COMPLETED,    /* ia_task_result() holds the result */
  IA_STATUS_FAILED,       /* TaskFail: code, message and result in ia_task_error() */
  IA_STATUS_LOST,         /* the connection went away */
  IA_STATUS_TIMED_OUT,    /* the deadline passed */
  IA_STATUS_CANCELLED,
} ia_status;

/* The status's name ("COMPLETED"); static, never NULL. */
const char *ia_status_name(ia_status status);
/* True for START_FAILED and every status after it. */
bool ia_status_is_terminal(ia_status status);

/* A task callback. `user` is what was registered with it, never touched by
 * the library. A callback may free its own task (ia_task_free): the library
 * keeps it alive until its last callback returned, and the later callbacks
 * still run. */
typedef void (*ia_task_cb)(ia_task *task, void *user);

/* A new task in IDLE; `method` and `payload` are copied. The task is the
 * caller's, released with ia_task_free(); it holds its connection alive.
 * NULL if out of memory or an argument is NULL. */
IA_MUST_CHECK ia_task *ia_conn_new_task(ia_conn *conn, const char *method, const void *payload, size_t len);

/* Registers callbacks for COMPLETED (on_complete) or any other terminal
 * status (on_fail). Several may be added; they run in registration order,
 * all before ia_task_join() returns, on the thread that ended the task: the
 * master's I/O thread, a thread blocked in a call on the same connection,
 * or -- when the task cannot be sent -- the caller of ia_task_start(),
 * before it returns. They must not block; they may start other tasks and
 * free their own. Only while the task is IDLE (IA_INVALID_ARGUMENT after),
 * by the thread that owns it. */
IA_MUST_CHECK ia_code ia_task_on_complete(ia_task *task, ia_task_cb cb, void *user);
IA_MUST_CHECK ia_code ia_task_on_fail(ia_task *task, ia_task_cb cb, void *user);

/* Sends the task without blocking (what the socket does not take at once is
 * queued and sent by the I/O thread). If it cannot be sent -- the connection
 * is down, the frame is larger than the slave's max_frame, no memory -- the
 * task ends at once in START_FAILED, its on_fail callbacks run on this
 * thread before this returns (they may free the task), and the code is
 * returned. IA_INVALID_ARGUMENT if the task is not IDLE. Callable from a
 * callback. */
IA_MUST_CHECK ia_code ia_task_start(ia_task *task);

/* Waits up to timeout_ms (UINT32_MAX: no limit) for a terminal status with
 * every callback run. Returns IA_OK when terminal, IA_TIMEOUT otherwise (the
 * task itself goes on), IA_INVALID_ARGUMENT if it was never started or this
 * is the I/O thread. */
IA_MUST_CHECK ia_code ia_task_join(ia_task *task, uint32_t timeout_ms);

/* Waits until every one of the n started tasks is terminal, whatever its
 * status, within timeout_ms in all (UINT32_MAX: no limit): IA_OK, or
 * IA_TIMEOUT if some are not, and IA_INVALID_ARGUMENT as ia_task_join()
 * (or n == 0). Then read each task's status. */
IA_MUST_CHECK ia_code ia_task_join_all(ia_task *const *tasks, size_t n, uint32_t timeout_ms);
/* Waits until one of the n started tasks is terminal, within timeout_ms:
 * IA_OK with the index of the first terminal one in *index, or IA_TIMEOUT.
 * The tasks must be of one master; not on its I/O thread. For batched
 * completions: handle tasks[*index], take it out of the array (or start a
 * new one in its place) and wait again. */
IA_MUST_CHECK ia_code ia_task_wait_any(ia_task *const *tasks, size_t n, uint32_t timeout_ms, size_t *index);

/* The task's status now. */
ia_status ia_task_status(const ia_task *task);
/* The result payload (COMPLETED) or NULL; owned by the task, valid until
 * ia_task_free(). Read it once the task is terminal. */
const uint8_t *ia_task_result(const ia_task *task, size_t *len);
/* Why the task did not complete: code (never IA_OK), message, and the data
 * the slave sent (TaskFail's result, a refusal's data). Owned by the task,
 * valid until ia_task_free(). Read it once the task is terminal. */
const ia_error *ia_task_error(const ia_task *task);
/* Asks the slave to cancel a started task (a Cancel frame, sent without
 * blocking); the handler sees it through ia_task_ctx_cancelled() and the
 * task usually ends CANCELLED. IA_INVALID_ARGUMENT if the task is not
 * running. Callable from a callback. */
IA_MUST_CHECK ia_code ia_task_cancel(ia_task *task);
/* Gives the task a deadline: the time it may take from ia_task_start()
 * (0 or UINT32_MAX: none, the default). The slave hears what is left as
 * Task.deadline_ms, its handler reads it with ia_task_ctx_deadline_ms(), and
 * an overdue task is cancelled there and answered with 607
 * DEADLINE_EXCEEDED; the master ends the task TIMED_OUT (code 607) at the
 * deadline whatever the slave does (within the loop's 50 ms tick). Only
 * while IDLE (IA_INVALID_ARGUMENT after). */
IA_MUST_CHECK ia_code ia_task_set_deadline(ia_task *task, uint32_t deadline_ms);
/* Adds a metadata entry (key and value copied) that the handler reads with
 * ia_task_ctx_metadata(). Only while IDLE. IA_NO_MEMORY if it cannot be
 * copied. */
IA_MUST_CHECK ia_code ia_task_add_metadata(ia_task *task, const char *key, const char *value);

/* Releases the caller's task. A running task goes on; its outcome is
 * dropped and its callbacks still run. NULL is allowed. Callable from a
 * callback, the task's own included. */
void ia_task_free(ia_task *task);

/* One metadata entry of a task. */
typedef struct ia_metadata {
  const char *key;
  const char *value;
} ia_metadata;

/* Options of a call or a task; NULL means the defaults. */
typedef struct ia_call_opts {
  /* A blocking call's bound: 0 means IA_CALL_DEFAULT_TIMEOUT_MS, UINT32_MAX
   * no limit. It is also the task's deadline, which the slave hears. For a
   * task (ia_task_set_opts, the generated _task and _start forms) it is the
   * deadline only, and 0 means none. */
  uint32_t timeout_ms;
  const ia_metadata *metadata; /* n_metadata entries sent with the task (copied) */
  size_t n_metadata;
} ia_call_opts;

/* Applies opts to an IDLE task: its timeout as the deadline
 * (ia_task_set_deadline), its metadata (ia_task_add_metadata). NULL is
 * allowed. */
IA_MUST_CHECK ia_code ia_task_set_opts(ia_task *task, const ia_call_opts *opts);

#define IA_CALL_DEFAULT_TIMEOUT_MS 60000u

/* The timeout that `opts` asks for (NULL allowed). */
uint32_t ia_call_opts_timeout(const ia_call_opts *opts);

/*
 * One blocking call: sends `method` with the request (read, not kept),
 * waits up to timeout_ms and returns IA_OK with the reply in *reply
 * (malloc'd, free() it) or the code of what happened instead, with details
 * in `err` (TaskFail's result is err->data). The timeout is also the
 * task's deadline, which the slave hears and stops the task at. Either way
 * -- the slave's 607 first, or nothing by the timeout -- the call returns
 * IA_TIMEOUT within about a millisecond of it; on the master's side the
 * task is cancelled and abandoned and a late answer is dropped. Not on the
 * I/O thread.
 */
IA_MUST_CHECK ia_code ia_call(ia_conn *conn, const char *method, const void *req, size_t len, void **reply,
                              size_t *reply_len, uint32_t timeout_ms, ia_error *err);
/* ia_call() with options: the bound (and deadline) and the metadata of
 * `opts` (NULL: the defaults). */
IA_MUST_CHECK ia_code ia_call_with(ia_conn *conn, const char *method, const void *req, size_t len,
                                   void **reply, size_t *reply_len, const ia_call_opts *opts, ia_error *err);

#ifdef __cplusplus
}
#endif
#endif
