/* Thread plumbing shared by the slave and the master: libevent's locking
 * set up once, and library threads that leave the program's signals alone. */
#include <pthread.h>
#include <signal.h>

#include <event2/thread.h>

#include "runtime/runtime-internal.h"

static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

static void threads_init_once(void) {
  evthread_use_pthreads();
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
