/* Thread plumbing shared by the slave and the master. */
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
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(t, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}
