#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds Interaction
# into build/, starts three sum-slave processes on 127.0.0.1 (free ports,
# channel 7) and a fourth that runs four tasks at once (nonblocking-multi),
# all holding a fresh shared secret that only a master proving it may use
# (--secret-file), runs sum-demo against them, then stops every process it
# started.
# Exits with sum-demo's status (non-zero as well if a slave did not shut down
# cleanly). Every wait is bounded; nothing is left running, even on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/procs.sh
. scripts/lib/procs.sh

N=${DEMO_SLAVES:-3}
CHANNEL=7
HOST=127.0.0.1
DEMO_TIMEOUT_S=120 # for the whole of sum-demo
BUILD=${DEMO_BUILD_DIR:-build}
PROCS_TAG=demo
PROCS_LOG=slave

scripts/install-deps.sh
# The examples are what the demo runs: ask for them even if a cache says OFF.
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DIA_BUILD_EXAMPLES=ON
cmake --build "$BUILD" -j2

SLAVE=$BUILD/examples/sum-slave
DEMO=$BUILD/examples/sum-demo
procs_init interaction-demo
# The shared secret: 32 random bytes, readable by this user only, gone with procs_tmp.
SECRET=$procs_tmp/secret
(umask 077 && head -c 32 /dev/urandom | base64 >"$SECRET")

procs_start_slaves "$N" sum-slave "$SLAVE" --host "$HOST" --port 0 --channel "$CHANNEL" --secret-file "$SECRET"
# ...and one that runs four tasks at once.
procs_start_slaves 1 sum-slave "$SLAVE" --host "$HOST" --port 0 --channel "$CHANNEL" --secret-file "$SECRET" \
  --mode nonblocking-multi --workers 4
procs_wait_listening sum-slave

echo "demo: running $DEMO --channel $CHANNEL --secret-file $SECRET ${endpoints[*]}"
echo
procs_run_master "$DEMO_TIMEOUT_S" sum-demo "$DEMO" --channel "$CHANNEL" --secret-file "$SECRET" "${endpoints[@]}"
procs_finish slaves "a slave" sum-demo
