#!/usr/bin/env bash
# The learner example end to end: builds Interaction into build/ (like
# scripts/demo.sh), starts three learner-slave processes on 127.0.0.1 (free
# ports, channel 7), runs the coordinator against all of them, then stops
# every process it started, by PID. Exits with the coordinator's status
# (non-zero as well if a learner did not shut down cleanly). Every wait is
# bounded; nothing is left running, even on Ctrl-C.
#
#   LEARNERS=N        how many learner-slaves (default 3)
#   DEMO_BUILD_DIR=D  the build directory (default build)
#   Extra arguments go to the coordinator (e.g. --rounds 10 --lr 0.3).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${LEARNERS:-3}
CHANNEL=7
HOST=127.0.0.1
READY_TIMEOUT_S=10 # for each learner's `listening on` line
RUN_TIMEOUT_S=120  # for the whole coordinator run
STOP_TIMEOUT_S=5   # after SIGTERM, before SIGKILL
BUILD=${DEMO_BUILD_DIR:-build}

scripts/install-deps.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIA_BUILD_EXAMPLES=ON
cmake --build "$BUILD" -j2 --target learner-slave coordinator

SLAVE=$BUILD/examples/learner-slave
COORDINATOR=$BUILD/examples/coordinator
tmp=$(mktemp -d "${TMPDIR:-/tmp}/interaction-learner-demo.XXXXXX")
pids=()            # the learner-slaves this script started, by PID
coordinator_pid="" # the coordinator while it runs
unclean=0          # a process that did not exit 0 on SIGTERM

# True while $1 runs (a zombie awaiting `wait` does not count).
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# SIGTERM to every PID given, a bounded wait, SIGKILL for any still running,
# then reaps each. Sets `unclean` if one did not exit 0.
stop() {
  local pid rc deadline=$((SECONDS + STOP_TIMEOUT_S))
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if alive "$pid"; then
      echo "learner-demo: pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "learner-demo: pid $pid exited with status $rc after SIGTERM" >&2
      unclean=1
    fi
  done
}

# The coordinator first, so that it does not see its learners vanish.
stop_all() {
  if [ -n "${coordinator_pid:-}" ]; then
    stop "$coordinator_pid"
    coordinator_pid=""
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

show_logs() {
  local f
  for f in "$tmp"/learner-*.log; do
    [ -s "$f" ] || continue
    echo "---- $(basename "$f") ----" >&2
    cat "$f" >&2
  done
}

for i in $(seq 0 $((N - 1))); do
  "$SLAVE" --host "$HOST" --port 0 --channel "$CHANNEL" --name "learner-slave-$i" \
    >"$tmp/learner-$i.out" 2>"$tmp/learner-$i.log" &
  pids+=($!)
done

endpoints=()
for i in $(seq 0 $((N - 1))); do
  pid=${pids[$i]}
  deadline=$((SECONDS + READY_TIMEOUT_S))
  line=""
  while [ $SECONDS -lt $deadline ]; do
    line=$(grep -m1 '^listening on ' "$tmp/learner-$i.out" || true)
    [ -n "$line" ] && break
    alive "$pid" || break
    sleep 0.05
  done
  if [ -z "$line" ]; then
    echo "learner-demo: learner-slave $i (pid $pid) is not listening after ${READY_TIMEOUT_S}s or exited" >&2
    show_logs
    exit 1
  fi
  endpoint=${line#listening on }
  echo "learner-demo: learner-slave $i (pid $pid) listening on $endpoint"
  endpoints+=("$endpoint")
done

echo "learner-demo: running $COORDINATOR --channel $CHANNEL${*:+ $*} ${endpoints[*]}"
echo
"$COORDINATOR" --channel "$CHANNEL" "$@" "${endpoints[@]}" &
coordinator_pid=$!
deadline=$((SECONDS + RUN_TIMEOUT_S))
while alive "$coordinator_pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
status=0
if alive "$coordinator_pid"; then
  echo "learner-demo: the coordinator did not finish within ${RUN_TIMEOUT_S}s" >&2
  stop "$coordinator_pid"
  status=124
else
  wait "$coordinator_pid" || status=$?
fi
coordinator_pid=""

echo
echo "learner-demo: stopping the learners (SIGTERM)"
stop_all
if [ "$status" -ne 0 ] || [ "$unclean" -ne 0 ]; then show_logs; fi
cleanup
if [ "$status" -ne 0 ]; then
  echo "learner-demo: FAILED (the coordinator exited with status $status)" >&2
  exit "$status"
fi
if [ "$unclean" -ne 0 ]; then
  echo "learner-demo: FAILED (a learner did not shut down cleanly)" >&2
  exit 1
fi
echo "learner-demo: OK, all $N learners stopped"
