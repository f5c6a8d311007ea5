/*
 * The master's task object: creation, callbacks, start, join, results,
 * cancel, and its end (ia__task_finish), which every path that ends a task
 * goes through: a reply, a refusal, a lost connection, a failed start.
 *
 * Callbacks run on the thread that ends the task, never with a lock held.
 * A task being finished is always referenced by someone other than its
 * user for the duration (the pending list, or ia__task_finish itself), so a
 * callback may free its own task.
 *
 * Never: end a task twice, or touch a task after dropping the last
 * reference this code holds on it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "master/master-internal.h"

static const char *status_names[] = {"IDLE",   "STARTING", "STARTED",   "START_FAILED", "COMPLETED",
                                     "FAILED", "LOST",     "TIMED_OUT", "CANCELLED"};

const char *ia_status_name(ia_status s) {
  return (unsigned)s < sizeof status_names / sizeof status_names[0] ? status_names[s] : "UNKNOWN";
}

bool ia_status_is_terminal(ia_status s) {
  return s >= IA_STATUS_START_FAILED;
}

ia_task *ia__task_new(ia_conn *c, const char *method, const void *payload, size_t len) {
  /* The last task freed, or malloc, not calloc: calloc skips glibc's
   * per-thread cache, and only the head of a task needs clearing. */
  ia_task *t = atomic_exchange_explicit(&c->m->spare_task, NULL, memory_order_acquire);
  if (!t && !(t = malloc(sizeof *t))) return NULL;
  memset(t, 0, IA__TASK_CLEAR);
  t->error.code = IA_OK;
  t->error.message[0] = '\0';
  t->error.data = NULL;
  t->error.data_len = 0;
  /* Small methods and payloads (the common case) live in the task itself. */
  size_t mlen = strlen(method);
  t->method = mlen < sizeof t->method_small ? t->method_small : malloc(mlen + 1);
  t->payload = len <= sizeof t->payload_small ? t->payload_small : malloc(len);
  if (!t->method || !t->payload) {
    if (t->method != t->method_small) free(t->method);
    if (t->payload != t->payload_small) free(t->payload);
    free(t);
    return NULL;
  }
  memcpy(t->method, method, mlen + 1);
  t->method_len = mlen;
  if (len) memcpy(t->payload, payload, len);
  t->len = len;
  atomic_init(&t->refs, 1);
  atomic_init(&t->status, IA_STATUS_IDLE);
  t->id = atomic_fetch_add(&c->m->next_id, 1);
  ia__conn_ref(c); /* the caller holds one */
  t->conn = c;
  return t;
}

ia_task *ia_conn_new_task(ia_conn *c, const char *method, const void *payload, size_t len) {
  if (!c || !method || (len && !payload)) return NULL;
  return ia__task_new(c, method, payload, len);
}

static ia_code add_cb(ia_task *t, ia_task_cb fn, void *user, bool on_complete) {
  if (!fn) return IA_INVALID_ARGUMENT;
  /* An IDLE task is its creator's alone (starting it is what shares it), so
   * the list needs no lock; the status check catches a started one. */
  ia_code rc = IA_OK;
  if (atomic_load(&t->status) != IA_STATUS_IDLE) {
    rc = IA_INVALID_ARGUMENT;
  } else {
    ia__task_cb *cbs = t->cbs;
    if (t->n_cbs < 2) {
      cbs = t->cbs_inline;
    } else {
      cbs = malloc((t->n_cbs + 1) * sizeof *cbs);
      if (cbs) memcpy(cbs, t->cbs, t->n_cbs * sizeof *cbs);
    }
    if (!cbs) {
      rc = IA_NO_MEMORY;
    } else {
      cbs[t->n_cbs++] = (ia__task_cb){fn, user, on_complete};
      if (t->cbs != cbs && t->cbs != t->cbs_inline) free(t->cbs);
      t->cbs = cbs;
    }
  }
  return rc;
}

ia_code ia_task_on_complete(ia_task *t, ia_task_cb cb, void *user) {
  return add_cb(t, cb, user, true);
}

ia_code ia_task_on_fail(ia_task *t, ia_task_cb cb, void *user) {
  return add_cb(t, cb, user, false);
}

static void task_wake(ia_task *t);

void ia__task_finish(ia_task *t, ia_status status, ia_code code, const char *message, const uint8_t *data,
                     size_t len, bool from_pending) {
  /* Held across the callbacks, which may free the task: the pending list's
   * reference does that for a task that was pending. */
  if (!from_pending) atomic_fetch_add(&t->refs, 1);
  if (status == IA_STATUS_COMPLETED) {
    t->result = len <= sizeof t->result_small ? t->result_small : malloc(len);
    if (t->result) {
      if (len) memcpy(t->result, data, len);
      t->result_len = len;
    } else {
      status = IA_STATUS_FAILED;
      code = IA_NO_MEMORY;
      message = "no memory for the result";
      len = 0;
    }
  }
  if (status != IA_STATUS_COMPLETED) {
    /* A task that did not complete never reads as success. */
    if (code == IA_OK) code = IA_TASK_ERROR;
    ia__error_set_msg(&t->error, code, message && *message ? message : ia_strerror(code));
    ia__error_set_data(&t->error, data, len);
  }
  if (t->kind == IA__TASK_USER) ia__stats_task_end(t, status);
  atomic_store(&t->status, status); /* before the callbacks, which may read it */
  for (size_t i = 0; i < t->n_cbs; i++)
    if (t->cbs[i].on_complete == (status == IA_STATUS_COMPLETED)) t->cbs[i].fn(t, t->cbs[i].user);
  /* Before has_cond is read (both sequentially consistent): a waiter that
   * saw done false had made its condition first, so it is woken here. */
  atomic_store(&t->done, true);
  task_wake(t);
  ia__task_unref(t);
}

pthread_cond_t *ia__task_cond_locked(ia_task *t) {
  if (!atomic_load_explicit(&t->has_cond, memory_order_relaxed)) {
    ia__cond_init(&t->cond);
    atomic_store(&t->has_cond, true);
  }
  return &t->cond;
}

/* Wakes whoever waits on t, and the threads in ia_task_wait_any(). Takes
 * mu only if somebody waits. */
static void task_wake(ia_task *t) {
  ia_master *m = t->conn->m;
  bool cond = atomic_load(&t->has_cond), any = atomic_load(&m->any_waiters) > 0;
  if (!cond && !any) return;
  pthread_mutex_lock(&m->mu);
  if (cond) pthread_cond_broadcast(&t->cond);
  if (any) pthread_cond_broadcast(&m->any_cond);
  pthread_mutex_unlock(&m->mu);
}

/* The frame of t (payload referenced, not copied): a Task, or the
 * internal request its kind says. */
static bool task_frame(const ia_task *t, ia__wframe *w) {
  if (t->kind == IA__TASK_PING) {
    ia__wframe_empty(w, t->id, INTERACTION__V1__FRAME__BODY_PING);
    return true;
  }
  if (t->kind == IA__TASK_STATS) {
    ia__wframe_empty(w, t->id, INTERACTION__V1__FRAME__BODY_STATS_REQUEST);
    return true;
  }
  if (t->kind == IA__TASK_DISCONNECT) {
    ia__field f = {.no = 1, .p = t->payload, .n = t->len};
    return ia__wframe_build(w, t->id, INTERACTION__V1__FRAME__BODY_DISCONNECT, &f, t->len ? 1 : 0);
  }
  /* The usual task: a method, perhaps a deadline, and a small payload in
   * one piece (or none). The fields in the order below. */
  ia__small_body b = {.no1 = 1,
                      .d1 = t->method,
                      .n1 = t->method_len,
                      .vno = t->deadline_ms ? 3 : 0,
                      .v = t->deadline_ms,
                      .no2 = 2,
                      .d2 = t->pniov ? t->piov[0].iov_base : t->payload,
                      .n2 = t->pniov ? t->piov[0].iov_len : t->len};
  if (!t->md_len && t->pniov <= 1 && ia__wframe_small(w, t->id, INTERACTION__V1__FRAME__BODY_TASK, &b))
    return true;
  /* Field order does not matter to a protobuf reader: the payload goes
   * last, so that a large one is referenced, not copied. */
  ia__field f[4];
  size_t n = 0;
  f[n++] = (ia__field){.no = 1, .p = t->method, .n = t->method_len};
  if (t->deadline_ms) f[n++] = (ia__field){.no = 3, .varint = true, .v = t->deadline_ms};
  if (t->md_len) f[n++] = (ia__field){.no = 4, .raw = true, .p = t->md, .n = t->md_len};
  f[n++] = (ia__field){.no = 2, .p = t->payload, .n = t->len, .iov = t->piov, .niov = t->pniov};
  return ia__wframe_build(w, t->id, INTERACTION__V1__FRAME__BODY_TASK, f, n);
}

ia_code ia__task_send(ia_task *t, bool blocking, uint64_t deadline_ms) {
  ia_conn *c = t->conn;
  ia__wframe w;
  ia_code rc;
  const char *why = "the connection is not up";
  char buf[160];
  if (!task_frame(t, &w)) {
    rc = IA_NO_MEMORY;
    why = "no memory for the task frame";
  } else if (ia__wframe_body_len(&w) > c->peer_max_frame) {
    /* The whole frame, as the slave measures it: a payload just under the
     * limit still makes a frame over it, and the slave would drop the
     * connection for it. */
    rc = IA_FRAME_TOO_LARGE;
    snprintf(buf, sizeof buf, "the task's frame (%zu bytes) is larger than the slave's max_frame (%u)",
             ia__wframe_body_len(&w), (unsigned)c->peer_max_frame);
    why = buf;
    ia__wframe_release(&w);
  } else {
    rc = ia__conn_submit(c, t, &w, blocking, deadline_ms);
    ia__wframe_release(&w);
    if (rc == IA_INVALID_ARGUMENT) return rc; /* started already: nothing to end */
  }
  if (rc != IA_OK) ia__task_finish(t, IA_STATUS_START_FAILED, rc, why, NULL, 0, false);
  return rc;
}

ia_code ia_task_start(ia_task *t) {
  if (!t) return IA_INVALID_ARGUMENT;
  return ia__task_send(t, false, UINT64_MAX);
}

ia_code ia_task_join(ia_task *t, uint32_t timeout_ms) {
  if (!t) return IA_INVALID_ARGUMENT;
  ia_master *m = t->conn->m;
  if (ia__master_on_loop(m)) return IA_INVALID_ARGUMENT; /* it would wait for itself */
  struct timespec until;
  ia__deadline_ts(&until, timeout_ms);
  pthread_mutex_lock(&m->mu);
  if (t->status == IA_STATUS_IDLE) {
    pthread_mutex_unlock(&m->mu);
    return IA_INVALID_ARGUMENT;
  }
  int rc = 0;
  pthread_cond_t *cond = ia__task_cond_locked(t);
  while (!atomic_load(&t->done) && rc != ETIMEDOUT) {
    if (timeout_ms == UINT32_MAX)
      rc = pthread_cond_wait(cond, &m->mu);
    else
      rc = pthread_cond_timedwait(cond, &m->mu, &until);
  }
  bool done = t->done;
  pthread_mutex_unlock(&m->mu);
  return done ? IA_OK : IA_TIMEOUT;
}

ia_status ia_task_status(const ia_task *t) {
  return (ia_status)atomic_load(&((ia_task *)t)->status);
}

const uint8_t *ia_task_result(const ia_task *t, size_t *len) {
  if (len) *len = t->result ? t->result_len : 0;
  return t->result;
}

const ia_error *ia_task_error(const ia_task *t) {
  return &t->error;
}

/* ---- deadline and metadata ---- */

ia_code ia_task_set_deadline(ia_task *t, uint32_t deadline_ms) {
  if (!t || ia_task_status(t) != IA_STATUS_IDLE || t->kind != IA__TASK_USER) return IA_INVALID_ARGUMENT;
  t->deadline_ms = deadline_ms == UINT32_MAX ? 0 : deadline_ms;
  return IA_OK;
}

/* Appends a length-delimited field's key and length. */
static uint8_t *put_len_key(uint8_t *p, unsigned no, size_t len) {
  p = ia__put_varint(p, (uint64_t)no << 3 | 2);
  return ia__put_varint(p, len);
}

ia_code ia_task_add_metadata(ia_task *t, const char *key, const char *value) {
  if (!t || !key || !value || ia_task_status(t) != IA_STATUS_IDLE || t->kind != IA__TASK_USER)
    return IA_INVALID_ARGUMENT;
  /* One map entry: Task field 4 holding {key = 1, value = 2}. */
  size_t kl = strlen(key), vl = strlen(value), entry = 2 + 2 * 10 + kl + vl, need = t->md_len + entry + 11;
  if (need > t->md_cap) {
    size_t cap = t->md_cap ? t->md_cap * 2 : 128;
    while (cap < need)
      cap *= 2;
    uint8_t *md = realloc(t->md, cap);
    if (!md) return IA_NO_MEMORY;
    t->md = md;
    t->md_cap = cap;
  }
  uint8_t tmp[32], *q = put_len_key(tmp, 1, kl);
  size_t khead = (size_t)(q - tmp);
  q = put_len_key(q, 2, vl);
  size_t vhead = (size_t)(q - tmp) - khead;
  uint8_t *p = put_len_key(t->md + t->md_len, 4, khead + kl + vhead + vl);
  memcpy(p, tmp, khead);
  memcpy(p += khead, key, kl);
  memcpy(p += kl, tmp + khead, vhead);
  memcpy(p += vhead, value, vl);
  t->md_len = (size_t)(p + vl - t->md);
  return IA_OK;
}

ia_code ia__task_add_opts_metadata(ia_task *t, const ia_call_opts *opts) {
  ia_code rc = IA_OK;
  for (size_t i = 0; opts && rc == IA_OK && i < opts->n_metadata; i++)
    rc = ia_task_add_metadata(t, opts->metadata[i].key, opts->metadata[i].value);
  return rc;
}

ia_code ia_task_set_opts(ia_task *t, const ia_call_opts *opts) {
  if (!t) return IA_INVALID_ARGUMENT;
  if (!opts) return ia_task_status(t) == IA_STATUS_IDLE ? IA_OK : IA_INVALID_ARGUMENT;
  ia_code rc = ia_task_set_deadline(t, opts->timeout_ms);
  return rc == IA_OK ? ia__task_add_opts_metadata(t, opts) : rc;
}

void ia__master_deadlines(ia_master *m) {
  enum { MAX_PER_TICK = 256 };
  ia_task *due[MAX_PER_TICK];
  size_t n = 0;
  pthread_mutex_lock(&m->mu);
  uint64_t now = ia__now_ms();
  for (ia_conn *c = m->conns; c && n < MAX_PER_TICK; c = c->next)
    for (ia_task *t = c->up ? c->pending : NULL; t && n < MAX_PER_TICK; t = t->next)
      if (t->deadline_at && now >= t->deadline_at) {
        atomic_fetch_add(&t->refs, 1);
        due[n++] = t;
      }
  pthread_mutex_unlock(&m->mu);
  for (size_t i = 0; i < n; i++) {
    ia_task *t = due[i];
    if (ia__master_abandon(t->conn, t)) {
      ia__wframe w;
      ia__wframe_empty(&w, t->id, INTERACTION__V1__FRAME__BODY_CANCEL);
      (void)ia__conn_send_nb(t->conn, &w);
      char msg[96];
      snprintf(msg, sizeof msg, "the task's deadline of %u ms passed without an answer", t->deadline_ms);
      /* Abandoning dropped the pending list's reference: ours holds it. */
      ia__task_finish(t, IA_STATUS_TIMED_OUT, IA_DEADLINE_EXCEEDED, msg, NULL, 0, false);
    }
    ia__task_unref(t);
  }
}

ia_code ia_task_cancel(ia_task *t) {
  if (!t) return IA_INVALID_ARGUMENT;
  ia_status st = ia_task_status(t);
  if (st != IA_STATUS_STARTING && st != IA_STATUS_STARTED) return IA_INVALID_ARGUMENT;
  ia__wframe w;
  ia__wframe_empty(&w, t->id, INTERACTION__V1__FRAME__BODY_CANCEL);
  return ia__conn_send_nb(t->conn, &w);
}

static void task_destroy(ia_task *t) {
  ia_conn *c = t->conn;
  /* Each free() a call into libc, and its lines, even for NULL. */
  if (t->md) free(t->md);
  if (t->method != t->method_small) free(t->method);
  if (t->payload != t->payload_small) free(t->payload);
  if (t->result && t->result != t->result_small) free(t->result);
  if (t->cbs && t->cbs != t->cbs_inline) free(t->cbs);
  if (t->decoded) t->dec.release(t->decoded);
  ia_error_clear(&t->error);
  if (atomic_load(&t->has_cond)) pthread_cond_destroy(&t->cond);
  /* Kept for the next task unless one is kept already: a call or a
   * fan-out round frees one task and makes the next. The master outlives
   * its tasks (the connection's reference below needs it too). */
  ia_task *none = NULL;
  if (!atomic_compare_exchange_strong_explicit(&c->m->spare_task, &none, t, memory_order_release,
                                               memory_order_relaxed))
    free(t);
  ia__conn_unref(c);
}

void ia__task_unref(ia_task *t) {
  if (atomic_fetch_sub(&t->refs, 1) == 1) task_destroy(t);
}

void ia_task_free(ia_task *t) {
  if (t) ia__task_unref(t);
}
