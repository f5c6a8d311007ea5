#!/usr/bin/env bash
# The out-of-tree consumer test: installs an Interaction build into a
# temporary prefix and builds tests/install/consumer/ against that prefix only,
# then runs it (a slave and a master in one process, a typed call on
# 127.0.0.1, port 0).
#
#   consumer_test.sh cmake|pkgconfig BUILD_DIR CONSUMER_DIR CMAKE CC
#
#   cmake      configure the consumer as a separate CMake project with
#              -DCMAKE_PREFIX_PATH=<prefix>: find_package(Interaction) and
#              interaction_generate()
#   pkgconfig  no CMake: protoc with the installed plugin, protoc-c, and CC with
#              `pkg-config --cflags --libs interaction` (PKG_CONFIG_PATH=<prefix>/lib/pkgconfig),
#              as README.md, "Installing", tells a user to
#
# CC is the compiler the library was built with: a sanitized library needs
# the sanitizer runtime of the same compiler, and the package itself adds the
# -fsanitize link flags. Every step is bounded by `timeout`; the temporary
# directory is removed on every exit.
set -euo pipefail

if [ $# -ne 5 ]; then
  echo "usage: $0 cmake|pkgconfig BUILD_DIR CONSUMER_DIR CMAKE CC" >&2
  exit 2
fi
mode=$1
build=$2
src=$3
cmake=$4
cc=$5
STEP_TIMEOUT_S=120 # configure, build, install
RUN_TIMEOUT_S=30   # the consumer itself

tmp=$(mktemp -d "${TMPDIR:-/tmp}/interaction-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

step() {
  echo "+ $*"
  timeout "$STEP_TIMEOUT_S" "$@"
}

step "$cmake" --install "$build" --prefix "$prefix"

# The consumer must see the temporary prefix only, never the build tree.
case $mode in
cmake)
  step "$cmake" -S "$src" -B "$tmp/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  found=$(sed -n 's/^Interaction_DIR:PATH=//p' "$tmp/consumer-build/CMakeCache.txt")
  if [ "$found" != "$prefix/lib/cmake/Interaction" ]; then
    echo "consumer_test: find_package(Interaction) found '$found', not the temporary prefix" >&2
    exit 1
  fi
  step "$cmake" --build "$tmp/consumer-build"
  app=$tmp/consumer-build/consumer
  ;;
pkgconfig)
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  plugin=$(pkg-config --variable=protoc_gen_interaction interaction)
  gen=$tmp/gen
  mkdir -p "$gen"
  # The stubs (greeter.ia.[ch]) from protoc with the plugin, the codecs
  # (greeter.pb-c.[ch]) from protoc-c.
  step protoc -I"$src" --plugin=protoc-gen-interaction="$plugin" --interaction_out="$gen" "$src/greeter.proto"
  step protoc-c -I"$src" --c_out="$gen" "$src/greeter.proto"
  flags=$(pkg-config --cflags --libs interaction)
  echo "pkg-config --cflags --libs interaction: $flags"
  # $flags is a list of words on purpose.
  # shellcheck disable=SC2086
  step "$cc" -Wall -Wextra -Werror -I"$gen" "$src/consumer.c" "$gen/greeter.pb-c.c" "$gen/greeter.ia.c" \
    $flags -o "$tmp/consumer"
  app=$tmp/consumer
  ;;
*)
  echo "consumer_test: unknown mode '$mode' (cmake or pkgconfig)" >&2
  exit 2
  ;;
esac

echo "+ $app"
# For a shared libinteraction (-DBUILD_SHARED_LIBS=ON), which a pkg-config
# link does not find at run time outside the standard directories.
LD_LIBRARY_PATH=$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} timeout "$RUN_TIMEOUT_S" "$app"
