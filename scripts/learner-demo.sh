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
# shellcheck source=lib/procs.sh
. scripts/lib/procs.sh

N=${LEARNERS:-3}
CHANNEL=7
HOST=127.0.0.1
RUN_TIMEOUT_S=120  # for the whole coordinator run
BUILD=${DEMO_BUILD_DIR:-build}
PROCS_TAG=learner-demo
PROCS_LOG=learner

scripts/install-deps.sh
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIA_BUILD_EXAMPLES=ON
cmake --build "$BUILD" -j2 --target learner-slave coordinator

SLAVE=$BUILD/examples/learner-slave
COORDINATOR=$BUILD/examples/coordinator
procs_init interaction-learner-demo

procs_start_slaves "$N" learner-slave "$SLAVE" --host "$HOST" --port 0 --channel "$CHANNEL"
procs_wait_listening learner-slave

echo "learner-demo: running $COORDINATOR --channel $CHANNEL${*:+ $*} ${endpoints[*]}"
echo
procs_run_master "$RUN_TIMEOUT_S" "the coordinator" "$COORDINATOR" --channel "$CHANNEL" "$@" "${endpoints[@]}"
procs_finish learners "a learner" "the coordinator"
