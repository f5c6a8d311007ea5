# Installation and packaging of Interaction, included from the top-level
# CMakeLists.txt after the `interaction` and `protoc-gen-interaction` targets
# exist.
#
#   cmake --install <build> --prefix P
#
# puts in P:
#   lib/libinteraction.a (or .so with -DBUILD_SHARED_LIBS=ON)
#   include/interaction/*.h                 the public headers
#   bin/protoc-gen-interaction              the protoc plugin of the typed stubs
#   lib/cmake/Interaction/                  InteractionConfig.cmake, its version file,
#                                           InteractionTargets*.cmake (Interaction::interaction,
#                                           Interaction::protoc-gen-interaction) and
#                                           InteractionGenerate.cmake (interaction_generate())
#   lib/pkgconfig/interaction.pc
#   share/interaction/proto/interaction.proto   the wire protocol, for other implementations
#
# The protocol file keeps the name it has in this tree and in libinteraction's
# own descriptors ("interaction.proto", package interaction.v1), and its
# folder holds nothing else, so `protoc -I <that folder>` can shadow no other
# import. It lies under share/ as architecture-independent data; CMake users
# find it as ${Interaction_PROTO_FILE}, pkg-config users as
# `pkg-config --variable=protofile interaction` (and protodir, the -I root).
#
# Everything installed is relocatable: the config files find the prefix from
# their own location and interaction.pc from ${pcfiledir}, so a tree installed
# with --prefix may be moved or installed elsewhere than CMAKE_INSTALL_PREFIX
# said at configure time.

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(IA_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/Interaction
    CACHE STRING "Where InteractionConfig.cmake is installed, relative to the prefix")
set(IA_INSTALL_PKGCONFIGDIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig
    CACHE STRING "Where interaction.pc is installed, relative to the prefix")
set(IA_INSTALL_PROTODIR ${CMAKE_INSTALL_DATADIR}/interaction/proto
    CACHE STRING "Where interaction.proto is installed, relative to the prefix")

get_target_property(IA_LIBRARY_TYPE interaction TYPE)
if(IA_LIBRARY_TYPE STREQUAL "SHARED_LIBRARY")
  set_target_properties(interaction PROPERTIES VERSION ${PROJECT_VERSION}
                                               SOVERSION ${PROJECT_VERSION_MAJOR}.${PROJECT_VERSION_MINOR})
endif()

# A sanitized static library calls into the sanitizer runtimes, which only a
# link with the same -fsanitize flags brings in. The installed package says so
# itself (the exported target and interaction.pc both carry the flags), so a
# consumer builds without knowing how the library was built.
set(IA_INSTALL_LINK_FLAGS "")
if(IA_SANITIZE)
  set(IA_INSTALL_LINK_FLAGS -fsanitize=address,undefined)
elseif(IA_TSAN)
  set(IA_INSTALL_LINK_FLAGS -fsanitize=thread)
endif()
if(IA_INSTALL_LINK_FLAGS)
  target_link_options(interaction INTERFACE $<INSTALL_INTERFACE:${IA_INSTALL_LINK_FLAGS}>)
endif()

install(TARGETS interaction protoc-gen-interaction
        EXPORT InteractionTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/interaction
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_SOURCE_DIR}/proto/interaction.proto DESTINATION ${IA_INSTALL_PROTODIR})

# The exported targets name the imported targets the library was linked with
# here (PkgConfig::PROTOBUFC, PkgConfig::LIBEVENT for a static library,
# Threads::Threads); InteractionConfig.cmake recreates them.
install(EXPORT InteractionTargets
        NAMESPACE Interaction::
        DESTINATION ${IA_INSTALL_CMAKEDIR})
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/InteractionConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/InteractionConfig.cmake
  INSTALL_DESTINATION ${IA_INSTALL_CMAKEDIR}
  PATH_VARS IA_INSTALL_PROTODIR)
# 0.x: a minor version may break the API, so only the same minor matches.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/InteractionConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/InteractionConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/InteractionConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/gen/InteractionGenerate.cmake
        DESTINATION ${IA_INSTALL_CMAKEDIR})

# interaction.pc. libprotobuf-c is always public (interaction/pb.h exposes its
# types). libevent is private to the library, but a static library still needs
# it on the link line, which `pkg-config --libs` only prints for Requires (not
# Requires.private, unless --static), so where it goes depends on the type.
if(IA_LIBRARY_TYPE STREQUAL "STATIC_LIBRARY")
  set(IA_PC_REQUIRES "Requires: libprotobuf-c libevent libevent_pthreads")
else()
  set(IA_PC_REQUIRES "Requires: libprotobuf-c\nRequires.private: libevent libevent_pthreads")
endif()
string(JOIN " " IA_PC_LIBS "-L\${libdir} -linteraction -lpthread" ${IA_INSTALL_LINK_FLAGS})
if(IS_ABSOLUTE "${IA_INSTALL_PKGCONFIGDIR}")
  set(IA_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  # From lib/pkgconfig back up to the prefix: ../..
  file(RELATIVE_PATH IA_PC_UP "/prefix/${IA_INSTALL_PKGCONFIGDIR}" "/prefix")
  string(REGEX REPLACE "/$" "" IA_PC_UP "${IA_PC_UP}")
  set(IA_PC_PREFIX "\${pcfiledir}/${IA_PC_UP}")
endif()
# Sets <out_var> to `dir` for interaction.pc: as is if absolute, else under ${prefix}.
function(ia_pc_dir out_var dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out_var} "${dir}" PARENT_SCOPE)
  else()
    set(${out_var} "\${prefix}/${dir}" PARENT_SCOPE)
  endif()
endfunction()
foreach(kind LIBDIR INCLUDEDIR BINDIR)
  ia_pc_dir(IA_PC_${kind} "${CMAKE_INSTALL_${kind}}")
endforeach()
ia_pc_dir(IA_PC_PROTODIR "${IA_INSTALL_PROTODIR}")
configure_file(${PROJECT_SOURCE_DIR}/cmake/interaction.pc.in ${PROJECT_BINARY_DIR}/cmake/interaction.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/cmake/interaction.pc DESTINATION ${IA_INSTALL_PKGCONFIGDIR})
