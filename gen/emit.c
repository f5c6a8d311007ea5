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
 * Streaming methods have no Interaction equivalent (a task is one request,
 * one reply): they get a comment and nothing callable, and the file still
 * compiles. Names are derived in one place (derive_*), checked for
 * collisions before any text is written, and never depend on the order of
 * methods in the .proto.
 */
#include "emit.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "descriptors.h"
#include "names.h"
#include "text.h"

typedef struct method_names {
  const char *name; /* the method's proto name, "DoIt" */
  const char *kind; /* NULL for a unary method, else which kind of stream */
  char *wire;       /* "a.b.Svc/DoIt" */
  char *member;     /* handler table member, "do_it" */
  char *macro;      /* A_B_SVC_DO_IT_METHOD */
  char *call;       /* a_b_svc_do_it */
  char *task;       /* a_b_svc_do_it_task */
  char *start;      /* a_b_svc_do_it_start */
  char *reply;      /* a_b_svc_do_it_reply */
  char *reply_ok;   /* a_b_svc_do_it_reply_ok */
  char *run;        /* a_b_svc_do_it_run (static trampoline) */
  char *req_name;   /* "a.b.Req" */
  char *req_type;   /* "A__B__Req" */
  char *req_lower;  /* "a__b__req" */
  char *rep_name;
  char *rep_type;
  char *rep_lower;
  char *rep_free; /* how the doc tells to free a reply: "x__free_unpacked(*reply, NULL)" */
} method_names;

typedef struct service_names {
  char *full;     /* "a.b.Svc" */
  char *handlers; /* a_b_svc_handlers */
  char *serve;    /* a_b_svc_serve */
  char *binding;  /* a_b_svc_binding (source only) */
  size_t n_methods;
  size_t n_unary;
  method_names *methods;
} service_names;

typedef struct file_names {
  const char *proto;   /* "dir/x.proto" */
  char *stem;          /* "dir/x" */
  char *guard;         /* include guard */
  char *comment_proto; /* `proto` made safe for comments */
  size_t n_services;
  service_names *services;
} file_names;

/* ---- collision checks ---- */

/* The C names one scope declares, each with what it stands for, so that two
 * proto names that map to one C name are reported instead of miscompiled. */
typedef struct claims {
  char **ident;
  char **what;
  size_t n;
} claims;

/* Records `ident` for `what` (taken over). False, with *error set, if the
 * scope already has it. */
static bool claim(claims *c, const char *ident, char *what, char **error) {
  for (size_t i = 0; i < c->n; i++) {
    if (strcmp(c->ident[i], ident) == 0) {
      *error = gen_xasprintf("%s and %s would both be named `%s` in C; rename one of them", c->what[i], what,
                             ident);
      free(what);
      return false;
    }
  }
  c->ident = gen_xrealloc(c->ident, (c->n + 1) * sizeof *c->ident);
  c->what = gen_xrealloc(c->what, (c->n + 1) * sizeof *c->what);
  c->ident[c->n] = gen_xstrdup(ident);
  c->what[c->n] = what;
  c->n++;
  return true;
}

static void claims_free(claims *c) {
  for (size_t i = 0; i < c->n; i++) {
    free(c->ident[i]);
    free(c->what[i]);
  }
  free(c->ident);
  free(c->what);
  *c = (claims){0};
}

/* ---- deriving names ---- */

/* What derivation looks at: every file of the request (for the messages a
 * method names) and the C package of the file being generated. */
typedef struct context {
  gen_file_proto *const *files;
  size_t n_files;
  const char *package; /* the proto package; NULL or "" for none */
  char *package_snake; /* snake_case of the C package, for the stubs' prefix */
} context;

/* The proto name and the two spellings protoc-c uses of a message named by a
 * method's (fully qualified, dot-led) input or output type. */
static bool derive_type(const context *ctx, const char *type_name, char **name, char **type, char **lower,
                        bool *nested, char **error) {
  *name = gen_xstrdup(type_name[0] == '.' ? type_name + 1 : type_name);
  char *c_full = gen_c_full_name(ctx->files, ctx->n_files, type_name, nested, error);
  if (c_full == NULL) return false;
  *type = gen_protoc_c_type(c_full);
  *lower = gen_protoc_c_lower(c_full);
  free(c_full);
  return true;
}

static const char *stream_kind(const Google__Protobuf__MethodDescriptorProto *m) {
  bool client = m->has_client_streaming && m->client_streaming;
  bool server = m->has_server_streaming && m->server_streaming;
  if (client && server) return "bidirectional-streaming";
  if (client) return "client-streaming";
  if (server) return "server-streaming";
  return NULL;
}

static bool derive_method(const context *ctx, const char *prefix, const char *service_full,
                          const Google__Protobuf__MethodDescriptorProto *m, method_names *out, char **error) {
  out->name = m->name;
  out->kind = stream_kind(m);
  out->wire = gen_xasprintf("%s/%s", service_full, m->name);
  if (m->input_type == NULL || m->output_type == NULL) {
    *error = gen_xasprintf("method %s has no input or output type", out->wire);
    return false;
  }
  char *snake = gen_snake(m->name);
  if (snake[0] == '\0') {
    *error = gen_xasprintf("cannot derive a C name from method %s", out->wire);
    free(snake);
    return false;
  }
  char *base = gen_xasprintf("%s_%s", prefix, snake);
  char *upper = gen_upper(base);
  out->member = gen_escape(snake);
  out->macro = gen_xasprintf("%s_METHOD", upper);
  /* The blocking call is the bare <prefix>_<method>, which a method named
   * like a service-level function would make `<prefix>_serve` (or _handlers,
   * _binding): such calls get a trailing `_`, the rule for reserved names. */
  bool service_word =
      strcmp(snake, "serve") == 0 || strcmp(snake, "handlers") == 0 || strcmp(snake, "binding") == 0;
  char *call = gen_xasprintf("%s%s", base, service_word ? "_" : "");
  out->call = gen_escape(call);
  free(call);
  out->task = gen_xasprintf("%s_task", base);
  out->start = gen_xasprintf("%s_start", base);
  out->reply = gen_xasprintf("%s_reply", base);
  out->reply_ok = gen_xasprintf("%s_reply_ok", base);
  out->run = gen_xasprintf("%s_run", base);
  free(upper);
  free(base);
  free(snake);
  bool req_nested, rep_nested;
  if (!derive_type(ctx, m->input_type, &out->req_name, &out->req_type, &out->req_lower, &req_nested, error) ||
      !derive_type(ctx, m->output_type, &out->rep_name, &out->rep_type, &out->rep_lower, &rep_nested, error))
    return false;
  /* protoc-c makes <type>__free_unpacked for top-level messages only. */
  out->rep_free = rep_nested ? gen_xstrdup("protobuf_c_message_free_unpacked(&(*reply)->base, NULL)")
                             : gen_xasprintf("%s__free_unpacked(*reply, NULL)", out->rep_lower);
  return true;
}

/* Claims every C name a unary method declares at file scope. */
static bool claim_method(claims *file_scope, claims *members, const method_names *m, char **error) {
  return claim(file_scope, m->macro, gen_xasprintf("the wire-name macro of %s", m->wire), error) &&
         claim(file_scope, m->call, gen_xasprintf("the blocking call of %s", m->wire), error) &&
         claim(file_scope, m->task, gen_xasprintf("the task constructor of %s", m->wire), error) &&
         claim(file_scope, m->start, gen_xasprintf("the async start of %s", m->wire), error) &&
         claim(file_scope, m->reply, gen_xasprintf("the reply decoder of %s", m->wire), error) &&
         claim(file_scope, m->reply_ok, gen_xasprintf("the slave reply of %s", m->wire), error) &&
         claim(file_scope, m->run, gen_xasprintf("the slave trampoline of %s", m->wire), error) &&
         claim(members, m->member, gen_xasprintf("the handler of %s", m->wire), error);
}

static bool derive_service(const context *ctx, const Google__Protobuf__ServiceDescriptorProto *s,
                           service_names *out, claims *file_scope, char **error) {
  bool has_package = ctx->package != NULL && ctx->package[0] != '\0';
  out->full = has_package ? gen_xasprintf("%s.%s", ctx->package, s->name) : gen_xstrdup(s->name);
  char *snake = gen_snake(s->name);
  if (snake[0] == '\0') {
    *error = gen_xasprintf("cannot derive a C name from service %s", out->full);
    free(snake);
    return false;
  }
  char *prefix =
      ctx->package_snake[0] != '\0' ? gen_xasprintf("%s_%s", ctx->package_snake, snake) : gen_xstrdup(snake);
  free(snake);
  out->handlers = gen_xasprintf("%s_handlers", prefix);
  out->serve = gen_xasprintf("%s_serve", prefix);
  out->binding = gen_xasprintf("%s_binding", prefix);
  out->methods = gen_xmalloc(s->n_method * sizeof *out->methods);
  memset(out->methods, 0, s->n_method * sizeof *out->methods);

  bool ok = true;
  claims members = {0};
  for (size_t i = 0; ok && i < s->n_method; i++) {
    method_names *m = &out->methods[i];
    ok = derive_method(ctx, prefix, out->full, s->method[i], m, error);
    out->n_methods = i + 1;
    if (ok && m->kind == NULL) {
      out->n_unary++;
      ok = claim_method(file_scope, &members, m, error);
    }
  }
  if (ok && out->n_unary > 0) {
    ok = claim(file_scope, out->handlers, gen_xasprintf("the handler table of %s", out->full), error) &&
         claim(file_scope, out->serve, gen_xasprintf("the serve function of %s", out->full), error) &&
         claim(file_scope, out->binding, gen_xasprintf("the slave binding of %s", out->full), error);
  }
  claims_free(&members);
  free(prefix);
  return ok;
}

static void method_names_free(method_names *m) {
  char **fields[] = {&m->wire,     &m->member,   &m->macro,     &m->call,     &m->task,     &m->start,
                     &m->reply,    &m->reply_ok, &m->run,       &m->req_name, &m->req_type, &m->req_lower,
                     &m->rep_name, &m->rep_type, &m->rep_lower, &m->rep_free};
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    free(*fields[i]);
    *fields[i] = NULL;
  }
}

static void file_names_free(file_names *f) {
  for (size_t i = 0; i < f->n_services; i++) {
    service_names *s = &f->services[i];
    for (size_t j = 0; j < s->n_methods; j++)
      method_names_free(&s->methods[j]);
    free(s->methods);
    free(s->full);
    free(s->handlers);
    free(s->serve);
    free(s->binding);
  }
  free(f->services);
  free(f->stem);
  free(f->guard);
  free(f->comment_proto);
  *f = (file_names){0};
}

static bool derive_file(gen_file_proto *const *files, size_t n_files, const gen_file_proto *file,
                        file_names *out, char **error) {
  memset(out, 0, sizeof *out);
  out->proto = file->name;
  if (!gen_is_plain_text(file->name)) {
    *error = gen_xasprintf("the file name cannot be #included by C: use printable ASCII without `\"`, `\\` "
                           "or `?`");
    return false;
  }
  out->stem = gen_strip_proto(file->name);
  char *id = gen_file_identifier(out->stem);
  out->guard = gen_xasprintf("IA_GEN_%s_IA_H", id);
  free(id);
  out->comment_proto = gen_comment_text(file->name);

  /* The stubs' C prefix follows protoc-c's C package (the wire name keeps
   * the proto package), so (pb_c_file).c_package shortens both alike. */
  char *c_package = gen_c_package(file);
  context ctx = {files, n_files, file->package, gen_snake_package(c_package)};
  free(c_package);
  out->services = gen_xmalloc((file->n_service + 1) * sizeof *out->services);
  memset(out->services, 0, (file->n_service + 1) * sizeof *out->services);
  claims file_scope = {0};
  bool ok = true;
  for (size_t i = 0; ok && i < file->n_service; i++) {
    ok = derive_service(&ctx, file->service[i], &out->services[i], &file_scope, error);
    out->n_services = i + 1;
  }
  claims_free(&file_scope);
  free(ctx.package_snake);
  return ok;
}

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
  const char *params[] = {"ia_conn *conn", req, NULL};
  signature(t, "ia_task *", fn, params);
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
  signature(t, "ia_code ", m->reply_ok, params);
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
  if (m->kind != NULL) {
    comment(t, "",
            "%s is %s: an Interaction task carries one request and one reply, so nothing is generated "
            "for it, and a slave answers it with IA_UNKNOWN_METHOD (unless it has a catch-all handler).",
            m->wire, m->kind);
    gen_text_puts(t, "\n");
    return;
  }
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
          "Master, async: a task in IDLE carrying *req (copied), to attach callbacks to before "
          "ia_task_start(). Free it with ia_task_free(). NULL if out of memory or conn or req is NULL.");
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
          "caller's). To fail instead, call ia_pb_fail().",
          m->member);
  sig_reply_ok(t, m);
  gen_text_puts(t, ";\n\n");
}

static void header_service(gen_text *t, const service_names *s) {
  gen_text_printf(t, "/* ==== service %s ==== */\n\n", s->full);
  for (size_t i = 0; i < s->n_methods; i++)
    header_method(t, &s->methods[i]);
  if (s->n_unary == 0) {
    comment(t, "", "%s has no unary method: no handler table.", s->full);
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
    if (m->kind != NULL) continue;
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
                  "  return ia_pb_task_new(conn, %s, (const ProtobufCMessage *)req);\n"
                  "}\n\n",
                  m->macro);

  sig_task(t, m, m->start);
  gen_text_printf(t,
                  " {\n"
                  "  ia_task *task = %s(conn, req);\n"
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
  if (s->n_unary == 0) {
    gen_text_printf(t, "/* %s has no unary method. */\n\n", s->full);
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
    if (s->methods[i].kind == NULL) source_method(t, s, &s->methods[i]);

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
    if (m->kind != NULL) continue;
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
  if (!derive_file(files, n_files, file, &names, error)) {
    char *with_file = gen_xasprintf("%s: %s", file->name, *error);
    free(*error);
    *error = with_file;
    file_names_free(&names);
    return false;
  }
  out[0].name = gen_xasprintf("%s.ia.h", names.stem);
  out[0].content = header_text(&names);
  out[1].name = gen_xasprintf("%s.ia.c", names.stem);
  out[1].content = source_text(&names);
  *n_out = 2;
  file_names_free(&names);
  return true;
}
