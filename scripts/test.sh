#!/usr/bin/env bash
# The README's second command: installs the dependencies, builds, and runs the
# whole test suite twice — a plain build and an ASan+UBSan build.
#   scripts/test.sh             both builds
#   scripts/test.sh --quick     the plain build only
#   scripts/test.sh --valgrind  also every test binary under valgrind memcheck
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 valgrind=0
for a in "$@"; do
  case "$a" in
    --quick) quick=1 ;;
    --valgrind) valgrind=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $a" >&2; exit 2 ;;
  esac
done
scripts/install-deps.sh
jobs=$(nproc)

run_suite() { # build-dir cmake-args...
  local dir=$1; shift
  echo "== configure $dir ($*)"
  cmake -S . -B "$dir" -DIA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  echo "== ctest $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 300)
}

run_suite build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ $quick -eq 0 ]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DIA_SANITIZE=ON
fi
if [ $valgrind -eq 1 ]; then
  scripts/valgrind.sh build-test
fi
