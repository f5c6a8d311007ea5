/* The test protos' services on one in-process slave, and the fixture and
 * data of the typed-call tests (typed_slave.h says what each gives).
 *
 * Never: register a handler for Calc/Unserved (its calls must get 606). */
#include "typed_slave.h"

#define CHANNEL 71

const ia_call_opts typed_opts = {.timeout_ms = TU_WAIT_MS};

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

/* ---- the slave and its master ---- */

fixture typed_start(void (*serve)(ia_slave *)) {
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

/* Calc/Unserved has no handler on purpose. */
void typed_serve_all(ia_slave *slave) {
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

void typed_serve_garbage(ia_slave *slave) {
  cr_assert_eq(ia_slave_register(slave, IA_TEST_ECHO_SERVICE_ECHO_METHOD, garbage_echo, NULL), IA_OK);
}

/* ---- what the tests send ---- */

Ia__Test__Batch typed_batch(int64_t *values, size_t n) {
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

void typed_assert_summary(const Ia__Test__BatchResult *res, size_t n) {
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
