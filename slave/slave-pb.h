/*
 * What the typed-stub glue (pb/) needs from the slave beyond its public
 * API: the task's own arena and reply buffer, and a result handed over as
 * pieces that are sent from where they lie.
 */
#ifndef IA__SLAVE_PB_H
#define IA__SLAVE_PB_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "interaction/slave.h"

/* The handler's result as pieces: `scratch` (malloc'd, taken over; NULL if
 * the pieces are in the task's reply buffer or need no storage) and `iov`,
 * which point into scratch, into that buffer, or into the task's own
 * request payload (all live until the reply is sent). At most
 * IA__REPLY_MAX_IOV pieces. */
IA_MUST_CHECK ia_code ia__task_ctx_reply_vec(ia_task_ctx *task, uint8_t *scratch, const struct iovec *iov,
                                             int niov);
/* The task's own buffer to pack a small result in (*cap bytes). */
uint8_t *ia__task_ctx_reply_buf(const ia_task_ctx *task, size_t *cap);
/* An allocator that serves small blocks from the task's arena (reset when
 * the task ends) and larger ones from malloc: for decoding its request. */
ProtobufCAllocator *ia__task_ctx_allocator(const ia_task_ctx *task);

#endif
