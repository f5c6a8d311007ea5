/*
 * Loading OpenSSL on first use (runtime/ossl.h): dlopen of the libcrypto
 * this build was compiled against (its soname, from the headers' major
 * version), and dlsym of each function of the table.
 *
 * Never: dlclose it (OpenSSL keeps threads' state and atexit handlers), or
 * hand out a table with a function missing.
 */
#include "runtime/ossl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "runtime/runtime-internal.h"

#define IA__STR2(x) #x
#define IA__STR(x) IA__STR2(x)
#define LIBCRYPTO "libcrypto.so." IA__STR(OPENSSL_VERSION_MAJOR)

static ia__ossl table;
static const ia__ossl *loaded;
static char why[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void load(void) {
  void *h = dlopen(LIBCRYPTO, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h) {
    snprintf(why, sizeof why, "cannot load OpenSSL (%s): %s", LIBCRYPTO, dlerror());
    return;
  }
#define IA__OSSL_LOAD(name)                                                                                  \
  if (!(*(void **)&table.name = dlsym(h, #name))) {                                                          \
    snprintf(why, sizeof why, "OpenSSL (%s) has no %s", LIBCRYPTO, #name);                                   \
    return;                                                                                                  \
  }
  IA__OSSL_FNS(IA__OSSL_LOAD)
#undef IA__OSSL_LOAD
  loaded = &table;
}

const ia__ossl *ia__ossl_get(ia_error *err) {
  pthread_once(&once, load);
  if (!loaded) ia__error_set(err, IA_INVALID_ARGUMENT, "%s", why);
  return loaded;
}
