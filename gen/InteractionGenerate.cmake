# interaction_generate(TARGET <lib> PROTOS <file.proto>...
#                      [IMPORT_DIRS <dir>...] [OUT_DIR <dir>])
#
# Generates, at build time, the protoc-c codecs (<name>.pb-c.[ch]) and the
# Interaction typed stubs (<name>.ia.[ch]) of every .proto in PROTOS, and
# builds them into the STATIC library <lib>, which links Interaction and has
# the generated headers' folder as a PUBLIC include directory:
#
#   interaction_generate(TARGET learner_proto PROTOS learner.proto)
#   target_link_libraries(my_master PRIVATE learner_proto)   # #include "learner.ia.h"
#
# IMPORT_DIRS are protoc's -I roots; a .proto's generated name is its path
# relative to the first root that contains it (so `import "a/b.proto"` and
# #include "a/b.ia.h" match). Without IMPORT_DIRS each .proto's own folder is
# the root. A .proto imported from another interaction_generate() library must
# be reachable through IMPORT_DIRS, and that library linked to <lib>.
# OUT_DIR defaults to ${CMAKE_CURRENT_BINARY_DIR}/<lib>; generated files are
# build products, never sources.
#
# Protobuf's well-known types need nothing listed: the folder holding
# google/protobuf/*.proto is always protoc's last -I root, so
# `import "google/protobuf/timestamp.proto";` just works, and <lib> links
# `interaction_well_known_types`, a STATIC library of their protoc-c codecs
# (any, api, duration, empty, field_mask, source_context, struct, timestamp,
# type, wrappers, descriptor) made once per build by the first call. Every
# stub library shares that one copy, so two of them that import empty.proto
# link into one program without duplicate symbols; a program pulls in only
# the codecs it uses. Link it yourself for codecs made outside
# interaction_generate().
#
# Tools, each overridable by setting the variable before the call:
#   INTERACTION_PROTOC_EXECUTABLE     protoc (package protobuf-compiler): it runs
#                                     the plugin, which protoc-c cannot do
#   INTERACTION_PROTOC_C_EXECUTABLE   protoc-c (package protobuf-c-compiler): the
#                                     codecs
#   INTERACTION_PLUGIN_EXECUTABLE     protoc-gen-interaction. Unset: the in-tree
#                                     target `protoc-gen-interaction`, else the
#                                     imported `Interaction::protoc-gen-interaction`
#                                     of an installed package.
#   INTERACTION_LIBRARY_TARGET        what <lib> links: `interaction` in-tree,
#                                     else `Interaction::interaction`.
#   INTERACTION_PROTOBUF_INCLUDE_DIR  the folder holding google/protobuf/empty.proto
#                                     (Debian: /usr/include, from libprotobuf-dev).
#                                     Unset: looked for beside protoc (<bin>/../include),
#                                     then in the system's include folders. Not found:
#                                     no well-known types, everything else works.

# Sets <out_var> to the target of the well-known types' codecs, creating it
# on the first call (its rule lives in the caller's directory, its files in
# ${CMAKE_BINARY_DIR}/interaction_well_known_types), or to "" when no protobuf
# include folder is found. `runtime` is what the codecs link for
# libprotobuf-c.
function(_interaction_well_known_types out_var runtime)
  set(target interaction_well_known_types)
  set(${out_var} "" PARENT_SCOPE)
  if(NOT INTERACTION_PROTOBUF_INCLUDE_DIR)
    get_filename_component(protoc_bin ${INTERACTION_PROTOC_EXECUTABLE} DIRECTORY)
    find_path(INTERACTION_PROTOBUF_INCLUDE_DIR google/protobuf/empty.proto
      HINTS ${protoc_bin}/../include
      DOC "The folder holding google/protobuf/*.proto, protobuf's well-known types (Debian: libprotobuf-dev)")
  endif()
  if(NOT INTERACTION_PROTOBUF_INCLUDE_DIR)
    get_property(told GLOBAL PROPERTY _interaction_no_well_known_types)
    if(NOT told)
      message(STATUS "interaction_generate: google/protobuf/empty.proto not found (install libprotobuf-dev, "
                     "or set INTERACTION_PROTOBUF_INCLUDE_DIR): no well-known types")
      set_property(GLOBAL PROPERTY _interaction_no_well_known_types TRUE)
    endif()
    return()
  endif()
  if(NOT EXISTS ${INTERACTION_PROTOBUF_INCLUDE_DIR}/google/protobuf/empty.proto)
    message(FATAL_ERROR "interaction_generate: INTERACTION_PROTOBUF_INCLUDE_DIR=${INTERACTION_PROTOBUF_INCLUDE_DIR} "
                        "has no google/protobuf/empty.proto")
  endif()
  set(${out_var} ${target} PARENT_SCOPE)
  if(TARGET ${target})
    return()
  endif()

  set(inc ${INTERACTION_PROTOBUF_INCLUDE_DIR})
  set(out ${CMAKE_BINARY_DIR}/${target})
  # Those the protobuf include folder has of protobuf's own list.
  set(names any api duration empty field_mask source_context struct timestamp type wrappers descriptor)
  set(protos "")
  set(depends "")
  set(sources "")
  foreach(name IN LISTS names)
    if(EXISTS ${inc}/google/protobuf/${name}.proto)
      list(APPEND protos google/protobuf/${name}.proto)
      list(APPEND depends ${inc}/google/protobuf/${name}.proto)
      list(APPEND sources ${out}/google/protobuf/${name}.pb-c.c ${out}/google/protobuf/${name}.pb-c.h)
    endif()
  endforeach()
  file(MAKE_DIRECTORY ${out})
  add_custom_command(
    OUTPUT ${sources}
    COMMAND ${INTERACTION_PROTOC_C_EXECUTABLE} -I${inc} --c_out=${out} ${protos}
    DEPENDS ${depends}
    WORKING_DIRECTORY ${out}
    COMMENT "interaction_generate: protoc-c of the well-known types"
    VERBATIM)
  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${out}>)
  target_link_libraries(${target} PUBLIC ${runtime})
  set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()

function(interaction_generate)
  cmake_parse_arguments(ARG "" "TARGET;OUT_DIR" "PROTOS;IMPORT_DIRS" ${ARGN})
  if(NOT ARG_TARGET)
    message(FATAL_ERROR "interaction_generate: TARGET <name> is required")
  endif()
  if(NOT ARG_PROTOS)
    message(FATAL_ERROR "interaction_generate(${ARG_TARGET}): PROTOS <file.proto>... is required")
  endif()
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "interaction_generate(${ARG_TARGET}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()

  # ---- the tools ----
  if(NOT INTERACTION_PROTOC_EXECUTABLE)
    find_program(INTERACTION_PROTOC_EXECUTABLE protoc)
    if(NOT INTERACTION_PROTOC_EXECUTABLE)
      message(FATAL_ERROR "interaction_generate: protoc not found (install protobuf-compiler)")
    endif()
  endif()
  if(NOT INTERACTION_PROTOC_C_EXECUTABLE)
    find_program(INTERACTION_PROTOC_C_EXECUTABLE protoc-c)
    if(NOT INTERACTION_PROTOC_C_EXECUTABLE)
      message(FATAL_ERROR "interaction_generate: protoc-c not found (install protobuf-c-compiler)")
    endif()
  endif()
  set(plugin_depends "")
  if(INTERACTION_PLUGIN_EXECUTABLE)
    set(plugin ${INTERACTION_PLUGIN_EXECUTABLE})
    set(plugin_depends ${INTERACTION_PLUGIN_EXECUTABLE})
  elseif(TARGET protoc-gen-interaction)
    set(plugin $<TARGET_FILE:protoc-gen-interaction>)
    set(plugin_depends protoc-gen-interaction)
  elseif(TARGET Interaction::protoc-gen-interaction)
    set(plugin $<TARGET_FILE:Interaction::protoc-gen-interaction>)
    set(plugin_depends Interaction::protoc-gen-interaction)
  else()
    message(FATAL_ERROR "interaction_generate: no protoc-gen-interaction: build it in this tree, "
                        "find_package(Interaction), or set INTERACTION_PLUGIN_EXECUTABLE")
  endif()
  if(INTERACTION_LIBRARY_TARGET)
    set(runtime ${INTERACTION_LIBRARY_TARGET})
  elseif(TARGET interaction)
    set(runtime interaction)
  elseif(TARGET Interaction::interaction)
    set(runtime Interaction::interaction)
  else()
    message(FATAL_ERROR "interaction_generate: no interaction library target: build it in this tree, "
                        "find_package(Interaction), or set INTERACTION_LIBRARY_TARGET")
  endif()

  # ---- import roots and output names ----
  if(ARG_OUT_DIR)
    get_filename_component(out ${ARG_OUT_DIR} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_BINARY_DIR})
  else()
    set(out ${CMAKE_CURRENT_BINARY_DIR}/${ARG_TARGET})
  endif()
  set(roots "")
  foreach(dir IN LISTS ARG_IMPORT_DIRS)
    get_filename_component(dir ${dir} ABSOLUTE)
    list(APPEND roots ${dir})
  endforeach()

  set(proto_abs "")
  set(proto_rel "")
  set(sources "")
  set(headers "")
  foreach(proto IN LISTS ARG_PROTOS)
    get_filename_component(abs ${proto} ABSOLUTE)
    set(rel "")
    foreach(root IN LISTS roots)
      file(RELATIVE_PATH candidate ${root} ${abs})
      if(NOT candidate MATCHES "^\\.\\./" AND NOT IS_ABSOLUTE ${candidate})
        set(rel ${candidate})
        break()
      endif()
    endforeach()
    if(rel STREQUAL "")
      if(roots)
        message(FATAL_ERROR "interaction_generate(${ARG_TARGET}): ${proto} is under none of IMPORT_DIRS")
      endif()
      # No roots given: the file's own folder is one.
      get_filename_component(dir ${abs} DIRECTORY)
      get_filename_component(rel ${abs} NAME)
      list(APPEND roots ${dir})
    endif()
    string(REGEX REPLACE "\\.proto$" "" stem ${rel})
    list(APPEND proto_abs ${abs})
    list(APPEND proto_rel ${rel})
    list(APPEND sources ${out}/${stem}.pb-c.c ${out}/${stem}.ia.c)
    list(APPEND headers ${out}/${stem}.pb-c.h ${out}/${stem}.ia.h)
  endforeach()
  # The well-known types' folder is a root for protoc only, added after the
  # names were derived, and last, so that IMPORT_DIRS keep precedence.
  _interaction_well_known_types(well_known ${runtime})
  if(well_known)
    list(APPEND roots ${INTERACTION_PROTOBUF_INCLUDE_DIR})
  endif()
  list(REMOVE_DUPLICATES roots)
  set(include_flags "")
  foreach(root IN LISTS roots)
    list(APPEND include_flags -I${root})
  endforeach()

  # Three steps, one command: protoc parses the protos once, runs the plugin
  # for the stubs and saves the descriptors; the plugin renames, for protoc-c
  # only, the methods whose protoc-c service member would be a C keyword;
  # protoc-c makes the codecs from those descriptors.
  set(desc ${out}/${ARG_TARGET}.desc)
  set(codec_desc ${out}/${ARG_TARGET}.protoc-c.desc)
  file(MAKE_DIRECTORY ${out})
  add_custom_command(
    OUTPUT ${sources} ${headers}
    BYPRODUCTS ${desc} ${codec_desc}
    COMMAND ${INTERACTION_PROTOC_EXECUTABLE} ${include_flags}
            --include_imports --descriptor_set_out=${desc}
            --plugin=protoc-gen-interaction=${plugin} --interaction_out=always:${out}
            ${proto_abs}
    COMMAND ${plugin} --prepare-for-protoc-c ${desc} ${codec_desc}
    COMMAND ${INTERACTION_PROTOC_C_EXECUTABLE} --descriptor_set_in=${codec_desc} --c_out=${out} ${proto_rel}
    DEPENDS ${proto_abs} ${plugin_depends}
    WORKING_DIRECTORY ${out}
    COMMENT "interaction_generate(${ARG_TARGET}): ${proto_rel}"
    VERBATIM)

  add_library(${ARG_TARGET} STATIC ${sources} ${headers})
  target_include_directories(${ARG_TARGET} PUBLIC $<BUILD_INTERFACE:${out}>)
  target_link_libraries(${ARG_TARGET} PUBLIC ${runtime} ${well_known})
  set_target_properties(${ARG_TARGET} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
