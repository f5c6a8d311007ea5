/*
 * The master: the task-issuing end. It dials slaves, keeps a registry of live
 * connections by name, and runs tasks on them: blocking (ia_call) or
 * asynchronous (ia_task_start / ia_task_join), many slaves at once from one
 * I/O thread.
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
  uint32_t max_frame; /* largest accepted frame; 0 means 64 MiB (cap 1 GiB) */
} ia_master_config;

void ia_master_config_init(ia_master_config *config);

/* Creates a master (config copied). Free with ia_master_free(). */
IA_MUST_CHECK ia_code ia_master_new(const ia_master_config *config, ia_master **out, ia_error *err);
/* Starts the I/O thread. */
IA_MUST_CHECK ia_code ia_master_start(ia_master *master, ia_error *err);
/* Disconnects every slave, ends pending tasks with SHUTTING_DOWN. Thread-safe. */
void ia_master_shutdown(ia_master *master);
/* Waits until the I/O thread stopped. */
void ia_master_join(ia_master *master);
/* Shuts down, joins and frees the master together with every connection the
 * user has not freed (those handles are dead afterwards). Free every task
 * first. NULL is allowed. */
void ia_master_free(ia_master *master);

/*
 * Dials host:port, says Hello and waits for Welcome, all within timeout_ms.
 * `name` must be unique among live connections (IA_ALREADY_CONNECTED
 * otherwise). On refusal (channel mismatch, before_connection hook, a busy
 * slave) the code, message and the slave's data come back in `err` and
 * nothing is registered. On success *out is the connection; release it with
 * ia_conn_free(). Blocking; thread-safe.
 */
IA_MUST_CHECK ia_code ia_master_connect(ia_master *master, const char *name, const char *host, uint16_t port,
                                        const void *data, size_t len, uint32_t timeout_ms, ia_conn **out,
                                        ia_error *err);

/* The live connection registered under `name`, or NULL. The pointer is
 * borrowed: valid until its owner calls ia_conn_free(). Thread-safe. */
ia_conn *ia_master_find(ia_master *master, const char *name);

/* The connection's name; valid as long as the connection. */
const char *ia_conn_name(const ia_conn *conn);
/* True while the TCP connection is up and handshaken. Thread-safe. */
bool ia_conn_is_connected(const ia_conn *conn);

/*
 * Graceful disconnect (the original's `del master[name]`): sends Disconnect
 * with `data` and waits up to timeout_ms. The slave's before_disconnection
 * hook may refuse (IA_DISCONNECTION_REFUSED, connection stays up). On success
 * the name is free for reuse. Blocking; thread-safe.
 */
IA_MUST_CHECK ia_code ia_conn_disconnect(ia_conn *conn, const void *data, size_t len, uint32_t timeout_ms,
                                         ia_error *err);

/* Sends a Ping and waits up to timeout_ms for the Pong; *rtt_us (may be
 * NULL) gets the round trip in microseconds. Blocking; thread-safe. */
IA_MUST_CHECK ia_code ia_conn_ping(ia_conn *conn, uint32_t timeout_ms, uint64_t *rtt_us, ia_error *err);

/* Drops the caller's handle. A still-live connection is closed at once
 * (pending tasks end LOST). NULL is allowed. */
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

const char *ia_status_name(ia_status status);
/* True for START_FAILED and every status after it. */
bool ia_status_is_terminal(ia_status status);

typedef void (*ia_task_cb)(ia_task *task, void *user);

/* A new task in IDLE; `method` and `payload` are copied. Free with
 * ia_task_free(). NULL if out of memory. Thread-safe. */
ia_task *ia_conn_new_task(ia_conn *conn, const char *method, const void *payload, size_t len);

/* Registers callbacks for COMPLETED (on_complete) or any other terminal
 * status (on_fail). Several may be added; they run in registration order,
 * all before ia_task_join() returns, on the thread that read the reply: the
 * master's I/O thread, or a thread blocked in a call on the same connection.
 * They must not block; they may start other tasks. Only while the task is
 * IDLE. */
IA_MUST_CHECK ia_code ia_task_on_complete(ia_task *task, ia_task_cb cb, void *user);
IA_MUST_CHECK ia_code ia_task_on_fail(ia_task *task, ia_task_cb cb, void *user);

/* Sends the task. Never blocks. If it cannot be sent the task ends at once in
 * START_FAILED (callbacks run on this thread) and the code is returned. */
ia_code ia_task_start(ia_task *task);

/* Waits up to timeout_ms (UINT32_MAX: no limit) for a terminal status with
 * every callback run. Returns IA_OK when terminal, IA_TIMEOUT otherwise; the
 * task itself goes on. Not callable from a callback of the same master. */
IA_MUST_CHECK ia_code ia_task_join(ia_task *task, uint32_t timeout_ms);

/* The task's status now. Thread-safe. */
ia_status ia_task_status(const ia_task *task);
/* The result payload (COMPLETED) or NULL; valid until ia_task_free(). */
const uint8_t *ia_task_result(const ia_task *task, size_t *len);
/* Why the task did not complete: code, message, and the data the slave sent
 * (TaskFail's result, a refusal's data). Valid until ia_task_free(). */
const ia_error *ia_task_error(const ia_task *task);
/* Asks the slave to cancel a started task (a Cancel frame); the handler sees
 * it through ia_task_ctx_cancelled() and the task usually ends CANCELLED.
 * IA_INVALID_ARGUMENT if the task is not running. Thread-safe. */
ia_code ia_task_cancel(ia_task *task);
/* Releases the task. A running task goes on; its outcome is dropped. */
void ia_task_free(ia_task *task);

/* Options of a call; NULL means the defaults. */
typedef struct ia_call_opts {
  uint32_t timeout_ms; /* 0 means IA_CALL_DEFAULT_TIMEOUT_MS; UINT32_MAX, no limit */
} ia_call_opts;

#define IA_CALL_DEFAULT_TIMEOUT_MS 60000u

/* The timeout that `opts` asks for (NULL allowed). */
uint32_t ia_call_opts_timeout(const ia_call_opts *opts);

/*
 * One blocking call: sends `method` with the request, waits up to timeout_ms
 * and returns IA_OK with the reply in *reply (malloc'd, free() it) or the
 * code of what happened instead, with details in `err` (TaskFail's result is
 * err->data). Thread-safe.
 */
IA_MUST_CHECK ia_code ia_call(ia_conn *conn, const char *method, const void *req, size_t len, void **reply,
                              size_t *reply_len, uint32_t timeout_ms, ia_error *err);

#ifdef __cplusplus
}
#endif
#endif
