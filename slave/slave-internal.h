#ifndef IA_SLAVE_INTERNAL_H
#define IA_SLAVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "interaction/slave.h"
#include "runtime/runtime-internal.h"

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

struct ia_task_ctx {
  ia_slave *slave;
  ia__frame *frame; /* the received Task frame; owns method/payload/metadata */
  uint64_t id;
  uint64_t conn_gen; /* the connection it arrived on */
  ia__outcome outcome;
  ia_code fail_code;
  char *message;
  uint8_t *out;
  size_t out_len;
  atomic_bool cancelled;
};

ia_task_ctx *ia__task_ctx_new(ia_slave *slave, ia__frame *frame, uint64_t conn_gen);
void ia__task_ctx_free(ia_task_ctx *ctx);
/* Writes the task's outcome (result, fail, or TASK_ERROR) as a frame. */
int ia__task_ctx_write_outcome(const ia_task_ctx *ctx, struct evbuffer *out);
/* Marks the task cancelled and wakes a handler sleeping in ia_task_ctx_sleep. */
void ia__task_ctx_cancel(ia_task_ctx *ctx);

/* The slave's lock and the condition a cancelled sleeper waits on. */
pthread_mutex_t *ia__slave_mutex(ia_slave *slave);
pthread_cond_t *ia__slave_cancel_cond(ia_slave *slave);

void ia__hook_reply_release(ia_hook_reply *r);

#endif
