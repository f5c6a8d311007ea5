/* Time and blocking-with-deadline socket helpers for callers' threads (the
 * master's connect handshake). The event loops never call these. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime-internal.h"

uint64_t ia__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t ia__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void ia__deadline_ts(struct timespec *ts, uint32_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000u;
  ts->tv_nsec += (long)(ms % 1000u) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

/* Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, uint64_t deadline_ms) {
  for (;;) {
    uint64_t now = ia__now_ms();
    if (now >= deadline_ms) return 0;
    uint64_t left = deadline_ms - now;
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return -1;
  }
}

ia_code ia__dial(const char *host, uint16_t port, uint64_t deadline_ms, int *out, ia_error *err) {
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *ai = NULL;
  char portstr[8];
  snprintf(portstr, sizeof portstr, "%u", (unsigned)port);
  int rc = getaddrinfo(host, portstr, &hints, &ai);
  if (rc != 0) return ia__error_set(err, IA_IO_ERROR, "cannot resolve %s: %s", host, gai_strerror(rc));
  ia_code code = IA_IO_ERROR;
  for (struct addrinfo *a = ai; a; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      code = ia__error_set(err, IA_IO_ERROR, "socket: %s", strerror(errno));
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
      code = ia__error_set(err, IA_IO_ERROR, "connect to %s:%u: %s", host, (unsigned)port, strerror(errno));
      close(fd);
      continue;
    }
    int w = wait_fd(fd, POLLOUT, deadline_ms);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (w == 0) {
      code = ia__error_set(err, IA_TIMEOUT, "connect to %s:%u timed out", host, (unsigned)port);
      close(fd);
      break;
    }
    if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0) {
      code = ia__error_set(err, IA_IO_ERROR, "connect to %s:%u: %s", host, (unsigned)port,
                           strerror(soerr ? soerr : errno));
      close(fd);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *out = fd;
    code = IA_OK;
    break;
  }
  freeaddrinfo(ai);
  return code;
}

ia_code ia__fd_write_all(int fd, const uint8_t *buf, size_t len, uint64_t deadline_ms, ia_error *err) {
  while (len > 0) {
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      int w = wait_fd(fd, POLLOUT, deadline_ms);
      if (w == 0) return ia__error_set(err, IA_TIMEOUT, "send timed out");
      if (w > 0) continue;
    }
    return ia__error_set(err, IA_CONNECTION_LOST, "send: %s", strerror(errno));
  }
  return IA_OK;
}

static ia_code read_exact(int fd, uint8_t *buf, size_t len, uint64_t deadline_ms, ia_error *err) {
  while (len > 0) {
    ssize_t n = recv(fd, buf, len, 0);
    if (n > 0) {
      buf += n;
      len -= (size_t)n;
      continue;
    }
    if (n == 0) return ia__error_set(err, IA_CONNECTION_LOST, "the peer closed the connection");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      int w = wait_fd(fd, POLLIN, deadline_ms);
      if (w == 0) return ia__error_set(err, IA_TIMEOUT, "timed out waiting for the peer");
      if (w > 0) continue;
    }
    return ia__error_set(err, IA_CONNECTION_LOST, "recv: %s", strerror(errno));
  }
  return IA_OK;
}

ia_code ia__fd_read_frame(int fd, uint32_t max_frame, uint64_t deadline_ms, ia__frame **out, ia_error *err) {
  uint8_t hdr[IA_FRAME_HEADER];
  ia_code rc = read_exact(fd, hdr, sizeof hdr, deadline_ms, err);
  if (rc != IA_OK) return rc;
  uint32_t l = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
  if (l > max_frame)
    return ia__error_set(err, IA_FRAME_TOO_LARGE, "frame of %u bytes is over max_frame %u", l, max_frame);
  uint8_t *body = malloc(l ? l : 1);
  if (!body) return ia__error_set(err, IA_NO_MEMORY, "no memory for a %u-byte frame", l);
  rc = read_exact(fd, body, l, deadline_ms, err);
  if (rc == IA_OK) {
    *out = ia__frame_unpack(body, l);
    if (!*out) rc = ia__error_set(err, IA_PROTOCOL_ERROR, "malformed frame from the peer");
  }
  free(body);
  return rc;
}
