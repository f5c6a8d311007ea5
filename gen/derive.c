/* Deriving the C names of the stubs: see derive.h. */
#include "derive.h"

#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "text.h"

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

/* Which way a streaming method streams; NULL for a unary one. */
static const char *stream_direction(const Google__Protobuf__MethodDescriptorProto *m) {
  bool client = m->has_client_streaming && m->client_streaming;
  bool server = m->has_server_streaming && m->server_streaming;
  if (client && server) return "both ways";
  if (client) return "the request";
  if (server) return "the reply";
  return NULL;
}

static bool derive_method(const context *ctx, const char *prefix, const char *service_full,
                          const Google__Protobuf__MethodDescriptorProto *m, method_names *out, char **error) {
  out->name = m->name;
  out->wire = gen_xasprintf("%s/%s", service_full, m->name);
  /* An error rather than a method left out: a user would look in vain for
   * its stub, and a slave would answer it 606. */
  const char *streams = stream_direction(m);
  if (streams != NULL) {
    *error = gen_xasprintf("service %s method %s is a streaming rpc; Interaction has no streaming (a task "
                           "carries one request and one reply, and %s streams %s): make it unary, e.g. with "
                           "a repeated field, or one task per item",
                           service_full, m->name, m->name, streams);
    return false;
  }
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

/* Claims every C name a method declares at file scope. */
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
    ok = ok && claim_method(file_scope, &members, m, error);
  }
  if (ok && out->n_methods > 0) {
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

void gen_file_names_free(file_names *f) {
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

bool gen_derive_file(gen_file_proto *const *files, size_t n_files, const gen_file_proto *file,
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
