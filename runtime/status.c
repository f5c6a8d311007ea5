/* Status codes and ia_error. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime-internal.h"

typedef struct code_info {
  int code;
  const char *name;
  const char *text;
} code_info;

static const code_info codes[] = {
    {IA_OK, "OK", "OK: success"},
    {IA_SHUTTING_DOWN, "SHUTTING_DOWN", "SHUTTING_DOWN: the peer is shutting down"},
    {IA_CHANNEL_NOT_FOUND, "CHANNEL_NOT_FOUND", "CHANNEL_NOT_FOUND: no channel given"},
    {IA_CHANNEL_INVALID, "CHANNEL_INVALID", "CHANNEL_INVALID: the channel does not match this endpoint"},
    {IA_TOKEN_NOT_FOUND, "TOKEN_NOT_FOUND", "TOKEN_NOT_FOUND: authentication missing"},
    {IA_TOKEN_INVALID, "TOKEN_INVALID", "TOKEN_INVALID: authentication failed"},
    {IA_ALREADY_CONNECTED, "ALREADY_CONNECTED", "ALREADY_CONNECTED: the slave already has a master"},
    {IA_NOT_CONNECTED, "NOT_CONNECTED", "NOT_CONNECTED: the request needs a connection first"},
    {IA_CONNECTION_REFUSED, "CONNECTION_REFUSED",
     "CONNECTION_REFUSED: refused by the slave's before_connection hook"},
    {IA_DISCONNECTION_REFUSED, "DISCONNECTION_REFUSED",
     "DISCONNECTION_REFUSED: refused by the slave's before_disconnection hook"},
    {IA_TASK_ALREADY_EXIST, "TASK_ALREADY_EXIST", "TASK_ALREADY_EXIST: the slave's task slot is busy"},
    {IA_TASK_REFUSED, "TASK_REFUSED", "TASK_REFUSED: refused by the slave's before_task hook"},
    {IA_TASK_FAILED, "TASK_FAILED", "TASK_FAILED: the handler failed on purpose"},
    {IA_TASK_ERROR, "TASK_ERROR", "TASK_ERROR: the handler crashed or returned an invalid result"},
    {IA_QUEUE_FULL, "QUEUE_FULL", "QUEUE_FULL: the slave's task queue is full"},
    {IA_UNKNOWN_METHOD, "UNKNOWN_METHOD", "UNKNOWN_METHOD: no handler for the method"},
    {IA_DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED: the task's deadline passed"},
    {IA_CANCELLED, "CANCELLED", "CANCELLED: cancelled by the master"},
    {IA_CONNECTION_LOST, "CONNECTION_LOST", "CONNECTION_LOST: the peer vanished"},
    {IA_TIMEOUT, "TIMEOUT", "TIMEOUT: a local wait timed out"},
    {IA_FRAME_TOO_LARGE, "FRAME_TOO_LARGE", "FRAME_TOO_LARGE: the frame is over max_frame"},
    {IA_PROTOCOL_ERROR, "PROTOCOL_ERROR", "PROTOCOL_ERROR: malformed or unexpected frame"},
    {IA_VERSION_UNSUPPORTED, "VERSION_UNSUPPORTED",
     "VERSION_UNSUPPORTED: the protocol version is not supported"},
    {IA_IO_ERROR, "IO_ERROR", "IO_ERROR: a socket operation failed"},
    {IA_INVALID_ARGUMENT, "INVALID_ARGUMENT", "INVALID_ARGUMENT: the caller passed something unusable"},
    {IA_NO_MEMORY, "NO_MEMORY", "NO_MEMORY: out of memory"},
};

static const code_info *find(int code) {
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (codes[i].code == code) return &codes[i];
  return NULL;
}

const char *ia_strerror(int code) {
  const code_info *c = find(code);
  return c ? c->text : "UNKNOWN: unknown status code";
}

const char *ia_code_name(int code) {
  const code_info *c = find(code);
  return c ? c->name : "UNKNOWN";
}

void ia_error_clear(ia_error *err) {
  if (!err) return;
  if (err->data) free(err->data); /* cleared with every task: no call for nothing */
  err->code = IA_OK;
  err->message[0] = '\0';
  err->data = NULL;
  err->data_len = 0;
}

ia_code ia__error_set(ia_error *err, ia_code code, const char *fmt, ...) {
  if (!err) return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return code;
}

ia_code ia__error_set_msg(ia_error *err, ia_code code, const char *message) {
  if (!err) return code;
  err->code = code;
  size_t n = strnlen(message, sizeof err->message - 1);
  memcpy(err->message, message, n);
  err->message[n] = '\0';
  return code;
}

void ia__error_set_data(ia_error *err, const void *data, size_t len) {
  if (!err) return;
  free(err->data);
  err->data = NULL;
  err->data_len = 0;
  if (!data || len == 0) return;
  err->data = malloc(len);
  if (!err->data) return;
  memcpy(err->data, data, len);
  err->data_len = len;
}

void ia__error_copy(ia_error *dst, const ia_error *src) {
  if (!dst) return;
  ia_error_clear(dst);
  dst->code = src->code;
  memcpy(dst->message, src->message, sizeof dst->message);
  ia__error_set_data(dst, src->data, src->data_len);
}
