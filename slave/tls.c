/*
 * The slave's TLS: its context, made from the config's files when the
 * slave is made, and each connection's handshake, driven by the loop from
 * the connection's read events before anything else is read from it
 * (runtime/tls.h drives TLS once it is up).
 *
 * The handshake is bounded like the rest of a connection's handshake: it
 * counts against hello_timeout_ms and max_pending (conn.c), and a peer
 * that sends anything but TLS is told in plain frames that this slave
 * requires TLS, then closed.
 *
 * Never: read a frame from a connection whose TLS is not up, or block the
 * loop on a handshake.
 */
#include "runtime/tls.h"

#include "slave/slave-internal.h"

ia_code ia__slave_tls_init(ia_slave *s, const ia_slave_config *config, ia_error *err) {
  s->cfg.tls_cert = s->cfg.tls_key = NULL; /* read now, not kept */
  s->cfg.tls_ca = NULL;
  s->tls_mutual = config->tls_ca != NULL;
  if (!config->tls_cert && !config->tls_key && !config->tls_ca) return IA_OK;
  return ia__tls_ctx_server(config->tls_cert, config->tls_key, config->tls_ca, &s->tls, err);
}

bool ia__slave_tls_accept(ia__sconn *c) {
  c->tls = ia__tls_new(c->slave->tls, c->fd, NULL);
  return c->tls != NULL;
}

bool ia__slave_tls_step(ia__sconn *c) {
  switch (ia__tls_handshake(c->tls)) {
  case IA__TLS_UP: {
    c->out.tls = c->tls; /* before any frame goes out: the loop's, and then the workers' */
    char how[96];
    ia__tls_describe(c->tls, how, sizeof how);
    IA__DEBUG("slave: TLS with %s is up (%s)", c->addr, how);
    return true;
  }
  case IA__TLS_WANT_READ:
    return false;
  case IA__TLS_PLAIN:
    c->plain_peer = true;
    ia__sconn_fail(c, IA_TOKEN_NOT_FOUND, "this slave requires TLS (the master has no tls_ca)", IA__RD_LOOP);
    return false;
  case IA__TLS_WANT_WRITE: /* a first flight is a few KB: a peer that takes none of it is not a master */
    IA__INFO("slave: TLS handshake with %s stalled: it reads nothing", c->addr);
    ia__sconn_close(c, false, IA_PROTOCOL_ERROR);
    return false;
  case IA__TLS_FAILED:
  default:
    IA__INFO("slave: TLS handshake with %s failed: %s", c->addr, ia__tls_reason(c->tls));
    ia__sconn_close(c, false, IA_PROTOCOL_ERROR);
    return false;
  }
}
