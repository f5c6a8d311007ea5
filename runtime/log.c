/* The logging hook: a callback with a stderr default and a level taken from
 * the program or from the IA_LOG environment variable. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "runtime/runtime-internal.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static ia_log_fn log_fn;
static void *log_user;
/* -1 until the first call reads IA_LOG. Written under log_mu (so that the
 * environment is read once), read without it on every log call: an atomic,
 * since a plain int written by one thread and read by another is a data
 * race whatever the hardware does. */
static _Atomic int log_level = -1;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

static int level_from_env(void) {
  const char *v = getenv("IA_LOG");
  if (v)
    for (int i = 0; i <= IA_LOG_OFF; i++)
      if (strcasecmp(v, level_names[i]) == 0) return i;
  return IA_LOG_WARN;
}

void ia_log_set_handler(ia_log_fn fn, void *user) {
  pthread_mutex_lock(&log_mu);
  log_fn = fn;
  log_user = user;
  pthread_mutex_unlock(&log_mu);
}

void ia_log_set_level(ia_log_level level) {
  pthread_mutex_lock(&log_mu);
  atomic_store(&log_level, (int)level);
  pthread_mutex_unlock(&log_mu);
}

ia_log_level ia_log_get_level(void) {
  int l = atomic_load_explicit(&log_level, memory_order_relaxed);
  if (l < 0) {
    pthread_mutex_lock(&log_mu);
    if (atomic_load(&log_level) < 0) atomic_store(&log_level, level_from_env());
    l = atomic_load(&log_level);
    pthread_mutex_unlock(&log_mu);
  }
  return (ia_log_level)l;
}

void ia__log(ia_log_level level, const char *fmt, ...) {
  if (level < ia_log_get_level() || level >= IA_LOG_OFF) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&log_mu);
  ia_log_fn fn = log_fn;
  void *user = log_user;
  pthread_mutex_unlock(&log_mu);
  if (fn) {
    fn(level, msg, user);
    return;
  }
  /* An operator reads these: when, to the millisecond, in UTC. */
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char when[32];
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  fprintf(stderr, "%s.%03ldZ interaction %s: %s\n", when, ts.tv_nsec / 1000000L, level_names[level], msg);
}
