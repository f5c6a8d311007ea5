#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds Interaction
# into build/, starts three sum-slave processes on 127.0.0.1 (free ports,
# channel 7), runs sum-demo against them, then stops every process it started.
# Exits with sum-demo's status (non-zero as well if a slave did not shut down
# cleanly). Every wait is bounded; nothing is left running, even on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${DEMO_SLAVES:-3}
CHANNEL=7
HOST=127.0.0.1
READY_TIMEOUT_S=10 # for each slave's `listening on` line
DEMO_TIMEOUT_S=120 # for the whole of sum-demo
STOP_TIMEOUT_S=5   # after SIGTERM, before SIGKILL
BUILD=${DEMO_BUILD_DIR:-build}

scripts/install-deps.sh
# The examples are what the demo runs: ask for them even if a cache says OFF.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIA_BUILD_EXAMPLES=ON
cmake --build "$BUILD" -j2

SLAVE=$BUILD/examples/sum-slave
DEMO=$BUILD/examples/sum-demo
tmp=$(mktemp -d "${TMPDIR:-/tmp}/interaction-demo.XXXXXX")
pids=()     # the slaves this script started, by PID
demo_pid="" # sum-demo while it runs
unclean=0   # a process that did not exit 0 on SIGTERM

# True while $1 runs (a zombie awaiting `wait` does not count).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# Stops the processes given by PID: SIGTERM to all of them, a bounded wait,
# then SIGKILL for any still running. Sets `unclean` if one did not exit 0.
stop() {
  local pid rc deadline=$((SECONDS + STOP_TIMEOUT_S))
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$pid"; then
      echo "demo: pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "demo: pid $pid exited with status $rc after SIGTERM" >&2
      unclean=1
    fi
  done
}

# Stops whatever is still running: the master first, so that it does not see
# its slaves vanish, then every slave at once.
stop_all() {
  if [ -n "${demo_pid:-}" ]; then
    stop "$demo_pid"
    demo_pid=""
  fi
  if [ ${#pids[@]} -gt 0 ]; then stop "${pids[@]}"; fi
  pids=()
}

cleanup() {
  trap - EXIT INT TERM
  stop_all
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Dumps the slaves' logs to stderr (after a failure).
show_logs() {
  local f
  for f in "$tmp"/slave-*.log; do
    [ -s "$f" ] || continue
    echo "---- $(basename "$f") ----" >&2
    cat "$f" >&2
  done
}

endpoints=()
for i in $(seq 0 $((N - 1))); do
  "$SLAVE" --host "$HOST" --port 0 --channel "$CHANNEL" --name "sum-slave-$i" \
    >"$tmp/slave-$i.out" 2>"$tmp/slave-$i.log" &
  pids+=($!)
done

for i in $(seq 0 $((N - 1))); do
  pid=${pids[$i]}
  deadline=$((SECONDS + READY_TIMEOUT_S))
  line=""
  while [ $SECONDS -lt $deadline ]; do
    line=$(grep -m1 '^listening on ' "$tmp/slave-$i.out" || true)
    [ -n "$line" ] && break
    alive "$pid" || break
    sleep 0.05
  done
  if [ -z "$line" ]; then
    if alive "$pid"; then
      echo "demo: sum-slave $i (pid $pid) did not report 'listening on' within ${READY_TIMEOUT_S}s" >&2
    else
      echo "demo: sum-slave $i (pid $pid) exited before it was listening" >&2
    fi
    show_logs
    exit 1
  fi
  endpoint=${line#listening on }
  echo "demo: sum-slave $i (pid $pid) listening on $endpoint"
  endpoints+=("$endpoint")
done

echo "demo: running $DEMO --channel $CHANNEL ${endpoints[*]}"
echo
# In the background so that a signal to this script is handled at once; the
# process is stopped with the slaves if the script is interrupted.
"$DEMO" --channel "$CHANNEL" "${endpoints[@]}" &
demo_pid=$!
deadline=$((SECONDS + DEMO_TIMEOUT_S))
while alive "$demo_pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
status=0
if alive "$demo_pid"; then
  echo "demo: sum-demo did not finish within ${DEMO_TIMEOUT_S}s" >&2
  stop "$demo_pid"
  status=124
else
  wait "$demo_pid" || status=$?
fi
demo_pid=""

echo
echo "demo: stopping the slaves (SIGTERM)"
stop_all
if [ "$status" -ne 0 ] || [ "$unclean" -ne 0 ]; then
  show_logs
fi
cleanup
if [ "$status" -ne 0 ]; then
  echo "demo: FAILED (sum-demo exited with status $status)" >&2
  exit "$status"
fi
if [ "$unclean" -ne 0 ]; then
  echo "demo: FAILED (a slave did not shut down cleanly)" >&2
  exit 1
fi
echo "demo: OK, all $N slaves stopped"
