/*
 * The fuzz targets' shared harness (see fuzz_common.h). It must never call
 * the library's internals, write files, or connect anywhere but to the
 * target's slave on 127.0.0.1; findings go to stderr, where libFuzzer's log
 * keeps them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "interaction.pb-c.h"

/* ---- reading the input ---- */

uint8_t fz_u8(fz_reader *r) {
  if (r->n == 0) return 0;
  r->n--;
  return *r->p++;
}

uint16_t fz_u16(fz_reader *r) {
  uint16_t hi = fz_u8(r);
  return (uint16_t)(hi << 8 | fz_u8(r));
}

uint32_t fz_u32(fz_reader *r) {
  uint32_t hi = fz_u16(r);
  return hi << 16 | fz_u16(r);
}

uint64_t fz_u64(fz_reader *r) {
  uint64_t hi = fz_u32(r);
  return hi << 32 | fz_u32(r);
}

const uint8_t *fz_bytes(fz_reader *r, size_t want, size_t *len) {
  const uint8_t *p = r->p;
  *len = want < r->n ? want : r->n;
  r->p += *len;
  r->n -= *len;
  return p;
}

/* ---- byte buffers ---- */

void fz_buf_put(fz_buf *b, const void *p, size_t n) {
  if (n == 0) return;
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->n < n)
      cap *= 2;
    uint8_t *np = realloc(b->p, cap);
    if (!np) abort(); /* the harness has no way to go on without memory */
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}

void fz_buf_byte(fz_buf *b, uint8_t v) {
  fz_buf_put(b, &v, 1);
}

void fz_buf_varint(fz_buf *b, uint64_t v) {
  uint8_t tmp[10];
  size_t n = 0;
  while (v >= 0x80) {
    tmp[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  tmp[n++] = (uint8_t)v;
  fz_buf_put(b, tmp, n);
}

void fz_buf_be32(fz_buf *b, uint32_t v) {
  uint8_t tmp[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
  fz_buf_put(b, tmp, 4);
}

void fz_buf_frame(fz_buf *b, const ProtobufCMessage *frame) {
  size_t n = protobuf_c_message_get_packed_size(frame);
  fz_buf_be32(b, (uint32_t)n);
  uint8_t *tmp = malloc(n ? n : 1);
  if (!tmp) abort();
  protobuf_c_message_pack(frame, tmp);
  fz_buf_put(b, tmp, n);
  free(tmp);
}

void fz_buf_hello(fz_buf *b, uint64_t id, uint32_t channel, bool nonce) {
  uint8_t n[32] = {0x5a};
  Interaction__V1__Hello h = INTERACTION__V1__HELLO__INIT;
  h.has_version = h.has_channel = 1;
  h.version = 1;
  h.channel = channel;
  h.master_name = (char *)"fuzz";
  h.has_auth_nonce = nonce;
  h.auth_nonce = (ProtobufCBinaryData){sizeof n, n};
  Interaction__V1__Frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = INTERACTION__V1__FRAME__BODY_HELLO;
  f.hello = &h;
  fz_buf_frame(b, &f.base);
}

size_t fz_chunk_size(uint8_t e) {
  unsigned code = e & 0x3f;
  return code < 48 ? code + 1 : (code - 47) * 256u;
}

void fz_buf_free(fz_buf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- time ---- */

uint64_t fz_now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void fz_sleep_us(uint64_t us) {
  struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
  nanosleep(&ts, NULL);
}

/* ---- the reference framing ---- */

fz_split fz_split_next(const uint8_t *s, size_t n, size_t at, uint32_t max_frame, uint32_t *len) {
  if (at >= n) return FZ_SPLIT_END;
  if (n - at < 4) return FZ_SPLIT_PARTIAL;
  uint32_t l = (uint32_t)s[at] << 24 | (uint32_t)s[at + 1] << 16 | (uint32_t)s[at + 2] << 8 | s[at + 3];
  if (l > max_frame) return FZ_SPLIT_OVERSIZE;
  if (n - at - 4 < l) return FZ_SPLIT_PARTIAL;
  *len = l;
  return FZ_SPLIT_READY;
}

/* ---- protobuf-c's reading of encodings ---- */

/* A varint at *pp: its byte count (0 if unterminated within 10 bytes). */
static size_t varint_at(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  const uint8_t *p = *pp;
  uint64_t r = 0;
  for (size_t i = 0; i < 10 && p + i < end; i++) {
    r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      *pp = p + i + 1;
      *v = r;
      return i + 1;
    }
  }
  return 0;
}

/* Recursion stops here: deeper nesting is not in Interaction's messages. */
#define QUIRK_DEPTH 8

static unsigned quirks(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth) {
  const uint8_t *end = p + n;
  unsigned q = 0;
  while (p < end) {
    const uint8_t *key_at = p;
    uint64_t key, v;
    size_t klen = varint_at(&p, end, &key);
    if (klen == 0) return q | FZ_Q_MALFORMED;
    if (klen > 5) q |= FZ_Q_LONG_TAG;
    /* protobuf-c rejects a zero field number only in a one-byte tag. */
    if ((key >> 3) == 0 && (key_at[0] & 0xf8) != 0) q |= FZ_Q_TAG0;
    const ProtobufCFieldDescriptor *f = d && klen <= 5 && (key >> 3) > 0
                                            ? protobuf_c_message_descriptor_get_field(d, (unsigned)(key >> 3))
                                            : NULL;
    switch (key & 7) {
    case 0:
      if (varint_at(&p, end, &v) == 0) return q | FZ_Q_MALFORMED;
      break;
    case 1:
    case 5: {
      size_t w = (key & 7) == 1 ? 8 : 4;
      if ((size_t)(end - p) < w) return q | FZ_Q_MALFORMED;
      p += w;
      break;
    }
    case 2: {
      size_t llen = varint_at(&p, end, &v);
      if (llen == 0 || v > (uint64_t)(end - p)) return q | FZ_Q_MALFORMED;
      if (llen > 5) q |= FZ_Q_LONG_LEN;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && depth < QUIRK_DEPTH)
        q |= quirks(f->descriptor, p, (size_t)v, depth + 1);
      p += v;
      break;
    }
    default:
      return q | FZ_Q_MALFORMED;
    }
  }
  return q;
}

bool fz_varint(const uint8_t **pp, const uint8_t *end, uint64_t *v) {
  return varint_at(pp, end, v) != 0;
}

unsigned fz_pbc_quirks(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n) {
  return quirks(d, p, n, 0);
}

unsigned fz_field_count(const uint8_t *p, size_t n, uint32_t no) {
  const uint8_t *end = p + n;
  unsigned count = 0;
  while (p < end) {
    uint64_t key, v;
    if (varint_at(&p, end, &key) == 0) break;
    if ((key >> 3) == no) count++;
    if ((key & 7) == 0) {
      if (varint_at(&p, end, &v) == 0) break;
    } else if ((key & 7) == 1 || (key & 7) == 5) {
      size_t w = (key & 7) == 1 ? 8 : 4;
      if ((size_t)(end - p) < w) break;
      p += w;
    } else if ((key & 7) == 2) {
      if (varint_at(&p, end, &v) == 0 || v > (uint64_t)(end - p)) break;
      p += v;
    } else {
      break;
    }
  }
  return count;
}

/* ---- findings ---- */

#define MAX_KINDS 64

static struct {
  const char *kind; /* a string literal of the caller's */
  unsigned long count;
} kinds[MAX_KINDS];
static size_t n_kinds;

/* Counts one finding of `kind`; true the first time it is seen. */
static bool count(const char *kind) {
  for (size_t i = 0; i < n_kinds; i++)
    if (strcmp(kinds[i].kind, kind) == 0) return kinds[i].count++ == 0;
  if (n_kinds < MAX_KINDS) kinds[n_kinds++] = (typeof(kinds[0])){kind, 1};
  return true;
}

static const uint8_t *cur_p; /* the input being run */
static size_t cur_n;
static unsigned long long execs;
static struct timespec started;

void fz_input(const uint8_t *data, size_t size) {
  cur_p = data;
  cur_n = size;
  execs++;
}

static void hexdump(const char *what, const char *kind) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double t = (double)(now.tv_sec - started.tv_sec) + (now.tv_nsec - started.tv_nsec) / 1e9;
  fprintf(stderr, "fuzz: %s %s first seen at %.1f s, execution %llu, input (%zu bytes): ", what, kind, t,
          execs, cur_n);
  for (size_t i = 0; i < cur_n && i < 512; i++)
    fprintf(stderr, "%02x", cur_p[i]);
  fprintf(stderr, "%s\n", cur_n > 512 ? "..." : "");
}

static bool allowed(const char *kind) {
  const char *list = getenv("IA_FUZZ_ALLOW");
  if (!list) return false;
  size_t k = strlen(kind);
  for (const char *p = list; *p;) {
    size_t n = strcspn(p, ",");
    if ((n == 3 && strncmp(p, "all", 3) == 0) || (n == k && strncmp(p, kind, k) == 0)) return true;
    p += n;
    if (*p == ',') p++;
  }
  return false;
}

void fz_fail(const char *kind, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (allowed(kind)) {
    if (count(kind)) {
      fprintf(stderr, "fuzz: INVARIANT %s (allowed by IA_FUZZ_ALLOW): %s\n", kind, msg);
      hexdump("allowed", kind);
    }
    return;
  }
  fprintf(stderr, "fuzz: INVARIANT %s: %s\n", kind, msg);
  hexdump("fatal", kind);
  fz_summary();
  abort();
}

void fz_note(const char *kind) {
  if (count(kind)) hexdump("divergence", kind);
}

void fz_summary(void) {
  if (n_kinds == 0) return;
  fprintf(stderr, "fuzz-summary:");
  for (size_t i = 0; i < n_kinds; i++)
    fprintf(stderr, " %s=%lu", kinds[i].kind, kinds[i].count);
  fprintf(stderr, "\n");
}

void fz_init(void) {
  /* The library's warnings about the garbage it is fed would drown
   * libFuzzer's log; IA_LOG still turns them on. */
  if (!getenv("IA_LOG")) ia_log_set_level(IA_LOG_OFF);
  clock_gettime(CLOCK_MONOTONIC, &started);
  atexit(fz_summary);
}

/* ---- connections ---- */

int fz_dial(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) abort();
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int err = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    err = errno;
    if (err == EINPROGRESS || err == EINTR) {
      struct pollfd p = {fd, POLLOUT, 0};
      struct timespec t0, t;
      clock_gettime(CLOCK_MONOTONIC, &t0);
      do
        clock_gettime(CLOCK_MONOTONIC, &t);
      while (poll(&p, 1, 10) <= 0 && t.tv_sec - t0.tv_sec < 2);
      socklen_t len = sizeof err;
      if (!(p.revents & (POLLOUT | POLLERR | POLLHUP)))
        err = ETIMEDOUT;
      else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    }
  }
  if (err) fz_fail("slave_not_listening", "connect to the slave: %s", strerror(err));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

bool fz_send_all(int fd, const uint8_t *p, size_t n, fz_buf *in) {
  size_t at = 0;
  uint64_t until = fz_now_us() + 2000000u;
  while (at < n) {
    ssize_t w = send(fd, p + at, n - at, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      at += (size_t)w;
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    if (fz_now_us() > until) fz_fail("slave_not_reading", "the slave took nothing for 2 s");
    struct pollfd pf = {fd, POLLIN | POLLOUT, 0};
    poll(&pf, 1, 10);
    uint8_t tmp[4096];
    ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (r > 0) fz_buf_put(in, tmp, (size_t)r);
    if (r == 0) return false;
  }
  return true;
}

void fz_read_to_eof(int fd, fz_buf *in, unsigned wait_ms, size_t max) {
  uint64_t until = fz_now_us() + wait_ms * 1000ull;
  for (;;) {
    struct pollfd pf = {fd, POLLIN, 0};
    int64_t left = (int64_t)(until - fz_now_us()) / 1000;
    if (left <= 0) fz_fail("slave_keeps_open", "the slave did not close within %u ms of our EOF", wait_ms);
    if (poll(&pf, 1, (int)left) <= 0) continue;
    uint8_t tmp[16384];
    ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (r > 0) {
      fz_buf_put(in, tmp, (size_t)r);
      if (in->n > max) fz_fail("slave_flood", "the slave sent over %zu bytes", max);
    } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
      return;
    }
  }
}

/* ---- the probe ---- */

void fz_probe(ia_master *m, uint16_t port, const char *method, size_t reply_len, const char *kind) {
  ia_conn *c = NULL;
  ia_error err = IA_ERROR_INIT;
  uint64_t until = fz_now_us() + 3000000u;
  ia_code rc;
  while ((rc = ia_master_connect(m, "probe", "127.0.0.1", port, NULL, 0, 3000, &c, &err)) != IA_OK &&
         (rc == IA_ALREADY_CONNECTED || rc == IA_TIMEOUT) && fz_now_us() < until) {
    ia_error_clear(&err);
    fz_sleep_us(10000);
  }
  if (rc != IA_OK) {
    fz_fail(kind, "the probe's connect: %s", err.message);
    ia_error_clear(&err);
    return; /* allowed (IA_FUZZ_ALLOW): nothing to call */
  }
  void *reply = NULL;
  size_t n = 0;
  rc = ia_call(c, method, "x", 1, &reply, &n, 3000, &err);
  if (rc != IA_OK || n != reply_len)
    fz_fail(kind, "the probe's call: %s, %zu bytes back", ia_code_name(rc), n);
  free(reply);
  ia_error_clear(&err);
  rc = ia_conn_disconnect(c, NULL, 0, 3000, &err);
  if (rc != IA_OK) fz_fail(kind, "the probe's disconnect: %s", err.message);
  ia_error_clear(&err);
  ia_conn_free(c);
}

void fz_temp_file(char *path, size_t cap, const char *tag, const char *text) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, cap, "%s/%s-XXXXXX", dir && *dir ? dir : "/tmp", tag);
  int fd = mkstemp(path);
  size_t n = strlen(text);
  if (fd < 0 || write(fd, text, n) != (ssize_t)n) {
    fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
    exit(1);
  }
  close(fd);
}
