/* The raw-TCP floor's framing: whole-frame reads into one growable buffer
 * and blocking writes, on a plain socket or through the link's TLS session.
 * Small frames cost one recv() (or SSL_read()) each. Never calls OpenSSL
 * itself (floor.h). */
#include "floor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void floor_link_close(floor_link *l) {
  if (l->io) l->io->end(l->session);
  l->io = NULL;
  l->session = NULL;
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
}

static ssize_t link_recv(floor_link *l, void *buf, size_t len) {
  return l->io ? l->io->recv(l->session, buf, len) : recv(l->fd, buf, len, 0);
}

static ssize_t link_send(floor_link *l, const void *buf, size_t len) {
  return l->io ? l->io->send(l->session, buf, len) : send(l->fd, buf, len, MSG_NOSIGNAL);
}

int floor_reader_init(floor_reader *r, size_t cap) {
  r->buf = malloc(cap);
  r->cap = r->buf ? cap : 0;
  r->have = r->used = 0;
  return r->buf ? 0 : -1;
}

void floor_reader_free(floor_reader *r) {
  free(r->buf);
  r->buf = NULL;
  r->cap = r->have = r->used = 0;
}

/* Receives at least until `need` bytes are buffered. */
static int fill(floor_link *l, floor_reader *r, size_t need) {
  while (r->have < need) {
    ssize_t n = link_recv(l, r->buf + r->have, r->cap - r->have);
    if (n > 0) {
      r->have += (size_t)n;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return -1;
    }
  }
  return 0;
}

int floor_read_frame(floor_link *l, floor_reader *r, uint8_t **frame, uint32_t *len) {
  if (r->used) {
    /* Only pipeline-4 has more than one frame in flight, so this move is
     * almost always of zero bytes. */
    r->have -= r->used;
    if (r->have) memmove(r->buf, r->buf + r->used, r->have);
    r->used = 0;
  }
  if (fill(l, r, 4) != 0) return -1;
  uint32_t body = floor_get32(r->buf);
  if (body == 0 || body > FLOOR_MAX_FRAME) return -1;
  size_t total = 4 + (size_t)body;
  if (total > r->cap) {
    uint8_t *nb = realloc(r->buf, total);
    if (nb == NULL) return -1;
    r->buf = nb;
    r->cap = total;
  }
  if (fill(l, r, total) != 0) return -1;
  r->used = total;
  *frame = r->buf;
  *len = body;
  return 0;
}

bool floor_frame_buffered(const floor_reader *r) {
  size_t left = r->have - r->used;
  if (left < 4) return false;
  uint32_t l = floor_get32(r->buf + r->used);
  return left >= 4 + (size_t)l;
}

int floor_write_all(floor_link *l, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = link_send(l, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int floor_writev_all(floor_link *l, struct iovec *iov, int iovcnt) {
  if (l->io) {
    for (int i = 0; i < iovcnt; i++)
      if (floor_write_all(l, iov[i].iov_base, iov[i].iov_len) != 0) return -1;
    return 0;
  }
  while (iovcnt > 0) {
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n = sendmsg(l->fd, &mh, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    size_t left = (size_t)n;
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}
