/*
 * The slave's side of authentication with the shared secret
 * (runtime/auth.h has the protocol): while the slave holds a secret, a
 * connection's Hello is answered with a challenge, and only a Hello whose
 * master then proved the secret goes on to the handshake proper
 * (dispatch.c: version, channel, seat, hooks, Welcome). Observers prove it
 * the same way.
 *
 * A master without a proof is refused with TOKEN_NOT_FOUND, one with a
 * wrong proof with TOKEN_INVALID, and nothing it sent is looked at before:
 * no hook runs, no seat is taken, no task is read. The pre-handshake limits
 * (small frames, the handshake deadline, the cap on connections still in
 * their handshake) hold until the Welcome.
 *
 * Never: answer anything but the challenge before the proof, or log a
 * nonce or a proof.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slave/slave-internal.h"

static int refuse(ia__sconn *c, uint64_t id, ia_code code, const char *message) {
  ia__sconn_refuse(c, id, code, message, NULL);
  return -1;
}

/* A Hello: keeps it, and challenges its master. */
static int challenge(ia__sconn *c, const ia__env *env, size_t flen) {
  ia_slave *s = c->slave;
  Interaction__V1__Hello *h = interaction__v1__hello__unpack(NULL, env->body.n, env->body.p);
  if (!h) {
    ia__sconn_fail(c, IA_PROTOCOL_ERROR, "malformed Hello", IA__RD_LOOP);
    return -1;
  }
  ia__sconn_label(c, h->has_observe && h->observe, h->master_name);
  bool nonce = h->has_auth_nonce && h->auth_nonce.len == IA__AUTH_NONCE;
  interaction__v1__hello__free_unpacked(h, NULL);
  if (!nonce)
    return refuse(c, env->id, IA_TOKEN_NOT_FOUND,
                  "this slave admits only masters that prove its secret, and this one gave no proof");
  c->auth_hello = malloc(env->body.n ? env->body.n : 1);
  Interaction__V1__AuthChallenge ch = INTERACTION__V1__AUTH_CHALLENGE__INIT;
  uint8_t proof[IA__AUTH_PROOF];
  if (!c->auth_hello || !ia__auth_nonce(c->auth_nonce) ||
      !ia__auth_proof(&s->secret, IA__AUTH_SLAVE, env->body.p, env->body.n, c->auth_nonce, proof)) {
    ia__sconn_fail(c, IA_NO_MEMORY, "cannot make the authentication challenge", IA__RD_LOOP);
    return -1;
  }
  memcpy(c->auth_hello, env->body.p, env->body.n);
  c->auth_hello_n = env->body.n;
  c->auth_hello_id = env->id;
  ch.has_nonce = ch.has_proof = 1;
  ch.nonce = (ProtobufCBinaryData){IA__AUTH_NONCE, c->auth_nonce};
  ch.proof = (ProtobufCBinaryData){IA__AUTH_PROOF, proof};
  ia__wframe w;
  if (!ia__wframe_message(&w, env->id, INTERACTION__V1__FRAME__BODY_AUTH_CHALLENGE, &ch.base)) {
    ia__sconn_fail(c, IA_NO_MEMORY, "out of memory", IA__RD_LOOP);
    return -1;
  }
  bool sent = ia__sconn_send(c, &w, IA__RD_LOOP);
  ia__wframe_release(&w);
  if (!sent) return -1;
  c->auth = IA__AUTH_CHALLENGED;
  ia__inbuf_consume(&c->in, flen);
  return 0;
}

/* The answer to the challenge: the master's proof, or not. */
static bool proven(ia__sconn *c, const ia__env *env) {
  Interaction__V1__AuthProof *p = interaction__v1__auth_proof__unpack(NULL, env->body.n, env->body.p);
  bool ok = p && p->has_proof &&
            ia__auth_check(&c->slave->secret, IA__AUTH_MASTER, c->auth_hello, c->auth_hello_n, c->auth_nonce,
                           p->proof.data, p->proof.len);
  if (p) interaction__v1__auth_proof__free_unpacked(p, NULL);
  return ok;
}

int ia__slave_auth(ia__sconn *c, const ia__env *env, size_t flen, ia__env *hello) {
  switch (c->auth) {
  case IA__AUTH_NONE:
    if (env->kind != INTERACTION__V1__FRAME__BODY_HELLO) {
      ia__sconn_fail(c, IA_PROTOCOL_ERROR, "expected Hello as the first frame", IA__RD_LOOP);
      return -1;
    }
    return challenge(c, env, flen);
  case IA__AUTH_CHALLENGED:
    if (env->kind == INTERACTION__V1__FRAME__BODY_GOODBYE) {
      /* Most likely the slave's proof did not check out: another secret. */
      ia__status_view v;
      bool said = ia__status_parse(env->body, false, &v) && v.has_code;
      IA__INFO("slave: %s did not accept the slave's proof of the secret (%s): does it hold another one?",
               c->label, said ? ia_code_name((ia_code)v.code) : "no code");
      ia__sconn_close(c, false, said ? (ia_code)v.code : IA_TOKEN_INVALID);
      return -1;
    }
    if (env->kind != INTERACTION__V1__FRAME__BODY_AUTH_PROOF)
      return refuse(c, env->id, IA_TOKEN_NOT_FOUND, "the master answered the challenge with no proof");
    if (!proven(c, env))
      return refuse(c, env->id, IA_TOKEN_INVALID, "the master's proof of the secret is wrong");
    c->auth = IA__AUTH_PROVEN;
    break;
  case IA__AUTH_PROVEN:
    break; /* the seat wait of dispatch.c looks at the same frame again */
  }
  *hello = (ia__env){.id = c->auth_hello_id,
                     .kind = INTERACTION__V1__FRAME__BODY_HELLO,
                     .body = {c->auth_hello, c->auth_hello_n}};
  return 1;
}

void ia__slave_auth_release(ia__sconn *c) {
  free(c->auth_hello);
  c->auth_hello = NULL;
  c->auth_hello_n = 0;
}
