#include "descriptors.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "text.h"

/* ---- (pb_c_file).c_package ---- */

/* protobuf-c.proto: `extend google.protobuf.FileOptions { optional
 * ProtobufCFileOptions pb_c_file = 1019; }`, and in ProtobufCFileOptions
 * `optional string c_package = 6;`. protoc passes the extension through as
 * an unknown field, so it is read from the wire format here. */
#define PB_C_FILE_FIELD 1019u
#define C_PACKAGE_FIELD 6u

/* Reads a varint at *p (below end); false if truncated or too long. */
static bool read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

/* Skips one field's value of `wire_type`; false if malformed. */
static bool skip_value(const uint8_t **p, const uint8_t *end, unsigned wire_type) {
  uint64_t v;
  switch (wire_type) {
  case 0:
    return read_varint(p, end, &v);
  case 1:
    if (end - *p < 8) return false;
    *p += 8;
    return true;
  case 2:
    if (!read_varint(p, end, &v) || v > (uint64_t)(end - *p)) return false;
    *p += v;
    return true;
  case 5:
    if (end - *p < 4) return false;
    *p += 4;
    return true;
  default:
    return false;
  }
}

/* Finds c_package in an encoded ProtobufCFileOptions; the last one wins, as
 * protobuf merges. */
static bool options_c_package(const uint8_t *p, const uint8_t *end, char **out) {
  bool found = false;
  while (p < end) {
    uint64_t key, len;
    if (!read_varint(&p, end, &key)) break;
    unsigned wire_type = (unsigned)(key & 7);
    if (key >> 3 == C_PACKAGE_FIELD && wire_type == 2) {
      if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p)) break;
      free(*out);
      *out = gen_xasprintf("%.*s", (int)len, (const char *)p);
      p += len;
      found = true;
    } else if (!skip_value(&p, end, wire_type)) {
      break;
    }
  }
  return found;
}

char *gen_c_package(const gen_file_proto *file) {
  char *c_package = NULL;
  const Google__Protobuf__FileOptions *options = file->options;
  for (unsigned i = 0; options != NULL && i < options->base.n_unknown_fields; i++) {
    const ProtobufCMessageUnknownField *u = &options->base.unknown_fields[i];
    if (u->tag != PB_C_FILE_FIELD || u->wire_type != PROTOBUF_C_WIRE_TYPE_LENGTH_PREFIXED) continue;
    /* protobuf-c keeps a length-delimited unknown field with its length
     * prefix. */
    const uint8_t *p = u->data, *end = u->data + u->len;
    uint64_t len;
    if (!read_varint(&p, end, &len) || len > (uint64_t)(end - p)) continue;
    options_c_package(p, p + len, &c_package);
  }
  if (c_package != NULL) return c_package;
  return gen_xstrdup(file->package != NULL ? file->package : "");
}

/* ---- finding messages ---- */

/* True if `path` ("Outer.Inner") names a message among `messages`, nested
 * through each component. */
static bool has_message(Google__Protobuf__DescriptorProto *const *messages, size_t n, const char *path) {
  const char *dot = strchr(path, '.');
  size_t len = dot != NULL ? (size_t)(dot - path) : strlen(path);
  for (size_t i = 0; i < n; i++) {
    const char *name = messages[i]->name;
    if (name == NULL || strlen(name) != len || strncmp(name, path, len) != 0) continue;
    if (dot == NULL) return true;
    if (has_message(messages[i]->nested_type, messages[i]->n_nested_type, dot + 1)) return true;
  }
  return false;
}

char *gen_c_full_name(gen_file_proto *const *files, size_t n_files, const char *type_name, bool *nested,
                      char **error) {
  const char *name = type_name[0] == '.' ? type_name + 1 : type_name;
  for (size_t i = 0; i < n_files; i++) {
    const gen_file_proto *f = files[i];
    const char *package = f->package != NULL ? f->package : "";
    size_t plen = strlen(package);
    const char *rest = name;
    if (plen > 0) {
      if (strncmp(name, package, plen) != 0 || name[plen] != '.') continue;
      rest = name + plen + 1;
    }
    if (!has_message(f->message_type, f->n_message_type, rest)) continue;
    *nested = strchr(rest, '.') != NULL;
    char *c_package = gen_c_package(f);
    char *full = c_package[0] != '\0' ? gen_xasprintf("%s.%s", c_package, rest) : gen_xstrdup(rest);
    free(c_package);
    return full;
  }
  *error = gen_xasprintf("message %s is defined in none of the files protoc passed", name);
  return NULL;
}

/* ---- protoc-c's service structs ---- */

/* The member protoc-c's service struct would have for `method`. */
static char *protoc_c_member(const char *method) {
  return gen_protoc_c_lower(method);
}

static bool member_unusable(const Google__Protobuf__ServiceDescriptorProto *s, size_t self,
                            const char *member) {
  /* `base` is the ProtobufCService at the head of every service struct. */
  if (gen_is_reserved(member) || strcmp(member, "base") == 0) return true;
  for (size_t i = 0; i < s->n_method; i++) {
    if (i == self) continue;
    char *other = protoc_c_member(s->method[i]->name);
    bool same = strcmp(other, member) == 0;
    free(other);
    if (same) return true;
  }
  return false;
}

/* ---- protoc-c's message structs ---- */

/* protoc-c's FieldName(): the field name lower-cased (and `_` appended for a
 * C++ keyword, which gen_is_reserved() covers too). */
static char *protoc_c_field(const char *name) {
  char *s = gen_xstrdup(name);
  for (char *p = s; *p != '\0'; p++)
    *p = (char)tolower((unsigned char)*p);
  return s;
}

static bool field_unusable(const Google__Protobuf__DescriptorProto *m, size_t self, const char *member) {
  if (gen_is_reserved(member)) return true;
  for (size_t i = 0; i < m->n_field; i++) {
    if (i == self || m->field[i]->name == NULL) continue;
    char *other = protoc_c_field(m->field[i]->name);
    bool same = strcmp(other, member) == 0;
    free(other);
    if (same) return true;
  }
  return false;
}

static size_t prepare_message(Google__Protobuf__DescriptorProto *m) {
  size_t renamed = 0;
  for (size_t i = 0; i < m->n_field; i++) {
    Google__Protobuf__FieldDescriptorProto *f = m->field[i];
    if (f->name == NULL) continue;
    char *member = protoc_c_field(f->name);
    /* protoc-c escapes C++ keywords itself, the same way. */
    bool changed = false;
    while (field_unusable(m, i, member)) {
      char *name = gen_xasprintf("%s_", f->name);
      free(f->name);
      f->name = name;
      free(member);
      member = protoc_c_field(f->name);
      changed = true;
    }
    free(member);
    renamed += changed;
  }
  for (size_t i = 0; i < m->n_nested_type; i++)
    renamed += prepare_message(m->nested_type[i]);
  return renamed;
}

size_t gen_prepare_for_protoc_c(gen_file_proto *file) {
  size_t renamed = 0;
  for (size_t i = 0; i < file->n_message_type; i++)
    renamed += prepare_message(file->message_type[i]);
  for (size_t i = 0; i < file->n_service; i++) {
    Google__Protobuf__ServiceDescriptorProto *s = file->service[i];
    for (size_t j = 0; j < s->n_method; j++) {
      Google__Protobuf__MethodDescriptorProto *m = s->method[j];
      if (m->name == NULL) continue;
      char *member = protoc_c_member(m->name);
      bool changed = false;
      while (member_unusable(s, j, member)) {
        /* Strings of an unpacked message belong to it and are freed by
         * free_unpacked with the default allocator, i.e. free(). */
        char *name = gen_xasprintf("%s_", m->name);
        free(m->name);
        m->name = name;
        free(member);
        member = protoc_c_member(m->name);
        changed = true;
      }
      free(member);
      renamed += changed;
    }
  }
  return renamed;
}
