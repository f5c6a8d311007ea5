/* Thread plumbing shared by the slave and the master: libevent set up once
 * (its locking, and its own messages routed to our log, so that a program's
 * ia_log_set_handler() sees them too), and library threads that leave the
 * program's signals alone. */
#include <pthread.h>
#include <signal.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "runtime/runtime-internal.h"

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

static void libevent_log(int severity, const char *msg) {
  ia_log_level level = severity == EVENT_LOG_DEBUG ? IA_LOG_DEBUG
                       : severity == EVENT_LOG_MSG ? IA_LOG_INFO
                       : severity == EVENT_LOG_WARN ? IA_LOG_WARN
                                                     : IA_LOG_ERROR;
  ia__log(level, "libevent: %s", msg);
}

static void threads_init_once(void) {
  ia__clock_init();
  evthread_use_pthreads();
  event_set_log_callback(libevent_log);
}

void ia__threads_init(void) {
  pthread_once(&threads_once, threads_init_once);
}

int ia__thread_create(pthread_t *t, void *(*fn)(void *), void *arg) {
  /* Every asynchronous signal is blocked; the ones a fault raises in the
   * faulting thread are not, or a crash in a handler would be a hang. */
  static const int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT};
  sigset_t set, old;
  sigfillset(&set);
  for (size_t i = 0; i < sizeof synchronous / sizeof synchronous[0]; i++)
    sigdelset(&set, synchronous[i]);
  pthread_sigmask(SIG_SETMASK, &set, &old);
  int rc = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}
