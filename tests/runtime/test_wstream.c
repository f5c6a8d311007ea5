/* The write side of a connection (runtime/wstream.c), on a socketpair:
 * nothing goes out after the stream's last frame. The slave's loop once
 * sent a heartbeat Ping just behind the Goodbye its reader had sent for a
 * Disconnect (the nanopb interop test saw a byte after the Goodbye, under
 * valgrind in CI); a Goodbye is now sent as the last frame. */
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "interaction.pb-c.h"
#include "runtime/wire.h"
#include "runtime/wstream.h"

/* Everything readable on fd now. */
static size_t drain(int fd, uint8_t *buf, size_t cap) {
  size_t n = 0;
  ssize_t r;
  while (n < cap && (r = recv(fd, buf + n, cap - n, MSG_DONTWAIT)) > 0)
    n += (size_t)r;
  return n;
}

Test(wstream, nothing_goes_out_after_the_last_frame) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ia__ws ws;
  ia__ws_init(&ws, 1u << 20);
  ia__wframe ping, bye;
  ia__wframe_empty(&ping, 7, INTERACTION__V1__FRAME__BODY_PING);
  ia__wframe_empty(&bye, 8, INTERACTION__V1__FRAME__BODY_GOODBYE);
  size_t ping_n = ia__wframe_len(&ping), bye_n = ia__wframe_len(&bye);
  uint8_t buf[256];

  cr_assert_eq(ia__ws_send_nb(&ws, sv[0], &ping), IA__WS_DONE);
  cr_assert_eq(ia__ws_send_last(&ws, sv[0], &bye, true, 0, 1000), IA__WS_DONE);
  cr_assert_eq(drain(sv[1], buf, sizeof buf), ping_n + bye_n, "the frames before and the last one went out");
  /* Both kinds of sender, after it: dropped, and said to be done. */
  cr_assert_eq(ia__ws_send_nb(&ws, sv[0], &ping), IA__WS_DONE);
  cr_assert_eq(ia__ws_send(&ws, sv[0], &ping, 0, 1000), IA__WS_DONE);
  cr_assert_eq(ia__ws_send_last(&ws, sv[0], &bye, false, 0, 1000), IA__WS_DONE);
  cr_assert_eq(drain(sv[1], buf, sizeof buf), 0, "a frame went out after the last one");
  cr_assert_eq(ia__ws_error(&ws), 0);

  ia__wframe_release(&ping);
  ia__wframe_release(&bye);
  ia__ws_destroy(&ws);
  close(sv[0]);
  close(sv[1]);
}
