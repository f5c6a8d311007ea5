/* Tasks on the master: creation, callbacks, start, join, results, and the
 * blocking ia_call built on them. */
#include <errno.h>
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

static pthread_once_t cond_attr_once = PTHREAD_ONCE_INIT;
static pthread_condattr_t cond_attr; /* CLOCK_MONOTONIC, for timed joins */

static void cond_attr_init(void) {
  pthread_condattr_init(&cond_attr);
  pthread_condattr_setclock(&cond_attr, CLOCK_MONOTONIC);
}

ia_task *ia_conn_new_task(ia_conn *c, const char *method, const void *payload, size_t len) {
  if (!c || !method || (len && !payload)) return NULL;
  /* malloc, not calloc: calloc skips glibc's per-thread cache, and only the
   * head of a task needs clearing. */
  ia_task *t = malloc(sizeof *t);
  if (!t) return NULL;
  memset(t, 0, IA_TASK_CLEAR);
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

static ia_code add_cb(ia_task *t, ia_task_cb fn, void *user, bool on_complete) {
  if (!fn) return IA_INVALID_ARGUMENT;
  /* An IDLE task is its creator's alone (starting it is what shares it), so
   * the list needs no lock; the status check catches a started one. */
  ia_code rc = IA_OK;
  if (atomic_load(&t->status) != IA_STATUS_IDLE) {
    rc = IA_INVALID_ARGUMENT;
  } else {
    task_cb *cbs = t->cbs;
    if (t->n_cbs < 2) {
      cbs = t->cbs_inline;
    } else {
      cbs = malloc((t->n_cbs + 1) * sizeof *cbs);
      if (cbs) memcpy(cbs, t->cbs, t->n_cbs * sizeof *cbs);
    }
    if (!cbs) {
      rc = IA_NO_MEMORY;
    } else {
      cbs[t->n_cbs++] = (task_cb){fn, user, on_complete};
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

void ia__task_finish(ia_task *t, ia_status status, ia_code code, const char *message, const uint8_t *data,
                     size_t len, bool from_pending) {
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
    ia__error_set(&t->error, code, "%s", message && *message ? message : ia_strerror(code));
    ia__error_set_data(&t->error, data, len);
  }
  atomic_store(&t->status, status); /* before the callbacks, which may read it */
  for (size_t i = 0; i < t->n_cbs; i++)
    if (t->cbs[i].on_complete == (status == IA_STATUS_COMPLETED)) t->cbs[i].fn(t, t->cbs[i].user);
  /* Before has_cond is read (both sequentially consistent): a waiter that
   * saw done false had made its condition first, so it is woken here. */
  atomic_store(&t->done, true);
  ia__task_wake(t);
  if (from_pending) ia__task_unref(t);
}

pthread_cond_t *ia__task_cond_locked(ia_task *t) {
  if (!atomic_load_explicit(&t->has_cond, memory_order_relaxed)) {
    pthread_once(&cond_attr_once, cond_attr_init);
    pthread_cond_init(&t->cond, &cond_attr);
    atomic_store(&t->has_cond, true);
  }
  return &t->cond;
}

void ia__task_wake(ia_task *t) {
  if (!atomic_load(&t->has_cond)) return;
  ia_master *m = t->conn->m;
  pthread_mutex_lock(&m->mu);
  pthread_cond_broadcast(&t->cond);
  pthread_mutex_unlock(&m->mu);
}

bool ia__task_frame(const ia_task *t, ia__wframe *w) {
  ia__field f[2] = {{.no = 1, .p = t->method, .n = t->method_len},
                    {.no = 2, .p = t->payload, .n = t->len, .iov = t->piov, .niov = t->pniov}};
  return ia__wframe_build(w, t->id, INTERACTION__V1__FRAME__BODY_TASK, f, 2);
}

static size_t task_payload_len(const ia_task *t) {
  size_t n = t->len;
  for (int i = 0; i < t->pniov; i++)
    n += t->piov[i].iov_len;
  return n;
}

/* Checks and sends t; on failure ends it in START_FAILED (callbacks run). */
static ia_code task_send(ia_task *t, bool blocking) {
  ia_conn *c = t->conn;
  ia_code rc = IA_OK;
  const char *why = NULL;
  ia__wframe w;
  if (task_payload_len(t) > c->peer_max_frame) {
    rc = IA_FRAME_TOO_LARGE;
    why = "the task is larger than the slave's max_frame";
  } else if (!ia__task_frame(t, &w)) {
    rc = IA_NO_MEMORY;
    why = "no memory for the task frame";
  } else {
    rc = ia__conn_submit(c, t, &w, blocking);
    ia__wframe_release(&w);
    if (rc == IA_INVALID_ARGUMENT) return rc; /* started already: nothing to end */
    why = "the connection is not up";
  }
  if (rc != IA_OK) ia__task_finish(t, IA_STATUS_START_FAILED, rc, why, NULL, 0, false);
  return rc;
}

ia_code ia_task_start(ia_task *t) {
  return task_send(t, false);
}

ia_code ia_task_join(ia_task *t, uint32_t timeout_ms) {
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

ia_code ia_task_cancel(ia_task *t) {
  ia_status st = ia_task_status(t);
  if (st != IA_STATUS_STARTING && st != IA_STATUS_STARTED) return IA_INVALID_ARGUMENT;
  ia__wframe w;
  ia__wframe_empty(&w, t->id, INTERACTION__V1__FRAME__BODY_CANCEL);
  return ia__conn_send(t->conn, &w);
}

static void task_destroy(ia_task *t) {
  ia_conn *c = t->conn;
  if (t->method != t->method_small) free(t->method);
  if (t->payload != t->payload_small) free(t->payload);
  if (t->result != t->result_small) free(t->result);
  if (t->cbs != t->cbs_inline) free(t->cbs);
  if (t->decoded) t->dec->release(t->decoded);
  ia_error_clear(&t->error);
  if (atomic_load(&t->has_cond)) pthread_cond_destroy(&t->cond);
  free(t);
  ia__conn_unref(c);
}

void ia__task_unref(ia_task *t) {
  if (atomic_fetch_sub(&t->refs, 1) == 1) task_destroy(t);
}

void ia_task_free(ia_task *t) {
  if (t) ia__task_unref(t);
}

uint32_t ia_call_opts_timeout(const ia_call_opts *opts) {
  return opts && opts->timeout_ms ? opts->timeout_ms : IA_CALL_DEFAULT_TIMEOUT_MS;
}

ia_code ia__call_vec(ia_conn *c, const char *method, const struct iovec *iov, int niov, uint32_t timeout_ms,
                     const ia__decoder *dec, void **object, ia_error *err) {
  *object = NULL;
  if (ia__master_on_loop(c->m))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "a blocking call would block the I/O thread");
  ia_task *t = ia_conn_new_task(c, method, NULL, 0);
  if (!t) return ia__error_set(err, IA_NO_MEMORY, "no memory for the task");
  t->piov = iov;
  t->pniov = niov;
  t->dec = dec;
  ia_code rc = task_send(t, true);
  t->piov = NULL; /* the caller's memory: never used after the send */
  t->pniov = 0;
  if (rc == IA_OK && ia__conn_await(c, t, timeout_ms) != IA_OK) {
    ia_task_cancel(t);
    ia_task_free(t); /* a reply that still comes is released with the task */
    return ia__error_set(err, IA_TIMEOUT, "no answer to %s within %u ms", method, timeout_ms);
  }
  rc = IA_OK;
  if (ia_task_status(t) == IA_STATUS_COMPLETED) {
    *object = t->decoded;
    t->decoded = NULL;
  } else {
    if (err) ia__error_copy(err, &t->error);
    rc = t->error.code;
  }
  ia_task_free(t);
  return rc;
}

ia_code ia_call(ia_conn *c, const char *method, const void *req, size_t len, void **reply, size_t *reply_len,
                uint32_t timeout_ms, ia_error *err) {
  if (!c || !method || !reply || !reply_len)
    return ia__error_set(err, IA_INVALID_ARGUMENT, "conn, method, reply and reply_len are required");
  *reply = NULL;
  *reply_len = 0;
  ia_task *t = ia_conn_new_task(c, method, req, len);
  if (!t) return ia__error_set(err, IA_NO_MEMORY, "no memory for the task");
  if (ia__master_on_loop(c->m)) {
    ia_task_free(t);
    return ia__error_set(err, IA_INVALID_ARGUMENT, "ia_call would block the I/O thread");
  }
  ia_code rc = task_send(t, true);
  if (rc == IA_OK && ia__conn_await(c, t, timeout_ms) != IA_OK) {
    ia_task_cancel(t);
    ia_task_free(t);
    return ia__error_set(err, IA_TIMEOUT, "no answer to %s within %u ms", method, timeout_ms);
  }
  if (ia_task_status(t) == IA_STATUS_COMPLETED) {
    /* The caller gets a malloc'd reply: a small one is copied out of the task. */
    if (t->result == t->result_small) {
      *reply = malloc(t->result_len ? t->result_len : 1);
      if (*reply == NULL) {
        ia_task_free(t);
        return ia__error_set(err, IA_NO_MEMORY, "no memory for the reply");
      }
      memcpy(*reply, t->result_small, t->result_len);
    } else {
      *reply = t->result;
      t->result = NULL;
    }
    *reply_len = t->result_len;
    rc = IA_OK;
  } else {
    if (err) ia__error_copy(err, &t->error);
    rc = t->error.code;
  }
  ia_task_free(t);
  return rc;
}
