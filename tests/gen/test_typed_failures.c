/* Typed calls through the generated stubs over a real loopback connection,
 * the calls that do not complete: typed failures with their FailInfo,
 * unserved methods (606), payloads and replies that do not decode, and NULL
 * arguments, against the in-process slave of typed_slave.c. */
#include "typed_slave.h"

/* ---- calls that do not complete ---- */

Test(gen_typed, typed_failure_delivers_code_message_and_result, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  int64_t values[3];
  Ia__Test__Batch batch = typed_batch(values, 3);

  ia_error err = IA_ERROR_INIT;
  Ia__Test__FailInfo *reply = NULL;
  cr_assert_eq(ia_test_calc_refuse(f.conn, &batch, &reply, &typed_opts, &err), IA_TASK_FAILED);
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
  fixture_free(&f);
}

Test(gen_typed, unserved_methods_get_606, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  Ia__Test__Point *out = NULL;
  cr_assert_eq(ia_test_calc_unserved(f.conn, &p, &out, &typed_opts, &err), IA_UNKNOWN_METHOD);
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
  fixture_free(&f);
}

Test(gen_typed, payload_that_does_not_decode_is_task_error, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
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
  Ia__Test__Batch batch = typed_batch(values, 2);
  Ia__Test__BatchResult *res = NULL;
  TU_ASSERT_OK(ia_test_calc_summarize(f.conn, &batch, &res, &typed_opts, &err), &err);
  ia__test__batch_result__free_unpacked(res, NULL);
  fixture_free(&f);
}

Test(gen_typed, reply_that_does_not_decode_is_protocol_error, .timeout = 30) {
  fixture f = typed_start(typed_serve_garbage);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  Ia__Test__Point *out = NULL;
  cr_assert_eq(ia_test_echo_service_echo(f.conn, &p, &out, &typed_opts, &err), IA_PROTOCOL_ERROR);
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
  fixture_free(&f);
}

/* ---- arguments ---- */

Test(gen_typed, null_arguments_are_refused_not_crashed_on, .timeout = 30) {
  fixture f = typed_start(typed_serve_all);
  ia_error err = IA_ERROR_INIT;
  Ia__Test__Point p = IA__TEST__POINT__INIT;
  Ia__Test__Point *out = NULL;
  cr_assert_eq(ia_test_echo_service_echo(f.conn, NULL, &out, &typed_opts, &err), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_test_echo_service_echo(f.conn, &p, NULL, &typed_opts, &err), IA_INVALID_ARGUMENT);
  cr_assert_eq(ia_test_echo_service_echo(NULL, &p, &out, &typed_opts, NULL), IA_INVALID_ARGUMENT);
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
  fixture_free(&f);
}
