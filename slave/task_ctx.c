/* The handler's view of a task, and turning its outcome into a frame. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slave/slave-internal.h"

ia_task_ctx *ia__task_ctx_new(ia_slave *slave, ia__frame *frame, uint64_t conn_gen) {
  ia_task_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return NULL;
  ctx->slave = slave;
  ctx->frame = frame;
  ctx->id = frame->id;
  ctx->conn_gen = conn_gen;
  atomic_init(&ctx->cancelled, false);
  return ctx;
}

void ia__task_ctx_free(ia_task_ctx *ctx) {
  if (!ctx) return;
  ia__frame_free(ctx->frame);
  free(ctx->message);
  free(ctx->out);
  free(ctx);
}

const char *ia_task_ctx_method(const ia_task_ctx *t) {
  const char *m = t->frame->task->method;
  return m ? m : "";
}

const uint8_t *ia_task_ctx_payload(const ia_task_ctx *t, size_t *len) {
  const Interaction__V1__Task *task = t->frame->task;
  if (len) *len = task->has_payload ? task->payload.len : 0;
  return task->has_payload ? task->payload.data : (const uint8_t *)"";
}

const char *ia_task_ctx_metadata(const ia_task_ctx *t, const char *key) {
  const Interaction__V1__Task *task = t->frame->task;
  for (size_t i = 0; i < task->n_metadata; i++)
    if (task->metadata[i]->key && strcmp(task->metadata[i]->key, key) == 0)
      return task->metadata[i]->value ? task->metadata[i]->value : "";
  return NULL;
}

uint64_t ia_task_ctx_id(const ia_task_ctx *t) {
  return t->id;
}

static ia_code set_outcome(ia_task_ctx *t, ia__outcome kind, ia_code code, const char *message,
                           const void *data, size_t len) {
  if (t->outcome != IA_OUTCOME_NONE) {
    free(t->message);
    t->message = strdup("the handler set more than one outcome");
    t->outcome = IA_OUTCOME_INVALID;
    return IA_INVALID_ARGUMENT;
  }
  if (len > 0) {
    t->out = malloc(len);
    if (!t->out) {
      t->outcome = IA_OUTCOME_INVALID;
      t->message = strdup("no memory for the handler's result");
      return IA_NO_MEMORY;
    }
    memcpy(t->out, data, len);
    t->out_len = len;
  }
  t->outcome = kind;
  t->fail_code = code;
  t->message = message ? strdup(message) : NULL;
  return IA_OK;
}

ia_code ia_task_ctx_reply(ia_task_ctx *t, const void *payload, size_t len) {
  if (len > 0 && !payload) return IA_INVALID_ARGUMENT;
  return set_outcome(t, IA_OUTCOME_RESULT, IA_OK, NULL, payload, len);
}

ia_code ia_task_ctx_fail(ia_task_ctx *t, ia_code code, const char *message, const void *result, size_t len) {
  if (len > 0 && !result) return IA_INVALID_ARGUMENT;
  if (code == IA_OK) {
    /* Failing with "OK" is a contradiction: report it rather than guess. */
    set_outcome(t, IA_OUTCOME_INVALID, IA_TASK_ERROR, "the handler failed with code 0 (OK)", NULL, 0);
    t->outcome = IA_OUTCOME_INVALID;
    return IA_INVALID_ARGUMENT;
  }
  return set_outcome(t, IA_OUTCOME_FAIL, code, message, result, len);
}

bool ia_task_ctx_cancelled(const ia_task_ctx *t) {
  return atomic_load(&t->cancelled);
}

bool ia_task_ctx_sleep(ia_task_ctx *t, uint32_t ms) {
  pthread_mutex_t *mu = ia__slave_mutex(t->slave);
  pthread_cond_t *cond = ia__slave_cancel_cond(t->slave);
  struct timespec until;
  ia__deadline_ts(&until, ms);
  pthread_mutex_lock(mu);
  int rc = 0;
  while (!atomic_load(&t->cancelled) && rc != ETIMEDOUT)
    rc = pthread_cond_timedwait(cond, mu, &until);
  bool whole = !atomic_load(&t->cancelled);
  pthread_mutex_unlock(mu);
  return whole;
}

void ia__task_ctx_cancel(ia_task_ctx *t) {
  pthread_mutex_t *mu = ia__slave_mutex(t->slave);
  pthread_mutex_lock(mu);
  atomic_store(&t->cancelled, true);
  pthread_cond_broadcast(ia__slave_cancel_cond(t->slave));
  pthread_mutex_unlock(mu);
}

int ia__task_ctx_write_outcome(const ia_task_ctx *t, struct evbuffer *out) {
  ia__frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = t->id;
  Interaction__V1__TaskResult r = INTERACTION__V1__TASK_RESULT__INIT;
  Interaction__V1__TaskFail fail = INTERACTION__V1__TASK_FAIL__INIT;
  switch (t->outcome) {
  case IA_OUTCOME_RESULT:
    r.has_payload = 1;
    r.payload.data = t->out;
    r.payload.len = t->out_len;
    f.body_case = INTERACTION__V1__FRAME__BODY_RESULT;
    f.result = &r;
    break;
  case IA_OUTCOME_FAIL:
    fail.has_code = 1;
    fail.code = (uint32_t)t->fail_code;
    fail.message = t->message ? t->message : (char *)"";
    if (t->out_len) {
      fail.has_result = 1;
      fail.result.data = t->out;
      fail.result.len = t->out_len;
    }
    f.body_case = INTERACTION__V1__FRAME__BODY_FAIL;
    f.fail = &fail;
    break;
  case IA_OUTCOME_NONE:
  case IA_OUTCOME_INVALID:
    fail.has_code = 1;
    fail.code = IA_TASK_ERROR;
    fail.message = t->message ? t->message : (char *)"the handler returned no result";
    f.body_case = INTERACTION__V1__FRAME__BODY_FAIL;
    f.fail = &fail;
    break;
  }
  return ia__frame_write(out, &f);
}

void ia_hook_reply_set(ia_hook_reply *r, const char *message, const void *data, size_t len) {
  ia__hook_reply_release(r);
  r->message = message ? strdup(message) : NULL;
  if (data && len && (r->data = malloc(len)) != NULL) {
    memcpy(r->data, data, len);
    r->len = len;
  }
}

void ia__hook_reply_release(ia_hook_reply *r) {
  free(r->message);
  free(r->data);
  r->message = NULL;
  r->data = NULL;
  r->len = 0;
}
