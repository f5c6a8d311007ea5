/* Large bytes fields through the generated stubs: the request's blob is sent
 * from the caller's memory, the slave's handler sees it in the received
 * frame, an echo goes back without a copy, a reply built from the handler's
 * own (freed) memory is still whole, and the master decodes in place. Every
 * byte is compared. */
#include <stdlib.h>
#include <string.h>

#include "blob.ia.h"
#include "fixture.h"

#define CHANNEL 21

static uint8_t *pattern(size_t n, uint64_t seed) {
  uint8_t *p = malloc(n ? n : 1);
  cr_assert_not_null(p);
  uint64_t x = seed | 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p[i] = (uint8_t)((x * 2685821657736338717ull) >> 56);
  }
  return p;
}

static void echo(ia_task_ctx *task, const Ia__Blob__Blob *req, void *user) {
  (void)user;
  Ia__Blob__Blob reply = IA__BLOB__BLOB__INIT;
  reply.has_tag = 1;
  reply.tag = req->tag + 1;
  reply.has_data = req->has_data;
  reply.data = req->data;
  reply.note = req->note;
  reply.has_extra = req->has_extra;
  reply.extra = req->extra;
  tu_ended(ia_blob_pipe_echo_reply_ok(task, &reply));
}

static void fresh(ia_task_ctx *task, const Ia__Blob__Blob *req, void *user) {
  (void)user;
  size_t n = req->data.len;
  uint8_t *mine = malloc(n ? n : 1);
  for (size_t i = 0; i < n; i++)
    mine[i] = req->data.data[i] ^ 0x5a;
  Ia__Blob__Blob reply = IA__BLOB__BLOB__INIT;
  reply.has_data = 1;
  reply.data.data = mine;
  reply.data.len = n;
  tu_ended(ia_blob_pipe_fresh_reply_ok(task, &reply));
  memset(mine, 0, n); /* the reply must not depend on this memory any more */
  free(mine);
}

static const ia_blob_pipe_handlers handlers = {.echo = echo, .fresh = fresh};

typedef struct rig {
  ia_slave *slave;
  ia_master *master;
  ia_conn *conn;
} rig;

static void rig_up(rig *r) {
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.handler = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_slave_new(&config, &r->slave, &err), &err);
  TU_ASSERT_OK(ia_blob_pipe_serve(r->slave, &handlers, NULL), &err);
  TU_ASSERT_OK(ia_slave_start(r->slave, &err), &err);
  TU_ASSERT_OK(tu_master_start("blobs", CHANNEL, &r->master, &err), &err);
  TU_ASSERT_OK(tu_connect(r->master, "pipe", ia_slave_port(r->slave), &r->conn, &err), &err);
}

static void rig_down(rig *r) {
  ia_conn_free(r->conn);
  ia_master_free(r->master);
  ia_slave_free(r->slave);
}

static void check_round_trip(ia_conn *conn, size_t n, size_t extra_n, bool use_fresh) {
  uint8_t *data = pattern(n, n + 7), *extra = pattern(extra_n, extra_n + 3);
  Ia__Blob__Blob req = IA__BLOB__BLOB__INIT;
  req.has_tag = 1;
  req.tag = 41;
  req.has_data = 1;
  req.data.data = data;
  req.data.len = n;
  req.note = "a note between two blobs";
  req.has_extra = extra_n > 0;
  req.extra.data = extra;
  req.extra.len = extra_n;
  Ia__Blob__Blob *reply = NULL;
  ia_error err = IA_ERROR_INIT;
  ia_code rc = use_fresh ? ia_blob_pipe_fresh(conn, &req, &reply, NULL, &err)
                         : ia_blob_pipe_echo(conn, &req, &reply, NULL, &err);
  TU_ASSERT_OK(rc, &err);
  cr_assert_not_null(reply);
  cr_assert_eq(reply->data.len, n, "%zu bytes back for %zu", reply->data.len, n);
  if (use_fresh) {
    for (size_t i = 0; i < n; i++)
      cr_assert_eq(reply->data.data[i], data[i] ^ 0x5a, "byte %zu of the fresh reply", i);
  } else {
    cr_assert_eq(reply->tag, 42u);
    cr_assert_str_eq(reply->note, "a note between two blobs");
    cr_assert(memcmp(reply->data.data, data, n) == 0, "the echoed %zu bytes differ", n);
    cr_assert_eq(reply->extra.len, extra_n);
    if (extra_n) cr_assert(memcmp(reply->extra.data, extra, extra_n) == 0, "the echoed extra bytes differ");
  }
  ia__blob__blob__free_unpacked(reply, NULL);
  free(data);
  free(extra);
}

Test(gen_blobs, echo_of_large_bytes_fields_is_whole, .timeout = 60) {
  rig r;
  rig_up(&r);
  check_round_trip(r.conn, 1 << 20, 0, false);
  check_round_trip(r.conn, 5 << 20, 64 << 10, false);
  check_round_trip(r.conn, 4096, 4095, false); /* at and under the threshold */
  check_round_trip(r.conn, 10, 0, false);
  rig_down(&r);
}

Test(gen_blobs, reply_from_memory_the_handler_frees_is_whole, .timeout = 60) {
  rig r;
  rig_up(&r);
  for (int i = 0; i < 3; i++)
    check_round_trip(r.conn, (size_t)(1 << 20) + (size_t)i * 4099, 0, true);
  rig_down(&r);
}

Test(gen_blobs, many_echoes_reuse_buffers_correctly, .timeout = 60) {
  rig r;
  rig_up(&r);
  for (int i = 0; i < 20; i++)
    check_round_trip(r.conn, (size_t)(200000 + i * 1237), (size_t)(i * 97), i % 2 == 1);
  rig_down(&r);
}
