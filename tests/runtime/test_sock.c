/*
 * What ia__sock_setup (runtime/sock.c) makes of a fresh TCP connection on
 * 127.0.0.1: a connection the system gave BBR, which paces, takes a
 * congestion control that does not (bench/ANALYSIS.md: paced, a 1 MiB echo
 * between two processes on one CPU ran at half speed); any other choice is
 * left alone. Real sockets on 127.0.0.1, port 0.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "runtime/sock.h"

/* A connected pair over 127.0.0.1: *a dialled, *b accepted. */
static void loopback_pair(int *a, int *b) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(l, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sin;
  cr_assert_eq(bind(l, (struct sockaddr *)&sin, sizeof sin), 0);
  cr_assert_eq(listen(l, 1), 0);
  cr_assert_eq(getsockname(l, (struct sockaddr *)&sin, &sl), 0);
  *a = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_eq(connect(*a, (struct sockaddr *)&sin, sizeof sin), 0);
  *b = accept(l, NULL, NULL);
  cr_assert_geq(*b, 0);
  close(l);
}

static void congestion(int fd, char out[16]) {
  memset(out, 0, 16);
  socklen_t sl = 15;
  cr_assert_eq(getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, out, &sl), 0);
}

/* Gives both ends `cc`; false if this kernel has no such module. */
static bool give(int a, int b, const char *cc) {
  return setsockopt(a, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) == 0 &&
         setsockopt(b, IPPROTO_TCP, TCP_CONGESTION, cc, (socklen_t)strlen(cc)) == 0;
}

Test(sock, a_loopback_connection_given_bbr_takes_one_that_does_not_pace) {
  int a, b;
  loopback_pair(&a, &b);
  if (!give(a, b, "bbr")) {
    close(a);
    close(b);
    cr_skip_test("this kernel has no bbr");
  }
  ia__sock_setup(a);
  ia__sock_setup(b);
  char cc[16];
  for (int i = 0; i < 2; i++) {
    congestion(i ? b : a, cc);
    cr_assert(strcmp(cc, "cubic") == 0 || strcmp(cc, "reno") == 0, "the %s end kept %s",
              i ? "accepting" : "dialling", cc);
  }
  close(a);
  close(b);
}

Test(sock, a_loopback_connection_keeps_a_congestion_control_that_does_not_pace) {
  int a, b;
  loopback_pair(&a, &b);
  cr_assert(give(a, b, "reno"), "reno is built into every Linux kernel");
  ia__sock_setup(a);
  char cc[16];
  congestion(a, cc);
  cr_assert_str_eq(cc, "reno");
  close(a);
  close(b);
}
