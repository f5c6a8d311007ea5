/*
 * Deriving the C names of a .proto file's stubs (gen/derive.c): every name a
 * method, a service and the file get, derived in one place, and checked for
 * collisions and streaming methods before any text is written (emit.c writes
 * the text). Names never depend on the order of methods in the .proto.
 */
#ifndef IA__GEN_DERIVE_H
#define IA__GEN_DERIVE_H

#include <stdbool.h>
#include <stddef.h>

#include "descriptors.h"

typedef struct method_names {
  const char *name; /* the method's proto name, "DoIt" */
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
  char *full;       /* "a.b.Svc" */
  char *handlers;   /* a_b_svc_handlers */
  char *serve;      /* a_b_svc_serve */
  char *binding;    /* a_b_svc_binding (source only) */
  size_t n_methods; /* all unary: derivation rejects streaming methods */
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

/* Derives the names of `file`, one of `files` (where the messages its
 * methods name are looked up). False with *error (malloc'd) when names
 * collide, a method streams or a type is unknown; *out is to be freed with
 * gen_file_names_free() either way. */
bool gen_derive_file(gen_file_proto *const *files, size_t n_files, const gen_file_proto *file,
                     file_names *out, char **error);
void gen_file_names_free(file_names *f);

#endif
