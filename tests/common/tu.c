/* The test suite's shared helpers but its child processes (tu_proc.c); see tu.h. */
#define _GNU_SOURCE
#include "tu.h"
#include "tu-internal.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <malloc.h>
#if defined(__SANITIZE_ADDRESS__)
/* From the ASan runtime (GCC ships no header for it). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

#include "sum.pb-c.h"
#include "sum_handlers.h"

/* ---- time ---- */

uint64_t tu_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tu_sleep_ms(uint32_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Milliseconds left until `deadline` (0 once it passed). */
int tu__remaining_ms(uint64_t deadline) {
  uint64_t now = tu_now_ms();
  return now >= deadline ? 0 : (int)(deadline - now);
}

/* ---- flag ---- */

void tu_flag_init(tu_flag *flag) {
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&flag->cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&flag->mu, NULL);
  flag->count = 0;
}

void tu_flag_destroy(tu_flag *flag) {
  pthread_cond_destroy(&flag->cv);
  pthread_mutex_destroy(&flag->mu);
}

void tu_flag_raise(tu_flag *flag) {
  pthread_mutex_lock(&flag->mu);
  flag->count++;
  pthread_cond_broadcast(&flag->cv);
  pthread_mutex_unlock(&flag->mu);
}

int tu_flag_count(tu_flag *flag) {
  pthread_mutex_lock(&flag->mu);
  int n = flag->count;
  pthread_mutex_unlock(&flag->mu);
  return n;
}

bool tu_flag_wait(tu_flag *flag, int want, uint32_t timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000u;
  until.tv_nsec += (long)(timeout_ms % 1000u) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&flag->mu);
  while (flag->count < want) {
    if (pthread_cond_timedwait(&flag->cv, &flag->mu, &until) == ETIMEDOUT) break;
  }
  bool ok = flag->count >= want;
  pthread_mutex_unlock(&flag->mu);
  return ok;
}

void tu_lost_init(tu_lost *lost) {
  tu_flag_init(&lost->calls);
  pthread_mutex_init(&lost->mu, NULL);
  lost->why = IA_OK;
  lost->at_ms = 0;
}

void tu_on_lost(const char *master_name, ia_code why, void *user) {
  (void)master_name;
  tu_lost *lost = user;
  pthread_mutex_lock(&lost->mu);
  lost->why = why;
  lost->at_ms = tu_now_ms();
  pthread_mutex_unlock(&lost->mu);
  tu_flag_raise(&lost->calls);
}

ia_code tu_lost_last(tu_lost *lost, uint64_t *at_ms) {
  pthread_mutex_lock(&lost->mu);
  ia_code why = lost->why;
  *at_ms = lost->at_ms;
  pthread_mutex_unlock(&lost->mu);
  return why;
}

/* ---- payloads ---- */

uint8_t *tu__pack(const ProtobufCMessage *msg, size_t *len) {
  *len = protobuf_c_message_get_packed_size(msg);
  uint8_t *buf = malloc(*len ? *len : 1);
  if (buf != NULL) protobuf_c_message_pack(msg, buf);
  return buf;
}

/* protobuf-c wants a non-NULL pointer even for zero bytes. */
static const uint8_t *nonnull(const uint8_t *buf) {
  static const uint8_t empty[1];
  return buf != NULL ? buf : empty;
}

uint8_t *tu_sum_task(int64_t a, int64_t b, bool has_a, bool has_b, size_t *len) {
  Sum__SumTask m = SUM__SUM_TASK__INIT;
  m.has_a = has_a;
  m.a = a;
  m.has_b = has_b;
  m.b = b;
  return tu__pack(&m.base, len);
}

uint8_t *tu_sleep_task(uint32_t ms, size_t *len) {
  Sum__SleepTask m = SUM__SLEEP_TASK__INIT;
  m.has_ms = 1;
  m.ms = ms;
  return tu__pack(&m.base, len);
}

bool tu_sum_result(const uint8_t *buf, size_t len, int64_t *sum) {
  Sum__SumResult *m = sum__sum_result__unpack(NULL, len, nonnull(buf));
  if (m == NULL) return false;
  bool ok = m->has_sum;
  *sum = m->sum;
  sum__sum_result__free_unpacked(m, NULL);
  return ok;
}

bool tu_sleep_result(const uint8_t *buf, size_t len, uint32_t *slept_ms) {
  Sum__SleepResult *m = sum__sleep_result__unpack(NULL, len, nonnull(buf));
  if (m == NULL) return false;
  bool ok = m->has_slept_ms;
  *slept_ms = m->slept_ms;
  sum__sleep_result__free_unpacked(m, NULL);
  return ok;
}

bool tu_fail_info(const uint8_t *buf, size_t len, char *message, size_t cap) {
  Sum__FailInfo *m = sum__fail_info__unpack(NULL, len, nonnull(buf));
  if (m == NULL) return false;
  bool ok = m->message != NULL;
  snprintf(message, cap, "%s", ok ? m->message : "");
  sum__fail_info__free_unpacked(m, NULL);
  return ok;
}

/* ---- in-process slave ---- */

static atomic_int handler_calls;

void tu_handler(ia_task_ctx *task, void *user) {
  (void)user;
  atomic_fetch_add(&handler_calls, 1);
  const char *method = ia_task_ctx_method(task);
  if (strcmp(method, TU_METHOD_NO_REPLY) == 0) return;
  if (strcmp(method, TU_METHOD_FAIL_OK) == 0) {
    ia_code rc = ia_task_ctx_fail(task, IA_OK, "not really a failure", NULL, 0); /* refused: the point */
    (void)rc;
    return;
  }
  sum_handler(task, NULL);
}

void tu_ended(ia_code rc) {
  if (rc != IA_OK) fprintf(stderr, "test handler: ending the task failed: %s\n", ia_strerror(rc));
}

int tu_handler_calls(void) {
  return atomic_load(&handler_calls);
}

bool tu_wait_handler_calls(int want, uint32_t timeout_ms) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  while (tu_handler_calls() < want) {
    if (tu_now_ms() >= deadline) return false;
    tu_sleep_ms(2);
  }
  return true;
}

/* $TU_TLS_DIR/NAME, or NULL when the suite runs in plain TCP. */
static const char *tls_file(const char *name) {
  static char paths[3][512];
  static const char *const names[3] = {"slave.pem", "slave.key", "ca.pem"};
  const char *dir = getenv("TU_TLS_DIR");
  if (!dir || !*dir) return NULL;
  for (int i = 0; i < 3; i++)
    if (strcmp(name, names[i]) == 0) {
      snprintf(paths[i], sizeof paths[i], "%s/%s", dir, name);
      return paths[i];
    }
  return NULL;
}

void tu_slave_config(ia_slave_config *config, uint32_t channel) {
  ia_slave_config_init(config);
  config->host = TU_HOST;
  config->port = 0;
  config->channel = channel;
  config->handler = tu_handler;
  config->tls_cert = tls_file("slave.pem");
  config->tls_key = tls_file("slave.key");
}

ia_code tu_slave_start(const ia_slave_config *config, ia_slave **out, ia_error *err) {
  ia_slave *slave = NULL;
  *out = NULL;
  ia_code rc = ia_slave_new(config, &slave, err);
  if (rc != IA_OK) return rc;
  rc = ia_slave_start(slave, err);
  if (rc != IA_OK) {
    ia_slave_free(slave);
    return rc;
  }
  *out = slave;
  return IA_OK;
}

/* ---- master ---- */

ia_code tu_master_start(const char *name, uint32_t channel, ia_master **out, ia_error *err) {
  return tu_master_start_beat(name, channel, IA_HEARTBEAT_DEFAULT_MS, IA_HEARTBEAT_TOLERANCE_DEFAULT_MS, out,
                              err);
}

ia_code tu_master_start_beat(const char *name, uint32_t channel, uint32_t beat_ms, uint32_t beat_tol,
                             ia_master **out, ia_error *err) {
  ia_master_config config;
  ia_master_config_init(&config);
  config.name = name;
  config.channel = channel;
  config.heartbeat_ms = beat_ms;
  config.heartbeat_tolerance_ms = beat_tol;
  config.tls_ca = tls_file("ca.pem");
  ia_master *master = NULL;
  *out = NULL;
  ia_code rc = ia_master_new(&config, &master, err);
  if (rc != IA_OK) return rc;
  rc = ia_master_start(master, err);
  if (rc != IA_OK) {
    ia_master_free(master);
    return rc;
  }
  *out = master;
  return IA_OK;
}

ia_code tu_connect(ia_master *master, const char *name, uint16_t port, ia_conn **out, ia_error *err) {
  *out = NULL;
  return ia_master_connect(master, name, TU_HOST, port, NULL, 0, TU_WAIT_MS, out, err);
}

ia_code tu_call_sum(ia_conn *conn, int64_t a, int64_t b, int64_t *sum, ia_error *err) {
  size_t len;
  uint8_t *req = tu_sum_task(a, b, true, true, &len);
  if (req == NULL) return IA_NO_MEMORY;
  void *reply = NULL;
  size_t reply_len = 0;
  ia_code rc = ia_call(conn, SUM_METHOD_SUM, req, len, &reply, &reply_len, TU_WAIT_MS, err);
  free(req);
  if (rc == IA_OK && !tu_sum_result(reply, reply_len, sum)) {
    if (err != NULL) snprintf(err->message, sizeof err->message, "the reply is not a SumResult");
    rc = IA_PROTOCOL_ERROR;
  }
  free(reply);
  return rc;
}

ia_task *tu_sum_task_new(ia_conn *conn, int64_t a, int64_t b) {
  size_t len;
  uint8_t *req = tu_sum_task(a, b, true, true, &len);
  if (req == NULL) return NULL;
  ia_task *t = ia_conn_new_task(conn, SUM_METHOD_SUM, req, len);
  free(req);
  return t;
}

ia_task *tu_sleep_task_new(ia_conn *conn, uint32_t ms) {
  size_t len;
  uint8_t *req = tu_sleep_task(ms, &len);
  if (req == NULL) return NULL;
  ia_task *t = ia_conn_new_task(conn, SUM_METHOD_SLEEP, req, len);
  free(req);
  return t;
}

const void *tu_found(ia_master *master, const char *name) {
  ia_conn *c = ia_master_find(master, name);
  ia_conn_release(c);
  return c;
}

ia_status tu_wait_status(ia_task *task, ia_status want, uint32_t timeout_ms) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  ia_status s = ia_task_status(task);
  while (s != want && !ia_status_is_terminal(s) && tu_now_ms() < deadline) {
    tu_sleep_ms(2);
    s = ia_task_status(task);
  }
  return s;
}

bool tu_wait_connected(ia_conn *conn, bool want, uint32_t timeout_ms) {
  uint64_t deadline = tu_now_ms() + timeout_ms;
  while (ia_conn_is_connected(conn) != want) {
    if (tu_now_ms() >= deadline) return false;
    tu_sleep_ms(5);
  }
  return true;
}

/* ---- process measurements ---- */

bool tu_valgrind(void) {
  return getenv("IA_VALGRIND") != NULL;
}

size_t tu_heap_in_use(void) {
#if defined(__SANITIZE_ADDRESS__)
  return __sanitizer_get_current_allocated_bytes();
#else
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd; /* the arena's chunks in use, and the mmap()ed ones */
#endif
}

unsigned long tu_vm_size_kb(void) {
  FILE *f = fopen("/proc/self/status", "re");
  if (f == NULL) return 0;
  char line[256];
  unsigned long kb = 0;
  while (fgets(line, sizeof line, f) != NULL)
    if (sscanf(line, "VmSize: %lu kB", &kb) == 1) break;
  fclose(f);
  return kb;
}

/* ---- temporary files ---- */

#define TU_TEMP_MAX 32
static char tu_temps[TU_TEMP_MAX][TU_PATH_MAX];
static int tu_n_temps;

int tu_temp_file(char path[TU_PATH_MAX], const char *tag, const void *data, size_t n) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, TU_PATH_MAX, "%s/ia-%s-XXXXXX", dir && *dir ? dir : "/tmp", tag);
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  if (tu_n_temps < TU_TEMP_MAX) snprintf(tu_temps[tu_n_temps++], TU_PATH_MAX, "%s", path);
  const uint8_t *p = data;
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0) {
      close(fd);
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return fd;
}

void tu_temp_remove_all(void) {
  for (int i = 0; i < tu_n_temps; i++)
    unlink(tu_temps[i]);
  tu_n_temps = 0;
}
