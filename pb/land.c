/*
 * A typed reply's blob, received where the decoded reply keeps it: for a
 * reply whose last field is a bytes field running to its end (an echo, a
 * tensor, a checkpoint), the fields before it are decoded as they came, and
 * the blob's own block is handed to the master's reader, which receives the
 * rest of the reply into it (master/land.c). The reply then owns the block
 * as protobuf-c would have allocated it, and frees it with the reply: one
 * copy of a blob fewer, and no second buffer of its size.
 *
 * Never: decode anything differently from protobuf_c_message_unpack() of
 * the whole reply, or land a field protobuf-c would not free as its own.
 */
#include "pb/land.h"

#include <stdlib.h>
#include <string.h>

#include "runtime/wire.h"

/* The field `no` of d if a landing may fill it: a singular bytes field, not
 * in a oneof. */
static const ProtobufCFieldDescriptor *blob_field(const ProtobufCMessageDescriptor *d, uint64_t no) {
  if (no == 0 || no > UINT32_MAX) return NULL;
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, (unsigned)no);
  if (!f || f->type != PROTOBUF_C_TYPE_BYTES || f->label == PROTOBUF_C_LABEL_REPEATED) return NULL;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) return NULL;
  return f;
}

/* Where the field that runs to the end of `len` bytes begins (its length
 * at *len_at, its data at *data_at), walking the fields before it in the
 * `avail` bytes that are in; false if there is none or they are not all in. */
static bool last_field(const uint8_t *head, size_t avail, size_t len, uint64_t *no, size_t *len_at,
                       size_t *data_at) {
  const uint8_t *p = head, *end = head + (avail < len ? avail : len);
  while (p < end) {
    uint64_t key, v;
    if (!ia__get_varint(&p, end, &key)) return false;
    switch (key & 7) {
    case 0:
      if (!ia__get_varint(&p, end, &v)) return false;
      break;
    case 1:
    case 5: {
      size_t n = (key & 7) == 1 ? 8 : 4;
      if ((size_t)(end - p) < n) return false;
      p += n;
      break;
    }
    case 2: {
      const uint8_t *len_p = p;
      if (!ia__get_len(&p, end, &v)) return false;
      if ((size_t)(p - head) + v == len) {
        *no = key >> 3;
        *len_at = (size_t)(len_p - head);
        *data_at = (size_t)(p - head);
        return true;
      }
      if (v > (uint64_t)(end - p)) return false;
      p += v;
      break;
    }
    default:
      return false; /* groups: protobuf-c's call, on the whole reply */
    }
  }
  return false;
}

void *ia__pb_land(const uint8_t *head, size_t avail, size_t len, const void *arg, uint8_t **block,
                  size_t *block_len) {
  const ProtobufCMessageDescriptor *d = arg;
  uint64_t no;
  size_t len_at, data_at;
  if (!last_field(head, avail, len, &no, &len_at, &data_at)) return NULL;
  const ProtobufCFieldDescriptor *f = blob_field(d, no);
  size_t n = len - data_at;
  if (!f || n == 0) return NULL;
  /* The reply as it would be with that field empty, decoded by protobuf-c
   * itself: every field before it exactly as in the whole reply, the field
   * there (its has_ set), and the same checks of required fields. */
  uint8_t *shape = malloc(len_at + 1);
  if (!shape) return NULL;
  memcpy(shape, head, len_at);
  shape[len_at] = 0; /* length 0 */
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len_at + 1, shape);
  free(shape);
  if (!m) return NULL;
  ProtobufCBinaryData *bd = (ProtobufCBinaryData *)((uint8_t *)m + f->offset);
  const ProtobufCBinaryData *def = f->default_value;
  uint8_t *data = malloc(n);
  if (!data) {
    protobuf_c_message_free_unpacked(m, NULL);
    return NULL;
  }
  if (bd->data && (!def || bd->data != def->data)) free(bd->data); /* an empty field has none */
  bd->data = data;
  bd->len = n;
  *block = data;
  *block_len = n;
  return m;
}
