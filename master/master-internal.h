#ifndef IA_MASTER_INTERNAL_H
#define IA_MASTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "interaction/master.h"
#include "runtime/runtime-internal.h"
#include "runtime/wire.h"

typedef struct task_cb {
  ia_task_cb fn;
  void *user;
  bool on_complete;
} task_cb;

/* Everything below marked (mu) is guarded by the master's mutex. */
struct ia_task {
  ia_conn *conn;    /* holds a reference */
  _Atomic int refs; /* the user's, and the pending list's while started */
  uint64_t id;
  bool is_disconnect; /* an internal Disconnect request, not a user task */
  bool is_ping;       /* an internal Ping, answered by a Pong */
  bool blocking;      /* (mu) a caller blocks on it and may read for it */
  bool offered;       /* (mu) the previous reader passed the read side to this caller */
  char *method;       /* method_small, or malloc'd when longer */
  size_t method_len;
  uint8_t *payload; /* payload_small, or malloc'd when larger */
  size_t len;
  const struct iovec *piov; /* a borrowed payload (ia__call_vec), used while sending */
  int pniov;
  const ia__decoder *dec; /* decodes the result where it lies, instead of a copy */
  void *decoded;          /* what dec made of it, until the caller takes it */
  _Atomic int status;     /* an ia_status; changed under mu, read anywhere */
  atomic_bool done;       /* terminal and every callback run (set once, outside mu) */
  atomic_bool has_cond;   /* cond is initialised: somebody waited (set under mu) */
  uint8_t *result;
  size_t result_len;
  task_cb *cbs; /* cbs_inline, or malloc'd once there are more */
  size_t n_cbs;
  ia_task *next; /* (mu) in conn->pending */
  /* Not cleared when a task is made (everything above is): set as needed. */
  task_cb cbs_inline[2];
  pthread_cond_t cond; /* made when the first waiter needs it: ia__task_cond_locked() */
  ia_error error;      /* only its head is initialised */
  char method_small[48];
  uint8_t payload_small[64];
  uint8_t result_small[64];
};
#define IA_TASK_CLEAR offsetof(ia_task, cbs_inline)

/* t's condition, made on first use: a task nobody waits on (async, with
 * callbacks) never makes one. (mu) */
pthread_cond_t *ia__task_cond_locked(ia_task *t);
/* Wakes whoever waits on t. Takes mu only if somebody ever waited. */
void ia__task_wake(ia_task *t);

/* Who reads a connection's socket. */
typedef enum ia__reader {
  IA_RD_PARKED = 0, /* nobody: the loop's tick takes it back */
  IA_RD_LOOP,       /* the I/O thread (its read event is pending) */
  IA_RD_TRANSFER,   /* a caller is taking it from the loop */
  IA_RD_CALLER,     /* a thread blocked in a call reads its own reply */
} ia__reader;

struct ia_conn {
  ia_master *m;
  char *name;
  _Atomic int refs;      /* the user's, each task's, and the socket's while open */
  bool up;               /* (mu) handshaken and not yet closed */
  int fd;                /* blocking socket; -1 once closed (by the loop) */
  bool in_epoll;         /* (mu) in the loop's epoll set: the loop reads it */
  bool loop_reading;     /* (mu) the loop is inside a read of it right now */
  ia__reader reader;     /* (mu) */
  bool teardown_pending; /* (mu) close the socket once the reader lets go */
  bool torn_down;        /* (mu) */
  ia__inbuf in;          /* the reader's */
  pthread_mutex_t wmu;   /* one writer at a time */
  uint32_t peer_max_frame;
  ia_task *pending; /* (mu) started tasks awaiting an answer */
  ia_conn *next;    /* (mu) in m->conns */
};

struct ia_master {
  ia_master_config cfg; /* name points at an owned copy */
  uint32_t max_frame;
  struct event_base *base;
  int epfd;                   /* the sockets the loop reads, outside libevent */
  struct event *ep_ev;        /* libevent's watch on epfd */
  pthread_cond_t reader_cond; /* a caller waits for the loop to finish a read */
  pthread_t loop_thread;
  bool started;
  bool joined;
  pthread_mutex_t mu;
  ia_conn *conns; /* (mu) every connection not yet freed */
  _Atomic uint64_t next_id;
  atomic_bool shutting_down;
  struct event *shutdown_ev;
  struct event *tick_ev;
  struct event *deadline_ev;
};

/* True on the master's I/O thread. */
bool ia__master_on_loop(const ia_master *m);

void ia__conn_ref(ia_conn *c);   /* any thread; the caller holds a reference or the lock */
void ia__conn_unref(ia_conn *c); /* takes mu only for the last one */

/* Registers t as pending on c and sends its frame. A non-blocking task is
 * then read by the loop; a blocking one by its caller, in ia__conn_await.
 * On failure nothing is registered and the code says why. */
ia_code ia__conn_submit(ia_conn *c, ia_task *t, const ia__wframe *w, bool blocking);
/* Waits for a submitted blocking task, reading the socket for it when nobody
 * else does. IA_OK once done, IA_TIMEOUT otherwise. Not on the loop. */
ia_code ia__conn_await(ia_conn *c, ia_task *t, uint32_t timeout_ms);
/* Sends a frame on c (any thread). */
ia_code ia__conn_send(ia_conn *c, const ia__wframe *w);

/* Ends a task: status, error (code, message, data) and result are set, the
 * callbacks run on this thread, joiners wake, and the pending list's
 * reference is dropped if `from_pending`. The task must not be in a pending
 * list any more. */
void ia__task_finish(ia_task *t, ia_status status, ia_code code, const char *message, const uint8_t *data,
                     size_t len, bool from_pending);
void ia__task_unref(ia_task *t); /* takes mu */
/* The Task frame of t (payload referenced, not copied). */
bool ia__task_frame(const ia_task *t, ia__wframe *w);

#endif
