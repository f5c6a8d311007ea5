/* What tu.c, tu_proc.c and tu_raw.c share and no test needs. */
#ifndef IA__TU_INTERNAL_H
#define IA__TU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Packs msg into a malloc'd buffer (*len bytes); NULL if out of memory. */
uint8_t *tu__pack(const ProtobufCMessage *msg, size_t *len);
/* Milliseconds left until a tu_now_ms() deadline, 0 once it passed. */
int tu__remaining_ms(uint64_t deadline);

#endif
