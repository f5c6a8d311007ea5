/* The recording relay of tu_relay.h. */
#include "tu_relay.h"

#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tu.h"

static bool capture_add(tu_capture *c, const uint8_t *p, size_t n) {
  if (c->n + n > c->cap) {
    size_t cap = (c->n + n) * 2;
    uint8_t *np = realloc(c->p, cap);
    if (np == NULL) return false;
    c->p = np;
    c->cap = cap;
  }
  memcpy(c->p + c->n, p, n);
  c->n += n;
  return true;
}

static void *relay_main(void *arg) {
  tu_relay *r = arg;
  int a = tu_raw_accept(r->listen_fd, TU_WAIT_MS);
  int b = a >= 0 ? tu_raw_connect(r->to) : -1;
  uint64_t end = tu_now_ms() + 4 * TU_WAIT_MS;
  bool over = a < 0 || b < 0;
  while (!over && tu_now_ms() < end) {
    struct pollfd p[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    if (poll(p, 2, 100) < 0) break;
    for (int i = 0; i < 2 && !over; i++) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      uint8_t buf[65536];
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        over = true;
        break;
      }
      if (!capture_add(i == 0 ? &r->up : &r->down, buf, (size_t)n)) r->failed = true;
      over = !tu_raw_write(i == 0 ? b : a, buf, (size_t)n);
    }
  }
  if (a >= 0) close(a);
  if (b >= 0) close(b);
  return NULL;
}

bool tu_relay_start(tu_relay *r, uint16_t to) {
  memset(r, 0, sizeof *r);
  r->to = to;
  r->listen_fd = tu_raw_listen(&r->port);
  if (r->listen_fd < 0) return false;
  r->started = pthread_create(&r->thread, NULL, relay_main, r) == 0;
  if (!r->started) close(r->listen_fd);
  return r->started;
}

void tu_relay_join(tu_relay *r) {
  if (!r->started) return;
  pthread_join(r->thread, NULL);
  close(r->listen_fd);
  r->started = false;
}

void tu_relay_free(tu_relay *r) {
  free(r->up.p);
  free(r->down.p);
  r->up = r->down = (tu_capture){0};
}
