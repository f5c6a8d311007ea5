#!/usr/bin/env bash
# The README's first command: installs the dependencies, builds Interaction
# into build/, starts three sum-slave processes on 127.0.0.1 (free ports,
# channel 7) and a fourth that runs four tasks at once (nonblocking-multi),
# all holding a fresh shared secret that only a master proving it may use
# (--secret-file) and serving TLS with a certificate from a CA made for the
# run (--tls-cert, --tls-key; the master verifies them with --tls-ca), runs
# sum-demo against them, then stops every process it started.
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
# A CA for this run, and the slaves' certificate for $HOST it signed (EC P-256, valid a day).
TLS=$procs_tmp/tls
mkdir -p "$TLS"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TLS/ca.key" -out "$TLS/ca.pem" \
  -days 1 -subj /CN=interaction-demo-ca 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TLS/slave.key" -out "$TLS/slave.csr" \
  -subj /CN=interaction-demo-slave 2>/dev/null
openssl x509 -req -in "$TLS/slave.csr" -CA "$TLS/ca.pem" -CAkey "$TLS/ca.key" -CAcreateserial -days 1 \
  -out "$TLS/slave.pem" -extfile <(printf 'subjectAltName=IP:%s\n' "$HOST") 2>/dev/null
AUTH=(--secret-file "$SECRET")
SERVE_TLS=(--tls-cert "$TLS/slave.pem" --tls-key "$TLS/slave.key")

procs_start_slaves "$N" sum-slave "$SLAVE" --host "$HOST" --port 0 --channel "$CHANNEL" "${AUTH[@]}" "${SERVE_TLS[@]}"
# ...and one that runs four tasks at once.
procs_start_slaves 1 sum-slave "$SLAVE" --host "$HOST" --port 0 --channel "$CHANNEL" "${AUTH[@]}" "${SERVE_TLS[@]}" \
  --mode nonblocking-multi --workers 4
procs_wait_listening sum-slave

echo "demo: running $DEMO --channel $CHANNEL ${AUTH[*]} --tls-ca $TLS/ca.pem ${endpoints[*]}"
echo
procs_run_master "$DEMO_TIMEOUT_S" sum-demo "$DEMO" --channel "$CHANNEL" "${AUTH[@]}" --tls-ca "$TLS/ca.pem" \
  "${endpoints[@]}"
procs_finish slaves "a slave" sum-demo
