#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (build-fuzz/, clang, -DIA_FUZZ=ON)
# and runs each for a while on a copy of its seed corpus, one at a time.
#
#   scripts/fuzz.sh [--seconds N] [--target NAME]... [--allow KINDS] [--keep] [-- LIBFUZZER_FLAGS...]
#
#   --seconds N     time per target (default 60; CI: --seconds 20)
#   --target NAME   fuzz_envelope, fuzz_inbuf, fuzz_flat, fuzz_slave, fuzz_auth or fuzz_tls (default: all)
#   --allow KINDS   comma-separated finding kinds that are counted instead of
#                   stopping the run (IA_FUZZ_ALLOW; see tests/fuzz/README.md)
#   --keep          keep the temporary directory (logs, grown corpus) even without findings
#   -- FLAGS...     more libFuzzer flags for every target (e.g. -len_control=0, -seed=1)
#
# One summary line per target: executions, exec/s, coverage, the grown corpus,
# and findings. Exits 1 if a target crashed (the crash file's path is printed;
# its temporary directory is kept). It never writes into the repository: the
# corpus, and the reproducers of tests/fuzz/regressions/<target>/, are
# copied into a temporary directory first.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seconds=60
targets=()
allow="${IA_FUZZ_ALLOW:-}"
keep=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
  --seconds) seconds="$2"; shift 2 ;;
  --target) targets+=("$2"); shift 2 ;;
  --allow) allow="$2"; shift 2 ;;
  --keep) keep=1; shift ;;
  --) shift; extra=("$@"); break ;;
  -h | --help) sed -n '2,19p' "$0"; exit 0 ;;
  *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_envelope fuzz_inbuf fuzz_flat fuzz_slave fuzz_auth fuzz_tls)
case "$seconds" in '' | *[!0-9]*) echo "fuzz.sh: --seconds needs a number" >&2; exit 2 ;; esac

scripts/install-deps.sh
CC=clang cmake -S . -B build-fuzz -DIA_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j2 --target "${targets[@]}" >/dev/null

status=0
for t in "${targets[@]}"; do
  bin="$root/build-fuzz/tests/fuzz/$t"
  seeds="$root/tests/fuzz/corpus/$t"
  [ -x "$bin" ] && [ -d "$seeds" ] || { echo "fuzz.sh: no such target: $t" >&2; exit 2; }
  work=$(mktemp -d "${TMPDIR:-/tmp}/ia-fuzz-$t.XXXXXX")
  mkdir "$work/corpus" "$work/artifacts"
  cp "$seeds"/* "$work/corpus/"
  # What fuzzing found before is replayed first, with the seeds.
  regs="$root/tests/fuzz/regressions/$t"
  [ -d "$regs" ] && find "$regs" -maxdepth 1 -type f ! -name '*.md' -exec cp {} "$work/corpus/" \;
  n_seeds=$(ls "$work/corpus" | wc -l)
  # One process at a time (-jobs=1 -workers=1: libFuzzer's log is fuzz-0.log
  # in the working directory); a hung input is a finding after 10 s.
  rc=0
  (cd "$work" && IA_FUZZ_ALLOW="$allow" "$bin" -workers=1 -jobs=1 -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/artifacts/" ${extra[@]+"${extra[@]}"} corpus \
    >"$work/driver.log" 2>&1) ||
    rc=$?
  log="$work/fuzz-0.log"
  [ -f "$log" ] || log="$work/driver.log"
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1 ft \2/p' <<<"$last")
  n_corpus=$(ls "$work/corpus" | wc -l)
  crashes=$(find "$work/artifacts" -type f | sort)
  known=$(sed -n 's/^fuzz-summary: *//p' "$log" | tail -1)
  printf '%s: %s execs, %s exec/s, %s, corpus %s -> %s files, findings: %s%s\n' "$t" "${execs:-?}" "${rate:-?}" \
    "${cov:-cov ?}" "$n_seeds" "$n_corpus" "$([ -n "$crashes" ] && echo "$(wc -l <<<"$crashes") crash file(s)" || echo none)" \
    "${known:+ (counted: $known)}"
  if [ -n "$crashes" ] || [ "$rc" -ne 0 ]; then
    status=1
    grep -E '^fuzz: INVARIANT|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log" | head -5 | sed 's/^/  /'
    for f in $crashes; do echo "  crash file: $f"; done
    echo "  log: $log"
  elif [ "$keep" -eq 1 ]; then
    echo "  kept: $work"
  else
    rm -rf "$work"
  fi
done
exit $status
