#!/usr/bin/env bash
# Runs every ctest test of a build under valgrind memcheck (following the
# processes criterion and the tests start) and fails on any error or leak.
#   scripts/valgrind.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-test}
root=$PWD
[ -d "$dir" ] || { echo "valgrind.sh: no build in $dir (run scripts/test.sh --quick first)" >&2; exit 2; }
logdir="$PWD/$dir/valgrind"
rm -rf "$logdir"; mkdir -p "$logdir"
mapfile -t tests < <(cd "$dir" && ctest --show-only=json-v1 | /usr/bin/python3 -c '
import json, sys
for t in json.load(sys.stdin)["tests"]:
    print("\x1f".join([t["name"], t.get("properties") and next((p["value"] for p in t["properties"] if p["name"] == "WORKING_DIRECTORY"), ".") or "."] + t["command"]))
')
fail=0 skipped=0
for line in "${tests[@]}"; do
  IFS=$'\x1f' read -r -a parts <<<"$line"
  name=${parts[0]} wd=${parts[1]}
  # Tests that run compilers and build tools (the installed-package test, the
  # plugin run by protoc) check those tools, not our memory: left out.
  if [[ $name =~ ^(install_|gen_plugin_) ]]; then
    echo "== skip $name (runs build tools)"
    skipped=$((skipped + 1))
    continue
  fi
  cmd=("${parts[@]:2}")
  echo "== valgrind $name"
  if ! (cd "$dir" && cd "$wd" && IA_VALGRIND=1 timeout 900 valgrind -q --trace-children=yes \
        --trace-children-skip='*/sh,*/bash,*/python3*,*/protoc' --child-silent-after-fork=yes \
        --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 \
        --suppressions="$root/tests/valgrind.supp" \
        --log-file="$logdir/$name.%p.log" "${cmd[@]}" >"$logdir/$name.out" 2>&1); then
    echo "   FAILED (see $logdir/$name.*)"; tail -5 "$logdir/$name.out"; fail=1
  fi
  for f in "$logdir/$name".*.log; do
    [ -s "$f" ] && { echo "   valgrind reports in $f:"; head -30 "$f"; fail=1; }
  done
done
[ $fail -eq 0 ] && echo "valgrind: $((${#tests[@]} - skipped)) tests clean, $skipped skipped"
exit $fail
