/* Socket helpers: see sock.h. */
#include "runtime/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

/* True if fd's peer is this host's loopback: 127.0.0.0/8 or ::1 (also as
 * ::ffff:127.x.y.z). */
static bool peer_is_loopback(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getpeername(fd, (struct sockaddr *)&ss, &sl) != 0) return false;
  if (ss.ss_family == AF_INET) return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss.ss_family != AF_INET6) return false;
  const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
  return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* BBR paces what it sends: a burst goes out at its estimate of the path's
 * rate, the rest from a timer. Over loopback there is no path to spare and
 * the timer is pure cost, and a connection whose estimate once came out low
 * stays paced: with master and slave on one CPU, a 1 MiB echo ran at half
 * the speed it has without pacing (bench/ANALYSIS.md). Such a connection
 * takes cubic (or reno), which does not pace; any other choice of the
 * system's is kept. */
static void loopback_congestion(int fd) {
  char cc[16] = "";
  socklen_t sl = sizeof cc - 1;
  if (getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, &sl) != 0 || strcmp(cc, "bbr") != 0) return;
  if (!peer_is_loopback(fd)) return;
  if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "cubic", 5) != 0)
    (void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, "reno", 4);
}

void ia__sock_setup(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  loopback_congestion(fd);
  struct timeval tick = {0, IA__RECV_TICK_MS * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && (fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void ia__sock_user_timeout(int fd, uint32_t ms) {
  unsigned int v = ms;
  if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v) != 0)
    IA__DEBUG("TCP_USER_TIMEOUT: %s", strerror(errno));
}

uint16_t ia__sock_port(int fd) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) return 0;
  if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
  if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return 0;
}

int ia__wait_fd(int fd, short events, uint64_t deadline_ms) {
  for (;;) {
    int ms = -1;
    if (deadline_ms != UINT64_MAX) {
      uint64_t now = ia__now_ms();
      if (now >= deadline_ms) return 0;
      uint64_t left = deadline_ms - now;
      ms = left > 60000 ? 60000 : (int)left;
    }
    struct pollfd p = {.fd = fd, .events = events};
    int r = poll(&p, 1, ms);
    if (r > 0) return (p.revents & (events | POLLHUP | POLLERR)) ? 1 : -1;
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
    int w = ia__wait_fd(fd, POLLOUT, deadline_ms);
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (w == 0) {
      code = ia__error_set(err, IA_TIMEOUT, "connect to %s:%u timed out", host, (unsigned)port);
      close(fd);
      break;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0 || w < 0) {
      code = ia__error_set(err, IA_IO_ERROR, "connect to %s:%u: %s", host, (unsigned)port,
                           strerror(soerr ? soerr : errno ? errno : ECONNREFUSED));
      close(fd);
      continue;
    }
    ia__sock_setup(fd);
    *out = fd;
    code = IA_OK;
    break;
  }
  freeaddrinfo(ai);
  return code;
}
