/*
 * What the typed-stub glue (pb/) needs from the master beyond its public
 * API: a blocking call whose request is sent from where it lies and whose
 * reply is decoded where it lies, without a copy of either.
 */
#ifndef IA__MASTER_PB_H
#define IA__MASTER_PB_H

#include <stddef.h>
#include <sys/uio.h>

#include "interaction/master.h"

/* Decodes a reply where it lies (in the reader's buffer) into a new object;
 * NULL if it does not decode. Runs on whichever thread reads the reply; the
 * call keeps a copy of this struct, so only `arg` must live on (a message
 * descriptor, which is static). */
typedef struct ia__decoder {
  void *(*decode)(const uint8_t *data, size_t len, const void *arg);
  void (*release)(void *object); /* frees an object nobody took */
  const void *arg;
  /* May be NULL. For a reply of `len` bytes whose first `avail` are in
   * `head`: if its last field is a bytes field that runs to its end (a
   * blob), the object the whole reply decodes to, with that field's data a
   * block of its own of the field's size (*block, *block_len), for the
   * reader to receive the rest of the reply into; it is released like any
   * object if that never happens. NULL for any other reply (decoded whole
   * by `decode`), or when the fields before the blob are not all in. */
  void *(*land)(const uint8_t *head, size_t avail, size_t len, const void *arg, uint8_t **block,
                size_t *block_len);
} ia__decoder;

/* A blocking call whose request is the concatenation of `iov` (read only
 * while the call sends it) and whose reply is decoded by `dec`; on IA_OK
 * *object is the caller's. IA_PROTOCOL_ERROR if the reply does not decode.
 * Otherwise as ia_call(). */
IA_MUST_CHECK ia_code ia__call_vec(ia_conn *conn, const char *method, const struct iovec *iov, int niov,
                                   const ia_call_opts *opts, const ia__decoder *dec, void **object, ia_error *err);

#endif
