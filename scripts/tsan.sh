#!/usr/bin/env bash
# The ThreadSanitizer build and its suite: configures build-tsan/ with
# -DIA_TSAN=ON (RelWithDebInfo, tests on), builds it, and runs the stress
# programs of tests/stress through ctest (label `stress`) with
# TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 and the suppressions of
# tests/stress/tsan.supp (third-party code only). Exits non-zero if a test
# fails or any ThreadSanitizer report appears.
#   scripts/tsan.sh                  build and run the stress suite
#   scripts/tsan.sh --keep-going     halt_on_error=0: every report of each program, not just its first
#   scripts/tsan.sh -- ARGS...       extra ctest arguments, e.g. -- -R stress_calls
# The criterion suite is not run: criterion cannot start under TSan (its
# BoxFort arena maps a random address in 0x2000_0000_0000-0x6000_0000_0000,
# all of which TSan reserves for its shadow and metadata; Criterion issue
# #274), whatever settings it is given. CC=clang picks clang on the first
# configure of build-tsan/.
set -euo pipefail
cd "$(dirname "$0")/.."
keep_going=0
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-going) keep_going=1 ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "tsan.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
scripts/install-deps.sh
dir=build-tsan
jobs=$(nproc)
[ "$jobs" -gt 2 ] && jobs=2 # the machines are shared: two compile jobs at most

echo "== configure $dir (IA_TSAN=ON)"
cmake -S . -B "$dir" -DIA_TSAN=ON -DIA_SANITIZE=OFF -DIA_BUILD_TESTS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
echo "== build $dir"
cmake --build "$dir" -j"$jobs"

halt=1
[ $keep_going -eq 1 ] && halt=0
# ctest appends the suppressions to these options (tests/stress/CMakeLists.txt).
export TSAN_OPTIONS="halt_on_error=$halt:second_deadlock_stack=1"
status=0

echo "== ctest -L stress ($dir, TSAN_OPTIONS=$TSAN_OPTIONS)"
(cd "$dir" && ctest -L stress --output-on-failure --timeout 300 "${ctest_args[@]}") || status=1
log="$dir/Testing/Temporary/LastTest.log"

# A report fails its ctest test by output already; this says which, in one place.
reports=$(cat "$log" 2>/dev/null | grep -cE "^WARNING: ThreadSanitizer:|==ERROR: ThreadSanitizer" || true)
if [ "$reports" -gt 0 ]; then
  echo "== $reports ThreadSanitizer report(s):"
  grep "^SUMMARY: ThreadSanitizer" "$log" | sort | uniq -c
  status=1
fi
[ $status -eq 0 ] && echo "== tsan.sh: clean" || echo "== tsan.sh: FAILED (see above and $log)"
exit $status
