/* The generator's naming rules, checked without protoc: protoc-c 1.4's own
 * type and function names (which the stubs must reproduce exactly), the
 * stubs' snake_case names and keyword escaping, and the collision check. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "descriptors.h"
#include "emit.h"
#include "names.h"

/* Asserts that fn(in) == want, freeing the result. */
#define ASSERT_NAME(fn, in, want)                                                                            \
  do {                                                                                                       \
    char *got_ = fn(in);                                                                                     \
    cr_assert_str_eq(got_, want, "%s(\"%s\")", #fn, in);                                                     \
    free(got_);                                                                                              \
  } while (0)

Test(gen_names, protoc_c_type_names, .timeout = 10) {
  /* FullNameToC: dots become "__", each piece CamelCased from snake_case. */
  ASSERT_NAME(gen_protoc_c_type, ".a.b.Req", "A__B__Req");
  ASSERT_NAME(gen_protoc_c_type, "a.b.Outer.Inner", "A__B__Outer__Inner");
  ASSERT_NAME(gen_protoc_c_type, ".my_pkg.my_msg", "MyPkg__MyMsg");
  ASSERT_NAME(gen_protoc_c_type, ".int", "Int");
  ASSERT_NAME(gen_protoc_c_type, ".static.if.struct", "Static__If__Struct");
  ASSERT_NAME(gen_protoc_c_type, ".sum.SumTask", "Sum__SumTask");
  ASSERT_NAME(gen_protoc_c_type, ".HTTPReq", "HTTPReq");
}

Test(gen_names, protoc_c_function_prefixes, .timeout = 10) {
  /* FullNameToLower: "_" before an upper-case letter that follows a
   * non-upper one, everything lower-cased. */
  ASSERT_NAME(gen_protoc_c_lower, ".sum.SumTask", "sum__sum_task");
  ASSERT_NAME(gen_protoc_c_lower, ".a.b.c.Outer.Inner.Innermost", "a__b__c__outer__inner__innermost");
  ASSERT_NAME(gen_protoc_c_lower, ".ia.test.BatchResult", "ia__test__batch_result");
  ASSERT_NAME(gen_protoc_c_lower, ".HTTPReq", "httpreq");
  ASSERT_NAME(gen_protoc_c_lower, ".Foo_Bar", "foo__bar");
  ASSERT_NAME(gen_protoc_c_lower, ".my_msg", "my_msg");
}

Test(gen_names, file_stems, .timeout = 10) {
  ASSERT_NAME(gen_strip_proto, "a/b.proto", "a/b");
  ASSERT_NAME(gen_strip_proto, "x.protodevel", "x");
  ASSERT_NAME(gen_strip_proto, "noext", "noext");
  ASSERT_NAME(gen_file_identifier, "nested/deep", "NESTED_2FDEEP");
}

Test(gen_names, snake_case, .timeout = 10) {
  ASSERT_NAME(gen_snake, "DoIt", "do_it");
  ASSERT_NAME(gen_snake, "HTTPServer", "http_server");
  ASSERT_NAME(gen_snake, "HTTPGetV2", "http_get_v2");
  ASSERT_NAME(gen_snake, "GetV2Data", "get_v2_data");
  ASSERT_NAME(gen_snake, "already_snake", "already_snake");
  ASSERT_NAME(gen_snake, "_Leading__Double_", "leading_double");
  ASSERT_NAME(gen_snake, "Learn", "learn");
  ASSERT_NAME(gen_snake, "ABTest", "ab_test");
  ASSERT_NAME(gen_snake, "_", "");
  ASSERT_NAME(gen_snake_package, "a.b.c", "a_b_c");
  ASSERT_NAME(gen_snake_package, "myPkg.V1", "my_pkg_v1");
  ASSERT_NAME(gen_snake_package, "", "");
  ASSERT_NAME(gen_upper, "a_b_do_it", "A_B_DO_IT");
}

Test(gen_names, keywords_and_macros_get_a_trailing_underscore, .timeout = 10) {
  ASSERT_NAME(gen_escape, "default", "default_");
  ASSERT_NAME(gen_escape, "register", "register_");
  ASSERT_NAME(gen_escape, "class", "class_");
  ASSERT_NAME(gen_escape, "errno", "errno_");
  ASSERT_NAME(gen_escape, "linux", "linux_");
  ASSERT_NAME(gen_escape, "true", "true_");
  ASSERT_NAME(gen_escape, "do_it", "do_it");
  ASSERT_NAME(gen_escape, "switch_default", "switch_default");
}

Test(gen_names, text_for_comments_and_includes, .timeout = 10) {
  ASSERT_NAME(gen_comment_text, "a*/b/*c", "a* /b/ *c");
  ASSERT_NAME(gen_comment_text, "x\ny", "x?y");
  cr_assert(gen_is_plain_text("dir/x.proto"));
  cr_assert_not(gen_is_plain_text("a\"b.proto"));
  cr_assert_not(gen_is_plain_text("a\\b.proto"));
  cr_assert_not(gen_is_plain_text("a??b.proto"));
}

/* ---- gen_emit_file on hand-built descriptors ---- */

typedef struct one_file {
  Google__Protobuf__FileDescriptorProto file;
  Google__Protobuf__DescriptorProto msg;
  Google__Protobuf__DescriptorProto *msgs[1];
  Google__Protobuf__ServiceDescriptorProto svc;
  Google__Protobuf__ServiceDescriptorProto *svcs[1];
  Google__Protobuf__MethodDescriptorProto methods[4];
  Google__Protobuf__MethodDescriptorProto *method_ptrs[4];
} one_file;

/* package p; message M {}; service S { rpc <names[i]>(M) returns (M); ... } */
static void build(one_file *f, const char *const *names, size_t n) {
  memset(f, 0, sizeof *f);
  google__protobuf__file_descriptor_proto__init(&f->file);
  google__protobuf__descriptor_proto__init(&f->msg);
  google__protobuf__service_descriptor_proto__init(&f->svc);
  f->file.name = "t.proto";
  f->file.package = "p";
  f->msg.name = "M";
  f->msgs[0] = &f->msg;
  f->file.n_message_type = 1;
  f->file.message_type = f->msgs;
  f->svc.name = "S";
  for (size_t i = 0; i < n; i++) {
    google__protobuf__method_descriptor_proto__init(&f->methods[i]);
    f->methods[i].name = (char *)names[i];
    f->methods[i].input_type = ".p.M";
    f->methods[i].output_type = ".p.M";
    f->method_ptrs[i] = &f->methods[i];
  }
  f->svc.n_method = n;
  f->svc.method = f->method_ptrs;
  f->svcs[0] = &f->svc;
  f->file.n_service = 1;
  f->file.service = f->svcs;
}

/* Runs the generator; returns the error (malloc'd) or NULL, and the header. */
static char *emit(one_file *f, char **header) {
  gen_file_proto *files[] = {&f->file};
  gen_output out[2] = {{0}};
  size_t n = 0;
  char *error = NULL;
  bool ok = gen_emit_file(files, 1, &f->file, false, out, &n, &error);
  *header = NULL;
  if (ok) {
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].name, "t.ia.h");
    cr_assert_str_eq(out[1].name, "t.ia.c");
    *header = out[0].content;
    out[0].content = NULL;
    gen_output_free(&out[0]);
    gen_output_free(&out[1]);
  }
  return error;
}

Test(gen_emit, colliding_names_are_an_error_in_any_method_order, .timeout = 10) {
  const char *const forward[] = {"Do", "DoStart"};
  const char *const backward[] = {"DoStart", "Do"};
  one_file f;
  char *header;
  build(&f, forward, 2);
  char *error = emit(&f, &header);
  cr_assert_not_null(error, "Do and DoStart must collide (p_s_do_start)");
  cr_assert(strstr(error, "p_s_do_start") != NULL, "error: %s", error);
  cr_assert(strstr(error, "t.proto") != NULL, "error: %s", error);
  free(error);
  build(&f, backward, 2);
  error = emit(&f, &header);
  cr_assert_not_null(error);
  free(error);
}

Test(gen_emit, methods_named_like_service_functions_are_escaped, .timeout = 10) {
  const char *const names[] = {"Serve", "Handlers", "Default"};
  one_file f;
  char *header;
  build(&f, names, 3);
  char *error = emit(&f, &header);
  cr_assert_null(error, "error: %s", error);
  cr_assert(strstr(header, "ia_code p_s_serve_(ia_conn *conn") != NULL, "no p_s_serve_ call");
  cr_assert(strstr(header, "ia_code p_s_serve(ia_slave *slave") != NULL, "no p_s_serve");
  cr_assert(strstr(header, "ia_code p_s_handlers_(ia_conn *conn") != NULL, "no p_s_handlers_ call");
  cr_assert(strstr(header, "(*default_)(") != NULL, "the Default handler is not default_");
  cr_assert(strstr(header, "#define P_S_DEFAULT_METHOD \"p.S/Default\"") != NULL);
  free(header);
}

Test(gen_emit, a_message_no_file_defines_is_an_error, .timeout = 10) {
  const char *const names[] = {"Do"};
  one_file f;
  char *header;
  build(&f, names, 1);
  f.methods[0].input_type = ".p.Missing";
  char *error = emit(&f, &header);
  cr_assert_not_null(error);
  cr_assert(strstr(error, "p.Missing") != NULL, "error: %s", error);
  free(error);
}

/* Each kind of stream fails the file, naming the service, the method and
 * the direction, whatever unary methods come before it. */
Test(gen_emit, every_kind_of_streaming_method_is_an_error, .timeout = 10) {
  const struct {
    bool client, server;
    const char *direction;
  } kinds[] = {{true, false, "the request"}, {false, true, "the reply"}, {true, true, "both ways"}};
  const char *const names[] = {"Do", "Chat"};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    one_file f;
    char *header;
    build(&f, names, 2);
    f.methods[1].has_client_streaming = kinds[i].client;
    f.methods[1].client_streaming = kinds[i].client;
    f.methods[1].has_server_streaming = kinds[i].server;
    f.methods[1].server_streaming = kinds[i].server;
    char *error = emit(&f, &header);
    cr_assert_not_null(error, "a %s stream was accepted", kinds[i].direction);
    cr_assert(strstr(error, "t.proto: service p.S method Chat is a streaming rpc; Interaction has no "
                            "streaming") != NULL,
              "error: %s", error);
    cr_assert(strstr(error, kinds[i].direction) != NULL, "error: %s", error);
    free(error);
  }
}

Test(gen_emit, protoc_c_gets_keyword_methods_renamed_and_nothing_else, .timeout = 10) {
  const char *const names[] = {"Default", "Base", "Fine", "Default_"};
  one_file f;
  build(&f, names, 4);
  /* The descriptor owns malloc'd names once it is prepared. */
  for (size_t i = 0; i < 4; i++)
    f.methods[i].name = strdup(names[i]);
  cr_assert_eq(gen_prepare_for_protoc_c(&f.file), 2);
  /* "default" -> "Default__" (as "default_" is taken by the method
   * Default_), "base" -> "Base_". */
  cr_assert_str_eq(f.methods[0].name, "Default__");
  cr_assert_str_eq(f.methods[1].name, "Base_");
  cr_assert_str_eq(f.methods[2].name, "Fine");
  cr_assert_str_eq(f.methods[3].name, "Default_");
  for (size_t i = 0; i < 4; i++)
    free(f.methods[i].name);
}
