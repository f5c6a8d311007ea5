/*
 * gen/emit.c: the text of the typed stubs.
 *
 * For each unary method of each service the header declares a wire-name
 * macro, a blocking call, an IDLE-task and a started-task form, a typed reply
 * decoder for the master and a typed reply for the slave; per service it
 * declares a handler table and a serve function. The source implements them
 * as one-line wrappers of interaction/pb.h, so the logic lives once, in the
 * runtime, and not in every generated file.
 *
 * Every method is unary: derive.c rejects streaming ones (a task is one
 * request, one reply), and checks names for collisions, before any text is
 * written here.
 */
#include "emit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "derive.h"
#include "names.h"
#include "text.h"

/* ---- layout ---- */

/* Generated code is read by users (the header is their API reference), so it
 * is laid out like hand-written code: lines within WIDTH, comments wrapped,
 * parameters aligned under the opening parenthesis. */
#define WIDTH 100

/* Appends a comment holding `text` (printf-formatted, one paragraph; a "\n"
 * in it starts a new line), word-wrapped, each line led by `indent`. */
static void comment(gen_text *t, const char *indent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void comment(gen_text *t, const char *indent, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *text = gen_xvasprintf(fmt, ap);
  va_end(ap);

  size_t limit = WIDTH - strlen(indent);
  size_t col = 2; /* after the opening slash-star */
  gen_text_printf(t, "%s/*", indent);
  for (const char *p = text; *p != '\0';) {
    if (*p == ' ') {
      p++;
      continue;
    }
    if (*p == '\n') {
      gen_text_printf(t, "\n%s *", indent);
      col = 2;
      p++;
      continue;
    }
    size_t word = strcspn(p, " \n");
    if (col > 2 && col + 1 + word > limit) {
      gen_text_printf(t, "\n%s *", indent);
      col = 2;
    }
    gen_text_printf(t, " %.*s", (int)word, p);
    col += 1 + word;
    p += word;
  }
  if (col + 3 > limit) gen_text_printf(t, "\n%s", indent);
  gen_text_puts(t, " */\n");
  free(text);
}

/* Appends `lead name(p1, p2, ...)`, breaking between parameters and aligning
 * them under the parenthesis when the line would pass WIDTH. `params` ends
 * with NULL. */
static void signature(gen_text *t, const char *lead, const char *name, const char *const *params) {
  size_t open = strlen(lead) + strlen(name) + 1;
  gen_text_printf(t, "%s%s(", lead, name);
  size_t col = open;
  for (size_t i = 0; params[i] != NULL; i++) {
    size_t len = strlen(params[i]) + (params[i + 1] != NULL ? 1 : 2); /* "," or ");" */
    if (i > 0) {
      if (col + 1 + len > WIDTH) {
        gen_text_printf(t, "\n%*s", (int)open, "");
        col = open;
      } else {
        gen_text_puts(t, " ");
        col++;
      }
    }
    gen_text_printf(t, "%s%s", params[i], params[i + 1] != NULL ? "," : ")");
    col += len - (params[i + 1] != NULL ? 0 : 1);
  }
}

/* The signatures, written once for both the header and the source. */
static void sig_call(gen_text *t, const char *lead, const method_names *m) {
  char *req = gen_xasprintf("const %s *req", m->req_type);
  char *reply = gen_xasprintf("%s **reply", m->rep_type);
  const char *params[] = {"ia_conn *conn", req, reply, "const ia_call_opts *opts", "ia_error *err", NULL};
  signature(t, lead, m->call, params);
  free(req);
  free(reply);
}
static void sig_task(gen_text *t, const method_names *m, const char *fn) {
  char *req = gen_xasprintf("const %s *req", m->req_type);
  const char *params[] = {"ia_conn *conn", req, "const ia_call_opts *opts", NULL};
  signature(t, "IA_MUST_CHECK ia_task *", fn, params);
  free(req);
}
static void sig_reply(gen_text *t, const char *lead, const method_names *m) {
  char *reply = gen_xasprintf("%s **reply", m->rep_type);
  const char *params[] = {"const ia_task *task", reply, NULL};
  signature(t, lead, m->reply, params);
  free(reply);
}
static void sig_reply_ok(gen_text *t, const method_names *m) {
  char *reply = gen_xasprintf("const %s *reply", m->rep_type);
  const char *params[] = {"ia_task_ctx *task", reply, NULL};
  signature(t, "IA_MUST_CHECK ia_code ", m->reply_ok, params);
  free(reply);
}
static void sig_serve(gen_text *t, const char *lead, const service_names *s) {
  char *handlers = gen_xasprintf("const %s *handlers", s->handlers);
  const char *params[] = {"ia_slave *slave", handlers, "void *user", NULL};
  signature(t, lead, s->serve, params);
  free(handlers);
}

/* ---- the header ---- */

static void header_method(gen_text *t, const method_names *m) {
  gen_text_printf(t, "/* ---- %s: %s -> %s ---- */\n\n", m->wire, m->req_name, m->rep_name);
  gen_text_printf(t, "#define %s \"%s\"\n\n", m->macro, m->wire);

  comment(t, "",
          "Master, blocking: sends *req (only read: it stays the caller's) and waits up to the timeout of "
          "opts (NULL: the default). IA_OK with *reply, which the caller frees with %s; else the code "
          "of what happened, with details in err (a TaskFail's result is err->data: decode it with "
          "ia_pb_decode()). Thread-safe.",
          m->rep_free);
  sig_call(t, "IA_MUST_CHECK ia_code ", m);
  gen_text_puts(t, ";\n\n");

  comment(t, "",
          "Master, async: a task in IDLE carrying *req (copied) and the deadline and metadata of opts "
          "(NULL: none; see ia_task_set_opts()), to attach callbacks to before ia_task_start(). Free it "
          "with ia_task_free(). NULL if out of memory, conn or req is NULL, or opts cannot be applied.");
  sig_task(t, m, m->task);
  gen_text_puts(t, ";\n\n");

  comment(t, "",
          "Master, async: the same task, already started; a start failure shows as "
          "IA_STATUS_START_FAILED with ia_task_error(). Join it with ia_task_join(), free it with "
          "ia_task_free(). NULL if out of memory or conn or req is NULL.");
  sig_task(t, m, m->start);
  gen_text_puts(t, ";\n\n");

  comment(t, "",
          "Master: the reply of a finished task: IA_OK with *reply (the caller frees it with %s, "
          "independently of the task), the task's error code if it did not complete, IA_PROTOCOL_ERROR "
          "if the reply does not decode, IA_INVALID_ARGUMENT while it is still running.",
          m->rep_free);
  sig_reply(t, "IA_MUST_CHECK ia_code ", m);
  gen_text_puts(t, ";\n\n");

  comment(t, "",
          "Slave, in the `%s` handler: ends the task with *reply (packed and copied: it stays the "
          "caller's). IA_INVALID_ARGUMENT if the task already has an outcome, IA_NO_MEMORY if packing "
          "failed (the task then fails with IA_TASK_ERROR, so the master still hears of it). To fail "
          "instead, call ia_pb_fail().",
          m->member);
  sig_reply_ok(t, m);
  gen_text_puts(t, ";\n\n");
}

static void header_service(gen_text *t, const service_names *s) {
  gen_text_printf(t, "/* ==== service %s ==== */\n\n", s->full);
  for (size_t i = 0; i < s->n_methods; i++)
    header_method(t, &s->methods[i]);
  if (s->n_methods == 0) {
    comment(t, "", "%s has no method: no handler table.", s->full);
    gen_text_puts(t, "\n");
    return;
  }
  comment(t, "",
          "The slave's handlers for %s. Each runs on a worker thread with the decoded request, which the "
          "stub frees when the handler returns (copy what must outlive it), and the `user` given to %s(). "
          "It ends the task with its _reply_ok() function or ia_pb_fail(); ending it with neither is "
          "reported to the master as IA_TASK_ERROR. A NULL handler leaves its method unregistered: the "
          "master then gets IA_UNKNOWN_METHOD (unless the slave has a catch-all handler).",
          s->full, s->serve);
  gen_text_printf(t, "typedef struct %s {\n", s->handlers);
  for (size_t i = 0; i < s->n_methods; i++) {
    const method_names *m = &s->methods[i];
    gen_text_printf(t, "  /* %s */\n", m->wire);
    char *member = gen_xasprintf("(*%s)", m->member);
    char *req = gen_xasprintf("const %s *req", m->req_type);
    const char *params[] = {"ia_task_ctx *task", req, "void *user", NULL};
    signature(t, "  void ", member, params);
    gen_text_puts(t, ";\n");
    free(req);
    free(member);
  }
  gen_text_printf(t, "} %s;\n\n", s->handlers);
  comment(t, "",
          "Registers every non-NULL handler of *handlers on the slave under its method's full name. The "
          "table is copied into the slave's own memory (ia_slave_alloc()); `user` is kept as is and must "
          "outlive the slave. Call before ia_slave_start(). IA_INVALID_ARGUMENT if slave or handlers is "
          "NULL, IA_NO_MEMORY, or what ia_slave_register() returned (the methods before it stay "
          "registered).");
  sig_serve(t, "IA_MUST_CHECK ia_code ", s);
  gen_text_puts(t, ";\n\n");
}

static char *header_text(const file_names *f) {
  gen_text t = GEN_TEXT_INIT;
  comment(&t, "",
          "Generated by protoc-gen-interaction from %s. Do not edit.\n\nTyped Interaction stubs: for "
          "each method a blocking call, an async task form and, for the slave, a handler table with a "
          "serve function. Messages are the protoc-c codecs of %s.pb-c.h. Methods travel by their full "
          "name (\"package.Service/Method\"), so their order in the .proto never matters on the wire. "
          "Messages handed out belong to the caller, who frees each with its protoc-c "
          "<type>__free_unpacked(msg, NULL), or protobuf_c_message_free_unpacked(&msg->base, NULL) for a "
          "nested type.",
          f->comment_proto, f->stem);
  gen_text_printf(&t,
                  "#ifndef %s\n"
                  "#define %s\n\n"
                  "#include \"interaction/pb.h\"\n\n"
                  "#include \"%s.pb-c.h\"\n\n"
                  "#ifdef __cplusplus\n"
                  "extern \"C\" {\n"
                  "#endif\n\n",
                  f->guard, f->guard, f->stem);
  if (f->n_services == 0) gen_text_printf(&t, "/* %s defines no service. */\n\n", f->comment_proto);
  for (size_t i = 0; i < f->n_services; i++)
    header_service(&t, &f->services[i]);
  gen_text_printf(&t,
                  "#ifdef __cplusplus\n"
                  "}\n"
                  "#endif\n"
                  "#endif /* %s */\n",
                  f->guard);
  return gen_text_take(&t);
}

/* ---- the source ---- */

static void source_method(gen_text *t, const service_names *s, const method_names *m) {
  sig_call(t, "ia_code ", m);
  gen_text_printf(t,
                  " {\n"
                  "  ProtobufCMessage *msg = NULL;\n"
                  "  ia_code rc = ia_pb_call(conn, %s, (const ProtobufCMessage *)req,\n"
                  "                          &%s__descriptor, reply != NULL ? &msg : NULL, opts, err);\n"
                  "  if (reply != NULL) *reply = (%s *)msg;\n"
                  "  return rc;\n"
                  "}\n\n",
                  m->macro, m->rep_lower, m->rep_type);

  sig_task(t, m, m->task);
  gen_text_printf(t,
                  " {\n"
                  "  ia_task *task = ia_pb_task_new(conn, %s, (const ProtobufCMessage *)req);\n"
                  "  if (task != NULL && ia_task_set_opts(task, opts) != IA_OK) {\n"
                  "    ia_task_free(task);\n"
                  "    return NULL;\n"
                  "  }\n"
                  "  return task;\n"
                  "}\n\n",
                  m->macro);

  sig_task(t, m, m->start);
  gen_text_printf(t,
                  " {\n"
                  "  ia_task *task = %s(conn, req, opts);\n"
                  "  /* A failed start leaves the task in START_FAILED, where the caller sees it. */\n"
                  "  ia_code rc = task != NULL ? ia_task_start(task) : IA_NO_MEMORY;\n"
                  "  (void)rc;\n"
                  "  return task;\n"
                  "}\n\n",
                  m->task);

  sig_reply(t, "ia_code ", m);
  gen_text_printf(t,
                  " {\n"
                  "  ProtobufCMessage *msg = NULL;\n"
                  "  ia_code rc = ia_pb_task_reply(task, &%s__descriptor,\n"
                  "                                reply != NULL ? &msg : NULL);\n"
                  "  if (reply != NULL) *reply = (%s *)msg;\n"
                  "  return rc;\n"
                  "}\n\n",
                  m->rep_lower, m->rep_type);

  sig_reply_ok(t, m);
  gen_text_puts(t, " {\n"
                   "  return ia_pb_reply(task, (const ProtobufCMessage *)reply);\n"
                   "}\n\n");

  gen_text_printf(t,
                  "static void %s(ia_task_ctx *task, void *binding) {\n"
                  "  const %s *b = binding;\n"
                  "  ia_pb_view req;\n"
                  "  if (ia_pb_request_view(task, &%s__descriptor, &req) != IA_OK) {\n"
                  "    /* A fresh task has no outcome yet: failing it cannot fail. */\n"
                  "    ia_code rc = ia_task_ctx_fail(task, IA_TASK_ERROR,\n"
                  "                                  \"the payload of %s is not an encoded %s\", NULL, 0);\n"
                  "    (void)rc;\n"
                  "    return;\n"
                  "  }\n"
                  "  b->handlers.%s(task, (const %s *)req.msg, b->user);\n"
                  "  ia_pb_view_release(&req);\n"
                  "}\n\n",
                  m->run, s->binding, m->req_lower, m->wire, m->req_name, m->member, m->req_type);
}

static void source_service(gen_text *t, const service_names *s) {
  gen_text_printf(t, "/* ==== service %s ==== */\n\n", s->full);
  if (s->n_methods == 0) {
    gen_text_printf(t, "/* %s has no method. */\n\n", s->full);
    return;
  }
  gen_text_printf(t,
                  "/* What %s() keeps in the slave's memory for the trampolines. */\n"
                  "typedef struct %s {\n"
                  "  %s handlers;\n"
                  "  void *user;\n"
                  "} %s;\n\n",
                  s->serve, s->binding, s->handlers, s->binding);
  for (size_t i = 0; i < s->n_methods; i++)
    source_method(t, s, &s->methods[i]);

  sig_serve(t, "ia_code ", s);
  gen_text_printf(t,
                  " {\n"
                  "  if (slave == NULL || handlers == NULL) return IA_INVALID_ARGUMENT;\n"
                  "  %s *b = ia_slave_alloc(slave, sizeof *b);\n"
                  "  if (b == NULL) return IA_NO_MEMORY;\n"
                  "  b->handlers = *handlers;\n"
                  "  b->user = user;\n"
                  "  ia_code rc = IA_OK;\n",
                  s->binding);
  for (size_t i = 0; i < s->n_methods; i++) {
    const method_names *m = &s->methods[i];
    gen_text_printf(t,
                    "  if (rc == IA_OK && b->handlers.%s != NULL)\n"
                    "    rc = ia_slave_register(slave, %s, %s, b);\n",
                    m->member, m->macro, m->run);
  }
  gen_text_puts(t, "  return rc;\n"
                   "}\n\n");
}

static char *source_text(const file_names *f) {
  gen_text t = GEN_TEXT_INIT;
  gen_text_printf(&t,
                  "/* Generated by protoc-gen-interaction from %s. Do not edit. */\n"
                  "#include \"%s.ia.h\"\n\n",
                  f->comment_proto, f->stem);
  for (size_t i = 0; i < f->n_services; i++)
    source_service(&t, &f->services[i]);
  return gen_text_take(&t);
}

/* ---- entry point ---- */

void gen_output_free(gen_output *out) {
  free(out->name);
  free(out->content);
  out->name = NULL;
  out->content = NULL;
}

bool gen_emit_file(gen_file_proto *const *files, size_t n_files, const gen_file_proto *file, bool always,
                   gen_output out[2], size_t *n_out, char **error) {
  *n_out = 0;
  *error = NULL;
  if (file->n_service == 0 && !always) return true;
  file_names names;
  if (!gen_derive_file(files, n_files, file, &names, error)) {
    char *with_file = gen_xasprintf("%s: %s", file->name, *error);
    free(*error);
    *error = with_file;
    gen_file_names_free(&names);
    return false;
  }
  out[0].name = gen_xasprintf("%s.ia.h", names.stem);
  out[0].content = header_text(&names);
  out[1].name = gen_xasprintf("%s.ia.c", names.stem);
  out[1].content = source_text(&names);
  *n_out = 2;
  gen_file_names_free(&names);
  return true;
}
