/*
 * master: the task-issuing end. Its parts, one file each:
 *
 *   master.c    lifecycle and the loop: new, start, shutdown, join, free;
 *               the loop's tick
 *   conn.c      connections: dial and handshake, the registry, disconnect,
 *               ping, sending, teardown
 *   reader.c    the reader role: who reads a connection's socket (a caller
 *               or the loop), the hand-off between them, the loop's reads
 *   dispatch.c  what to do with each frame a reader takes off the socket
 *   task.c      the task object: callbacks, start, join, results, cancel
 *   call.c      the one blocking call (ia_call, the typed stubs' vectored
 *               call, the internal Disconnect and Ping), and abandoning a
 *               call that timed out
 *   beat.c      liveness: heartbeats on the loop's tick, and the
 *               connection-state callback
 *   auth.c      the master's side of authentication with the shared secret
 *
 * Threads. Callers dial, handshake and block on their own threads; every
 * frame a caller sends, it sends itself. One libevent loop thread reads the
 * sockets nobody else reads (async tasks, idle connections), flushes what
 * non-blocking senders queued, and closes sockets. See reader.c for the
 * reader role.
 *
 * Locks. The master's mutex `mu` guards everything marked (mu). A
 * connection's write stream has its own lock, taken after `mu` and never
 * held while waiting (runtime/wstream.h). No user callback runs with `mu`
 * held.
 *
 * References. A connection is counted by its user handle, by each task, by
 * its open socket, and by a reader in the middle of a batch; it is freed
 * (and its descriptor closed) with the last one, so no thread can write to
 * a descriptor that was closed and reused. A task is counted by its user
 * handle and by the pending list while it waits for an answer.
 */
#ifndef IA__MASTER_INTERNAL_H
#define IA__MASTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "interaction/master.h"
#include "master/master-pb.h"
#include "runtime/auth.h"
#include "runtime/beat.h"
#include "runtime/histo.h"
#include "runtime/http.h"
#include "runtime/epset.h"
#include "runtime/runtime-internal.h"
#include "runtime/wire.h"
#include "runtime/wstream.h"

struct event;
struct event_base;

#define IA__MASTER_QUEUE_LIMIT (64u << 20) /* bytes a slave may leave unread before it is dropped */
#define IA__ABANDONED_MAX 4096u            /* timed-out ids whose late answers are remembered */

typedef struct ia__task_cb {
  ia_task_cb fn;
  void *user;
  bool on_complete;
} ia__task_cb;

typedef enum ia__task_kind {
  IA__TASK_USER = 0,
  IA__TASK_DISCONNECT, /* an internal Disconnect, answered by a Goodbye */
  IA__TASK_PING,       /* an internal Ping, answered by a Pong */
  IA__TASK_STATS,      /* an internal StatsRequest, answered by Stats (its body is the result) */
} ia__task_kind;

/* Everything below marked (mu) is guarded by the master's mutex. */
struct ia_task {
  ia_conn *conn;    /* holds a reference */
  _Atomic int refs; /* the user's, and the pending list's while started */
  uint64_t id;
  uint8_t kind;  /* ia__task_kind */
  bool blocking; /* (mu) a caller blocks on it and may read for it */
  bool offered;  /* (mu) the previous reader passed the read side to this caller */
  bool reads;    /* its submit took the read side for its caller, before the send (that thread's alone) */
  char *method;  /* method_small, or malloc'd when longer */
  size_t method_len;
  uint8_t *payload; /* payload_small, or malloc'd when larger */
  size_t len;
  const struct iovec *piov; /* a borrowed payload (the vectored call), only while it is sent */
  int pniov;
  uint32_t deadline_ms; /* what the task may take from its start; 0: no deadline */
  uint64_t start_ticks; /* when a user task was handed to the connection (stats.c), in ia__ticks */
  uint64_t deadline_at; /* (mu) the monotonic ms it ends TIMED_OUT at, once started; 0: never */
  uint8_t *md;          /* the metadata entries, encoded as Task fields (malloc'd) */
  size_t md_len, md_cap;
  ia__decoder dec;      /* by value: decodes the result where it lies (dec.decode NULL: copy it) */
  void *decoded;        /* what dec made of it, until the caller takes it */
  _Atomic int status;   /* an ia_status; changed under mu, read anywhere */
  atomic_bool done;     /* terminal and every callback run (set once, outside mu) */
  atomic_bool has_cond; /* cond is initialised: somebody waited (set under mu) */
  uint8_t *result;
  size_t result_len;
  ia__task_cb *cbs; /* cbs_inline, or malloc'd once there are more */
  size_t n_cbs;
  ia_task *next; /* (mu) in conn->pending */
  /* Not cleared when a task is made (everything above is): set as needed. */
  ia__task_cb cbs_inline[2];
  pthread_cond_t cond; /* made when the first waiter needs it: ia__task_cond_locked() */
  ia_error error;      /* only its head is initialised */
  char method_small[48];
  uint8_t payload_small[64];
  uint8_t result_small[64];
};
#define IA__TASK_CLEAR offsetof(ia_task, cbs_inline)

/* Who reads a connection's socket. */
typedef enum ia__reader {
  IA__RD_PARKED = 0, /* nobody: the loop's tick takes it back */
  IA__RD_LOOP,       /* the I/O thread (the socket is in its epoll set) */
  IA__RD_TRANSFER,   /* a caller is taking it from the loop */
  IA__RD_CALLER,     /* a thread blocked in a call reads its own reply */
} ia__reader;

/* A connection's counters (stats.c): relaxed atomics. */
typedef struct ia__cstats {
  /* What every task counts first (one cache line), then its bucket. */
  _Atomic uint64_t tasks[IA_OUTCOMES];
  _Atomic uint64_t lat_sum_ns, lat_max_ns;
  _Atomic uint64_t lat[IA_STATS_BUCKETS + 1];
} ia__cstats;

struct ia_conn {
  ia_master *m;
  char *name;
  _Atomic int refs;             /* the user's, each task's, the socket's while open, a batch's */
  bool up;                      /* (mu) handshaken and not yet closed */
  int fd;                       /* closed when the last reference goes */
  uint32_t ep;                  /* (mu) what the loop's epoll set watches for it */
  bool loop_reading;            /* (mu) the loop is inside a read of it right now */
  ia__reader reader;            /* (mu) */
  atomic_bool teardown_pending; /* (written under mu) tear down once the reader lets go */
  bool torn_down;               /* (mu) the socket is shut down and out of the epoll set */
  /* What every call reads comes first, what only logs and state changes
   * read last: a call touches fewer cache lines of c. */
  uint32_t peer_max_frame;
  ia_task *pending; /* (mu) started tasks awaiting an answer */
  ia__live live;    /* its rx is bumped by the reader; the rest is the loop's */
  ia__inbuf in;     /* the reader's */
  ia__ws out;
  struct ia__tls *tls; /* TLS on fd, or NULL; set before the Hello, freed with c */
  ia__cstats st;
  ia__beat beat;             /* agreed in the handshake; off: {0, 0} */
  ia_conn_state state;       /* (mu) */
  ia_conn_state_fn state_fn; /* (mu) */
  void *state_user;          /* (mu) */
  ia_code down_code;         /* (mu) why it left CONNECTED */
  uint64_t *abandoned;       /* (mu) ids of timed-out calls whose late answers are dropped */
  size_t n_abandoned, cap_abandoned;
  ia_conn *next;    /* (mu) in m->conns */
  bool observer;    /* its Hello asked to observe: it pings and reads, never runs a task */
  char *slave_name; /* what the Welcome said; fixed after the handshake */
  uint32_t slave_mode, slave_capacity;
  /* A reply whose blob is received into its decoded object (land.c): the
   * reader's, like `in`, whose landing it fills. */
  struct {
    void *msg;       /* what the reply decodes to; its blob is in.land */
    uint64_t id;     /* the task it answers */
    ia__decoder dec; /* that task's decoder, to release msg */
    uint64_t tried;  /* live.frames + 1 of the frame last looked at */
  } land;
  char addr[300]; /* HOST:PORT as dialled, for log lines */
  char down_message[IA_ERROR_MESSAGE_MAX];
};

struct ia_master {
  ia_master_config cfg; /* name points at an owned copy */
  uint32_t max_frame;
  ia__beat beat;                 /* what Hello proposes */
  ia__secret secret;             /* proven to every slave, and asked of it (auth.c); none if n == 0 */
  struct ia__tls_ctx *tls;       /* every connection is TLS with it; NULL: plain */
  atomic_int any_waiters;        /* threads in ia_task_wait_any(): a task's end wakes any_cond (wait.c) */
  pthread_cond_t any_cond;       /* with mu */
  _Atomic(ia_task *) spare_task; /* a freed task kept for the next (task.c) */
  void *tick_conns;              /* loop: the heartbeat tick's scratch list (beat.c) */
  size_t tick_cap;
  struct event_base *base;
  ia__epset ep;               /* the sockets the loop reads or flushes */
  pthread_cond_t reader_cond; /* a caller waits for the loop to finish a read */
  pthread_t loop_thread;
  bool started;
  bool joined;
  pthread_mutex_t mu;
  ia_conn *conns; /* (mu) every connection not yet freed */
  _Atomic uint64_t next_id;
  atomic_bool shutting_down;
  atomic_bool loop_gone; /* the loop thread has left its loop: nothing runs there any more */
  struct event *shutdown_ev;
  struct event *tick_ev;
  struct event *deadline_ev;
  struct evhttp *http; /* /metrics and /healthz (stats.c), or NULL */
  ia__http_face face;
  _Atomic uint16_t metrics_port;
};

/* True on the master's I/O thread. */
bool ia__master_on_loop(const ia_master *m);

/* ---- land.c: a large reply received into its decoded object ---- */

/* Replies this large or larger are looked at for a blob to land. */
#define IA__LAND_MIN (256u * 1024u)

/* The head frame of c is incomplete: if it is a large reply to a pending
 * task whose decoder can land it, the rest of its blob is received into
 * the object it decodes to from now on. The reader's. */
void ia__master_land_try(ia_conn *c);
/* Releases what a landing holds; before ia__inbuf_free(&c->in). */
void ia__master_land_drop(ia_conn *c);

/* ---- conn.c ---- */

void ia__conn_ref(ia_conn *c);   /* any thread; the caller holds a reference or mu */
void ia__conn_unref(ia_conn *c); /* takes mu only for the last one */
/* Frees c and closes its descriptor, whatever its count (the last
 * reference, or ia_master_free). */
void ia__conn_destroy(ia_conn *c);
/* Sends a frame on c without blocking (any thread, the loop included).
 * IA_CONNECTION_LOST if the connection failed (it is then going down). */
ia_code ia__conn_send_nb(ia_conn *c, const ia__wframe *w);
/* Sends a frame on c, waiting for the socket until deadline_ms. IA_TIMEOUT:
 * the rest of the frame is queued and goes out later. Not on the loop. */
ia_code ia__conn_send(ia_conn *c, const ia__wframe *w, uint64_t deadline_ms);
/* The connection is over: every pending task ends with status/code, the
 * socket is torn down on the loop, and the state callback hears LOST, or
 * CLOSED for a deliberate end (code IA_OK or IA_SHUTTING_DOWN). Any thread. */
void ia__conn_lost(ia_conn *c, ia_status status, ia_code code, const char *message);
/* The same, with the state said: ia_conn_free() closes, it loses nothing. */
void ia__conn_end(ia_conn *c, ia_conn_state state, ia_status status, ia_code code, const char *message);
/* Sends a Goodbye with `code` as a last word before the connection closes:
 * without blocking (wait_ms 0: the loop), or waiting up to wait_ms for the
 * stream and the socket (a user's thread). */
#define IA__GOODBYE_WAIT_MS 100u
void ia__conn_goodbye(ia_conn *c, ia_code code, const char *message, uint32_t wait_ms);
/* A protocol violation by the slave: Goodbye with the code, then lost. */
IA__COLD void ia__conn_protocol_error(ia_conn *c, ia_code code, const char *message);
/* The Disconnect answered: c is down, the socket goes. */
void ia__conn_disconnected(ia_conn *c);
/* Asks the loop to tear c's socket down (from any thread). */
IA__COLD void ia__conn_request_teardown(ia_conn *c);
/* Tears c's socket down if no caller reads it (else leaves that to the
 * caller, woken by a shutdown). Loop thread. */
IA__COLD void ia__conn_teardown(ia_conn *c);
/* Makes the loop's epoll set watch what c needs now: input while the loop
 * reads it, output while its stream has bytes waiting. (mu) */
void ia__conn_watch_locked(ia_conn *c);
/* Writes what c's stream queued once its socket takes it (EPOLLOUT). Loop. */
void ia__conn_flush(ia_conn *c);

/* Runs an internal request (a Disconnect, a Ping, a StatsRequest) as a
 * blocking call. On IA_OK *out is the completed task, for the caller to
 * free. */
IA_MUST_CHECK ia_code ia__conn_internal_call(ia_conn *c, ia__task_kind kind, const void *data, size_t len,
                                             uint32_t timeout_ms, ia_task **out, ia_error *err);

/* ---- stats.c ---- */

/* A user task ends with `status`: counted on its connection. */
void ia__stats_task_end(ia_task *t, ia_status status);
/* Serves /metrics and /healthz if the config asks (before the loop runs). */
IA_MUST_CHECK ia_code ia__master_metrics_start(ia_master *m, ia_error *err);

/* ---- reader.c ---- */

/* Registers t as pending on c and sends its frame: waiting for the socket
 * until deadline_ms for a blocking task (read by its caller in
 * ia__conn_await), without blocking for an async one (read by the loop).
 * On failure nothing is registered and the code says why. */
ia_code ia__conn_submit(ia_conn *c, ia_task *t, const ia__wframe *w, bool blocking, uint64_t deadline_ms);
/* Waits for a submitted blocking task until deadline_ms, reading the socket
 * for it when nobody else does. IA_OK once done, IA_TIMEOUT otherwise. Not
 * on the loop. */
ia_code ia__conn_await(ia_conn *c, ia_task *t, uint64_t deadline_ms);
/* The loop's epoll set reported these sockets (ia__epset_fn). */
void ia__master_ep_batch(void *arg, struct epoll_event *evs, int n);
/* The loop takes back parked sockets, so that idle connections are still
 * watched (a dead slave, a Goodbye). Loop. */
void ia__master_tick(ia_master *m);

/* Reads one whole frame into `in` before the deadline, and no byte more:
 * what follows it is the loop's or a caller's to read once the connection
 * is registered. *env is the frame, *flen its bytes. (The handshake.) */
ia_code ia__conn_read_frame(ia_conn *c, uint64_t deadline, ia__env *env, size_t *flen, ia_error *err);

/* ---- auth.c ---- */

/* Authentication in c's handshake, after Hello: *env is the slave's first
 * answer, *flen bytes at the head of c->in. With a secret the answer must
 * be a challenge with a right proof: the master then sends its own and
 * reads the next answer into *env and *flen. IA_OK to go on with *env; else
 * the code, the slave told why. Without a secret: IA_OK unless challenged. */
ia_code ia__conn_auth(ia_conn *c, const uint8_t *hello, size_t hello_n, ia__env *env, size_t *flen,
                      uint64_t deadline, ia_error *err);

/* ---- beat.c ---- */

/* Looks at every live connection's heartbeat: sends the Pings that are
 * due, drops the connections silent past their tolerance. Loop, without mu. */
void ia__master_beat(ia_master *m);
/* c just left CONNECTED (mark_down set its state): tells the state
 * callback. Without mu, once every pending task has ended. */
void ia__conn_state_changed(ia_conn *c);

/* ---- dispatch.c ---- */

/* Handles every whole frame in c->in; false if the connection is over. The
 * caller holds c's read side. */
bool ia__master_dispatch(ia_conn *c);
/* Takes t off c's pending list and remembers its id, so that a late answer
 * is dropped instead of called a protocol error. False if t was not pending
 * (a reader is finishing it right now). */
bool ia__master_abandon(ia_conn *c, ia_task *t);

/* ---- task.c ---- */

/* t's condition, made on first use: a task nobody waits on (async, with
 * callbacks) never makes one. (mu) */
pthread_cond_t *ia__task_cond_locked(ia_task *t);
/* A task in IDLE, `method` and `payload` copied; NULL if out of memory. */
ia_task *ia__task_new(ia_conn *c, const char *method, const void *payload, size_t len);
/* Ends a task: status, error (code, message, data) and result are set, the
 * callbacks run on this thread, joiners wake, and the pending list's
 * reference is dropped if `from_pending`. A task that did not come from the
 * pending list is held for the duration, so a callback may free it. The
 * task must not be in a pending list any more. */
void ia__task_finish(ia_task *t, ia_status status, ia_code code, const char *message, const uint8_t *data,
                     size_t len, bool from_pending);
void ia__task_unref(ia_task *t);
/* Checks t against the slave's max_frame, builds its Task frame and submits
 * it; on failure ends it in START_FAILED (callbacks run) and returns why. */
ia_code ia__task_send(ia_task *t, bool blocking, uint64_t deadline_ms);

/* Adds the metadata of opts (NULL allowed) to an IDLE task; the first
 * failure's code. */
ia_code ia__task_add_opts_metadata(ia_task *t, const ia_call_opts *opts);
/* Ends every pending task of m whose deadline passed: TIMED_OUT with
 * DEADLINE_EXCEEDED, a Cancel sent to the slave, its late answer dropped.
 * Loop, without mu. */
void ia__master_deadlines(ia_master *m);

/* ---- call.c ---- */

/* Runs a built blocking task t to its end or to the deadline: submits it,
 * awaits it, and on timeout cancels and abandons it. IA_OK when t is
 * terminal (its status says how it ended), else the code (err filled). */
ia_code ia__call_task(ia_task *t, uint32_t timeout_ms, ia_error *err);

#endif
