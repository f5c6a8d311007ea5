/*
 * The master's side of authentication with the shared secret
 * (runtime/auth.h has the protocol), inside a connection's handshake
 * (conn.c): a master that holds a secret checks the slave's proof before it
 * gives its own, and connects to no slave that cannot prove the secret --
 * an impersonating slave learns nothing it could use elsewhere, and gets
 * no task. A master without a secret that is challenged says so and goes.
 *
 * Never: send the master's proof before the slave's was checked, or log a
 * nonce or a proof.
 */
#include <stdlib.h>
#include <string.h>

#include "master/master-internal.h"

/* Tells the slave why the handshake ends here (best effort, within the
 * handshake's deadline), and the caller. */
static ia_code bye(ia_conn *c, ia_code code, const char *message, uint64_t deadline, ia_error *err) {
  uint64_t now = ia__now_ms();
  ia__conn_goodbye(c, code, message,
                   deadline > now ? (uint32_t)(deadline - now < 1000 ? deadline - now : 1000) : 1);
  return ia__error_set(err, code, "%s", message);
}

/* The slave's challenge: true if its proof is right, with its nonce. */
static bool slave_proven(ia_conn *c, const uint8_t *hello, size_t hello_n, const ia__env *env,
                         uint8_t nonce[IA__AUTH_NONCE]) {
  Interaction__V1__AuthChallenge *ch =
      interaction__v1__auth_challenge__unpack(NULL, env->body.n, env->body.p);
  bool ok = ch && ch->has_nonce && ch->nonce.len == IA__AUTH_NONCE && ch->has_proof &&
            ia__auth_check(&c->m->secret, IA__AUTH_SLAVE, hello, hello_n, ch->nonce.data, ch->proof.data,
                           ch->proof.len);
  if (ok) memcpy(nonce, ch->nonce.data, IA__AUTH_NONCE);
  if (ch) interaction__v1__auth_challenge__free_unpacked(ch, NULL);
  return ok;
}

ia_code ia__conn_auth(ia_conn *c, const uint8_t *hello, size_t hello_n, ia__env *env, size_t *flen,
                      uint64_t deadline, ia_error *err) {
  ia_master *m = c->m;
  bool challenged = env->kind == INTERACTION__V1__FRAME__BODY_AUTH_CHALLENGE;
  if (!m->secret.n && !challenged) return IA_OK;
  if (!m->secret.n)
    return bye(c, IA_TOKEN_NOT_FOUND,
               "the slave admits only masters that prove its secret, and this master has none", deadline,
               err);
  if (!challenged) {
    /* A refusal says why itself; a Welcome came from a slave that never
     * proved it holds the secret. */
    if (env->kind != INTERACTION__V1__FRAME__BODY_WELCOME) return IA_OK;
    return bye(c, IA_TOKEN_NOT_FOUND, "the slave did not prove that it holds the secret (has it none?)",
               deadline, err);
  }
  uint8_t nonce[IA__AUTH_NONCE], proof[IA__AUTH_PROOF];
  if (!slave_proven(c, hello, hello_n, env, nonce))
    return bye(c, IA_TOKEN_INVALID,
               "the slave's proof of the secret is wrong: it is not the slave it claims to be, or holds "
               "another secret",
               deadline, err);
  if (!ia__auth_proof(&m->secret, IA__AUTH_MASTER, hello, hello_n, nonce, proof))
    return ia__error_set(err, IA_NO_MEMORY, "cannot compute the master's proof");
  Interaction__V1__AuthProof p = INTERACTION__V1__AUTH_PROOF__INIT;
  p.has_proof = 1;
  p.proof = (ProtobufCBinaryData){IA__AUTH_PROOF, proof};
  ia__wframe w;
  if (!ia__wframe_message(&w, env->id, INTERACTION__V1__FRAME__BODY_AUTH_PROOF, &p.base))
    return ia__error_set(err, IA_NO_MEMORY, "no memory for the proof");
  ia__ws_rc rc = ia__ws_send(&c->out, c->fd, &w, deadline, 0);
  ia__wframe_release(&w);
  if (rc == IA__WS_TIMEOUT) return ia__error_set(err, IA_TIMEOUT, "sending the proof timed out");
  if (rc != IA__WS_DONE)
    return ia__error_set(err, IA_CONNECTION_LOST, "send: %s", strerror(ia__ws_error(&c->out)));
  ia__inbuf_consume(&c->in, *flen);
  return ia__conn_read_frame(c, deadline, env, flen, err);
}
