/*
 * slave: the task-executing end. Its parts, one file each:
 *
 *   slave.c     lifecycle and config: new, start, shutdown (grace, Goodbye),
 *               join, free, run; the method table
 *   conn.c      connections: accept (with a cap on those still in their
 *               handshake, and a back-off when descriptors run out), the
 *               handshake deadline, send, refuse, fail, close, deferred free
 *   dispatch.c  the one frame-dispatch loop both readers run, and the
 *               control frames (Hello, Cancel, Disconnect, Ping, Goodbye);
 *               observers beside the master
 *   slot.c      the task slot: admission, running a task, the
 *               Accepted-before-outcome rule, the watchdog's look
 *   pool.c      the workers and queue of the other three modes, and
 *               their reading worker's run of a task
 *   auth.c      the slave's side of authentication with the shared secret
 *   tls.c       TLS: the context, and each connection's handshake on the loop
 *   stats.c     the counters and their snapshot; metrics.c serves them as
 *               Prometheus text at /metrics, and /healthz, over HTTP
 *   reader.c    the read side: the worker thread, the loop's reads, and the
 *               hand-off of a socket between them
 *   task_ctx.c  the handler's view of a task, and its outcome as a frame
 *   watchdog.c  the process's watchdog thread (knows nothing of the slave)
 *   beat.c      liveness: the heartbeat setting agreed with a master, and
 *               the loop's timer that drops a master gone silent or
 *               stalled in the middle of a frame
 *
 * Threads. One libevent loop thread owns the listener, the timers, the
 * connections still in their handshake, and the freeing of connections. One
 * worker thread runs handlers (`workers` of them in the multi modes; in the
 * default mode a second, the relief, is started at the first long task to
 * read while it runs). The master's socket is read by the loop or by one
 * worker, whichever holds its read side (`reader` and `reading`, under the
 * slave's mutex); see reader.c. Tasks never run on the loop.
 *
 * Locks. The slave's mutex `mu` guards everything marked (mu). A
 * connection's write stream has its own lock, always taken after `mu` and
 * never held while waiting (runtime/wstream.h). The loop never blocks on a
 * peer: it only sends without blocking.
 */
#ifndef IA__SLAVE_INTERNAL_H
#define IA__SLAVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "interaction/slave.h"
#include "runtime/auth.h"
#include "runtime/beat.h"
#include "runtime/http.h"
#include "slave/stats.h"
#include "runtime/epset.h"
#include "runtime/runtime-internal.h"
#include "runtime/wire.h"
#include "runtime/wstream.h"
#include "slave/watchdog.h"

struct event;
struct event_base;
struct evconnlistener;
struct sockaddr;

#define IA__SEND_BOUND_MS 10000u         /* a master that takes nothing for this long is dropped */
#define IA__MAX_PENDING_DEFAULT 64u      /* connections in their handshake at once */
#define IA__SLAVE_QUEUE_LIMIT (1u << 20) /* bytes a master may leave unread before it is dropped */
#define IA__MAX_OBSERVERS 8u             /* observers welcomed at once, beside the master */

struct ia_hook_reply {
  char *message;
  uint8_t *data;
  size_t len;
};
void ia__hook_reply_release(ia_hook_reply *r);

/* Who holds a connection's read side, and who is calling. */
typedef enum ia__reader { IA__RD_LOOP = 0, IA__RD_WORKER } ia__reader;

/* How far a connection's authentication went (auth.c). */
typedef enum ia__auth_step { IA__AUTH_NONE = 0, IA__AUTH_CHALLENGED, IA__AUTH_PROVEN } ia__auth_step;

typedef struct ia__sconn {
  ia_slave *slave;
  int fd;
  uint64_t gen;             /* unique per slave: the epoll set's key */
  struct ia__tls *tls;      /* TLS on fd (the slave serves TLS), or NULL; up once out.tls is set (tls.c) */
  bool plain_peer;          /* loop: it spoke plain frames to a TLS slave, and is told so in plain */
  bool handshaken;          /* set by the loop when it accepts the Hello, before any hand-off */
  bool observer;            /* its Hello asked to observe: read by the loop only, never a task (loop) */
  ia__reader reader;        /* (mu) */
  bool reading;             /* (mu) a worker reads it now (its reader is IA__RD_WORKER): no other may */
  struct ia_task_ctx *lead; /* (mu) pool.c: the task that worker runs itself, while it holds the read side */
  uint32_t ep;              /* (mu) what the loop's epoll set watches for it */
  atomic_bool closing;      /* (written under mu) */
  bool lost;                /* (mu) fire lost_connection when freed */
  ia_code lost_code;        /* (mu) */
  int tasks;                /* (mu) its tasks in the slot: it lives until they end */
  uint32_t peer_max_frame;
  ia__live live; /* rx, mid, frames, mid_said are the reader's; the rest the loop's */
  ia__inbuf in;  /* the reader's */
  ia__ws out;
  /* The rest is read by the handshake, the heartbeat and log lines: after
   * what every task reads, so that a task touches fewer cache lines of c. */
  char *master_name;           /* written before the hand-off to the worker, then read only */
  ia__beat beat;               /* agreed in the handshake, told in Welcome (loop, before the hand-off) */
  ia__beat watch;              /* what the loop watches the master with: `beat`, or the slave's own */
  bool self_ping;              /* the master proposed no heartbeats: the loop sends the Pings */
  struct event *hello_ev;      /* loop: the handshake deadline, until the Hello is accepted */
  struct event *hello_wait_ev; /* loop: looks at a Hello again that found the seat taken (dispatch.c) */
  unsigned hello_waits;        /* loop: how often it did */
  ia__auth_step auth;          /* loop: how far its authentication went (auth.c) */
  uint8_t auth_nonce[IA__AUTH_NONCE]; /* loop: the nonce the slave challenged it with */
  uint8_t *auth_hello;                /* loop: its Hello's bytes, kept until it is proven */
  size_t auth_hello_n;
  uint64_t auth_hello_id;
  struct ia__sconn *next, *prev; /* loop: every connection, in accept order */
  char addr[72];                 /* the peer's HOST:PORT (loop, at accept) */
  char label[192]; /* for log lines: "master NAME at ADDR" (loop, before the hand-off; then read only) */
} ia__sconn;

typedef struct ia__method {
  char *method;
  size_t len;
  ia_handler_fn fn;
  void *user;
  ia__mstats st; /* its tasks (stats.c) */
} ia__method;

typedef enum ia__outcome {
  IA__OUTCOME_NONE = 0,
  IA__OUTCOME_RESULT,
  IA__OUTCOME_FAIL,
  IA__OUTCOME_INVALID, /* the handler broke the contract: reported as TASK_ERROR */
} ia__outcome;

/* A metadata value handed out by ia_task_ctx_metadata(), kept until the task ends. */
typedef struct ia__md_copy {
  char *value;
  struct ia__md_copy *next;
} ia__md_copy;

#define IA__TASK_ARENA 512      /* a small request is decoded in here */
#define IA__TASK_REPLY_BUF 256  /* a small result is packed in here */
#define IA__TASK_BODY_SMALL 256 /* pool.c: a task body this small is copied in here */

struct ia_task_ctx {
  ia_slave *slave;
  struct ia_task_ctx *qnext; /* (mu) the next in the pool's queue (pool.c) */
  uint64_t id;
  ia__sconn *conn; /* the connection it arrived on, kept alive while the task holds the slot */
  ia__slice body;  /* the Task body, inside the reader's input buffer */
  ia__slice payload;
  size_t frame_len;          /* bytes of the frame at the head of that buffer */
  uint8_t *hold;             /* that buffer's storage, if the loop took the socket over */
  bool started;              /* marked running (ia__slot_starts_locked) */
  bool taken;                /* (mu) its worker lost the read side while it ran (ia__slot_long_cb) */
  const ia__method *handler; /* the method's entry in the slave's table, or NULL */
  char *method;
  ia__md_copy *md;
  struct ia__blk *blocks; /* ia_task_ctx_alloc()'s, released with the task */
  ia__outcome outcome;
  ia_code fail_code;
  char *message;
  uint8_t *out;
  size_t out_len;
  bool out_owned; /* out is ours to free */
  int out_niov;   /* pieces of the result in out_iov (ia__task_ctx_reply_vec) */
  atomic_bool cancelled;
  _Atomic int cancel_why;   /* the ia_code it was cancelled for, set before `cancelled` */
  uint64_t deadline_at;     /* monotonic ms past which it is cancelled (607); 0: none */
  ProtobufCAllocator alloc; /* the arena's (ia__task_ctx_allocator) */
  size_t arena_used;
  /* Storage that is not cleared per task: everything above is. */
  struct iovec out_iov[IA__REPLY_MAX_IOV]; /* the result as pieces: out_niov of them */
  char method_small[96];
  uint8_t body_small[IA__TASK_BODY_SMALL]; /* pool.c: a small task's own copy of its body */
  _Alignas(16) uint8_t arena[IA__TASK_ARENA];
  uint8_t reply_buf[IA__TASK_REPLY_BUF];
};
#define IA__TASK_CTX_CLEAR offsetof(ia_task_ctx, out_iov)

/* The workers and the queue of every mode but non-blocking single
 * (pool.c). One worker at a time reads the master and runs its tasks in
 * turn, as the default mode's worker does; once one of them runs long, the
 * loop takes the read side and admits each task -- to a worker, to the
 * queue, or refused -- and the workers run them and send their outcomes. */
typedef struct ia__pool {
  bool on;                  /* the mode is not non-blocking single */
  uint32_t workers;         /* tasks that run at once */
  uint32_t queue_cap;       /* tasks that may wait beyond those (blocking modes) */
  pthread_t *extra;         /* workers - 1 threads; the slave's worker is the first */
  uint32_t n_extra;         /* started */
  ia_task_ctx *head, *tail; /* (mu) admitted and not yet picked up, in order */
  uint32_t n_waiting;       /* (mu) */
  uint32_t n_running;       /* (mu) */
  uint32_t n_idle;          /* (mu) workers waiting for a task */
  ia_task_ctx **running;    /* (mu) one entry per worker, NULL while it is free */
} ia__pool;

struct ia_slave {
  ia_slave_config cfg; /* host and name point at owned copies */
  uint32_t max_frame;
  uint32_t max_pending;
  ia__beat beat;           /* the config's heartbeat setting */
  ia__secret secret;       /* masters must prove they hold it (auth.c); none if n == 0 */
  struct ia__tls_ctx *tls; /* every connection is TLS with it (tls.c); NULL: plain */
  bool tls_mutual;         /* masters must present a client certificate (tls_ca) */
  ia__method *methods;     /* fixed once started: read without a lock */
  size_t n_methods;
  void **allocs; /* ia_slave_alloc() blocks */
  size_t n_allocs;

  struct event_base *base;
  struct evconnlistener *listener; /* loop once started */
  struct event *accept_retry_ev;   /* turns the listener back on after a pause */
  uint64_t accept_warned_ms;       /* loop: when a failing accept was last logged */
  unsigned accept_pause_ms;        /* loop: the next pause after a failing accept */
  ia__epset ep;                    /* sockets the loop reads or flushes */
  pthread_t loop_thread;
  pthread_t worker;
  pthread_t relief; /* non-blocking single: a second worker, started by the loop at the first long task */
  bool relief_on;   /* loop; read by ia_slave_join once the loop is gone */
  bool started;
  bool joined;
  _Atomic uint16_t port;

  ia__sconn *conns, *conns_tail; /* loop, in accept order */
  unsigned n_pending;            /* loop: connections still in their handshake */
  uint64_t next_gen;             /* loop */
  bool finishing;                /* loop */

  pthread_mutex_t mu;
  pthread_cond_t work_cond;   /* the worker waits for a read side or a task */
  pthread_cond_t cancel_cond; /* a sleeping handler waits for its cancel */
  ia__sconn *master;          /* (mu) the handshaken master */
  unsigned n_observers;       /* (mu) handshaken observers not closing */
  unsigned n_conns;           /* (mu) handshaken connections not closing: the master and observers */
  ia__sstats stats;           /* counters (stats.c) */
  struct evhttp *http;        /* loop: /metrics and /healthz (metrics.c), or NULL */
  ia__http_face face;         /* what http serves */
  _Atomic uint16_t metrics_port;
  ia_task_ctx *slot; /* (mu) the task holding the slot (non-blocking single) */
  ia__pool pool;
  ia_task_ctx *to_run;     /* (mu) a task the loop read, for the worker */
  ia__sconn *handed;       /* (mu) the connection last handed to the workers to read (reader.c) */
  bool in_handler;         /* (mu) slot's handler runs */
  bool watched;            /* (mu) the loop was asked to take over while it runs */
  uint64_t run_seq;        /* (mu) handlers started so far */
  uint64_t wd_seq;         /* (mu) the one the watchdog saw running at its last look */
  atomic_bool worker_stop; /* (written under mu) */
  atomic_bool shutting_down;

  ia__watch watch; /* this slave's registration with the watchdog */
  bool in_watchdog;
  _Atomic(ia_task_ctx *) spare; /* a task context kept for the next task */
  struct event *long_ev;        /* the watchdog asks the loop to take over */
  struct event *close_ev;       /* frees closing connections */
  struct event *shutdown_ev;
  struct event *grace_ev;
  struct event *deadline_ev;
  struct event *beat_ev; /* looks at the master's heartbeat (beat.c) */
};

/* ---- tls.c ---- */

/* The TLS context of the config's tls_* files, if any. */
IA_MUST_CHECK ia_code ia__slave_tls_init(ia_slave *s, const ia_slave_config *config, ia_error *err);
/* c's TLS, made at accept; false if there is no memory. Loop. */
IA_MUST_CHECK bool ia__slave_tls_accept(ia__sconn *c);
/* Drives c's handshake on from the loop's read: true once it is up (and
 * c may be read), false while it goes on or once c was closed. Loop. */
bool ia__slave_tls_step(ia__sconn *c);

/* ---- slave.c ---- */

/* The method's entry, or NULL. Without a lock: the table is fixed once started. */
const ia__method *ia__slave_method(const ia_slave *s, const uint8_t *name, size_t len);
/* A released task context kept for the next task (any thread). take gives
 * NULL when there is none; keep returns false when one is kept already. */
ia_task_ctx *ia__slave_take_spare(ia_slave *s);
bool ia__slave_keep_spare(ia_slave *s, ia_task_ctx *ctx);
/* The loop looks whether shutdown can finish (no task left). Loop. */
void ia__slave_maybe_finish(ia_slave *s);

/* ---- conn.c ---- */

/* The listener's accept and error callbacks, and the retry timer's. Loop. */
void ia__sconn_accept_cb(struct evconnlistener *l, int fd, struct sockaddr *addr, int socklen, void *arg);
void ia__sconn_accept_error_cb(struct evconnlistener *l, void *arg);
void ia__sconn_accept_retry_cb(int fd, short what, void *arg);
/* Sends a frame on c: without blocking from the loop, waiting up to
 * IA__SEND_BOUND_MS from the worker. False if c failed (it is closing then). */
bool ia__sconn_send(ia__sconn *c, const ia__wframe *w, ia__reader who);
/* Names c in log lines after its Hello: "master NAME at ADDR" (or observer). */
void ia__sconn_label(ia__sconn *c, bool observer, const char *name);
/* The same without blocking, with mu held; on false the caller closes c
 * (ia__sconn_close) once it has let go of mu. */
IA_MUST_CHECK bool ia__sconn_send_nb_locked(ia__sconn *c, const ia__wframe *w);
/* Sends a Refusal (or a status-shaped body `kind`) for `id`. */
void ia__sconn_status(ia__sconn *c, uint64_t id, unsigned kind, ia_code code, const char *message,
                      const ia_hook_reply *r, ia__reader who);
/* The peer broke the protocol or sent too much: Goodbye with the code, then close. */
IA__COLD void ia__sconn_fail(ia__sconn *c, ia_code code, const char *message, ia__reader who);
/* Refuses c's handshake with `code` (the hook's reply, if any, rides along),
 * says so in the log, and closes c. Loop. */
IA__COLD void ia__sconn_refuse(ia__sconn *c, uint64_t id, ia_code code, const char *message,
                               const ia_hook_reply *r);
/* Starts closing c, from any thread: it stops being the master, its task
 * is cancelled, its socket shut down (which wakes a reader), and the loop
 * frees it once nobody reads it and no task holds it. `lost` fires
 * lost_connection then. */
IA__COLD void ia__sconn_close(ia__sconn *c, bool lost, ia_code code);
/* Writes what c's stream queued, once its socket takes it (EPOLLOUT). Loop. */
void ia__sconn_flush(ia__sconn *c);
/* Makes the loop's epoll set watch what c needs now: input while the loop
 * is its reader, output while its stream has bytes waiting. (mu) */
void ia__sconn_watch_locked(ia__sconn *c);
/* Frees c (loop, or join once the threads are gone). */
void ia__sconn_free(ia__sconn *c);
/* The loop frees every closing connection nobody reads. */
void ia__sconn_close_cb(int fd, short what, void *arg);
/* True when the slave's current master has closed its socket (it is going
 * away and its EOF is merely unread); mu held. */
bool ia__sconn_peer_gone(const ia__sconn *c);

/* ---- beat.c ---- */

/* Makes the heartbeat timer (not yet added). False if out of memory. */
IA_MUST_CHECK bool ia__slave_beat_init(ia_slave *s);
/* Starts the timer: every quarter interval (at most 250 ms) with
 * heartbeats on, every 250 ms for the stalled-frame guard alone with them
 * off. Before the loop runs. */
void ia__slave_beat_start(ia_slave *s);
/* The setting for a master that proposed `h_ms`/`h_tol` (has: it proposed
 * any), started on c: what goes into the Welcome. Loop. */
ia__beat ia__slave_beat_agree(ia__sconn *c, bool has, uint32_t h_ms, uint32_t h_tol);

/* ---- stats.c ---- */

/* Answers a StatsRequest with the slave's Stats (or a Refusal). */
void ia__stats_answer(ia__sconn *c, uint64_t id, ia__reader who);

/* ---- metrics.c ---- */

/* Binds metrics_addr and serves /metrics and /healthz on the loop's base.
 * IA_OK when there is none to serve. Before the loop runs. */
ia_code ia__metrics_start(ia_slave *s, ia_error *err);
void ia__metrics_free(ia_slave *s);

/* ---- dispatch.c ---- */

typedef enum ia__dispatch_rc {
  IA__DISPATCH_MORE,   /* every whole frame handled: read more */
  IA__DISPATCH_HANDED, /* the read side went to the other thread */
  IA__DISPATCH_CLOSED, /* the connection is closing */
} ia__dispatch_rc;

/* Handles every whole frame at the head of c->in, as `who`, which holds c's
 * read side. The one frame loop of the slave: the worker's and the loop's
 * reads both end here. */
ia__dispatch_rc ia__slave_dispatch(ia__sconn *c, ia__reader who);

/* ---- slot.c ---- */

typedef enum ia__take {
  IA__TAKE_DONE,   /* answered (refused); the frame can be consumed */
  IA__TAKE_SLOT,   /* *out holds the slot; the frame stays buffered until it ends */
  IA__TAKE_CLOSED, /* the connection is closing */
} ia__take;

/* Parses and checks a task frame at the head of c->in (the slave is not
 * shutting down, the method has a handler) and makes its context:
 * IA__TAKE_SLOT with *out, or answered (DONE), or the connection failed. */
ia__take ia__slot_admit_check(ia__sconn *c, const ia__env *env, size_t frame_len, ia__reader who,
                              ia_task_ctx **out);
/* Asks the before_task hook, if any: false if it refused (answered). */
bool ia__slot_hook(ia__sconn *c, ia_task_ctx *ctx, ia__reader who);
/* Checks a task frame at the head of c->in and takes the slot for it. */
ia__take ia__slot_admit(ia__sconn *c, const ia__env *env, size_t frame_len, ia__reader who,
                        ia_task_ctx **out);
/* Runs a task that holds the slot and whose frame is at the head of c->in,
 * frees the slot, replies and drops the frame. Worker. True if the worker
 * still holds c's read side. */
bool ia__slot_run(ia_slave *s, ia__sconn *c, ia_task_ctx *ctx);
/* The end of a task whose place is freed already: sends the outcome *w
 * (NULL: out of memory for it) if c is `open`, drops the frame if the
 * caller still holds c's read side (`mine`), frees ctx; without the read
 * side, lets go of c (which may then be freed). Returns `mine`. Worker. */
bool ia__slot_finish(ia_slave *s, ia__sconn *c, ia_task_ctx *ctx, ia__wframe *w, bool open, bool mine);
/* Runs the task's handler (no lock held; timed and counted) and builds its
 * outcome frame into *w: false if out of memory. */
IA_MUST_CHECK bool ia__slot_execute(ia_slave *s, ia_task_ctx *ctx, ia__wframe *w);
/* Asks the task in the slot to stop if it came from c (any c when NULL),
 * for `why`: IA_CANCELLED (its master asked), IA_CONNECTION_LOST (its master
 * went), IA_SHUTTING_DOWN (the grace ran out), IA_DEADLINE_EXCEEDED. The
 * first reason sticks. (mu) */
void ia__slot_cancel_locked(ia_slave *s, const ia__sconn *c, uint64_t id, bool any_id, ia_code why);

/* ---- pool.c ---- */

#define IA__POOL_WORKERS_DEFAULT 4u
#define IA__POOL_WORKERS_MAX 256u
#define IA__POOL_QUEUE_DEFAULT 16u
#define IA__POOL_QUEUE_MAX 65536u

/* Sets the pool up from the config's mode, workers and queue. IA_OK, or
 * IA_INVALID_ARGUMENT with a message, or IA_NO_MEMORY. */
ia_code ia__pool_init(ia_slave *s, ia_error *err);
/* Tasks that run at once: what Welcome says as capacity. */
uint32_t ia__pool_capacity(const ia_slave *s);
/* The worker threads but the first (the slave's worker runs
 * ia__pool_worker_main itself); joined by ia__pool_join_extra. */
IA_MUST_CHECK bool ia__pool_start_extra(ia_slave *s);
void ia__pool_join_extra(ia_slave *s);
void *ia__pool_worker_main(void *arg);
/* Admits the task frame at the head of c->in (loop): to a worker, to the
 * queue, or refused. The task keeps a copy of its body: IA__TAKE_DONE and
 * IA__TAKE_SLOT both leave the frame to be consumed. */
ia__take ia__pool_admit(ia__sconn *c, const ia__env *env, size_t frame_len);
/* The reading worker's task frame at the head of c->in, run by this
 * worker at once (or, should it not find a free place, admitted as the
 * loop does). IA__DISPATCH_MORE: done, the frame consumed, read on;
 * HANDED: the loop took the read side while the task ran; CLOSED. */
ia__dispatch_rc ia__pool_lead(ia__sconn *c, const ia__env *env, size_t frame_len);
/* The loop's task frame at the head of c->in, if a worker can run it at
 * once and nothing is buffered behind it: the read side goes to the
 * workers with the frame, and true. (loop) */
bool ia__pool_hand_back(ia__sconn *c, size_t frame_len);
/* Cancels task `id` of c (loop): a waiting one ends at once (608), a
 * running one is told. */
void ia__pool_cancel(ia__sconn *c, uint64_t id);
/* Tells the running tasks of c (any if NULL; task `id` only unless
 * any_id) that they are cancelled for `why`. (mu) */
void ia__pool_stop_running_locked(ia_slave *s, const ia__sconn *c, uint64_t id, bool any_id, ia_code why);
/* Tells the running tasks of c (any if NULL) that they are cancelled for
 * `why`, and drops c's waiting ones, which never run. (mu) */
void ia__pool_stop_locked(ia_slave *s, ia__sconn *c, ia_code why);
/* The watchdog's look: cancels running tasks past their deadline. True if
 * any runs. (mu) */
bool ia__pool_watch_locked(ia_slave *s);
/* Frees what is left once every thread is gone. */
void ia__pool_free(ia_slave *s);
/* The watchdog's look at this slave (its ia__watch check). */
int ia__slot_watch_check(void *slave);
/* A handler runs long: the read side goes to the relief worker, or to the
 * loop in the other modes (long_ev). Loop. */
void ia__slot_long_cb(int fd, short what, void *arg);

/* ---- auth.c ---- */

/* A connection's first frames while the slave holds a secret (dispatch.c):
 * 1 with *hello, the Hello whose master proved the secret, to go on with
 * (the frame at the head, its AuthProof, is left to be consumed); 0, the
 * frame answered and consumed, the next one awaited; -1, refused or failed
 * (closing). Loop. */
int ia__slave_auth(ia__sconn *c, const ia__env *env, size_t flen, ia__env *hello);
/* Frees what authentication kept of c. */
void ia__slave_auth_release(ia__sconn *c);

/* ---- reader.c ---- */

/* The worker thread. */
void *ia__slave_worker_main(void *arg);
/* The connection whose read side waits for a worker, now this worker's
 * (c->reading), or NULL. (mu) */
ia__sconn *ia__slave_read_side_locked(ia_slave *s);
/* Reads and serves c while this worker holds its read side; returns once it
 * has given it back to the loop, or the loop took it. Worker. */
void ia__slave_worker_read(ia_slave *s, ia__sconn *c);
/* Gives c's read side (with what is buffered) to the worker. Loop, mu held. */
void ia__slave_to_worker_locked(ia_slave *s, ia__sconn *c);
/* The read side is the loop's again: its worker is done with it, or none
 * came to it yet. (mu) */
void ia__slave_to_loop_locked(ia_slave *s, ia__sconn *c);
/* Takes c's read side from the worker that runs ctx's handler, for `to`:
 * the loop, or (IA__RD_WORKER) another worker. The task's frame stays
 * where the handler reads it, the rest moves to a new buffer. (mu) */
IA_MUST_CHECK bool ia__slave_take_over_locked(ia__sconn *c, ia_task_ctx *ctx, ia__reader to);
/* Non-blocking single mode: starts the relief worker, which reads the
 * master while the first worker runs a long handler, unless it runs
 * already; false if it cannot (the loop reads then). Loop. */
bool ia__slave_relief_start(ia_slave *s);
/* The loop reads c until a short read -- until the end itself when the
 * epoll set reported the peer's end (`ended`) -- bounded, and handles its
 * frames. */
void ia__slave_loop_read(ia__sconn *c, bool ended);
/* The loop's epoll set reported these sockets (ia__epset_fn). */
void ia__slave_ep_batch(void *arg, struct epoll_event *evs, int n);

/* ---- task_ctx.c ---- */

/* A task read from `body` (slices stay valid while the frame is buffered). */
ia_task_ctx *ia__task_ctx_new(ia_slave *slave, uint64_t id, const ia__task_view *view, ia__slice body,
                              size_t frame_len);
void ia__task_ctx_free(ia_task_ctx *ctx);
/* The task's outcome (result, fail, or TASK_ERROR) as a frame no larger
 * than max_frame: a result over it becomes TASK_ERROR. The payload is
 * referenced from ctx. False if out of memory. */
IA_MUST_CHECK bool ia__task_ctx_outcome_frame(const ia_task_ctx *ctx, uint32_t max_frame, ia__wframe *w);

#endif
