/* Generated typed stubs over a real loopback connection: an in-process slave
 * serves the test protos' services with their generated _serve functions and
 * a master calls them, blocking and async. Covers repeated, nested and map
 * fields both ways, typed failures, unserved methods (606),
 * payloads and replies that do not decode, keyword-named services, imports
 * across files and packages, c_package, proto3 and messages larger than the
 * glue's stack buffer. */

/* Standard headers first, on purpose: `errno`, `assert`, `true` and `linux`
 * are macros from here on, and the generated headers must still compile. */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic.ia.h"
#include "c_package.ia.h"
#include "keyword_package.ia.h"
#include "keywords.ia.h"
#include "nested/deep.ia.h"
#include "no_method.ia.h"
#include "proto3.ia.h"
#include "types_only.ia.h"

#include "tu_assert.h"

#define CHANNEL 71

/* ---- the slave's handlers ---- */

static int compare_strings(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Summarize: total and stats of `values`, the sorted keys of `counts`, a
 * point per count (x = count, y = -count) and a path from the origin. */
static void summarize(ia_task_ctx *task, const Ia__Test__Batch *req, void *user) {
  (void)user;
  Ia__Test__BatchResult res = IA__TEST__BATCH_RESULT__INIT;
  int64_t total = 0;
  for (size_t i = 0; i < req->n_values; i++)
    total += req->values[i];
  res.has_total = 1;
  res.total = total;

  Ia__Test__Batch__Stats stats = IA__TEST__BATCH__STATS__INIT;
  stats.has_count = 1;
  stats.count = (uint32_t)req->n_values;
  stats.has_mean = 1;
  stats.mean = req->n_values ? (double)total / (double)req->n_values : 0.0;
  res.stats = &stats;

  size_t n = req->n_counts;
  char **keys = calloc(n + 1, sizeof *keys);
  Ia__Test__BatchResult__PointsEntry *entries = calloc(n + 1, sizeof *entries);
  Ia__Test__BatchResult__PointsEntry **entry_ptrs = calloc(n + 1, sizeof *entry_ptrs);
  Ia__Test__Point *points = calloc(n + 1, sizeof *points);
  for (size_t i = 0; i < n; i++) {
    keys[i] = req->counts[i]->key;
    ia__test__batch_result__points_entry__init(&entries[i]);
    ia__test__point__init(&points[i]);
    points[i].has_x = points[i].has_y = 1;
    points[i].x = req->counts[i]->value;
    points[i].y = -req->counts[i]->value;
    entries[i].key = req->counts[i]->key;
    entries[i].value = &points[i];
    entry_ptrs[i] = &entries[i];
  }
  qsort(keys, n, sizeof *keys, compare_strings);
  res.n_keys = n;
  res.keys = keys;
  res.n_points = n;
  res.points = entry_ptrs;

  Ia__Test__Point path[2];
  Ia__Test__Point *path_ptrs[2] = {&path[0], &path[1]};
  if (req->origin != NULL) {
    path[0] = *req->origin;
    path[1] = *req->origin;
    path[1].x += 1;
    path[1].y += 1;
    res.n_path = 2;
    res.path = path_ptrs;
  }
  tu_ended(ia_test_calc_summarize_reply_ok(task, &res));
  free(points);
  free(entry_ptrs);
  free(entries);
  free(keys);
}

static void refuse(ia_task_ctx *task, const Ia__Test__Batch *req, void *user) {
  (void)user;
  Ia__Test__FailInfo info = IA__TEST__FAIL_INFO__INIT;
  info.reason = "not today";
  info.has_attempt = 1;
  info.attempt = (int32_t)req->n_values;
  tu_ended(ia_pb_fail(task, IA_TASK_FAILED, "refused on purpose", &info.base));
}

static void echo(ia_task_ctx *task, const Ia__Test__Point *req, void *user) {
  (void)user;
  Ia__Test__Point p = *req;
  p.x *= 2;
  p.y *= 2;
  tu_ended(ia_test_echo_service_echo_reply_ok(task, &p));
}

static void echo_label(ia_task_ctx *task, const Ia__Types__Label *req, void *user) {
  (void)user;
  Ia__Types__Label out = *req;
  char *tags[8];
  out.n_tags = req->n_tags < 8 ? req->n_tags : 8;
  for (size_t i = 0; i < out.n_tags; i++)
    tags[i] = req->tags[out.n_tags - 1 - i];
  out.tags = tags;
  tu_ended(ia_test_echo_service_echo_label_reply_ok(task, &out));
}

static void kw_default(ia_task_ctx *task, const Int *req, void *user) {
  (void)req;
  (void)user;
  Void v = VOID__INIT;
  tu_ended(switch_default_reply_ok(task, &v));
}

static void kw_register(ia_task_ctx *task, const Int *req, void *user) {
  (void)user;
  Int out = INT__INIT;
  out.has_register_ = 1;
  out.register_ = req->register_ + 1;
  out.errno_ = "kept";
  tu_ended(switch_register_reply_ok(task, &out));
}

static void kw_int(ia_task_ctx *task, const Void *req, void *user) {
  (void)req;
  (void)user;
  Void v = VOID__INIT;
  tu_ended(switch_int_reply_ok(task, &v));
}

static void kw_break(ia_task_ctx *task, const Static__If__Struct *req, void *user) {
  (void)user;
  Static__If__Struct out = *req;
  out.union_ *= 10;
  tu_ended(static_if_case_break_reply_ok(task, &out));
}

static void use_point(ia_task_ctx *task, const Ia__Test__Point *req, void *user) {
  (void)user;
  char text[64];
  snprintf(text, sizeof text, "%d,%d", req->x, req->y);
  A__B__C__Outer__Inner__Innermost out = A__B__C__OUTER__INNER__INNERMOST__INIT;
  out.text = text;
  tu_ended(a_b_c_deep_service_use_point_reply_ok(task, &out));
}

static void use_renamed(ia_task_ctx *task, const Cp__Thing *req, void *user) {
  (void)user;
  Cp__Thing__Part out = CP__THING__PART__INIT;
  out.name = req->n_parts > 0 ? req->parts[req->n_parts - 1]->name : "none";
  tu_ended(a_b_c_deep_service_use_renamed_reply_ok(task, &out));
}

/* proto3 Learner/Learn: features doubled, a meta per feature index. */
static void learn(ia_task_ctx *task, const Ia__P3__Sample *req, void *user) {
  (void)user;
  Ia__P3__Sample out = IA__P3__SAMPLE__INIT;
  out.kind = IA__P3__SAMPLE__KIND__KIND_TRAIN;
  float features[16];
  out.n_features = req->n_features < 16 ? req->n_features : 16;
  for (size_t i = 0; i < out.n_features; i++)
    features[i] = req->features[i] * 2;
  out.features = features;
  Ia__P3__Sample__Meta meta = IA__P3__SAMPLE__META__INIT;
  meta.source = "learner";
  Ia__P3__Sample__MetasEntry entry = IA__P3__SAMPLE__METAS_ENTRY__INIT;
  entry.key = 7;
  entry.value = &meta;
  Ia__P3__Sample__MetasEntry *entries[] = {&entry};
  out.n_metas = 1;
  out.metas = entries;
  tu_ended(ia_p3_learner_learn_reply_ok(task, &out));
}

/* Answers Echo with bytes that are no Point: field 1 as a truncated varint. */
static void garbage_echo(ia_task_ctx *task, void *user) {
  (void)user;
  static const uint8_t junk[] = {0x08, 0xff, 0xff};
  tu_ended(ia_task_ctx_reply(task, junk, sizeof junk));
}

/* ---- fixture ---- */

typedef struct fixture {
  ia_slave *slave;
  ia_master *master;
  ia_conn *conn;
} fixture;

/* Starts a slave with no catch-all handler, lets `serve` register its
 * methods, then connects a master. */
static fixture start(void (*serve)(ia_slave *)) {
  fixture f = {0};
  ia_error err = IA_ERROR_INIT;
  ia_slave_config config;
  tu_slave_config(&config, CHANNEL);
  config.handler = NULL; /* unknown methods get 606 */
  TU_ASSERT_OK(ia_slave_new(&config, &f.slave, &err), &err);
  serve(f.slave);
  TU_ASSERT_OK(ia_slave_start(f.slave, &err), &err);
  TU_ASSERT_OK(tu_master_start("gen-master", CHANNEL, &f.master, &err), &err);
  TU_ASSERT_OK(tu_connect(f.master, "gen-slave", ia_slave_port(f.slave), &f.conn, &err), &err);
  return f;
}

static void stop(fixture *f) {
  ia_conn_free(f->conn);
  ia_master_free(f->master);
  ia_slave_free(f->slave);
}

/* Every service of the test protos, on one slave. Calc/Unserved has no
 * handler on purpose. */
static void serve_all(ia_slave *slave) {
  const ia_test_calc_handlers calc = {.summarize = summarize, .refuse = refuse};
  cr_assert_eq(ia_test_calc_serve(slave, &calc, NULL), IA_OK);
  const ia_test_echo_service_handlers echoes = {.echo = echo, .echo_label = echo_label};
  cr_assert_eq(ia_test_echo_service_serve(slave, &echoes, NULL), IA_OK);
  const switch_handlers sw = {.default_ = kw_default, .register_ = kw_register, .int_ = kw_int};
  cr_assert_eq(switch_serve(slave, &sw, NULL), IA_OK);
  const static_if_case_handlers cases = {.break_ = kw_break};
  cr_assert_eq(static_if_case_serve(slave, &cases, NULL), IA_OK);
  const a_b_c_deep_service_handlers deep = {.use_point = use_point, .use_renamed = use_renamed};
  cr_assert_eq(a_b_c_deep_service_serve(slave, &deep, NULL), IA_OK);
  const ia_p3_learner_handlers learner = {.learn = learn};
  cr_assert_eq(ia_p3_learner_serve(slave, &learner, NULL), IA_OK);
}

static void serve_garbage(ia_slave *slave) {
  cr_assert_eq(ia_slave_register(slave, IA_TEST_ECHO_SERVICE_ECHO_METHOD, garbage_echo, NULL), IA_OK);
}

static const ia_call_opts opts = {.timeout_ms = TU_WAIT_MS};

/* A Batch with values 1..n, origin (10, 20), counts {b: 2, a: 1, c: 3} and
 * stats. Static storage: valid for the whole test. */
static Ia__Test__Batch make_batch(int64_t *values, size_t n) {
  static Ia__Test__Point origin = IA__TEST__POINT__INIT;
  origin.has_x = origin.has_y = 1;
  origin.x = 10;
  origin.y = 20;
  static Ia__Test__Batch__CountsEntry counts[3];
  static Ia__Test__Batch__CountsEntry *count_ptrs[3];
  static const char *const names[3] = {"b", "a", "c"};
  for (size_t i = 0; i < 3; i++) {
    ia__test__batch__counts_entry__init(&counts[i]);
    counts[i].key = (char *)names[i];
    counts[i].has_value = 1;
    counts[i].value = names[i][0] - 'a' + 1;
    count_ptrs[i] = &counts[i];
  }
  for (size_t i = 0; i < n; i++)
    values[i] = (int64_t)i + 1;
  Ia__Test__Batch batch = IA__TEST__BATCH__INIT;
  batch.n_values = n;
  batch.values = values;
  batch.origin = &origin;
  batch.n_counts = 3;
  batch.counts = count_ptrs;
  return batch;
}

/* Checks a BatchResult for make_batch(values, n). */
static void assert_summary(const Ia__Test__BatchResult *res, size_t n) {
  cr_assert(res->has_total);
  cr_assert_eq(res->total, (int64_t)(n * (n + 1) / 2));
  cr_assert_not_null(res->stats, "the nested Stats message is missing");
  cr_assert_eq(res->stats->count, n);
  cr_assert_float_eq(res->stats->mean, (double)(n + 1) / 2.0, 1e-9);
  cr_assert_eq(res->n_keys, 3, "repeated keys: %zu", res->n_keys);
  cr_assert_str_eq(res->keys[0], "a");
  cr_assert_str_eq(res->keys[1], "b");
  cr_assert_str_eq(res->keys[2], "c");
  cr_assert_eq(res->n_points, 3, "map entries: %zu", res->n_points);
  for (size_t i = 0; i < res->n_points; i++) {
    const Ia__Test__BatchResult__PointsEntry *e = res->points[i];
    int want = e->key[0] - 'a' + 1;
    cr_assert_not_null(e->value);
    cr_assert_eq(e->value->x, want, "points[%s].x", e->key);
    cr_assert_eq(e->value->y, -want, "points[%s].y", e->key);
  }
  cr_assert_eq(res->n_path, 2);
  cr_assert_eq(res->path[0]->x, 10);
  cr_assert_eq(res->path[0]->y, 20);
  cr_assert_eq(res->path[1]->x, 11);
  cr_assert_eq(res->path[1]->y, 21);
}

/* ---- calls that complete ---- */

Test(gen_typed, blocking_call_carries_repeated_nested_and_map_fields, .timeout = 30) {
  fixture f = start(serve_all);
  int64_t values[5];
  Ia__Test__Batch batch = make_batch(values, 5);
  Ia__Test__BatchResult *res = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_test_calc_summarize(f.conn, &batch, &res, &opts, &err), &err);
  assert_summary(res, 5);
  ia__test__batch_result__free_unpacked(res, NULL);
  stop(&f);
}

Test(gen_typed, messages_larger_than_the_stack_buffer_go_both_ways, .timeout = 30) {
  fixture f = start(serve_all);
  enum { N = 3000 }; /* ~6 KB of packed varints each way */
  int64_t *values = malloc(N * sizeof *values);
  Ia__Test__Batch batch = make_batch(values, N);
  Ia__Test__BatchResult *res = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_test_calc_summarize(f.conn, &batch, &res, NULL, &err), &err);
  assert_summary(res, N);
  ia__test__batch_result__free_unpacked(res, NULL);
  free(values);
  stop(&f);
}

/* What a callback decoded, read after join. */
typedef struct seen {
  ia_code rc;
  int64_t total;
  int calls;
} seen;

static void on_summary(ia_task *task, void *user) {
  seen *s = user;
  Ia__Test__BatchResult *res = NULL;
  s->calls++;
  s->rc = ia_test_calc_summarize_reply(task, &res);
  if (res != NULL) {
    s->total = res->total;
    ia__test__batch_result__free_unpacked(res, NULL);
  }
}

Test(gen_typed, async_start_join_reply_and_task_with_callback, .timeout = 30) {
  fixture f = start(serve_all);
  int64_t values[4];
  Ia__Test__Batch batch = make_batch(values, 4);

  ia_task *t = ia_test_calc_summarize_start(f.conn, &batch, NULL);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "join timed out");
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  Ia__Test__BatchResult *res = NULL;
  cr_assert_eq(ia_test_calc_summarize_reply(t, &res), IA_OK);
  assert_summary(res, 4);
  ia__test__batch_result__free_unpacked(res, NULL);
  ia_task_free(t);

  /* The IDLE form: a callback decodes the reply on the master's I/O thread. */
  seen s = {IA_TIMEOUT, 0, 0};
  t = ia_test_calc_summarize_task(f.conn, &batch, NULL);
  cr_assert_not_null(t);
  cr_assert_eq(ia_test_calc_summarize_reply(t, &res), IA_INVALID_ARGUMENT, "an IDLE task has no reply");
  cr_assert_null(res);
  cr_assert_eq(ia_task_on_complete(t, on_summary, &s), IA_OK);
  cr_assert_eq(ia_task_start(t), IA_OK);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  cr_assert_eq(s.calls, 1);
  cr_assert_eq(s.rc, IA_OK);
  cr_assert_eq(s.total, 10);
  ia_task_free(t);
  stop(&f);
}

Test(gen_typed, several_services_of_one_file_share_a_slave, .timeout = 30) {
  fixture f = start(serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  p.has_x = p.has_y = 1;
  p.x = 3;
  p.y = -4;
  Ia__Test__Point *doubled = NULL;
  TU_ASSERT_OK(ia_test_echo_service_echo(f.conn, &p, &doubled, &opts, &err), &err);
  cr_assert_eq(doubled->x, 6);
  cr_assert_eq(doubled->y, -8);
  ia__test__point__free_unpacked(doubled, NULL);

  /* A request and reply type from another file and package. */
  Ia__Types__Label label = IA__TYPES__LABEL__INIT;
  char *tags[] = {"x", "y", "z"};
  label.name = "lbl";
  label.n_tags = 3;
  label.tags = tags;
  label.has_color = 1;
  label.color = IA__TYPES__LABEL__COLOR__GREEN;
  Ia__Types__Label *back = NULL;
  TU_ASSERT_OK(ia_test_echo_service_echo_label(f.conn, &label, &back, &opts, &err), &err);
  cr_assert_str_eq(back->name, "lbl");
  cr_assert_eq(back->n_tags, 3);
  cr_assert_str_eq(back->tags[0], "z");
  cr_assert_str_eq(back->tags[2], "x");
  cr_assert_eq(back->color, IA__TYPES__LABEL__COLOR__GREEN);
  ia__types__label__free_unpacked(back, NULL);
  stop(&f);
}

Test(gen_typed, keyword_named_services_methods_and_fields_work, .timeout = 30) {
  fixture f = start(serve_all);
  ia_error err = IA_ERROR_INIT;
  Int in = INT__INIT;
  in.has_register_ = 1;
  in.register_ = 41;
  Int *out = NULL;
  TU_ASSERT_OK(switch_register(f.conn, &in, &out, &opts, &err), &err);
  cr_assert_eq(out->register_, 42);
  cr_assert_str_eq(out->errno_, "kept");
  int__free_unpacked(out, NULL);

  Void *nothing = NULL;
  TU_ASSERT_OK(switch_default(f.conn, &in, &nothing, &opts, &err), &err);
  cr_assert_not_null(nothing);
  void__free_unpacked(nothing, NULL);

  /* An empty request travels as an empty payload. */
  Void empty = VOID__INIT;
  TU_ASSERT_OK(switch_int(f.conn, &empty, &nothing, &opts, &err), &err);
  void__free_unpacked(nothing, NULL);

  /* No handler for Switch/Errno: its slot in the table was left NULL. */
  cr_assert_eq(switch_errno(f.conn, &in, &out, &opts, &err), IA_UNKNOWN_METHOD);
  cr_assert_null(out);
  ia_error_clear(&err);

  Static__If__Struct s = STATIC__IF__STRUCT__INIT;
  s.has_union_ = 1;
  s.union_ = 7;
  Static__If__Struct *s_out = NULL;
  TU_ASSERT_OK(static_if_case_break(f.conn, &s, &s_out, &opts, &err), &err);
  cr_assert_eq(s_out->union_, 70);
  static__if__struct__free_unpacked(s_out, NULL);
  stop(&f);
}

Test(gen_typed, nested_package_imports_and_c_package, .timeout = 30) {
  fixture f = start(serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  p.has_x = p.has_y = 1;
  p.x = 5;
  p.y = 8;
  A__B__C__Outer__Inner__Innermost *inner = NULL;
  TU_ASSERT_OK(a_b_c_deep_service_use_point(f.conn, &p, &inner, &opts, &err), &err);
  cr_assert_str_eq(inner->text, "5,8");
  protobuf_c_message_free_unpacked(&inner->base, NULL); /* nested: no typed helper */

  Cp__Thing__Part part1 = CP__THING__PART__INIT, part2 = CP__THING__PART__INIT;
  part1.name = "first";
  part2.name = "last";
  Cp__Thing__Part *parts[] = {&part1, &part2};
  Cp__Thing thing = CP__THING__INIT;
  thing.n_parts = 2;
  thing.parts = parts;
  Cp__Thing__Part *got = NULL;
  TU_ASSERT_OK(a_b_c_deep_service_use_renamed(f.conn, &thing, &got, &opts, &err), &err);
  cr_assert_str_eq(got->name, "last");
  protobuf_c_message_free_unpacked(&got->base, NULL);

  /* Served by nobody here, but the wire name keeps the proto package. */
  cr_assert_str_eq(CP_RENAMER_RENAME_METHOD, "ia.renamed.Renamer/Rename");
  stop(&f);
}

Test(gen_typed, proto3_maps_and_repeated_floats, .timeout = 30) {
  fixture f = start(serve_all);
  ia_error err = IA_ERROR_INIT;
  float features[] = {0.5f, 1.5f, -2.0f};
  Ia__P3__Sample in = IA__P3__SAMPLE__INIT;
  in.n_features = 3;
  in.features = features;
  Ia__P3__Sample *out = NULL;
  TU_ASSERT_OK(ia_p3_learner_learn(f.conn, &in, &out, &opts, &err), &err);
  cr_assert_eq(out->kind, IA__P3__SAMPLE__KIND__KIND_TRAIN);
  cr_assert_eq(out->n_features, 3);
  cr_assert_float_eq(out->features[0], 1.0f, 1e-6);
  cr_assert_float_eq(out->features[2], -4.0f, 1e-6);
  cr_assert_eq(out->n_metas, 1);
  cr_assert_eq(out->metas[0]->key, 7);
  cr_assert_str_eq(out->metas[0]->value->source, "learner");
  ia__p3__sample__free_unpacked(out, NULL);

  /* Start and GetData have no handler: 606. */
  cr_assert_eq(ia_p3_learner_get_data(f.conn, &in, &out, &opts, &err), IA_UNKNOWN_METHOD);
  ia_error_clear(&err);
  stop(&f);
}

/* ---- calls that do not complete ---- */

Test(gen_typed, typed_failure_delivers_code_message_and_result, .timeout = 30) {
  fixture f = start(serve_all);
  int64_t values[3];
  Ia__Test__Batch batch = make_batch(values, 3);

  ia_error err = IA_ERROR_INIT;
  Ia__Test__FailInfo *reply = NULL;
  cr_assert_eq(ia_test_calc_refuse(f.conn, &batch, &reply, &opts, &err), IA_TASK_FAILED);
  cr_assert_null(reply, "a failed call hands out no reply");
  cr_assert_eq(err.code, IA_TASK_FAILED);
  cr_assert_str_eq(err.message, "refused on purpose");
  ProtobufCMessage *msg = NULL;
  cr_assert_eq(ia_pb_decode(&ia__test__fail_info__descriptor, err.data, err.data_len, &msg), IA_OK);
  Ia__Test__FailInfo *info = (Ia__Test__FailInfo *)msg;
  cr_assert_str_eq(info->reason, "not today");
  cr_assert_eq(info->attempt, 3);
  ia__test__fail_info__free_unpacked(info, NULL);
  ia_error_clear(&err);

  /* The same through a task: FAILED, and the typed reply says why. */
  ia_task *t = ia_test_calc_refuse_start(f.conn, &batch, NULL);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_FAILED);
  cr_assert_eq(ia_test_calc_refuse_reply(t, &reply), IA_TASK_FAILED);
  cr_assert_null(reply);
  const ia_error *terr = ia_task_error(t);
  cr_assert_str_eq(terr->message, "refused on purpose");
  info = ia__test__fail_info__unpack(NULL, terr->data_len, terr->data);
  cr_assert_not_null(info);
  cr_assert_str_eq(info->reason, "not today");
  ia__test__fail_info__free_unpacked(info, NULL);
  ia_task_free(t);
  stop(&f);
}

Test(gen_typed, unserved_methods_get_606, .timeout = 30) {
  fixture f = start(serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  Ia__Test__Point *out = NULL;
  cr_assert_eq(ia_test_calc_unserved(f.conn, &p, &out, &opts, &err), IA_UNKNOWN_METHOD);
  cr_assert_eq(err.code, IA_UNKNOWN_METHOD);
  cr_assert_null(out);
  ia_error_clear(&err);

  ia_task *t = ia_test_calc_unserved_start(f.conn, &p, NULL);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  ia_status s = ia_task_status(t);
  cr_assert(s == IA_STATUS_START_FAILED || s == IA_STATUS_FAILED, "status %s", ia_status_name(s));
  cr_assert_eq(ia_task_error(t)->code, IA_UNKNOWN_METHOD);
  cr_assert_eq(ia_test_calc_unserved_reply(t, &out), IA_UNKNOWN_METHOD);
  ia_task_free(t);
  stop(&f);
}

Test(gen_typed, payload_that_does_not_decode_is_task_error, .timeout = 30) {
  fixture f = start(serve_all);
  ia_error err = IA_ERROR_INIT;
  /* Field 1 (values) as a varint whose bytes never end. */
  static const uint8_t junk[] = {0x08, 0xff, 0xff, 0xff};
  void *reply = NULL;
  size_t len = 0;
  cr_assert_eq(
      ia_call(f.conn, IA_TEST_CALC_SUMMARIZE_METHOD, junk, sizeof junk, &reply, &len, TU_WAIT_MS, &err),
      IA_TASK_ERROR);
  cr_assert(strstr(err.message, "not an encoded ia.test.Batch") != NULL, "message: %s", err.message);
  ia_error_clear(&err);
  /* The slave is still fine. */
  int64_t values[2];
  Ia__Test__Batch batch = make_batch(values, 2);
  Ia__Test__BatchResult *res = NULL;
  TU_ASSERT_OK(ia_test_calc_summarize(f.conn, &batch, &res, &opts, &err), &err);
  ia__test__batch_result__free_unpacked(res, NULL);
  stop(&f);
}

Test(gen_typed, reply_that_does_not_decode_is_protocol_error, .timeout = 30) {
  fixture f = start(serve_garbage);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  Ia__Test__Point *out = NULL;
  cr_assert_eq(ia_test_echo_service_echo(f.conn, &p, &out, &opts, &err), IA_PROTOCOL_ERROR);
  cr_assert_null(out);
  cr_assert(strstr(err.message, "is not a ia.test.Point") != NULL, "message: %s", err.message);
  ia_error_clear(&err);

  ia_task *t = ia_test_echo_service_echo_start(f.conn, &p, NULL);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK);
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  cr_assert_eq(ia_test_echo_service_echo_reply(t, &out), IA_PROTOCOL_ERROR);
  cr_assert_null(out);
  ia_task_free(t);
  stop(&f);
}

/* ---- arguments ---- */

Test(gen_typed, null_arguments_are_refused_not_crashed_on, .timeout = 30) {
  fixture f = start(serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  Ia__Test__Point *out = NULL;
  cr_assert_eq(ia_test_echo_service_echo(f.conn, NULL, &out, &opts, &err), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_test_echo_service_echo(f.conn, &p, NULL, &opts, &err), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_test_echo_service_echo(NULL, &p, &out, &opts, NULL), IA_INVALID_ARGUMENT);
  cr_assert_null(ia_test_echo_service_echo_task(f.conn, NULL, NULL));
  cr_assert_null(ia_test_echo_service_echo_start(NULL, &p, NULL));
  cr_assert_eq(ia_test_echo_service_echo_reply(NULL, &out), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_test_calc_serve(NULL, NULL, NULL), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_test_calc_serve(f.slave, NULL, NULL), IA_INVALID_ARGUMENT);
  ProtobufCMessage *msg = NULL;
  cr_assert_eq(ia_pb_decode(NULL, "", 0, &msg), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_pb_decode(&ia__test__point__descriptor, NULL, 3, &msg), IA_INVALID_ARGUMENT);
  cr_assert_null(msg);
  ia_error_clear(&err);
  stop(&f);
}
