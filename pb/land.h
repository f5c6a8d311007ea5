/* A typed reply's trailing blob received into its own block (land.c). */
#ifndef IA__PB_LAND_H
#define IA__PB_LAND_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* ia__decoder.land (master/master-pb.h) for replies of message `arg` (a
 * ProtobufCMessageDescriptor), decoded as protobuf_c_message_unpack() with
 * the system allocator would, freeable with protobuf_c_message_free_unpacked(). */
void *ia__pb_land(const uint8_t *head, size_t avail, size_t len, const void *arg, uint8_t **block,
                  size_t *block_len);

#endif
