/*
 * A large reply received into the object it decodes to. When the head of a
 * reply of IA__LAND_MIN bytes or more is in, and it answers a pending task
 * whose decoder can land it (pb/land.c: the reply's last field is a blob
 * running to its end), the fields before the blob are decoded at once and
 * the rest of the reply, the blob, is read straight into the block the
 * decoded reply keeps it in (ia__inbuf_land). The reply's bytes are then
 * copied once, by the kernel, as the floor's are; dispatch.c finishes the
 * task once the blob is whole (IA__NEXT_LANDED).
 *
 * Never: land a frame that would be read differently whole (ia__result_head
 * and the decoder check its shape), land over TLS (the record layer reads
 * into the buffer itself), or keep a landing past its connection's buffer.
 */
#include "master/master-internal.h"

/* Enough of a reply's head to tell: fewer bytes are looked at again. */
#define LAND_HEAD 4096u

void ia__master_land_try(ia_conn *c) {
  ia__inbuf *in = &c->in;
  uint32_t n = ia__inbuf_head_len(in);
  if (n < IA__LAND_MIN || in->land || c->tls || c->land.tried == c->live.frames + 1) return;
  size_t avail = in->end - in->start - IA__FRAME_HEADER;
  if (avail >= LAND_HEAD) c->land.tried = c->live.frames + 1; /* once a frame */
  const uint8_t *frame = in->buf + in->start + IA__FRAME_HEADER;
  uint64_t id;
  size_t at;
  if (!ia__result_head(frame, avail, n, &id, &at)) return;
  ia__decoder dec = {0};
  pthread_mutex_lock(&c->m->mu);
  for (ia_task *t = c->pending; t; t = t->next)
    if (t->id == id && t->kind == IA__TASK_USER) dec = t->dec;
  pthread_mutex_unlock(&c->m->mu);
  if (!dec.land) return;
  uint8_t *block;
  size_t len;
  void *msg = dec.land(frame + at, avail - at, n - at, dec.arg, &block, &len);
  if (!msg) return;
  ia__inbuf_land(in, block, len);
  c->land.msg = msg;
  c->land.id = id;
  c->land.dec = dec;
  c->land.tried = c->live.frames + 1;
}

void ia__master_land_drop(ia_conn *c) {
  if (c->land.msg) c->land.dec.release(c->land.msg); /* the block with it; ia__inbuf_free forgets it */
  c->land.msg = NULL;
}
