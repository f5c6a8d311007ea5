/*
 * Shared-secret authentication, as both ends share it: the secret, loaded
 * from a file or the IA_SECRET environment variable, and the HMAC-SHA256
 * challenge-response of the handshake (proto/interaction.proto, Hello's
 * auth_nonce, AuthChallenge, AuthProof).
 *
 *   M -> S  Hello{..., auth_nonce: Nm}           Nm: 32 fresh random bytes
 *   S -> M  AuthChallenge{nonce: Ns, proof: Ps}  Ps = HMAC(K, "interaction/v1 slave" 0 T)
 *   M -> S  AuthProof{proof: Pm}                 Pm = HMAC(K, "interaction/v1 master" 0 T)
 *   S -> M  Welcome, or Refusal 302
 *
 * where T = len32be(H) H Ns and H is the Hello message's bytes as the master
 * sent them. Each side checks the other's proof before it trusts anything
 * the other says; both proofs cover both nonces, fresh from OpenSSL's CSPRNG
 * on each connection, so a recorded handshake proves nothing on another
 * connection, and the secret itself never crosses the wire. The two labels
 * keep a slave's proof from being reflected as a master's. The proofs
 * cover the whole Hello too (channel, name, observe, data): a peer in the
 * middle cannot change it unnoticed. It cannot be kept from relaying the
 * frames after the handshake, though: against that, TLS.
 *
 * Never: log or send the secret, compare proofs in other than constant
 * time, or keep the secret in memory not wiped on release.
 */
#ifndef IA__AUTH_H
#define IA__AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "interaction/status.h"

#define IA__AUTH_NONCE 32u
#define IA__AUTH_PROOF 32u
#define IA__SECRET_MAX 4096u /* bytes of a secret file, at most */

typedef enum ia__auth_role { IA__AUTH_SLAVE, IA__AUTH_MASTER } ia__auth_role;

/* A shared secret, or none (n == 0). */
typedef struct ia__secret {
  uint8_t *p;
  size_t n;
} ia__secret;

/* Loads the secret from `file` (its bytes, one trailing newline dropped)
 * or, when `file` is NULL, from the IA_SECRET environment variable; none
 * of either: no secret, IA_OK. An unreadable, empty or oversized file, or
 * an empty IA_SECRET, is IA_INVALID_ARGUMENT with a message. `who` names
 * the end in it ("slave", "master"). */
ia_code ia__secret_load(const char *file, const char *who, ia__secret *out, ia_error *err);
/* Wipes and frees it. */
void ia__secret_free(ia__secret *s);

/* Fills out with fresh random bytes from OpenSSL's CSPRNG: false if it
 * cannot (it is not seeded). */
bool ia__auth_nonce(uint8_t out[IA__AUTH_NONCE]);
/* `role`'s proof over the Hello's bytes and the slave's nonce. False only
 * if OpenSSL fails. */
bool ia__auth_proof(const ia__secret *k, ia__auth_role role, const uint8_t *hello, size_t hello_n,
                    const uint8_t nonce[IA__AUTH_NONCE], uint8_t out[IA__AUTH_PROOF]);
/* Whether `proof` (of any length) is `role`'s proof, compared in constant time. */
bool ia__auth_check(const ia__secret *k, ia__auth_role role, const uint8_t *hello, size_t hello_n,
                    const uint8_t nonce[IA__AUTH_NONCE], const uint8_t *proof, size_t proof_n);

#endif
