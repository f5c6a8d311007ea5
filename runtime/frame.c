/* Framing: a 4-byte big-endian length, then an encoded interaction.v1.Frame.
 * Lengths are checked against max_frame before anything is allocated. */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime-internal.h"

uint32_t ia__max_frame(uint32_t configured) {
  if (configured == 0) return IA_MAX_FRAME_DEFAULT;
  return configured > IA_MAX_FRAME_CAP ? IA_MAX_FRAME_CAP : configured;
}

ia__frame_next_result ia__frame_next(struct evbuffer *in, uint32_t max_frame, const uint8_t **body,
                                     uint32_t *len) {
  size_t have = evbuffer_get_length(in);
  if (have < IA_FRAME_HEADER) return IA_FRAME_NEED_MORE;
  uint8_t hdr[IA_FRAME_HEADER];
  evbuffer_copyout(in, hdr, sizeof hdr);
  uint32_t l = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
  if (l > max_frame) return IA_FRAME_OVERSIZE;
  if (have < IA_FRAME_HEADER + (size_t)l) return IA_FRAME_NEED_MORE;
  const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)(IA_FRAME_HEADER + l));
  if (!p) return IA_FRAME_NEED_MORE;
  *body = p + IA_FRAME_HEADER;
  *len = l;
  return IA_FRAME_READY;
}

ia__frame *ia__frame_unpack(const uint8_t *body, size_t len) {
  ia__frame *f = interaction__v1__frame__unpack(NULL, len, body);
  if (f && f->body_case == INTERACTION__V1__FRAME__BODY__NOT_SET) {
    interaction__v1__frame__free_unpacked(f, NULL);
    return NULL;
  }
  return f;
}

void ia__frame_free(ia__frame *frame) {
  if (frame) interaction__v1__frame__free_unpacked(frame, NULL);
}

static void put_len(uint8_t *p, size_t n) {
  p[0] = (uint8_t)(n >> 24);
  p[1] = (uint8_t)(n >> 16);
  p[2] = (uint8_t)(n >> 8);
  p[3] = (uint8_t)n;
}

int ia__frame_write(struct evbuffer *out, const ia__frame *frame) {
  size_t n = interaction__v1__frame__get_packed_size(frame);
  struct evbuffer_iovec v;
  if (evbuffer_reserve_space(out, (ev_ssize_t)(IA_FRAME_HEADER + n), &v, 1) < 1) return -1;
  put_len(v.iov_base, n);
  interaction__v1__frame__pack(frame, (uint8_t *)v.iov_base + IA_FRAME_HEADER);
  v.iov_len = IA_FRAME_HEADER + n;
  return evbuffer_commit_space(out, &v, 1);
}

uint8_t *ia__frame_pack(const ia__frame *frame, size_t *len) {
  size_t n = interaction__v1__frame__get_packed_size(frame);
  uint8_t *buf = malloc(IA_FRAME_HEADER + n);
  if (!buf) return NULL;
  put_len(buf, n);
  interaction__v1__frame__pack(frame, buf + IA_FRAME_HEADER);
  *len = IA_FRAME_HEADER + n;
  return buf;
}

int ia__write_refusal(struct evbuffer *out, uint64_t id, ia_code code, const char *message, const void *data,
                      size_t len) {
  Interaction__V1__Refusal r = INTERACTION__V1__REFUSAL__INIT;
  r.has_code = 1;
  r.code = (uint32_t)code;
  r.message = (char *)(message ? message : ia_strerror(code));
  if (data && len) {
    r.has_data = 1;
    r.data.data = (uint8_t *)data;
    r.data.len = len;
  }
  ia__frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = INTERACTION__V1__FRAME__BODY_REFUSAL;
  f.refusal = &r;
  return ia__frame_write(out, &f);
}

int ia__write_goodbye(struct evbuffer *out, uint64_t id, ia_code code, const char *message) {
  Interaction__V1__Goodbye g = INTERACTION__V1__GOODBYE__INIT;
  g.has_code = 1;
  g.code = (uint32_t)code;
  g.message = (char *)(message ? message : ia_strerror(code));
  ia__frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = INTERACTION__V1__FRAME__BODY_GOODBYE;
  f.goodbye = &g;
  return ia__frame_write(out, &f);
}

int ia__write_empty(struct evbuffer *out, uint64_t id, Interaction__V1__Frame__BodyCase kind) {
  /* The empty bodies all encode alike: a zero-length submessage. */
  Interaction__V1__Accepted a = INTERACTION__V1__ACCEPTED__INIT;
  Interaction__V1__Ping pi = INTERACTION__V1__PING__INIT;
  Interaction__V1__Pong po = INTERACTION__V1__PONG__INIT;
  Interaction__V1__Cancel c = INTERACTION__V1__CANCEL__INIT;
  ia__frame f = INTERACTION__V1__FRAME__INIT;
  f.has_id = 1;
  f.id = id;
  f.body_case = kind;
  switch (kind) {
  case INTERACTION__V1__FRAME__BODY_ACCEPTED:
    f.accepted = &a;
    break;
  case INTERACTION__V1__FRAME__BODY_PING:
    f.ping = &pi;
    break;
  case INTERACTION__V1__FRAME__BODY_PONG:
    f.pong = &po;
    break;
  case INTERACTION__V1__FRAME__BODY_CANCEL:
    f.cancel = &c;
    break;
  default:
    return -1;
  }
  return ia__frame_write(out, &f);
}
