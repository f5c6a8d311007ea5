#!/usr/bin/env bash
# The README's second command: installs the dependencies, builds, and runs the
# whole test suite -- a plain build, an ASan+UBSan build, the ThreadSanitizer
# build's stress suite, a valgrind memcheck pass over the plain build, and a
# short run of every fuzz target.
#   scripts/test.sh                      everything (what CI runs)
#   scripts/test.sh --quick              the plain build only
#   scripts/test.sh --fuzz-seconds N     time per fuzz target (default 20)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0 fuzz_seconds=20
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --valgrind) ;; # once an extra pass, now always part of the full run
    --fuzz-seconds) fuzz_seconds=${2:?--fuzz-seconds needs a number}; shift ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-deps.sh
jobs=$(nproc)
start=$(date +%s)
step() { echo "== [$(( $(date +%s) - start )) s] $*"; }

run_suite() { # build-dir cmake-args...
  local dir=$1; shift
  step "configure $dir ($*)"
  cmake -S . -B "$dir" -DIA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  step "ctest $dir"
  (cd "$dir" && ctest --output-on-failure --timeout 300)
}

run_suite build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo
if [ $quick -eq 0 ]; then
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -DCMAKE_BUILD_TYPE=Debug -DIA_SANITIZE=ON
  step "ThreadSanitizer (scripts/tsan.sh)"
  scripts/tsan.sh
  step "valgrind memcheck (scripts/valgrind.sh build-test)"
  scripts/valgrind.sh build-test
  step "fuzz targets, ${fuzz_seconds} s each (scripts/fuzz.sh)"
  scripts/fuzz.sh --seconds "$fuzz_seconds"
fi
step "test.sh: all passed"
