/*
 * Socket helpers both ends share: the one place that sets socket options,
 * the hot path's syscalls, waiting for readiness with a deadline, and
 * dialling. Nothing here keeps state.
 */
#ifndef IA__SOCK_H
#define IA__SOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "runtime/runtime-internal.h"

/* How long a thread blocked in recv() on a connection sleeps before it
 * looks at its state again (SO_RCVTIMEO). A state change that matters at
 * once (closing) shuts the socket down, which wakes it. */
#define IA__RECV_TICK_MS 50u

/* Sets what every connection of ours has: TCP_NODELAY, the receive tick,
 * blocking mode (reads that must not block pass MSG_DONTWAIT) and
 * close-on-exec. */
void ia__sock_setup(int fd);

/* Makes a write that the peer does not acknowledge for `ms` fail the
 * connection (TCP_USER_TIMEOUT), so that a vanished host is noticed by a
 * sender within the heartbeat tolerance too. 0 is the kernel's default. */
void ia__sock_user_timeout(int fd, uint32_t ms);

/* The local port of a bound socket, 0 if unknown. */
uint16_t ia__sock_port(int fd);

/* Waits for `events` (POLLIN, POLLOUT) on fd until deadline_ms (UINT64_MAX:
 * no limit): 1 ready, 0 timed out, -1 error. */
int ia__wait_fd(int fd, short events, uint64_t deadline_ms);

/* Dials host:port before the deadline; on success *fd is a connected socket
 * set up as ia__sock_setup() does. */
IA_MUST_CHECK ia_code ia__dial(const char *host, uint16_t port, uint64_t deadline_ms, int *fd, ia_error *err);

/*
 * The hot path's socket calls, made as plain syscalls: libc's recv() and
 * send() are thread cancellation points and spend ~60 instructions each
 * marking themselves so; no thread of ours is ever cancelled, and at two
 * calls per task on each end it adds up. Same arguments, result and errno.
 */
static inline ssize_t ia__sys_recv(int fd, void *buf, size_t n, int flags) {
  return syscall(SYS_recvfrom, fd, buf, n, flags, NULL, NULL);
}

static inline ssize_t ia__sys_sendmsg(int fd, const struct msghdr *mh, int flags) {
  return syscall(SYS_sendmsg, fd, mh, flags);
}

static inline ssize_t ia__sys_send(int fd, const void *buf, size_t n, int flags) {
  return syscall(SYS_sendto, fd, buf, n, flags, NULL, 0);
}

#endif
