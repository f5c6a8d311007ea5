/*
 * What the flat codec's tests and its fuzz target share: comparing two flat
 * protobuf-c messages field by field, and an allocator that counts the
 * blocks still out. Header-only (static), so each program has its own count.
 */
#ifndef IA__TESTS_FLAT_COMPARE_H
#define IA__TESTS_FLAT_COMPARE_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

/* The bytes a flat field's value takes in the struct. */
static inline size_t flat_member_size(const ProtobufCFieldDescriptor *f) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  default:
    return 4;
  }
}

typedef enum flat_diff { FLAT_SAME, FLAT_UNKNOWN_FIELDS, FLAT_PRESENCE, FLAT_VALUE } flat_diff;

/* Where two messages of d first differ: their unknown-field counts, a
 * presence flag, or a value's bytes (*field says which field), or
 * FLAT_SAME. */
static inline flat_diff flat_compare(const ProtobufCMessageDescriptor *d, const ProtobufCMessage *a,
                                     const ProtobufCMessage *b, const ProtobufCFieldDescriptor **field) {
  *field = NULL;
  if (a->n_unknown_fields != b->n_unknown_fields) return FLAT_UNKNOWN_FIELDS;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    *field = f;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL) {
      protobuf_c_boolean ha, hb;
      memcpy(&ha, (const uint8_t *)a + f->quantifier_offset, sizeof ha);
      memcpy(&hb, (const uint8_t *)b + f->quantifier_offset, sizeof hb);
      if (ha != hb) return FLAT_PRESENCE;
    }
    if (memcmp((const uint8_t *)a + f->offset, (const uint8_t *)b + f->offset, flat_member_size(f)) != 0)
      return FLAT_VALUE;
  }
  *field = NULL;
  return FLAT_SAME;
}

/* Counts what the allocator hands out, to see every block come back. */
static long flat_live_blocks;
static inline void *flat_count_alloc(void *data, size_t n) {
  (void)data;
  flat_live_blocks++;
  return malloc(n);
}
static inline void flat_count_free(void *data, void *p) {
  (void)data;
  flat_live_blocks--;
  free(p);
}
__attribute__((unused)) static ProtobufCAllocator flat_counting = {flat_count_alloc, flat_count_free, NULL};

#endif
