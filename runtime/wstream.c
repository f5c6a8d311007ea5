/* The write side of a connection: see wstream.h. */
#include "runtime/wstream.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/sock.h"
#include "runtime/tls.h"

#define IOV_MAX_FRAME (IA__WFRAME_MAX_IOV + 2) /* queued bytes + a frame's pieces */

void ia__ws_init(ia__ws *ws, size_t limit) {
  memset(ws, 0, sizeof *ws);
  atomic_init(&ws->queued, 0);
  atomic_init(&ws->drained, 0);
  pthread_mutex_init(&ws->mu, NULL);
  ia__cond_init(&ws->idle);
  ws->limit = limit;
}

void ia__ws_destroy(ia__ws *ws) {
  free(ws->q);
  ws->q = NULL;
  pthread_cond_destroy(&ws->idle);
  pthread_mutex_destroy(&ws->mu);
}

/* Publishes the queue's length. (mu) */
static void q_len(ia__ws *ws) {
  atomic_store_explicit(&ws->queued, ws->tail - ws->head, memory_order_relaxed);
}

/* Drops n bytes from the front of an iovec array; returns the new count. */
static int iov_advance(struct iovec *iov, int n, size_t skip, struct iovec **first) {
  struct iovec *v = iov;
  while (n > 0 && skip >= v->iov_len) {
    skip -= v->iov_len;
    v++;
    n--;
  }
  if (n > 0) {
    v->iov_base = (uint8_t *)v->iov_base + skip;
    v->iov_len -= skip;
  }
  *first = v;
  return n;
}

static size_t iov_total(const struct iovec *iov, int n) {
  size_t t = 0;
  for (int i = 0; i < n; i++)
    t += iov[i].iov_len;
  return t;
}

/* One sendmsg() that does not block: bytes written, 0 if the socket is
 * full, -1 with errno on a real error. */
static ssize_t write_nb(const ia__ws *ws, int fd, struct iovec *iov, int n) {
  if (ws->tls) {
    ssize_t r = ia__tls_send(ws->tls, iov, n);
    return r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : r;
  }
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
  for (;;) {
    /* One piece (every small frame) goes with sendto(): sendmsg() costs the
     * kernel a copy of the header and the vector on top. */
    ssize_t r = n == 1 ? ia__sys_send(fd, iov->iov_base, iov->iov_len, MSG_DONTWAIT | MSG_NOSIGNAL)
                       : ia__sys_sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
  }
}

/* Appends the bytes of iov to the queue. (mu) */
static bool q_append(ia__ws *ws, const struct iovec *iov, int n) {
  size_t len = iov_total(iov, n), used = ws->tail - ws->head;
  if (used > ws->limit) {
    ws->error = ENOBUFS; /* the peer has not been reading for a long while */
    return false;
  }
  if (ws->tail + len > ws->cap) {
    if (ws->head > 0) {
      memmove(ws->q, ws->q + ws->head, used);
      ws->head = 0;
      ws->tail = used;
    }
    if (used + len > ws->cap) {
      size_t cap = ws->cap ? ws->cap : 4096;
      while (cap < used + len)
        cap *= 2;
      uint8_t *q = realloc(ws->q, cap);
      if (!q) {
        ws->error = ENOMEM;
        return false;
      }
      ws->q = q;
      ws->cap = cap;
    }
  }
  for (int i = 0; i < n; i++) {
    memcpy(ws->q + ws->tail, iov[i].iov_base, iov[i].iov_len);
    ws->tail += iov[i].iov_len;
  }
  q_len(ws);
  return true;
}

/* Writes queued bytes without blocking: 0 when the queue is empty, 1 while
 * bytes wait, -1 on a failure. (mu) */
static int q_flush(ia__ws *ws, int fd) {
  while (ws->tail > ws->head) {
    struct iovec v = {ws->q + ws->head, ws->tail - ws->head};
    ssize_t r = write_nb(ws, fd, &v, 1);
    if (r < 0) {
      ws->error = errno ? errno : EIO;
      return -1;
    }
    if (r == 0) return 1;
    atomic_fetch_add_explicit(&ws->drained, 1, memory_order_relaxed);
    ws->head += (size_t)r;
    q_len(ws);
  }
  ws->head = ws->tail = 0;
  q_len(ws);
  if (ws->cap > (1u << 20)) { /* a burst is over: give its memory back */
    free(ws->q);
    ws->q = NULL;
    ws->cap = 0;
  }
  return 0;
}

/* A frame after the last one is dropped: nothing follows a Goodbye. (mu) */
static bool sealed_locked(ia__ws *ws, bool last) {
  if (ws->sealed) return true;
  ws->sealed = last;
  return false;
}

static ia__ws_rc send_nb(ia__ws *ws, int fd, const ia__wframe *w, bool last) {
  struct iovec iov[IOV_MAX_FRAME], *v = iov;
  int n = ia__wframe_iov(w, iov);
  pthread_mutex_lock(&ws->mu);
  ia__ws_rc rc = IA__WS_FAILED;
  if (ws->error) goto out;
  rc = IA__WS_DONE;
  if (sealed_locked(ws, last)) goto out;
  rc = IA__WS_FAILED;
  if (!ws->owned && ws->tail == ws->head) {
    ssize_t r = write_nb(ws, fd, iov, n);
    if (r < 0) {
      ws->error = errno ? errno : EIO;
      goto out;
    }
    n = iov_advance(iov, n, (size_t)r, &v);
    if (n == 0) {
      rc = IA__WS_DONE;
      goto out;
    }
  }
  if (q_append(ws, v, n)) rc = ws->owned ? IA__WS_DONE : IA__WS_FLUSH;
out:
  pthread_mutex_unlock(&ws->mu);
  return rc;
}

/* Waits for the socket to take v[0..n), without the lock. 0 when all is
 * out, 1 at the deadline (*v and *n are what is left), -1 on a failure. */
static int write_until(ia__ws *ws, int fd, struct iovec **v, int *n, uint64_t deadline_ms) {
  bool waited = false;
  while (*n > 0) {
    ssize_t r = write_nb(ws, fd, *v, *n);
    if (r < 0) return -1;
    if (r > 0) {
      if (waited) atomic_fetch_add_explicit(&ws->drained, 1, memory_order_relaxed);
      *n = iov_advance(*v, *n, (size_t)r, v);
      continue;
    }
    waited = true;
    int ready = ia__wait_fd(fd, POLLOUT, deadline_ms);
    if (ready == 0) return 1;
    if (ready < 0) {
      errno = EPIPE;
      return -1;
    }
  }
  return 0;
}

ia__ws_rc ia__ws_send_nb(ia__ws *ws, int fd, const ia__wframe *w) {
  return send_nb(ws, fd, w, false);
}

static ia__ws_rc send_w(ia__ws *ws, int fd, const ia__wframe *w, uint64_t deadline_ms, uint32_t bound_ms,
                        bool last) {
  struct iovec iov[IOV_MAX_FRAME], *v = iov + 1;
  int n = ia__wframe_iov(w, iov + 1);
  pthread_mutex_lock(&ws->mu);
  if (ws->owned && deadline_ms == 0) deadline_ms = ia__now_ms() + bound_ms;
  while (ws->owned && !ws->error) {
    if (ia__now_ms() >= deadline_ms) {
      /* Another sender holds the stream past our deadline: the frame goes
       * out after its, and our caller stops waiting. */
      ia__ws_rc rc = sealed_locked(ws, last) ? IA__WS_DONE
                     : q_append(ws, v, n)    ? IA__WS_TIMEOUT
                                             : IA__WS_FAILED;
      pthread_mutex_unlock(&ws->mu);
      return rc;
    }
    struct timespec until;
    uint64_t left = deadline_ms - ia__now_ms();
    ia__deadline_ts(&until, left > 1000 ? 1000 : (uint32_t)left);
    pthread_cond_timedwait(&ws->idle, &ws->mu, &until);
  }
  if (ws->error || sealed_locked(ws, last)) {
    pthread_mutex_unlock(&ws->mu);
    return ws->error ? IA__WS_FAILED : IA__WS_DONE;
  }
  if (ws->tail == ws->head) { /* the common case: one sendmsg() */
    ssize_t r = write_nb(ws, fd, v, n);
    if (r < 0) {
      ws->error = errno ? errno : EIO;
      pthread_mutex_unlock(&ws->mu);
      return IA__WS_FAILED;
    }
    n = iov_advance(v, n, (size_t)r, &v);
    if (n == 0) {
      pthread_mutex_unlock(&ws->mu);
      return IA__WS_DONE;
    }
  }
  /* Own the stream: first what was queued before us, then our frame. */
  if (deadline_ms == 0) deadline_ms = ia__now_ms() + bound_ms;
  ws->owned = true;
  uint8_t *before = ws->q;
  size_t before_head = ws->head, before_tail = ws->tail;
  ws->q = NULL;
  ws->head = ws->tail = ws->cap = 0;
  q_len(ws);
  pthread_mutex_unlock(&ws->mu);

  struct iovec all[IOV_MAX_FRAME], *a = all;
  int na = 0;
  if (before_tail > before_head) all[na++] = (struct iovec){before + before_head, before_tail - before_head};
  for (int i = 0; i < n; i++)
    all[na++] = v[i];
  int r = write_until(ws, fd, &a, &na, deadline_ms);
  int e = errno;

  pthread_mutex_lock(&ws->mu);
  ws->owned = false;
  pthread_cond_broadcast(&ws->idle);
  ia__ws_rc rc;
  if (r < 0) {
    if (!ws->error) ws->error = e ? e : EIO;
    rc = IA__WS_FAILED;
  } else if (r > 0) {
    /* The deadline passed mid-frame: the rest goes out before whatever was
     * queued meanwhile, so that the stream stays whole. */
    uint8_t *later = ws->q;
    struct iovec after = {later ? later + ws->head : NULL, ws->tail - ws->head};
    ws->q = NULL;
    ws->head = ws->tail = ws->cap = 0;
    q_len(ws);
    bool ok = q_append(ws, a, na) && q_append(ws, &after, after.iov_len ? 1 : 0);
    free(later);
    rc = ok ? IA__WS_TIMEOUT : IA__WS_FAILED;
  } else {
    int f = q_flush(ws, fd);
    rc = f < 0 ? IA__WS_FAILED : f > 0 ? IA__WS_FLUSH : IA__WS_DONE;
  }
  pthread_mutex_unlock(&ws->mu);
  free(before);
  return rc;
}

ia__ws_rc ia__ws_send(ia__ws *ws, int fd, const ia__wframe *w, uint64_t deadline_ms, uint32_t bound_ms) {
  return send_w(ws, fd, w, deadline_ms, bound_ms, false);
}

ia__ws_rc ia__ws_send_last(ia__ws *ws, int fd, const ia__wframe *w, bool nb, uint64_t deadline_ms,
                           uint32_t bound_ms) {
  return nb ? send_nb(ws, fd, w, true) : send_w(ws, fd, w, deadline_ms, bound_ms, true);
}

ia__ws_rc ia__ws_flush(ia__ws *ws, int fd) {
  pthread_mutex_lock(&ws->mu);
  ia__ws_rc rc = IA__WS_DONE;
  if (ws->error) {
    rc = IA__WS_FAILED;
  } else if (!ws->owned) {
    int f = q_flush(ws, fd);
    rc = f < 0 ? IA__WS_FAILED : f > 0 ? IA__WS_FLUSH : IA__WS_DONE;
  }
  pthread_mutex_unlock(&ws->mu);
  return rc;
}

int ia__ws_error(ia__ws *ws) {
  pthread_mutex_lock(&ws->mu);
  int e = ws->error;
  pthread_mutex_unlock(&ws->mu);
  return e;
}

size_t ia__ws_queued(const ia__ws *ws) {
  return atomic_load_explicit(&((ia__ws *)ws)->queued, memory_order_relaxed);
}

uint64_t ia__ws_drained(const ia__ws *ws) {
  return atomic_load_explicit(&((ia__ws *)ws)->drained, memory_order_relaxed);
}
