#!/usr/bin/env bash
# The out-of-tree consumer test: installs an Interaction build into a
# temporary prefix and builds tests/install/consumer/ against that prefix only,
# then runs it (a slave and a master in one process, typed calls on
# 127.0.0.1, port 0, some of protobuf's well-known types among their
# messages). It also checks that the installed interaction.proto is where
# the package says, makes a Python codec from that copy, and has
# hello_check.py decode with it the Hello the consumer's master sends.
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
# The protocol file comes from CMake's Interaction_PROTO_FILE and
# Interaction_PROTO_DIR (cmake) or pkg-config's protofile and protodir
# (pkgconfig); hello_check.py runs under IA_PYTHON3 (default /usr/bin/python3,
# which has Debian's python3-protobuf).
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
here=$(cd "$(dirname "$0")" && pwd)
python=${IA_PYTHON3:-/usr/bin/python3}

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
  { read -r protodir && read -r protofile; } <"$tmp/consumer-build/interaction-proto.txt"
  python_out=$tmp/consumer-build/python
  ;;
pkgconfig)
  export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
  plugin=$(pkg-config --variable=protoc_gen_interaction interaction)
  gen=$tmp/gen
  mkdir -p "$gen"
  # The stubs (*.ia.[ch]) from protoc with the plugin, the codecs
  # (*.pb-c.[ch]) from protoc-c, and once the codecs of the well-known types
  # the protos import, from protobuf's own include folder.
  wkt=$(pkg-config --variable=includedir protobuf)
  protos=("$src/greeter.proto" "$src/clock.proto" "$src/alarm.proto")
  step protoc -I"$src" -I"$wkt" --plugin=protoc-gen-interaction="$plugin" --interaction_out="$gen" "${protos[@]}"
  step protoc-c -I"$src" -I"$wkt" --c_out="$gen" "${protos[@]}"
  step protoc-c -I"$wkt" --c_out="$gen" google/protobuf/empty.proto google/protobuf/timestamp.proto \
    google/protobuf/duration.proto
  flags=$(pkg-config --cflags --libs interaction)
  echo "pkg-config --cflags --libs interaction: $flags"
  # $flags is a list of words on purpose.
  # shellcheck disable=SC2086
  step "$cc" -Wall -Wextra -Werror -I"$gen" "$src/consumer.c" "$gen"/*.c "$gen"/google/protobuf/*.c \
    $flags -o "$tmp/consumer"
  app=$tmp/consumer
  protodir=$(pkg-config --variable=protodir interaction)
  protofile=$(pkg-config --variable=protofile interaction)
  python_out=$tmp/python
  mkdir -p "$python_out"
  step protoc -I"$protodir" --python_out="$python_out" "$protofile"
  ;;
*)
  echo "consumer_test: unknown mode '$mode' (cmake or pkgconfig)" >&2
  exit 2
  ;;
esac

# The protocol file: installed, where the package says, the one of this tree.
# (pkg-config's paths go through lib/pkgconfig/../..: compare them resolved.)
echo "protocol file: $protofile (in $protodir)"
if [ "$(realpath "$protodir")" != "$(realpath "$prefix/share/interaction/proto")" ] ||
  [ "$(realpath "$protofile")" != "$(realpath "$prefix/share/interaction/proto/interaction.proto")" ]; then
  echo "consumer_test: the package names '$protofile' in '$protodir', not $prefix/share/interaction/proto/interaction.proto" >&2
  exit 1
fi
if ! cmp "$protofile" "$here/../../proto/interaction.proto"; then
  echo "consumer_test: the installed interaction.proto is not proto/interaction.proto" >&2
  exit 1
fi

# For a shared libinteraction (-DBUILD_SHARED_LIBS=ON), which a pkg-config
# link does not find at run time outside the standard directories.
export LD_LIBRARY_PATH=$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "+ $app"
timeout "$RUN_TIMEOUT_S" "$app"
echo "+ hello_check.py $python_out $app"
timeout "$RUN_TIMEOUT_S" "$python" "$here/hello_check.py" "$python_out" "$app"
