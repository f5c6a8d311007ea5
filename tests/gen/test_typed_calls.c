/* Typed calls through the generated stubs over a real loopback connection,
 * the calls that complete: an in-process slave serves the test protos'
 * services with their generated _serve functions (typed_slave.c) and a
 * master calls them, blocking and async. Covers repeated, nested and map fields both ways,
 * keyword-named services, imports across files and packages, c_package,
 * proto3 and messages larger than the glue's stack buffer. The calls that do
 * not complete are in test_typed_failures.c. */
#include "typed_slave.h"

/* ---- calls that complete ---- */

Test(gen_typed, blocking_call_carries_repeated_nested_and_map_fields, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  int64_t values[5];
  Ia__Test__Batch batch = typed_batch(values, 5);
  Ia__Test__BatchResult *res = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_test_calc_summarize(f.conn, &batch, &res, &typed_opts, &err), &err);
  typed_assert_summary(res, 5);
  ia__test__batch_result__free_unpacked(res, NULL);
  fixture_free(&f);
}

Test(gen_typed, messages_larger_than_the_stack_buffer_go_both_ways, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  enum { N = 3000 }; /* ~6 KB of packed varints each way */
  int64_t *values = malloc(N * sizeof *values);
  Ia__Test__Batch batch = typed_batch(values, N);
  Ia__Test__BatchResult *res = NULL;
  ia_error err = IA_ERROR_INIT;
  TU_ASSERT_OK(ia_test_calc_summarize(f.conn, &batch, &res, NULL, &err), &err);
  typed_assert_summary(res, N);
  ia__test__batch_result__free_unpacked(res, NULL);
  free(values);
  fixture_free(&f);
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
  fixture f = typed_start(typed_serve_all);
  int64_t values[4];
  Ia__Test__Batch batch = typed_batch(values, 4);

  ia_task *t = ia_test_calc_summarize_start(f.conn, &batch, NULL);
  cr_assert_not_null(t);
  cr_assert_eq(ia_task_join(t, TU_WAIT_MS), IA_OK, "join timed out");
  TU_ASSERT_STATUS(t, IA_STATUS_COMPLETED);
  Ia__Test__BatchResult *res = NULL;
  cr_assert_eq(ia_test_calc_summarize_reply(t, &res), IA_OK);
  typed_assert_summary(res, 4);
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
  fixture_free(&f);
}

Test(gen_typed, several_services_of_one_file_share_a_slave, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  p.has_x = p.has_y = 1;
  p.x = 3;
  p.y = -4;
  Ia__Test__Point *doubled = NULL;
  TU_ASSERT_OK(ia_test_echo_service_echo(f.conn, &p, &doubled, &typed_opts, &err), &err);
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
  TU_ASSERT_OK(ia_test_echo_service_echo_label(f.conn, &label, &back, &typed_opts, &err), &err);
  cr_assert_str_eq(back->name, "lbl");
  cr_assert_eq(back->n_tags, 3);
  cr_assert_str_eq(back->tags[0], "z");
  cr_assert_str_eq(back->tags[2], "x");
  cr_assert_eq(back->color, IA__TYPES__LABEL__COLOR__GREEN);
  ia__types__label__free_unpacked(back, NULL);
  fixture_free(&f);
}

Test(gen_typed, keyword_named_services_methods_and_fields_work, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  ia_error err = IA_ERROR_INIT;
  Int in = INT__INIT;
  in.has_register_ = 1;
  in.register_ = 41;
  Int *out = NULL;
  TU_ASSERT_OK(switch_register(f.conn, &in, &out, &typed_opts, &err), &err);
  cr_assert_eq(out->register_, 42);
  cr_assert_str_eq(out->errno_, "kept");
  int__free_unpacked(out, NULL);

  Void *nothing = NULL;
  TU_ASSERT_OK(switch_default(f.conn, &in, &nothing, &typed_opts, &err), &err);
  cr_assert_not_null(nothing);
  void__free_unpacked(nothing, NULL);

  /* An empty request travels as an empty payload. */
  Void empty = VOID__INIT;
  TU_ASSERT_OK(switch_int(f.conn, &empty, &nothing, &typed_opts, &err), &err);
  void__free_unpacked(nothing, NULL);

  /* No handler for Switch/Errno: its slot in the table was left NULL. */
  cr_assert_eq(switch_errno(f.conn, &in, &out, &typed_opts, &err), IA_UNKNOWN_METHOD);
  cr_assert_null(out);
  ia_error_clear(&err);

  Static__If__Struct s = STATIC__IF__STRUCT__INIT;
  s.has_union_ = 1;
  s.union_ = 7;
  Static__If__Struct *s_out = NULL;
  TU_ASSERT_OK(static_if_case_break(f.conn, &s, &s_out, &typed_opts, &err), &err);
  cr_assert_eq(s_out->union_, 70);
  static__if__struct__free_unpacked(s_out, NULL);
  fixture_free(&f);
}

Test(gen_typed, nested_package_imports_and_c_package, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  p.has_x = p.has_y = 1;
  p.x = 5;
  p.y = 8;
  A__B__C__Outer__Inner__Innermost *inner = NULL;
  TU_ASSERT_OK(a_b_c_deep_service_use_point(f.conn, &p, &inner, &typed_opts, &err), &err);
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
  TU_ASSERT_OK(a_b_c_deep_service_use_renamed(f.conn, &thing, &got, &typed_opts, &err), &err);
  cr_assert_str_eq(got->name, "last");
  protobuf_c_message_free_unpacked(&got->base, NULL);

  /* Served by nobody here, but the wire name keeps the proto package. */
  cr_assert_str_eq(CP_RENAMER_RENAME_METHOD, "ia.renamed.Renamer/Rename");
  fixture_free(&f);
}

Test(gen_typed, proto3_maps_and_repeated_floats, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  ia_error err = IA_ERROR_INIT;
  float features[] = {0.5f, 1.5f, -2.0f};
  Ia__P3__Sample in = IA__P3__SAMPLE__INIT;
  in.n_features = 3;
  in.features = features;
  Ia__P3__Sample *out = NULL;
  TU_ASSERT_OK(ia_p3_learner_learn(f.conn, &in, &out, &typed_opts, &err), &err);
  cr_assert_eq(out->kind, IA__P3__SAMPLE__KIND__KIND_TRAIN);
  cr_assert_eq(out->n_features, 3);
  cr_assert_float_eq(out->features[0], 1.0f, 1e-6);
  cr_assert_float_eq(out->features[2], -4.0f, 1e-6);
  cr_assert_eq(out->n_metas, 1);
  cr_assert_eq(out->metas[0]->key, 7);
  cr_assert_str_eq(out->metas[0]->value->source, "learner");
  ia__p3__sample__free_unpacked(out, NULL);

  /* Start and GetData have no handler: 606. */
  cr_assert_eq(ia_p3_learner_get_data(f.conn, &in, &out, &typed_opts, &err), IA_UNKNOWN_METHOD);
  ia_error_clear(&err);
  fixture_free(&f);
}
