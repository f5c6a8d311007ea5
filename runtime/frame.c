/* Framing: a 4-byte big-endian length, then an encoded interaction.v1.Frame.
 * Lengths are checked against max_frame before anything is allocated. */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime-internal.h"

uint32_t ia__max_frame(uint32_t configured) {
  if (configured == 0) return IA_MAX_FRAME_DEFAULT;
  return configured > IA_MAX_FRAME_CAP ? IA_MAX_FRAME_CAP : configured;
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

uint8_t *ia__frame_pack(const ia__frame *frame, size_t *len) {
  size_t n = interaction__v1__frame__get_packed_size(frame);
  uint8_t *buf = malloc(IA_FRAME_HEADER + n);
  if (!buf) return NULL;
  put_len(buf, n);
  interaction__v1__frame__pack(frame, buf + IA_FRAME_HEADER);
  *len = IA_FRAME_HEADER + n;
  return buf;
}
