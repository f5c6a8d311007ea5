#ifndef IA_SLAVE_INTERNAL_H
#define IA_SLAVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "interaction/slave.h"
#include "runtime/runtime-internal.h"
#include "runtime/wire.h"

struct ia_hook_reply {
  char *message;
  uint8_t *data;
  size_t len;
};

typedef enum ia__outcome {
  IA_OUTCOME_NONE = 0,
  IA_OUTCOME_RESULT,
  IA_OUTCOME_FAIL,
  IA_OUTCOME_INVALID, /* the handler broke the contract: reported as TASK_ERROR */
} ia__outcome;

/* A metadata value handed out by ia_task_ctx_metadata(), kept until the task ends. */
typedef struct ia__md_copy {
  char *value;
  struct ia__md_copy *next;
} ia__md_copy;

#define IA_TASK_ARENA 512     /* a small request is decoded in here */
#define IA_TASK_REPLY_BUF 256 /* a small result is packed in here */

struct ia_task_ctx {
  ia_slave *slave;
  uint64_t id;
  uint64_t conn_gen; /* the connection it arrived on */
  void *conn;        /* that connection, kept alive while the task holds it */
  ia__slice body;    /* the Task body, inside the reader's input buffer */
  ia__slice payload;
  size_t frame_len; /* bytes of the frame at the head of that buffer */
  uint8_t *hold;    /* that buffer's storage, if the loop took the socket over */
  bool started;        /* marked running (handler_starts_locked) */
  const void *handler; /* the method's entry in the slave's table, or NULL */
  char *method;
  ia__md_copy *md;
  ia__outcome outcome;
  ia_code fail_code;
  char *message;
  uint8_t *out;
  size_t out_len;
  bool out_owned; /* out is ours to free */
  int out_niov;   /* pieces of the result in out_iov (ia__task_ctx_reply_vec) */
  atomic_bool cancelled;
  ProtobufCAllocator alloc; /* the arena's (ia__task_ctx_allocator) */
  size_t arena_used;
  /* Storage that is not cleared per task: everything above is. */
  struct iovec out_iov[IA_REPLY_MAX_IOV]; /* the result as pieces: out_niov of them */
  char method_small[96];
  _Alignas(16) uint8_t arena[IA_TASK_ARENA];
  uint8_t reply_buf[IA_TASK_REPLY_BUF];
};
#define IA_TASK_CTX_CLEAR offsetof(ia_task_ctx, out_iov)

/* A task read from `body` (slices stay valid while the frame is buffered). */
ia_task_ctx *ia__task_ctx_new(ia_slave *slave, uint64_t id, uint64_t conn_gen, const ia__task_view *view,
                              ia__slice body, size_t frame_len);
void ia__task_ctx_free(ia_task_ctx *ctx);
/* The task's outcome (result, fail, or TASK_ERROR) as a frame; the payload is
 * referenced from ctx. */
bool ia__task_ctx_outcome_frame(const ia_task_ctx *ctx, ia__wframe *w);

/* A released task context kept for the next task (any thread). take gives
 * NULL when there is none; keep returns false when one is kept already. */
ia_task_ctx *ia__slave_take_spare(ia_slave *slave);
bool ia__slave_keep_spare(ia_slave *slave, ia_task_ctx *ctx);

/* The slave's lock and the condition a cancelled sleeper waits on. */
pthread_mutex_t *ia__slave_mutex(ia_slave *slave);
pthread_cond_t *ia__slave_cancel_cond(ia_slave *slave);

void ia__hook_reply_release(ia_hook_reply *r);

/* The process's shared watchdog (watchdog.c). */
bool ia__watchdog_add(ia_slave *slave);
void ia__watchdog_remove(ia_slave *slave);
/* A handler starts: wakes the watchdog if it sleeps (an atomic load when not). */
void ia__watchdog_poke(void);
/* Looks at the slave's running handler (slave.c): IA_WD_* bits. A handler
 * seen running at two looks in a row runs long. Called by the watchdog
 * thread only. */
#define IA_WD_RUNNING 1 /* a handler runs */
#define IA_WD_LONG 2    /* and it runs long: the loop was asked to take over */
int ia__slave_watchdog_check(ia_slave *slave);

#endif
