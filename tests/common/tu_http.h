/* HTTP GETs of a /metrics or /healthz port, and Prometheus text read by
 * Prometheus's own parser (tests/helpers/parse_metrics.py, Debian's
 * python3-prometheus-client). Criterion-asserting, so only tests include it. */
#ifndef IA_TESTS_TU_HTTP_H
#define IA_TESTS_TU_HTTP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tu_assert.h"

/* GET `path` on 127.0.0.1:port: the status code, and the body in *body
 * (malloc'd, NUL-terminated) when body is not NULL. */
static inline int tu_http_get(uint16_t port, const char *path, char **body) {
  int fd = tu_raw_connect(port);
  cr_assert_geq(fd, 0, "cannot connect to port %u", (unsigned)port);
  char req[128];
  int n = snprintf(req, sizeof req, "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
  cr_assert(tu_raw_write(fd, req, (size_t)n));
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  cr_assert_not_null(buf);
  uint64_t deadline = tu_now_ms() + TU_WAIT_MS;
  while (tu_now_ms() < deadline) {
    if (len + 1 == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      cr_assert_not_null(buf);
    }
    ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  buf[len] = '\0';
  int code = 0;
  cr_assert_eq(sscanf(buf, "HTTP/1.%*d %d", &code), 1, "no status line: %.80s", buf);
  char *start = strstr(buf, "\r\n\r\n");
  cr_assert_not_null(start, "no end of headers");
  if (body) {
    *body = strdup(start + 4);
    cr_assert_not_null(*body);
  }
  free(buf);
  return code;
}

/* The samples of `text` as Prometheus's parser (the script at `parser`)
 * reads them, one per line: NAME{sorted labels} VALUE. malloc'd. */
static inline char *tu_prom_parse(const char *text, const char *parser) {
  char in[TU_PATH_MAX];
  int fd = tu_temp_file(in, "metrics", text, strlen(text));
  cr_assert_geq(fd, 0);
  cr_assert_eq(close(fd), 0);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s < %s", parser, in);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t cap = 1 << 16, len = 0, r;
  char *out = malloc(cap);
  cr_assert_not_null(out);
  while ((r = fread(out + len, 1, cap - len - 1, p)) > 0) {
    len += r;
    if (len + 1 == cap) {
      cap *= 2;
      out = realloc(out, cap);
      cr_assert_not_null(out);
    }
  }
  out[len] = '\0';
  int st = pclose(p);
  unlink(in);
  cr_assert_eq(st, 0, "Prometheus's parser refused the metrics (status %d)", st);
  return out;
}

/* `samples` (tu_prom_parse's) holds exactly this line. */
static inline void tu_assert_sample(const char *samples, const char *line) {
  char want[300];
  snprintf(want, sizeof want, "%s\n", line);
  cr_assert_not_null(strstr(samples, want), "no sample \"%s\" in:\n%s", line, samples);
}

#endif
