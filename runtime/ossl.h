/*
 * OpenSSL, loaded on first use. Only a process that holds a secret or
 * speaks TLS loads libcrypto, and only one that speaks TLS loads libssl: linked in, it would map and relocate
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
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

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
  X(OSSL_PARAM_construct_end)                                                                                \
  X(BIO_meth_new)                                                                                            \
  X(BIO_meth_set_write)                                                                                      \
  X(BIO_meth_set_read)                                                                                       \
  X(BIO_meth_set_ctrl)                                                                                       \
  X(BIO_get_new_index)                                                                                       \
  X(BIO_new)                                                                                                 \
  X(BIO_free)                                                                                                \
  X(BIO_set_data)                                                                                            \
  X(BIO_get_data)                                                                                            \
  X(BIO_set_init)                                                                                            \
  X(BIO_set_flags)                                                                                           \
  X(BIO_clear_flags)                                                                                         \
  X(ERR_get_error)                                                                                           \
  X(ERR_peek_error)                                                                                          \
  X(ERR_clear_error)                                                                                         \
  X(ERR_error_string_n)                                                                                      \
  X(ERR_reason_error_string)                                                                                 \
  X(X509_verify_cert_error_string)                                                                           \
  X(X509_VERIFY_PARAM_set1_ip_asc)

/* libssl's, loaded only by ia__ossl_ssl_get(). */
#define IA__OSSL_SSL_FNS(X)                                                                                  \
  X(TLS_server_method)                                                                                       \
  X(TLS_client_method)                                                                                       \
  X(SSL_CTX_new)                                                                                             \
  X(SSL_CTX_free)                                                                                            \
  X(SSL_CTX_ctrl)                                                                                            \
  X(SSL_CTX_set_options)                                                                                     \
  X(SSL_CTX_set_num_tickets)                                                                                 \
  X(SSL_CTX_set_verify)                                                                                      \
  X(SSL_CTX_load_verify_locations)                                                                           \
  X(SSL_CTX_use_certificate_chain_file)                                                                      \
  X(SSL_CTX_use_PrivateKey_file)                                                                             \
  X(SSL_CTX_check_private_key)                                                                               \
  X(SSL_new)                                                                                                 \
  X(SSL_free)                                                                                                \
  X(SSL_set_bio)                                                                                             \
  X(SSL_set_connect_state)                                                                                   \
  X(SSL_set_accept_state)                                                                                    \
  X(SSL_ctrl)                                                                                                \
  X(SSL_set1_host)                                                                                           \
  X(SSL_get0_param)                                                                                          \
  X(SSL_do_handshake)                                                                                        \
  X(SSL_read_ex)                                                                                             \
  X(SSL_write_ex)                                                                                            \
  X(SSL_get_error)                                                                                           \
  X(SSL_want)                                                                                                \
  X(SSL_pending)                                                                                             \
  X(SSL_get_verify_result)                                                                                   \
  X(SSL_get_version)                                                                                         \
  X(SSL_get_current_cipher)                                                                                  \
  X(SSL_CIPHER_get_name)

#define IA__OSSL_FIELD(name) __typeof__(&name) name;
typedef struct ia__ossl {
  IA__OSSL_FNS(IA__OSSL_FIELD)
} ia__ossl;

typedef struct ia__ossl_ssl {
  IA__OSSL_SSL_FNS(IA__OSSL_FIELD)
} ia__ossl_ssl;
#undef IA__OSSL_FIELD

/* libcrypto's functions, loaded by the first call (any thread, once); NULL
 * with IA_INVALID_ARGUMENT on err if it cannot be loaded. */
const ia__ossl *ia__ossl_get(ia_error *err);
/* libssl's, the same way (libcrypto's are loaded first). */
const ia__ossl_ssl *ia__ossl_ssl_get(ia_error *err);

#endif
