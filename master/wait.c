/*
 * Waiting on several tasks at once (ia_task_join_all, ia_task_wait_any),
 * and connecting by one "HOST:PORT" string (ia_master_connect_addr): what a fan-out program would otherwise
 * write around ia_task_join() and ia_master_connect() itself.
 *
 * wait_any sleeps on the master's any_cond, which a task's end broadcasts
 * only while somebody waits (any_waiters, read after the task's `done` is
 * set, both sequentially consistent: a waiter that saw `done` false had
 * counted itself first, so it is woken).
 *
 * Never: wait on the master's I/O thread (it would wait for itself), or
 * past the caller's timeout.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "master/master-internal.h"

ia_code ia_task_join_all(ia_task *const *tasks, size_t n, uint32_t timeout_ms) {
  if (!tasks || n == 0) return IA_INVALID_ARGUMENT;
  uint64_t deadline = ia__deadline_after(timeout_ms);
  for (size_t i = 0; i < n; i++) {
    if (!tasks[i]) return IA_INVALID_ARGUMENT;
    uint64_t now = ia__now_ms();
    uint32_t left = deadline == UINT64_MAX ? UINT32_MAX : deadline > now ? (uint32_t)(deadline - now) : 0;
    ia_code rc = ia_task_join(tasks[i], left);
    if (rc != IA_OK) return rc;
  }
  return IA_OK;
}

/* The first terminal task's index, or n. (mu) */
static size_t first_done(ia_task *const *tasks, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (atomic_load(&tasks[i]->done)) return i;
  return n;
}

ia_code ia_task_wait_any(ia_task *const *tasks, size_t n, uint32_t timeout_ms, size_t *index) {
  if (!tasks || n == 0 || !index) return IA_INVALID_ARGUMENT;
  for (size_t i = 0; i < n; i++)
    if (!tasks[i] || tasks[i]->conn->m != tasks[0]->conn->m) return IA_INVALID_ARGUMENT;
  ia_master *m = tasks[0]->conn->m;
  if (ia__master_on_loop(m)) return IA_INVALID_ARGUMENT;
  struct timespec until;
  ia__deadline_ts(&until, timeout_ms);
  pthread_mutex_lock(&m->mu);
  for (size_t i = 0; i < n; i++)
    if (tasks[i]->status == IA_STATUS_IDLE) {
      pthread_mutex_unlock(&m->mu);
      return IA_INVALID_ARGUMENT;
    }
  atomic_fetch_add(&m->any_waiters, 1);
  size_t at;
  int rc = 0;
  while ((at = first_done(tasks, n)) == n && rc != ETIMEDOUT)
    rc = timeout_ms == UINT32_MAX ? pthread_cond_wait(&m->any_cond, &m->mu)
                                  : pthread_cond_timedwait(&m->any_cond, &m->mu, &until);
  atomic_fetch_sub(&m->any_waiters, 1);
  pthread_mutex_unlock(&m->mu);
  if (at == n) return IA_TIMEOUT;
  *index = at;
  return IA_OK;
}

ia_code ia_master_connect_addr(ia_master *m, const char *name, const char *addr, const void *data, size_t len,
                               uint32_t timeout_ms, ia_conn **out, ia_error *err) {
  char host[256];
  uint16_t port = 0;
  if (out) *out = NULL;
  if (!ia_hostport_parse(addr, host, sizeof host, &port))
    return ia__error_set(err, IA_INVALID_ARGUMENT, "'%s' is not HOST:PORT", addr ? addr : "(null)");
  return ia_master_connect(m, name, host, port, data, len, timeout_ms, out, err);
}
