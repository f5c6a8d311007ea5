/*
 * The master's one blocking call. ia_call(), the vectored call under the
 * typed stubs (ia__call_vec) and the internal Disconnect and Ping all run a
 * task through ia__call_task(): submit it, await it -- the caller reads its
 * own reply, see reader.c -- and at the deadline cancel and abandon it.
 *
 * Abandoning is what makes a timeout safe: the task leaves the pending list
 * (so timed-out calls do not pile up on a connection), its id is
 * remembered (so a late answer from a handler that ignored the cancel is
 * dropped, not called a protocol error), and nothing the caller owns is
 * referenced any more (the request was sent or copied, the decoder is held
 * by value).
 *
 * Never: return while the task can still reach the caller's memory, or
 * block the master's I/O thread.
 */
#include <stdlib.h>
#include <string.h>

#include "master/master-internal.h"

uint32_t ia_call_opts_timeout(const ia_call_opts *opts) {
  return opts && opts->timeout_ms ? opts->timeout_ms : IA_CALL_DEFAULT_TIMEOUT_MS;
}

/* A call whose task has ended: IA_OK for its outcome (outcome() reads it),
 * or IA_TIMEOUT if it ended at its bound. The slave stopping the task at
 * the deadline it was given is the call's own timeout, met a moment sooner:
 * the caller hears one code for it, whichever end saw it first -- and
 * whichever thread read the slave's answer. */
static ia_code ended(const ia_task *t, bool bound_is_deadline, uint32_t timeout_ms, ia_error *err) {
  if (bound_is_deadline && ia_task_status(t) == IA_STATUS_TIMED_OUT)
    return ia__error_set(err, IA_TIMEOUT,
                         "no answer to %s within %u ms (the slave stopped it at the deadline)", t->method,
                         timeout_ms);
  return IA_OK;
}

ia_code ia__call_task(ia_task *t, uint32_t timeout_ms, ia_error *err) {
  ia_conn *c = t->conn;
  if (ia__master_on_loop(c->m))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "a blocking call would block the master's I/O thread");
  uint64_t deadline = ia__deadline_after(timeout_ms);
  /* The slave hears the caller's bound as the task's deadline. */
  bool bound_is_deadline = t->kind == IA__TASK_USER && !t->deadline_ms && timeout_ms != UINT32_MAX;
  if (bound_is_deadline) t->deadline_ms = timeout_ms;
  ia_code rc = ia__task_send(t, true, deadline);
  t->piov = NULL; /* the caller's memory: sent or copied by now */
  t->pniov = 0;
  if (rc == IA_INVALID_ARGUMENT) return ia__error_set(err, rc, "the task was started already");
  if (rc != IA_OK) return IA_OK; /* START_FAILED, with why in the task's error */
  if (ia__conn_await(c, t, deadline) == IA_OK) return ended(t, bound_is_deadline, timeout_ms, err);
  if (ia__master_abandon(c, t)) {
    ia__wframe w;
    ia__wframe_empty(&w, t->id, INTERACTION__V1__FRAME__BODY_CANCEL);
    (void)ia__conn_send_nb(c, &w);
    return ia__error_set(err, IA_TIMEOUT, "no answer to %s within %u ms",
                         t->kind == IA__TASK_USER ? t->method : "the request", timeout_ms);
  }
  /* A reader took the answer off the list just now and is finishing the
   * task: its outcome is a moment away. */
  if (ia_task_join(t, 1000) == IA_OK) return ended(t, bound_is_deadline, timeout_ms, err);
  return ia__error_set(err, IA_TIMEOUT, "no answer within %u ms", timeout_ms);
}

/* Puts the metadata of opts on the call's task (its bound, and so its
 * deadline, is ia__call_task's); false (t freed, err filled) if it cannot. */
static bool apply_opts(ia_task *t, const ia_call_opts *opts, ia_error *err) {
  ia_code rc = ia__task_add_opts_metadata(t, opts);
  if (rc == IA_OK) return true;
  ia_task_free(t);
  ia__error_set(err, rc, "the call's metadata cannot be added (a key or value is NULL, or no memory)");
  return false;
}

/* The outcome of a terminal task as a call's result: IA_OK if it
 * completed, else its code with the details copied into err. */
static ia_code outcome(const ia_task *t, ia_error *err) {
  if (ia_task_status(t) == IA_STATUS_COMPLETED) return IA_OK;
  if (err) ia__error_copy(err, &t->error);
  return t->error.code;
}

ia_code ia__call_vec(ia_conn *c, const char *method, const struct iovec *iov, int niov, const ia_call_opts *opts,
                     const ia__decoder *dec, void **object, ia_error *err) {
  *object = NULL;
  uint32_t timeout_ms = ia_call_opts_timeout(opts);
  ia_task *t = ia__task_new(c, method, NULL, 0);
  if (!t) return ia__error_set(err, IA_NO_MEMORY, "no memory for the task");
  if (!apply_opts(t, opts, err)) return err ? err->code : IA_INVALID_ARGUMENT;
  t->piov = iov;
  t->pniov = niov;
  t->dec = *dec;
  ia_code rc = ia__call_task(t, timeout_ms, err);
  if (rc == IA_OK) rc = outcome(t, err);
  if (rc == IA_OK) {
    *object = t->decoded;
    t->decoded = NULL;
  }
  ia_task_free(t);
  return rc;
}

ia_code ia_call(ia_conn *c, const char *method, const void *req, size_t len, void **reply, size_t *reply_len,
                uint32_t timeout_ms, ia_error *err) {
  ia_call_opts opts = {.timeout_ms = timeout_ms ? timeout_ms : 1};
  return ia_call_with(c, method, req, len, reply, reply_len, &opts, err);
}

ia_code ia_call_with(ia_conn *c, const char *method, const void *req, size_t len, void **reply, size_t *reply_len,
                     const ia_call_opts *opts, ia_error *err) {
  if (reply) *reply = NULL;
  if (reply_len) *reply_len = 0;
  if (!c || !method || !reply || !reply_len || (len && !req))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "conn, method, reply and reply_len are required");
  ia_task *t = ia__task_new(c, method, req, len);
  if (!t) return ia__error_set(err, IA_NO_MEMORY, "no memory for the task");
  if (!apply_opts(t, opts, err)) return err ? err->code : IA_INVALID_ARGUMENT;
  ia_code rc = ia__call_task(t, ia_call_opts_timeout(opts), err);
  if (rc == IA_OK) rc = outcome(t, err);
  if (rc == IA_OK) {
    /* The caller gets a malloc'd reply: a small one is copied out of the task. */
    if (t->result == t->result_small) {
      *reply = malloc(t->result_len ? t->result_len : 1);
      if (*reply) memcpy(*reply, t->result_small, t->result_len);
    } else {
      *reply = t->result;
      t->result = NULL;
    }
    if (*reply)
      *reply_len = t->result_len;
    else
      rc = ia__error_set(err, IA_NO_MEMORY, "no memory for the reply");
  }
  ia_task_free(t);
  return rc;
}
