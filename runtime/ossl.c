/*
 * Loading OpenSSL on first use (runtime/ossl.h): dlopen of the libcrypto
 * (and, for TLS, the libssl) this build was compiled against (their
 * sonames, from the headers' major version), and dlsym of each function of
 * the tables.
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
#define LIBSSL "libssl.so." IA__STR(OPENSSL_VERSION_MAJOR)

static ia__ossl table;
static const ia__ossl *loaded;
static ia__ossl_ssl ssl_table;
static const ia__ossl_ssl *ssl_loaded;
static char why[256], ssl_why[256];
static pthread_once_t once = PTHREAD_ONCE_INIT, ssl_once = PTHREAD_ONCE_INIT;

/* dlopen()s lib and fills `into` from it: false with the reason in `reason`. */
#define IA__OSSL_LOAD(name)                                                                                  \
  if (!(*(void **)&into->name = dlsym(h, #name))) {                                                          \
    snprintf(reason, sizeof why, "OpenSSL (%s) has no %s", lib, #name);                                      \
    return false;                                                                                            \
  }

static void *open_lib(const char *lib, char *reason) {
  void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (!h) snprintf(reason, sizeof why, "cannot load OpenSSL (%s): %s", lib, dlerror());
  return h;
}

static bool fill_crypto(ia__ossl *into, const char *lib, char *reason) {
  void *h = open_lib(lib, reason);
  if (!h) return false;
  IA__OSSL_FNS(IA__OSSL_LOAD)
  return true;
}

static bool fill_ssl(ia__ossl_ssl *into, const char *lib, char *reason) {
  void *h = open_lib(lib, reason);
  if (!h) return false;
  IA__OSSL_SSL_FNS(IA__OSSL_LOAD)
  return true;
}
#undef IA__OSSL_LOAD

static void load(void) {
  if (fill_crypto(&table, LIBCRYPTO, why)) loaded = &table;
}

static void load_ssl(void) {
  if (fill_ssl(&ssl_table, LIBSSL, ssl_why)) ssl_loaded = &ssl_table;
}

const ia__ossl *ia__ossl_get(ia_error *err) {
  pthread_once(&once, load);
  if (!loaded) ia__error_set(err, IA_INVALID_ARGUMENT, "%s", why);
  return loaded;
}

const ia__ossl_ssl *ia__ossl_ssl_get(ia_error *err) {
  if (!ia__ossl_get(err)) return NULL;
  pthread_once(&ssl_once, load_ssl);
  if (!ssl_loaded) ia__error_set(err, IA_INVALID_ARGUMENT, "%s", ssl_why);
  return ssl_loaded;
}
