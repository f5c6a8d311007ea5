/* The raw-TCP floor's framing: whole-frame reads into one growable buffer
 * and blocking writes. Small frames cost one recv() each. */
#include "floor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
static int fill(int fd, floor_reader *r, size_t need) {
  while (r->have < need) {
    ssize_t n = recv(fd, r->buf + r->have, r->cap - r->have, 0);
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

int floor_read_frame(int fd, floor_reader *r, uint8_t **frame, uint32_t *len) {
  if (r->used) {
    /* Only pipeline-4 has more than one frame in flight, so this move is
     * almost always of zero bytes. */
    r->have -= r->used;
    if (r->have) memmove(r->buf, r->buf + r->used, r->have);
    r->used = 0;
  }
  if (fill(fd, r, 4) != 0) return -1;
  uint32_t l = floor_get32(r->buf);
  if (l == 0 || l > FLOOR_MAX_FRAME) return -1;
  size_t total = 4 + (size_t)l;
  if (total > r->cap) {
    uint8_t *nb = realloc(r->buf, total);
    if (nb == NULL) return -1;
    r->buf = nb;
    r->cap = total;
  }
  if (fill(fd, r, total) != 0) return -1;
  r->used = total;
  *frame = r->buf;
  *len = l;
  return 0;
}

bool floor_frame_buffered(const floor_reader *r) {
  size_t left = r->have - r->used;
  if (left < 4) return false;
  uint32_t l = floor_get32(r->buf + r->used);
  return left >= 4 + (size_t)l;
}

int floor_write_all(int fd, const void *buf, size_t len) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

int floor_writev_all(int fd, struct iovec *iov, int iovcnt) {
  while (iovcnt > 0) {
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
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
