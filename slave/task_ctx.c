/*
 * The handler's view of a task -- method, payload, metadata, cancellation,
 * a sleep that wakes on cancel, the arena a typed request is decoded into --
 * and turning its outcome into a frame. A context belongs to the thread
 * running its handler; only `cancelled` is written by others.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slave/slave-internal.h"

ia_task_ctx *ia__task_ctx_new(ia_slave *slave, uint64_t id, const ia__task_view *view, ia__slice body,
                              size_t frame_len) {
  /* One task at a time per slave: the last context is kept for the next. */
  ia_task_ctx *ctx = ia__slave_take_spare(slave);
  if (!ctx) ctx = malloc(sizeof *ctx);
  if (!ctx) return NULL;
  memset(ctx, 0, IA__TASK_CTX_CLEAR);
  size_t mlen = view->method.n;
  ctx->method = mlen < sizeof ctx->method_small ? ctx->method_small : malloc(mlen + 1);
  if (!ctx->method) {
    free(ctx);
    return NULL;
  }
  memcpy(ctx->method, view->method.p, mlen);
  ctx->method[mlen] = '\0';
  ctx->slave = slave;
  ctx->id = id;
  ctx->body = body;
  ctx->payload = view->payload;
  ctx->frame_len = frame_len;
  atomic_init(&ctx->cancelled, false);
  atomic_init(&ctx->cancel_why, IA_OK);
  /* Task.deadline_ms is what the task had left when the master sent it. */
  ctx->deadline_at = view->deadline_ms ? ia__now_ms() + view->deadline_ms : 0;
  return ctx;
}

/* A block of ia_task_ctx_alloc(), linked to its task. */
struct ia__blk {
  struct ia__blk *next;
  size_t len;
  _Alignas(16) uint8_t data[];
};

void ia__task_ctx_free(ia_task_ctx *ctx) {
  if (!ctx) return;
  if (ctx->method != ctx->method_small) free(ctx->method);
  while (ctx->md) {
    ia__md_copy *m = ctx->md;
    ctx->md = m->next;
    free(m->value);
    free(m);
  }
  while (ctx->blocks) {
    struct ia__blk *b = ctx->blocks;
    ctx->blocks = b->next;
    free(b);
  }
  /* Each free() a call into libc, and its lines, even for NULL. */
  if (ctx->hold) free(ctx->hold);
  if (ctx->message) free(ctx->message);
  if (ctx->out_owned && ctx->out) free(ctx->out);
  if (!ia__slave_keep_spare(ctx->slave, ctx)) free(ctx);
}

void *ia_task_ctx_alloc(ia_task_ctx *t, size_t size) {
  if (!t) return NULL;
  size_t n = (size + 15) & ~(size_t)15;
  if (n >= size && n <= sizeof t->arena - t->arena_used) {
    void *p = t->arena + t->arena_used;
    t->arena_used += n;
    return p;
  }
  if (size > SIZE_MAX - sizeof(struct ia__blk)) return NULL;
  struct ia__blk *b = malloc(sizeof *b + size);
  if (!b) return NULL;
  b->len = size;
  b->next = t->blocks;
  t->blocks = b;
  return b->data;
}

/* Whether [p, p + len) lies in the task's own memory: its arena or an
 * ia_task_ctx_alloc() block. */
static bool task_owns(const ia_task_ctx *t, const void *p, size_t len) {
  const uint8_t *q = p;
  if (q >= t->arena && q <= t->arena + sizeof t->arena && len <= (size_t)(t->arena + sizeof t->arena - q))
    return true;
  for (const struct ia__blk *b = t->blocks; b; b = b->next)
    if (q >= b->data && q <= b->data + b->len && len <= (size_t)(b->data + b->len - q)) return true;
  return false;
}

static void *arena_alloc(void *data, size_t size) {
  ia_task_ctx *t = data;
  size_t n = (size + 15) & ~(size_t)15;
  if (n >= size && n <= sizeof t->arena - t->arena_used) {
    void *p = t->arena + t->arena_used;
    t->arena_used += n;
    return p;
  }
  return malloc(size);
}

static void arena_free(void *data, void *p) {
  ia_task_ctx *t = data;
  if ((uint8_t *)p >= t->arena && (uint8_t *)p < t->arena + sizeof t->arena) return; /* the task's */
  free(p);
}

ProtobufCAllocator *ia__task_ctx_allocator(const ia_task_ctx *task) {
  ia_task_ctx *t = (ia_task_ctx *)task; /* the arena is the task's, like its metadata copies */
  t->alloc = (ProtobufCAllocator){arena_alloc, arena_free, t};
  return &t->alloc;
}

uint8_t *ia__task_ctx_reply_buf(const ia_task_ctx *task, size_t *cap) {
  *cap = sizeof task->reply_buf;
  return (uint8_t *)task->reply_buf;
}

const char *ia_task_ctx_method(const ia_task_ctx *t) {
  return t->method;
}

const uint8_t *ia_task_ctx_payload(const ia_task_ctx *t, size_t *len) {
  if (len) *len = t->payload.n;
  return t->payload.p ? t->payload.p : (const uint8_t *)"";
}

typedef struct md_find {
  const char *key;
  ia__slice value;
  bool found;
} md_find;

static bool md_match(ia__slice key, ia__slice value, void *user) {
  md_find *f = user;
  if (key.n == strlen(f->key) && memcmp(key.p, f->key, key.n) == 0) {
    f->value = value;
    f->found = true;
  }
  return true; /* keep going: the last entry for a key wins, as in a map */
}

const char *ia_task_ctx_metadata(const ia_task_ctx *t, const char *key) {
  md_find f = {.key = key};
  if (!key || !ia__task_metadata(t->body, md_match, &f) || !f.found) return NULL;
  ia__md_copy *m = malloc(sizeof *m);
  char *v = malloc(f.value.n + 1);
  if (!m || !v) {
    free(m);
    free(v);
    return NULL;
  }
  memcpy(v, f.value.p, f.value.n);
  v[f.value.n] = '\0';
  m->value = v;
  ia_task_ctx *mt = (ia_task_ctx *)t; /* the copy is the task's to free */
  m->next = mt->md;
  mt->md = m;
  return v;
}

uint64_t ia_task_ctx_id(const ia_task_ctx *t) {
  return t->id;
}

static ia_code set_outcome(ia_task_ctx *t, ia__outcome kind, ia_code code, const char *message,
                           const void *data, size_t len) {
  if (t->outcome != IA__OUTCOME_NONE) {
    free(t->message);
    t->message = strdup("the handler set more than one outcome");
    t->outcome = IA__OUTCOME_INVALID;
    return IA_INVALID_ARGUMENT;
  }
  if (len > 0 && task_owns(t, data, len)) {
    t->out = (uint8_t *)data; /* freed with the task: sent from where it lies */
    t->out_len = len;
    t->out_owned = false;
  } else if (len > 0) {
    t->out = malloc(len);
    if (!t->out) {
      t->outcome = IA__OUTCOME_INVALID;
      t->message = strdup("no memory for the handler's result");
      return IA_NO_MEMORY;
    }
    memcpy(t->out, data, len);
    t->out_len = len;
    t->out_owned = true;
  }
  t->outcome = kind;
  t->fail_code = code;
  t->message = message ? strdup(message) : NULL;
  return IA_OK;
}

ia_code ia_task_ctx_reply(ia_task_ctx *t, const void *payload, size_t len) {
  if (len > 0 && !payload) return IA_INVALID_ARGUMENT;
  return set_outcome(t, IA__OUTCOME_RESULT, IA_OK, NULL, payload, len);
}

ia_code ia_task_ctx_fail(ia_task_ctx *t, ia_code code, const char *message, const void *result, size_t len) {
  if (len > 0 && !result) return IA_INVALID_ARGUMENT;
  if (code == IA_OK) {
    /* Failing with "OK" is a contradiction: report it rather than guess. */
    set_outcome(t, IA__OUTCOME_INVALID, IA_TASK_ERROR, "the handler failed with code 0 (OK)", NULL, 0);
    t->outcome = IA__OUTCOME_INVALID;
    return IA_INVALID_ARGUMENT;
  }
  return set_outcome(t, IA__OUTCOME_FAIL, code, message, result, len);
}

uint32_t ia_task_ctx_deadline_ms(const ia_task_ctx *t) {
  if (!t->deadline_at) return UINT32_MAX;
  uint64_t now = ia__now_ms();
  if (now >= t->deadline_at) return 0;
  uint64_t left = t->deadline_at - now;
  return left >= UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)left;
}

bool ia_task_ctx_cancelled(const ia_task_ctx *t) {
  return atomic_load(&t->cancelled);
}

bool ia_task_ctx_sleep(ia_task_ctx *t, uint32_t ms) {
  pthread_mutex_t *mu = &t->slave->mu;
  pthread_cond_t *cond = &t->slave->cancel_cond;
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

ia_code ia__task_ctx_reply_vec(ia_task_ctx *t, uint8_t *scratch, const struct iovec *iov, int niov) {
  /* scratch is NULL when the pieces lie in t->reply_buf (or need none). */
  if (niov < 0 || niov > IA__REPLY_MAX_IOV) {
    free(scratch);
    return IA_INVALID_ARGUMENT;
  }
  ia_code rc = set_outcome(t, IA__OUTCOME_RESULT, IA_OK, NULL, NULL, 0);
  if (rc != IA_OK) {
    free(scratch);
    return rc;
  }
  t->out = scratch;
  t->out_owned = true;
  for (int i = 0; i < niov; i++)
    t->out_iov[i] = iov[i];
  t->out_niov = niov;
  return IA_OK;
}

/* The frame of a TASK_ERROR outcome. */
IA__COLD static bool error_frame(const ia_task_ctx *t, const char *message, ia__wframe *w) {
  return ia__wframe_status(w, t->id, INTERACTION__V1__FRAME__BODY_FAIL, IA_TASK_ERROR, message, NULL, 0);
}

/* Why the slave itself stopped the task, when that is what the master must
 * hear: its deadline passed, or the slave shut down. A handler that still
 * produced a result, or failed for its own reason, is heard as it is; one
 * that gave up on the cancel (CANCELLED, or nothing) is not mistaken for a
 * cancel by the master. IA_OK otherwise. */
static ia_code stopped_for(const ia_task_ctx *t) {
  ia_code why = (ia_code)atomic_load(&t->cancel_why);
  if (!atomic_load(&t->cancelled) || (why != IA_DEADLINE_EXCEEDED && why != IA_SHUTTING_DOWN)) return IA_OK;
  bool gave_up = t->outcome == IA__OUTCOME_NONE || t->outcome == IA__OUTCOME_INVALID ||
                 (t->outcome == IA__OUTCOME_FAIL && t->fail_code == IA_CANCELLED);
  return gave_up ? why : IA_OK;
}

/* The outcome frame of any task (see ia__task_ctx_outcome_frame). */
static __attribute__((noinline)) bool outcome_frame(const ia_task_ctx *t, uint32_t max_frame, ia__wframe *w) {
  bool built;
  ia_code stopped = stopped_for(t);
  if (stopped != IA_OK)
    return ia__wframe_status(w, t->id, INTERACTION__V1__FRAME__BODY_FAIL, stopped,
                             stopped == IA_DEADLINE_EXCEEDED ? "the task's deadline passed"
                                                             : "the slave is shutting down",
                             NULL, 0);
  switch (t->outcome) {
  case IA__OUTCOME_RESULT: {
    ia__field f = {.no = 1, .p = t->out, .n = t->out_len, .iov = t->out_iov, .niov = t->out_niov};
    built = ia__wframe_build(w, t->id, INTERACTION__V1__FRAME__BODY_RESULT, &f, 1);
    break;
  }
  case IA__OUTCOME_FAIL:
    built = ia__wframe_status(w, t->id, INTERACTION__V1__FRAME__BODY_FAIL, t->fail_code,
                              t->message ? t->message : "", t->out, t->out_len);
    break;
  default:
    return error_frame(t, t->message ? t->message : "the handler returned no result", w);
  }
  if (!built || ia__wframe_body_len(w) <= max_frame) return built;
  /* The master would have to drop the connection for a frame over its
   * limit: it hears that the task went wrong instead. */
  size_t len = ia__wframe_body_len(w);
  ia__wframe_release(w);
  char msg[160];
  snprintf(msg, sizeof msg, "the handler's outcome (%zu bytes) is larger than the master's max_frame (%u)",
           len, (unsigned)max_frame);
  IA__WARN("slave: task %llu: %s", (unsigned long long)t->id, msg);
  return error_frame(t, msg, w);
}

bool ia__task_ctx_outcome_frame(const ia_task_ctx *t, uint32_t max_frame, ia__wframe *w) {
  /* The usual outcome: a small result in one piece (or none). A result is
   * heard as it is even when the task was cancelled (stopped_for). */
  if (t->outcome == IA__OUTCOME_RESULT && t->out_niov <= 1) {
    ia__small_body b = {.no1 = 1,
                        .d1 = t->out_niov ? t->out_iov[0].iov_base : t->out,
                        .n1 = t->out_niov ? t->out_iov[0].iov_len : t->out_len};
    if (ia__wframe_small(w, t->id, INTERACTION__V1__FRAME__BODY_RESULT, &b)) {
      if (ia__wframe_body_len(w) <= max_frame) return true;
      ia__wframe_release(w); /* over a tiny max_frame: the general path says so */
    }
  }
  return outcome_frame(t, max_frame, w);
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
