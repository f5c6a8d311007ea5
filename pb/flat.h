/* A fast codec for flat protobuf-c messages (flat.c). */
#ifndef IA__PB_FLAT_H
#define IA__PB_FLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Decodes data as d into *out, exactly as protobuf_c_message_unpack(d, a,
 * len, data) would, if d is flat (every field a singular scalar) and data
 * is plain: true then. False (nothing allocated, *out untouched) for
 * anything else: ask protobuf-c. `a` NULL means malloc/free. */
bool ia__pb_flat_unpack(const ProtobufCMessageDescriptor *d, ProtobufCAllocator *a, size_t len,
                        const uint8_t *data, ProtobufCMessage **out);

/* Packs m into out exactly as protobuf_c_message_pack() would, if m's
 * message is flat, has no unknown fields, and cap is room for its largest
 * encoding (15 bytes a field): true and *len then. False for anything
 * else (nothing meaningful written): ask protobuf-c. */
bool ia__pb_flat_pack(const ProtobufCMessage *m, uint8_t *out, size_t cap, size_t *len);

#endif
