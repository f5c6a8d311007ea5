#ifndef IA_MASTER_INTERNAL_H
#define IA_MASTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include <event2/bufferevent.h>

#include "interaction/master.h"
#include "runtime/runtime-internal.h"

typedef struct task_cb {
  ia_task_cb fn;
  void *user;
  bool on_complete;
} task_cb;

/* Everything below marked (mu) is guarded by the master's mutex. */
struct ia_task {
  ia_conn *conn; /* holds a reference */
  int refs;      /* (mu) the user's, and the pending list's while started */
  uint64_t id;
  bool is_disconnect; /* an internal Disconnect request, not a user task */
  char *method;
  uint8_t *payload;
  size_t len;
  ia_status status; /* (mu) */
  bool done;        /* (mu) terminal and every callback run */
  uint8_t *result;
  size_t result_len;
  ia_error error;
  task_cb *cbs;
  size_t n_cbs;
  pthread_cond_t cond;
  ia_task *next; /* (mu) in conn->pending */
};

struct ia_conn {
  ia_master *m;
  char *name;
  int refs;                /* (mu) the user's, each task's, the loop's while bev lives */
  bool up;                 /* (mu) handshaken and not yet closed */
  struct bufferevent *bev; /* created by connect, freed on the loop only */
  uint32_t peer_max_frame;
  ia_task *pending; /* (mu) started tasks awaiting an answer */
  ia_conn *next;    /* (mu) in m->conns */
};

struct ia_master {
  ia_master_config cfg; /* name points at an owned copy */
  uint32_t max_frame;
  struct event_base *base;
  pthread_t loop_thread;
  bool started;
  bool joined;
  pthread_mutex_t mu;
  ia_conn *conns; /* (mu) every connection not yet freed */
  _Atomic uint64_t next_id;
  atomic_bool shutting_down;
  struct event *shutdown_ev;
  struct event *deadline_ev;
  int draining; /* loop only */
};

/* True on the master's I/O thread. */
bool ia__master_on_loop(const ia_master *m);

void ia__conn_ref(ia_conn *c);   /* (mu) */
void ia__conn_unref(ia_conn *c); /* takes mu */

/* Sends an encoded frame on a live connection. (mu) must be held. */
ia_code ia__conn_send_locked(ia_conn *c, const uint8_t *buf, size_t len);

/* Ends a task: status, error (code, message, data) and result are set, the
 * callbacks run on this thread, joiners wake, and the pending list's
 * reference is dropped if `from_pending`. The task must not be in a pending
 * list any more. */
void ia__task_finish(ia_task *t, ia_status status, ia_code code, const char *message, const uint8_t *data,
                     size_t len, bool from_pending);
void ia__task_unref(ia_task *t); /* takes mu */

#endif
