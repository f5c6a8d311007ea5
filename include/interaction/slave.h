/*
 * The slave: the task-executing end. It listens, accepts one master at a
 * time, and runs each task's handler on a worker thread while its I/O loop
 * keeps answering pings, refusing new tasks and noticing a lost master.
 *
 * Threads. The lifecycle functions (new, start, join, free, run, register)
 * are called by the program's own threads, one at a time per slave;
 * ia_slave_shutdown() and ia_slave_port() from any thread. Handlers run on
 * the slave's worker thread; hooks on the I/O thread or the worker. Neither
 * may call ia_slave_join() or ia_slave_free() on its own slave.
 *
 * Ownership. The config and every string in it are copied; `user` is
 * passed back untouched. Everything a handler gets from an ia_task_ctx is
 * owned by the slave and valid only until the handler returns.
 */
#ifndef INTERACTION_SLAVE_H
#define INTERACTION_SLAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "interaction/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ia_slave ia_slave;

/* The handler's view of one task. Valid only during the handler (and the
 * before_task hook) call it is passed to. */
typedef struct ia_task_ctx ia_task_ctx;

/* What a refusing hook sends back: a message and optional data (copied). */
typedef struct ia_hook_reply ia_hook_reply;

/* Task modes of shared/DESIGN.md: how many tasks run at once, and what
 * happens to one that comes while they all run.
 *   NONBLOCKING_SINGLE  1 at a time; another is refused (601). The default.
 *   NONBLOCKING_MULTI   `workers` at a time; another is refused (601).
 *   BLOCKING_SINGLE     1 at a time; others wait in a FIFO queue of `queue`
 *                       (full: 605) and run in order.
 *   BLOCKING_MULTI      `workers` at a time, and the queue.
 * A task waiting in the queue can be cancelled (608) and outlived by its
 * deadline (607, never run); a master that goes away takes its waiting
 * tasks with it (never run). */
typedef enum ia_mode {
  IA_MODE_NONBLOCKING_SINGLE = 0,
  IA_MODE_NONBLOCKING_MULTI = 1,
  IA_MODE_BLOCKING_SINGLE = 2,
  IA_MODE_BLOCKING_MULTI = 3,
} ia_mode;

/* A mode's name as sum-slave's --mode spells it ("nonblocking-single",
 * ...), "unknown" for anything else. */
const char *ia_mode_name(uint32_t mode);

/* ---- statistics (ia_slave_stats_get, and /metrics) ---- */

/* How a task ended: its outcome index. */
enum {
  IA_STATS_COMPLETED = 0,     /* a result */
  IA_STATS_FAILED,            /* TaskFail for the handler's own reason */
  IA_STATS_ERROR,             /* no valid outcome: TASK_ERROR */
  IA_STATS_CANCELLED,         /* by its master, or by the slave's shutdown */
  IA_STATS_DEADLINE_EXCEEDED, /* 607 */
  IA_STATS_OUTCOMES
};
/* Why a task was refused: its refusal index. */
enum {
  IA_STATS_REFUSED_BUSY = 0,       /* 601 */
  IA_STATS_REFUSED_QUEUE_FULL,     /* 605 */
  IA_STATS_REFUSED_UNKNOWN_METHOD, /* 606 */
  IA_STATS_REFUSED_HOOK,           /* 602, the before_task hook */
  IA_STATS_REFUSED_SHUTTING_DOWN,  /* 101 */
  IA_STATS_REFUSALS
};
/* The names /metrics uses for them ("completed", "busy", ...); NULL out
 * of range. The duration buckets are IA_STATS_BUCKETS (status.h). */
const char *ia_stats_outcome_name(int outcome);
const char *ia_stats_refusal_name(int reason);

typedef struct ia_method_stats {
  char method[128];                         /* "" for tasks the config's catch-all handler ran */
  uint64_t tasks[IA_STATS_OUTCOMES];        /* ended tasks by outcome (run or not) */
  uint64_t durations[IA_STATS_BUCKETS + 1]; /* handler runs by duration bucket; not cumulative, the last is
                                               over every bound */
  double duration_sum_s;
} ia_method_stats;

typedef struct ia_slave_stats {
  uint64_t refusals[IA_STATS_REFUSALS];
  uint32_t running, queued; /* tasks now */
  uint32_t connections;     /* handshaken now: the master and observers */
  uint64_t received_bytes, sent_bytes;
  size_t n_methods;         /* the registered methods in order, then "" */
  ia_method_stats *methods; /* released by ia_slave_stats_clear() */
} ia_slave_stats;

/* A snapshot of the slave's counters. Any thread. */
IA_MUST_CHECK ia_code ia_slave_stats_get(ia_slave *slave, ia_slave_stats *out);
void ia_slave_stats_clear(ia_slave_stats *stats);
/* The port /metrics and /healthz are served on (metrics_addr), 0 if none. */
uint16_t ia_slave_metrics_port(const ia_slave *slave);

/*
 * Runs one task on the worker thread. It must end by calling exactly one of
 * ia_task_ctx_reply() or ia_task_ctx_fail(); a handler that calls neither, or
 * fails with IA_OK, is reported to the master as IA_TASK_ERROR.
 */
typedef void (*ia_handler_fn)(ia_task_ctx *task, void *user);

/* Hooks run on a slave thread (the I/O thread, or the worker that read the
 * frame) and must not block. Each returns true to accept, false to refuse
 * (the refusal carries what was set on `refusal`). Pointers passed in are
 * valid only during the call. */
typedef bool (*ia_before_connection_fn)(const char *master_name, const uint8_t *data, size_t len,
                                        ia_hook_reply *refusal, void *user);
typedef bool (*ia_before_disconnection_fn)(const char *master_name, const uint8_t *data, size_t len,
                                           ia_hook_reply *refusal, void *user);
typedef bool (*ia_before_task_fn)(const ia_task_ctx *task, ia_hook_reply *refusal, void *user);
/* The master vanished (reset, EOF without Goodbye, protocol error, silent
 * past the heartbeat tolerance). I/O thread. */
typedef void (*ia_lost_connection_fn)(const char *master_name, ia_code why, void *user);

typedef struct ia_slave_config {
  const char *host; /* address to bind; NULL means 127.0.0.1 */
  uint16_t port;    /* 0 picks a free port: read it with ia_slave_port() */
  uint32_t channel; /* a master must present the same channel */
  const char *name; /* sent in Welcome; NULL means "slave" */
  ia_mode mode;     /* IA_MODE_NONBLOCKING_SINGLE by default */
  uint32_t workers; /* the multi modes: tasks at once (0: 4; at most 256); else 0 or 1 */
  uint32_t queue;   /* the blocking modes: tasks that may wait (0: 16; at most 65536); else 0 */
  /* "HOST:PORT" to serve Prometheus text at /metrics and a probe at
   * /healthz (200 while serving, 503 once shutting down) over HTTP; port 0
   * picks a free one (ia_slave_metrics_port()). NULL: none. */
  const char *metrics_addr;
  /* The shared secret masters must prove they hold (HMAC-SHA256
   * challenge-response; the secret never crosses the wire): a file of its
   * bytes (one trailing newline dropped), read by ia_slave_new(). NULL: the
   * IA_SECRET environment variable if it is set, else no secret -- any
   * master that reaches the slave may run its tasks. A master without the
   * secret is refused with IA_TOKEN_NOT_FOUND, one with a wrong one with
   * IA_TOKEN_INVALID, before anything else it asks is considered. */
  const char *secret_file;
  /* TLS 1.3 (OpenSSL): the slave's certificate chain and its private key,
   * PEM files read by ia_slave_new(); both or neither. With them every
   * connection begins with a TLS handshake, and a master that speaks plain
   * frames is told IA_TOKEN_NOT_FOUND ("this slave requires TLS") and
   * closed. NULL: plain TCP. */
  const char *tls_cert;
  const char *tls_key;
  /* A CA file (PEM): with it (and tls_cert) a master must present a client
   * certificate that CA signed (mutual TLS). NULL: none is asked for. */
  const char *tls_ca;
  uint32_t max_frame; /* largest accepted frame; 0 means 64 MiB (cap 1 GiB) */
  uint32_t grace_ms;  /* shutdown grace before running tasks are cancelled */
  uint32_t
      hello_timeout_ms; /* a connection must have finished its handshake this long after it was accepted */
  uint32_t
      max_pending; /* connections still in their handshake at once (0: 64); a new one closes the oldest */
  /* Heartbeats (either 0: off). A master that proposes them in its Hello
   * gets the longer interval and the longer tolerance of the two ends (off
   * if either has them off); the slave answers its Pings, and drops it --
   * lost_connection with IA_CONNECTION_LOST, the running task cancelled --
   * once nothing at all came from it for the tolerance. */
  uint32_t heartbeat_ms;
  uint32_t heartbeat_tolerance_ms;
  ia_handler_fn handler;
  ia_before_connection_fn before_connection;
  ia_before_disconnection_fn before_disconnection;
  ia_before_task_fn before_task;
  ia_lost_connection_fn lost_connection;
  void *user; /* passed to the handler and to every hook */
} ia_slave_config;

/* Fills a config with the defaults (127.0.0.1:0, channel 0, 64 MiB frames,
 * 2 s grace, 10 s hello timeout, 64 pending connections, the default
 * heartbeat: IA_HEARTBEAT_DEFAULT_MS, IA_HEARTBEAT_TOLERANCE_DEFAULT_MS). */
void ia_slave_config_init(ia_slave_config *config);

/*
 * Creates a slave from `config` (copied; strings duplicated). The slave is
 * not listening until ia_slave_start(). *out is the caller's, released with
 * ia_slave_free(). IA_INVALID_ARGUMENT for an unknown mode, or workers or
 * queue that the mode does not have.
 */
IA_MUST_CHECK ia_code ia_slave_new(const ia_slave_config *config, ia_slave **out, ia_error *err);

/* Binds, starts the I/O and worker threads, and returns once connections are
 * accepted. Once per slave. */
IA_MUST_CHECK ia_code ia_slave_start(ia_slave *slave, ia_error *err);

/* The bound port (useful with port 0); 0 before start. Any thread. */
uint16_t ia_slave_port(const ia_slave *slave);

/* Asks the slave to stop: it stops accepting, lets a running task finish for
 * the grace period, then cancels it, says Goodbye to its master and closes.
 * Returns at once. Any thread, a handler or hook included. */
void ia_slave_shutdown(ia_slave *slave);

/* Waits until everything started by ia_slave_start() has stopped. Returns at
 * once if the slave was never started. Not from a handler or hook. */
void ia_slave_join(ia_slave *slave);

/* Shuts down, joins and releases the slave. NULL is allowed. Not from a
 * handler or hook. */
void ia_slave_free(ia_slave *slave);

/*
 * The seed's `with` block: starts the slave if it is not started, serves
 * until ia_slave_shutdown() or SIGINT/SIGTERM arrives, then shuts down and
 * joins. The caller still frees the slave. Call from the main thread. A
 * program that does something between ia_slave_start() and ia_slave_run()
 * (prints its port, say) blocks SIGINT and SIGTERM before ia_slave_start(),
 * or a signal that comes in between ends it the default way.
 */
IA_MUST_CHECK ia_code ia_slave_run(ia_slave *slave, ia_error *err);

/*
 * Registers a handler for one method name (for typed services,
 * "package.Service/Method"). A task whose method has a registered handler
 * runs it; any other runs the config's handler, and with none the master
 * gets IA_UNKNOWN_METHOD. `method` is copied; `user` is passed to fn. Call
 * before ia_slave_start() (IA_INVALID_ARGUMENT after); registering the same
 * method again replaces its handler.
 */
IA_MUST_CHECK ia_code ia_slave_register(ia_slave *slave, const char *method, ia_handler_fn fn, void *user);

/* Zeroed memory owned by the slave, released by ia_slave_free(): for
 * bindings that must live as long as the slave (generated stubs keep their
 * handler tables here). NULL if out of memory. Before ia_slave_start(). */
IA_MUST_CHECK void *ia_slave_alloc(ia_slave *slave, size_t size);

/* ---- inside a handler or hook ---- */

/* The method name; NUL-terminated, never NULL, valid until the handler returns. */
const char *ia_task_ctx_method(const ia_task_ctx *task);
/* The request payload, valid until the handler returns (read-only). */
const uint8_t *ia_task_ctx_payload(const ia_task_ctx *task, size_t *len);
/* A metadata value by key, or NULL; valid until the handler returns. */
const char *ia_task_ctx_metadata(const ia_task_ctx *task, const char *key);
/* The frame id of the task (unique per connection). */
uint64_t ia_task_ctx_id(const ia_task_ctx *task);

/* `size` bytes (not zeroed, 16-byte aligned) that live as long as the task:
 * to build a reply in. A small one comes from the task's own arena, a
 * larger one from malloc; all are released with the task, never by the
 * handler. A reply or fail result that lies in this memory is sent from
 * where it lies, not copied. NULL if out of memory. Handler's thread only. */
IA_MUST_CHECK void *ia_task_ctx_alloc(ia_task_ctx *task, size_t size);

/* Sets the result payload (copied unless it lies in ia_task_ctx_alloc()
 * memory: the handler may free its own at once).
 * IA_INVALID_ARGUMENT if the task already has an outcome (it is then
 * reported as TASK_ERROR), IA_NO_MEMORY if it cannot be copied. Handler's
 * thread only. */
IA_MUST_CHECK ia_code ia_task_ctx_reply(ia_task_ctx *task, const void *payload, size_t len);
/* Fails the task on purpose (the original's TaskFail): code (non-zero),
 * message (copied, may be NULL) and a result payload (copied, may be
 * empty). The same errors as ia_task_ctx_reply(). */
IA_MUST_CHECK ia_code ia_task_ctx_fail(ia_task_ctx *task, ia_code code, const char *message,
                                       const void *result, size_t len);
/* What is left of the task's deadline, in ms: UINT32_MAX when it has
 * none, 0 once it passed (the task is then cancelled). */
uint32_t ia_task_ctx_deadline_ms(const ia_task_ctx *task);
/* True once the master cancelled the task, the master went away, its
 * deadline passed, or the slave's grace ran out. A handler that then gives
 * up (fails with IA_CANCELLED, say) is reported for what stopped it: 607
 * DEADLINE_EXCEEDED, 101 SHUTTING_DOWN, or 608 CANCELLED when its master
 * asked. */
bool ia_task_ctx_cancelled(const ia_task_ctx *task);
/* Sleeps up to `ms`, waking early on cancellation. Returns true if the whole
 * time passed, false if the task was cancelled. */
bool ia_task_ctx_sleep(ia_task_ctx *task, uint32_t ms);

/* Sets a hook's refusal message and data (both copied; either may be NULL). */
void ia_hook_reply_set(ia_hook_reply *reply, const char *message, const void *data, size_t len);

/* What ia_slave_main() needs to know about one slave program. */
typedef struct ia_slave_main_spec {
  const char *program;      /* "sum-slave": usage line and error prefix */
  const char *default_name; /* the default of --name */
  const char *name_help;    /* the help text of --name, after its default */
  const char *about;        /* the last lines of --help: what the program serves */
  /* Registers the program's handlers on `slave` before it starts. `config`
   * is the parsed configuration, valid until ia_slave_main() returns. */
  ia_code (*serve)(ia_slave *slave, const ia_slave_config *config, void *user);
  void *user; /* passed to serve; must outlive ia_slave_main() */
} ia_slave_main_spec;

/* The whole main() of a slave program:
 *
 *   PROGRAM --host H --port P --channel C [--grace-ms N] [--name NAME]
 *           [--heartbeat-ms N] [--heartbeat-tolerance-ms N]
 *           [--mode M] [--workers N] [--queue N] [--metrics HOST:PORT]
 *           [--secret-file PATH] [--tls-cert PATH --tls-key PATH [--tls-ca PATH]]
 *
 * Parses the command line (exit status 0 after --help, 2 on a usage error),
 * blocks SIGINT and SIGTERM, creates the slave, lets spec->serve register the
 * handlers, starts it, prints exactly one line `listening on H:P` (the port
 * actually bound) and flushes stdout, then serves until SIGINT or SIGTERM.
 * Returns the exit status: 0 after a clean shutdown, 1 on any error (said on
 * stderr). The slave is freed before it returns. It uses getopt_long()
 * (optind is reset to 1 first): call it from main(), once. */
int ia_slave_main(int argc, char **argv, const ia_slave_main_spec *spec);

#ifdef __cplusplus
}
#endif
#endif
