#!/usr/bin/env bash
# Runs the benchmarks of bench/README.md for Interaction and the raw-TCP floor
# side by side, prints the medians, the ratios and the targets, and writes
# all of it to BENCHMARKS.md at the repository root.
#
#   scripts/bench.sh [--workloads a,b,c] [--passes N] [--quick] [--pin MODE] [--out FILE] [--skip-build]
#
#   --workloads   comma-separated subset of: sum,blob-1M,blob-16M,fanout-16,fanout-256,pipeline-4,busy,connect,
#                 connect-auth,sum-tls,blob-16M-tls,
#                 detect (default: all). `detect` is bench-detect: the time to notice a frozen
#                 slave or master at two heartbeat settings, and the master's CPU with 256
#                 idle connected slaves (bench/README.md)
#   --passes N    passes per (peer, workload), peers alternating; medians are taken (default 7:
#                 single passes land 10-30 % apart here, and a median of 7 moves less than of 5)
#   --quick       1 pass with reduced call counts (a smoke run; under a minute; marked QUICK)
#   --pin MODE    CPU placement: none (default: the scheduler's), same (master and slaves on
#                 CPU 0) or split (master on CPU 0, slaves on the others). On 2-vCPU VMs a
#                 round trip costs ~14 us within one CPU and ~40-55 us across two, and an
#                 unpinned run lands in either mode: pin to compare runs with each other.
#   --out FILE    where to write the report (default BENCHMARKS.md at the repository root)
#   --skip-build  use the existing build-bench/ as it is
#
# Builds Release (-O2) into build-bench/. Each pass of each (peer, workload)
# is one bench-run process with fresh slave processes; every process started
# is stopped again, also on Ctrl-C. Benchmarks never run as part of the tests.
set -euo pipefail

ALL_WORKLOADS="sum,blob-1M,blob-16M,fanout-16,fanout-256,pipeline-4,busy,connect,connect-auth,sum-tls,blob-16M-tls,detect"
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-bench"
workloads=$ALL_WORKLOADS
passes=7
quick=0
skip_build=0
pin=none
out="$root/BENCHMARKS.md"
command_line="scripts/bench.sh"
for a in "$@"; do command_line+=" $(printf '%q' "$a")"; done

usage() { sed -n '2,22s/^# \{0,1\}//p' "$0"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workloads) workloads=${2:?--workloads needs a list}; shift 2 ;;
    --workloads=*) workloads=${1#*=}; shift ;;
    --passes) passes=${2:?--passes needs a number}; shift 2 ;;
    --passes=*) passes=${1#*=}; shift ;;
    --quick) quick=1; shift ;;
    --pin) pin=${2:?--pin needs none, same or split}; shift 2 ;;
    --pin=*) pin=${1#*=}; shift ;;
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --out=*) out=${1#*=}; shift ;;
    --skip-build) skip_build=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$passes" =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --passes must be a positive number" >&2; exit 2; }
IFS=, read -r -a wl_list <<<"$workloads"
run_detect=0
bench_list=()
for w in "${wl_list[@]}"; do
  [[ ",$ALL_WORKLOADS," == *",$w,"* ]] || { echo "bench.sh: unknown workload '$w'" >&2; exit 2; }
  if [[ $w == detect ]]; then run_detect=1; else bench_list+=("$w"); fi
done
wl_list=("${bench_list[@]}")
workloads_run=$(IFS=,; echo "${wl_list[*]}")
[[ "$pin" =~ ^(none|same|split)$ ]] || { echo "bench.sh: --pin takes none, same or split" >&2; exit 2; }
if [[ $quick == 1 ]]; then passes=1; fi

# ---- stop whatever we started, however we leave ----
tmp=$(mktemp -d)
child=0
# shellcheck disable=SC2317  # called through the trap
cleanup() {
  if [[ $child -gt 0 ]] && kill -0 "$child" 2>/dev/null; then
    # bench-run stops its own slave processes on SIGTERM (SIGKILL after 3 s).
    kill -TERM "$child" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  child=0
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# ---- build ----
if [[ $skip_build == 0 ]]; then
  echo "== building Release (-O2) into build-bench/"
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
    -DIA_BUILD_BENCH=ON -DIA_BUILD_TESTS=OFF -DIA_BUILD_EXAMPLES=OFF >"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log" >&2; exit 1; }
  cmake --build "$build" -j"$(nproc)" --target bench-run bench-ia-slave bench-floor-slave bench-floor-tls-slave bench-detect >"$tmp/build.log" 2>&1 ||
    { cat "$tmp/build.log" >&2; exit 1; }
fi
runner="$build/bench/bench-run"
[[ -x "$runner" ]] || { echo "bench.sh: $runner is missing (drop --skip-build)" >&2; exit 1; }

# ---- run: N passes over every workload, the two peers alternating ----
# Passes are the outer loop so that each workload's passes are spread over the
# whole run: a burst of load from elsewhere on the machine then lands on every
# workload alike, which keeps the cross-workload ratios (busy against the
# floor's sum, fanout-256 against the floor's fanout-16) honest.
mode="full: $passes passes, medians"
quick_flag=()
if [[ $quick == 1 ]]; then
  mode="QUICK: 1 pass, reduced call counts -- a smoke run, not a measurement"
  quick_flag=(--quick)
fi
echo "== $mode"
raw="$tmp/raw.txt"
: >"$raw"
failures=0
for ((p = 1; p <= passes; p++)); do
  for w in "${wl_list[@]}"; do
    # Alternate which peer goes first so that drift in the machine's load
    # does not favour one of them.
    if ((p % 2)); then order=(floor interaction); else order=(interaction floor); fi
    for peer in "${order[@]}"; do
      "$runner" --peer "$peer" --workload "$w" --pin "$pin" "${quick_flag[@]}" >"$tmp/line" 2>"$tmp/err" &
      child=$!
      if wait "$child"; then
        tee -a "$raw" <"$tmp/line"
      else
        failures=$((failures + 1))
        echo "FAILED peer=$peer workload=$w pass=$p: $(tail -n 3 "$tmp/err" | tr '\n' ' ')" | tee -a "$raw" >&2
      fi
      child=0
    done
  done
done

# ---- heartbeats: bench-detect (its own passes; one process at a time) ----
detect_out="$tmp/detect.txt"
: >"$detect_out"
if [[ $run_detect == 1 ]]; then
  echo "== detect: frozen peers and idle cost (bench-detect)"
  detect_flags=(--passes 3)
  [[ $quick == 1 ]] && detect_flags=(--quick)
  "$build/bench/bench-detect" "${detect_flags[@]}" >"$detect_out" 2>"$tmp/detect.err" &
  child=$!
  wait "$child" || { failures=$((failures + 1)); echo "FAILED detect: $(tail -n 3 "$tmp/detect.err" | tr '\n' ' ')" >>"$detect_out"; }
  child=0
  cat "$detect_out"
fi

# ---- medians, ratios, targets ----
report="$tmp/report.md"
awk -v wl_order="$workloads_run" '
function median(key, n, i, j, t, a) {
  n = cnt[key]
  if (n == 0) return ""
  for (i = 1; i <= n; i++) a[i] = val[key, i]
  for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function m(peer, wl, metric) { return med[peer, wl, metric] }
function has(peer, wl, metric) { return med[peer, wl, metric] != "" }
function ratio(x, y) { return (x == "" || y == "" || y + 0 == 0) ? "" : x / y }
function fmt(x) { return x == "" ? "n/a" : sprintf("%.2f", x) }
function cpu(peer, wl) {
  if (!has(peer, wl, "master_cpu_ms_per_1k") || !has(peer, wl, "slave_cpu_ms_per_1k")) return ""
  return m(peer, wl, "master_cpu_ms_per_1k") + m(peer, wl, "slave_cpu_ms_per_1k")
}
# One row of the targets table; `ok` is 1, 0, or "" (not measured).
function target(name, measured, limit, ok) {
  printf "| %s | %s | %s | %s |\n", name, measured, limit, ok == "" ? "not run" : (ok ? "PASS" : "MISS")
  if (ok != "" && !ok) misses++
}
# Three decimals: a 1.153 shown as 1.15 next to a limit of 1.15 would read as a pass.
function fmt3(x) { return x == "" ? "n/a" : sprintf("%.3f", x) }
function check_le(name, r, limit) { target(name, fmt3(r), "<= " limit, r == "" ? "" : (r <= limit)) }
function check_ge(name, r, limit) { target(name, fmt3(r), ">= " limit, r == "" ? "" : (r >= limit)) }
BEGIN {
  nm = split("p50_us p99_us calls_per_s mb_per_s master_cpu_ms_per_1k slave_cpu_ms_per_1k slave_rss_kb", metrics, " ")
  nw = split(wl_order, wls, ",")
  peers[1] = "interaction"; peers[2] = "floor"
}
/^peer=/ {
  delete f
  for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
  key = f["peer"] SUBSEP f["workload"]
  calls[key] = f["calls"]
  for (k = 1; k <= nm; k++) {
    v = f[metrics[k]]
    if (v == "" || v == "-") continue
    c = ++cnt[key, metrics[k]]
    val[key, metrics[k], c] = v + 0
  }
}
END {
  for (w = 1; w <= nw; w++) for (p = 1; p <= 2; p++) for (k = 1; k <= nm; k++)
    med[peers[p], wls[w], metrics[k]] = median(peers[p] SUBSEP wls[w] SUBSEP metrics[k])

  print "## Medians (machine-readable)"
  print ""
  print "```text"
  for (w = 1; w <= nw; w++) for (p = 1; p <= 2; p++) {
    pe = peers[p]; wl = wls[w]
    if (!has(pe, wl, "p50_us")) { printf "peer=%-11s workload=%s MISSING (every pass failed)\n", pe, wl; continue }
    printf "peer=%-11s workload=%s calls=%s p50_us=%.1f p99_us=%.1f calls_per_s=%.0f mb_per_s=%s " \
           "master_cpu_ms_per_1k=%.3f slave_cpu_ms_per_1k=%.3f slave_rss_kb=%.0f\n",
           pe, wl, calls[pe, wl], m(pe, wl, "p50_us"), m(pe, wl, "p99_us"), m(pe, wl, "calls_per_s"),
           has(pe, wl, "mb_per_s") ? sprintf("%.1f", m(pe, wl, "mb_per_s")) : "-",
           m(pe, wl, "master_cpu_ms_per_1k"), m(pe, wl, "slave_cpu_ms_per_1k"), m(pe, wl, "slave_rss_kb")
  }
  for (w = 1; w <= nw; w++) {
    wl = wls[w]
    line = sprintf("ratio workload=%s p50=interaction/floor=%s calls_per_s=interaction/floor=%s", wl,
                   fmt(ratio(m("interaction", wl, "p50_us"), m("floor", wl, "p50_us"))),
                   fmt(ratio(m("interaction", wl, "calls_per_s"), m("floor", wl, "calls_per_s"))))
    if (wl ~ /^blob/)
      line = line sprintf(" mb_per_s=interaction/floor=%s",
                          fmt(ratio(m("interaction", wl, "mb_per_s"), m("floor", wl, "mb_per_s"))))
    line = line sprintf(" cpu_per_call=interaction/floor=%s slave_rss=interaction/floor=%s",
                        fmt(ratio(cpu("interaction", wl), cpu("floor", wl))),
                        fmt(ratio(m("interaction", wl, "slave_rss_kb"), m("floor", wl, "slave_rss_kb"))))
    print line
  }
  if (has("interaction", "busy", "p50_us") && has("floor", "sum", "p50_us"))
    printf "ratio workload=busy p50=interaction_busy/floor_sum=%s\n",
           fmt(ratio(m("interaction", "busy", "p50_us"), m("floor", "sum", "p50_us")))
  if (has("interaction", "connect-auth", "p50_us") && has("interaction", "connect", "p50_us"))
    printf "ratio workload=connect-auth p50=interaction_connect-auth/interaction_connect=%s\n",
           fmt(ratio(m("interaction", "connect-auth", "p50_us"), m("interaction", "connect", "p50_us")))
  if (has("interaction", "fanout-256", "calls_per_s") && has("floor", "fanout-16", "calls_per_s"))
    printf "ratio workload=fanout-256 calls_per_s=interaction_fanout-256/floor_fanout-16=%s\n",
           fmt(ratio(m("interaction", "fanout-256", "calls_per_s"), m("floor", "fanout-16", "calls_per_s")))
  print "```"
  print ""

  print "## Results (medians)"
  print ""
  print "| workload | peer | p50 µs | p99 µs | calls/s | MB/s | master CPU ms/1k | slave CPU ms/1k | slave RSS KiB |"
  print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for (w = 1; w <= nw; w++) for (p = 1; p <= 2; p++) {
    pe = peers[p]; wl = wls[w]
    if (!has(pe, wl, "p50_us")) { printf "| %s | %s | missing | | | | | | |\n", wl, pe; continue }
    printf "| %s | %s | %.1f | %.1f | %.0f | %s | %.3f | %.3f | %.0f |\n", wl, pe, m(pe, wl, "p50_us"),
           m(pe, wl, "p99_us"), m(pe, wl, "calls_per_s"),
           has(pe, wl, "mb_per_s") ? sprintf("%.1f", m(pe, wl, "mb_per_s")) : "-",
           m(pe, wl, "master_cpu_ms_per_1k"), m(pe, wl, "slave_cpu_ms_per_1k"), m(pe, wl, "slave_rss_kb")
  }
  print ""

  print "## Targets (bench/README.md; ratios of medians measured in this run)"
  print ""
  print "| target | measured | limit | result |"
  print "|---|---:|---:|---|"
  misses = 0
  check_le("`sum` p50 / floor `sum` p50", ratio(m("interaction", "sum", "p50_us"), m("floor", "sum", "p50_us")), 1.15)
  check_ge("`sum` calls/s / floor", ratio(m("interaction", "sum", "calls_per_s"), m("floor", "sum", "calls_per_s")), 0.85)
  check_le("`busy` p50 / floor `sum` p50", ratio(m("interaction", "busy", "p50_us"), m("floor", "sum", "p50_us")), 1.2)
  check_ge("`blob-1M` MB/s / floor", ratio(m("interaction", "blob-1M", "mb_per_s"), m("floor", "blob-1M", "mb_per_s")), 0.75)
  check_ge("`blob-16M` MB/s / floor", ratio(m("interaction", "blob-16M", "mb_per_s"), m("floor", "blob-16M", "mb_per_s")), 0.75)
  check_ge("`fanout-16` calls/s / floor", ratio(m("interaction", "fanout-16", "calls_per_s"), m("floor", "fanout-16", "calls_per_s")), 0.8)
  check_ge("`fanout-256` calls/s / floor `fanout-16` calls/s",
           ratio(m("interaction", "fanout-256", "calls_per_s"), m("floor", "fanout-16", "calls_per_s")), 0.7)
  check_ge("`pipeline-4` calls/s / floor (issue 10)",
           ratio(m("interaction", "pipeline-4", "calls_per_s"), m("floor", "pipeline-4", "calls_per_s")), 0.7)
  # The TLS floor: the same floor over plain OpenSSL, TLS 1.3 (bench/README.md).
  check_le("`sum-tls` p50 / TLS floor `sum-tls` p50 (issue 11)",
           ratio(m("interaction", "sum-tls", "p50_us"), m("floor", "sum-tls", "p50_us")), 1.2)
  check_ge("`blob-16M-tls` MB/s / TLS floor (issue 11)",
           ratio(m("interaction", "blob-16M-tls", "mb_per_s"), m("floor", "blob-16M-tls", "mb_per_s")), 0.75)
  # 4 MB = 4,000,000 bytes (MB = 10^6 as in bench/README.md); ru_maxrss is in KiB.
  r = m("interaction", "sum", "slave_rss_kb")
  target("slave RSS on `sum`", r == "" ? "n/a" : sprintf("%.0f KiB", r), "<= 4 MB (3906 KiB)", r == "" ? "" : (r * 1024 <= 4000000))
  r = m("interaction", "blob-16M", "slave_rss_kb")
  target("slave RSS on `blob-16M`", r == "" ? "n/a" : sprintf("%.0f KiB", r), "<= 3 x 16 MiB + 4 MB (53058 KiB)",
         r == "" ? "" : (r * 1024 <= 3 * 16777216 + 4000000))
  check_le("master + slave CPU per call / floor, `sum`", ratio(cpu("interaction", "sum"), cpu("floor", "sum")), 1.3)
  check_le("master + slave CPU per call / floor, `fanout-16`", ratio(cpu("interaction", "fanout-16"), cpu("floor", "fanout-16")), 1.3)
  print ""
  printf "Targets missed: %d\n", misses
}
' "$raw" >"$report"

# ---- the report: stdout and BENCHMARKS.md ----
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n "$(git -C "$root" status --porcelain 2>/dev/null | head -1)" ]]; then commit+=" (with uncommitted changes)"; fi
{
  echo "# Benchmarks"
  echo
  echo "Generated by \`scripts/bench.sh\`; workloads, output format and targets are defined in"
  echo "bench/README.md. Absolute numbers on a shared 2-core machine move 10-30 % between runs: the"
  echo "ratios measured in one run are what count."
  echo
  if [[ $quick == 1 ]]; then
    echo "> **QUICK RUN** -- 1 pass with reduced call counts. A smoke test of the benchmark, not a"
    echo "> measurement: run \`scripts/bench.sh\` without \`--quick\` for numbers to compare."
    echo
  fi
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "- Machine: $(nproc) cores, ${cpu_model:-unknown CPU}, Linux $(uname -r)"
  echo "- Command: \`$command_line\`"
  echo "- Mode: $mode; CPU placement (--pin): $pin; workloads: $workloads"
  echo "- Build: Release, -O2 (build-bench/); commit $commit"
  if [[ $failures -gt 0 ]]; then echo "- **$failures run(s) failed**: see the per-pass lines below"; fi
  echo
  cat "$report"
  if [[ -s "$detect_out" ]]; then
    echo
    echo "## Heartbeats (bench-detect; bench/README.md defines the workloads)"
    echo
    echo "Time from SIGSTOP of one end, with a task held, to the other end's notice (the task LOST on"
    echo "the master, lost_connection on the slave), against the goal of tolerance + one interval;"
    echo "and the master's CPU with 256 connected idle slaves at the default heartbeat (goal <= 1 %)."
    echo
    echo '```text'
    cat "$detect_out"
    echo '```'
  fi
  echo
  echo "## Every pass"
  echo
  echo '```text'
  cat "$raw"
  echo '```'
  if [[ -f "$root/bench/ANALYSIS.md" ]]; then
    echo
    cat "$root/bench/ANALYSIS.md"
  fi
} >"$tmp/BENCHMARKS.md"
echo
sed -n '/^## Medians/,/^Targets missed/p' "$tmp/BENCHMARKS.md"
cp "$tmp/BENCHMARKS.md" "$out"
echo
echo "== written to $out"
[[ $quick == 1 ]] && echo "== (QUICK run: reduced counts, 1 pass)"
exit 0
