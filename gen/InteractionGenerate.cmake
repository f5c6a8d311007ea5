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
  target_link_libraries(${ARG_TARGET} PUBLIC ${runtime})
  set_target_properties(${ARG_TARGET} PROPERTIES POSITION_INDEPENDENT_CODE ON)
endfunction()
