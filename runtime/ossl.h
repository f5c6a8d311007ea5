/*
 * OpenSSL, loaded on first use. Only a process that holds a secret (or,
 * later, speaks TLS) loads libcrypto: linked in, it would map and relocate
 * ~1.4 MB into every slave whether it authenticates or not, a third of a
 * plain slave's whole footprint (shared/BENCH.md: a slave on `sum` stays
 * under 4 MB). The functions are declared by OpenSSL's own headers and
 * typed from them here, so a call through the table is checked like a
 * direct one.
 *
 * Never: call OpenSSL other than through this table, or unload it.
 */
#ifndef IA__OSSL_H
#define IA__OSSL_H

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "interaction/status.h"

#define IA__OSSL_FNS(X)                                                                                      \
  X(RAND_bytes)                                                                                              \
  X(CRYPTO_memcmp)                                                                                           \
  X(EVP_MAC_fetch)                                                                                           \
  X(EVP_MAC_free)                                                                                            \
  X(EVP_MAC_CTX_new)                                                                                         \
  X(EVP_MAC_CTX_free)                                                                                        \
  X(EVP_MAC_init)                                                                                            \
  X(EVP_MAC_update)                                                                                          \
  X(EVP_MAC_final)                                                                                           \
  X(OSSL_PARAM_construct_utf8_string)                                                                        \
  X(OSSL_PARAM_construct_end)

typedef struct ia__ossl {
#define IA__OSSL_FIELD(name) __typeof__(&name) name;
  IA__OSSL_FNS(IA__OSSL_FIELD)
#undef IA__OSSL_FIELD
} ia__ossl;

/* libcrypto's functions, loaded by the first call (any thread, once); NULL
 * with IA_INVALID_ARGUMENT on err if it cannot be loaded. */
const ia__ossl *ia__ossl_get(ia_error *err);

#endif
