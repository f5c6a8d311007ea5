/*
 * runtime: what both ends share — status codes, errors, logging, framing and
 * blocking socket helpers. Nothing here owns a thread or an event base; it
 * must never block except in the ia__fd_* helpers, which take a deadline.
 */
#ifndef IA_RUNTIME_INTERNAL_H
#define IA_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <pthread.h>

#include "interaction.pb-c.h"
#include "interaction/status.h"

#define IA_PROTOCOL_VERSION 1u
#define IA_FRAME_HEADER 4u
#define IA_MAX_FRAME_DEFAULT (64u << 20)
#define IA_MAX_FRAME_CAP (1u << 30)

typedef Interaction__V1__Frame ia__frame;

/* ---- errors and logging ---- */

/* Sets code and a printf-style message on `err` (NULL allowed); returns code. */
ia_code ia__error_set(ia_error *err, ia_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies `len` bytes of peer data into `err` (replacing any). */
void ia__error_set_data(ia_error *err, const void *data, size_t len);
/* Deep-copies src into dst (dst is cleared first). */
void ia__error_copy(ia_error *dst, const ia_error *src);

void ia__log(ia_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define IA_DEBUG(...) ia__log(IA_LOG_DEBUG, __VA_ARGS__)
#define IA_INFO(...) ia__log(IA_LOG_INFO, __VA_ARGS__)
#define IA_WARN(...) ia__log(IA_LOG_WARN, __VA_ARGS__)
#define IA_ERROR(...) ia__log(IA_LOG_ERROR, __VA_ARGS__)

/* ---- framing ---- */

/* Effective max_frame for a configured value (0 means the default; capped). */
uint32_t ia__max_frame(uint32_t configured);

typedef enum ia__frame_next_result {
  IA_FRAME_NEED_MORE = 0,
  IA_FRAME_READY = 1,
  IA_FRAME_OVERSIZE = -1,
} ia__frame_next_result;

/* Decodes a Frame (NULL when it is not valid protobuf or has no body).
 * Free with ia__frame_free(). */
ia__frame *ia__frame_unpack(const uint8_t *body, size_t len);
void ia__frame_free(ia__frame *frame);

/* The length prefix and the encoded frame in one malloc'd buffer. */
uint8_t *ia__frame_pack(const ia__frame *frame, size_t *len);

/* ---- time and blocking sockets (callers' threads only) ---- */

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t ia__now_ms(void);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t ia__now_ns(void);
/* Fills an absolute CLOCK_MONOTONIC timespec `ms` from now. */
struct timespec;
void ia__deadline_ts(struct timespec *ts, uint32_t ms);

/* Dials host:port with a deadline; on success *fd is a connected,
 * non-blocking socket with TCP_NODELAY. */
ia_code ia__dial(const char *host, uint16_t port, uint64_t deadline_ms, int *fd, ia_error *err);
/* Writes all of buf to a non-blocking fd before the deadline. */
ia_code ia__fd_write_all(int fd, const uint8_t *buf, size_t len, uint64_t deadline_ms, ia_error *err);
/* Reads exactly one frame (no byte more) from a non-blocking fd. */
ia_code ia__fd_read_frame(int fd, uint32_t max_frame, uint64_t deadline_ms, ia__frame **out, ia_error *err);

/* ---- between the parts: the zero-copy paths of the protobuf glue ---- */

#include "interaction/master.h"
#include "interaction/slave.h"

struct iovec;
/* Decodes a reply where it lies (in the reader's buffer) into a new object;
 * NULL if it does not decode. Runs on whichever thread reads the reply, so
 * `arg` must outlive the call (a message descriptor). */
typedef struct ia__decoder {
  void *(*decode)(const uint8_t *data, size_t len, const void *arg);
  void (*release)(void *object); /* frees an object nobody took */
  const void *arg;
} ia__decoder;

/* A blocking call whose request is the concatenation of `iov` (read only
 * while the call sends it) and whose reply is decoded by `dec` without being
 * copied first; on IA_OK *object is the caller's. IA_PROTOCOL_ERROR if the
 * reply does not decode. */
ia_code ia__call_vec(ia_conn *conn, const char *method, const struct iovec *iov, int niov,
                     uint32_t timeout_ms, const ia__decoder *dec, void **object, ia_error *err);

/* The handler's result as pieces: `scratch` (malloc'd, taken over; NULL
 * if the pieces are in the task's reply buffer or need no storage) and
 * `iov`, which point into scratch, into that buffer, or into the task's own
 * request payload (all live until the reply is sent). */
ia_code ia__task_ctx_reply_vec(ia_task_ctx *task, uint8_t *scratch, const struct iovec *iov, int niov);
/* The task's own buffer to pack a small result in (*cap bytes). */
uint8_t *ia__task_ctx_reply_buf(const ia_task_ctx *task, size_t *cap);
/* An allocator that serves small blocks from the task's arena (reset when
 * the task ends) and larger ones from malloc: for decoding its request. */
ProtobufCAllocator *ia__task_ctx_allocator(const ia_task_ctx *task);

/* ---- threads ---- */

/* Makes libevent thread-safe (evthread_use_pthreads) once per process; call
 * before any event_base_new(). */
void ia__threads_init(void);
/* pthread_create with every signal blocked in the new thread, so that
 * SIGINT/SIGTERM reach the program's own threads (ia_slave_run), never ours. */
int ia__thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
