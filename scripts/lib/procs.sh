# shellcheck shell=bash
# Process handling shared by scripts/demo.sh and scripts/learner-demo.sh:
# starting slave processes, waiting (bounded) for each one's `listening on H:P`
# line, running a master against them with a time limit, and stopping every
# process by PID (SIGTERM, then SIGKILL) on the way out, even on Ctrl-C.
#
# Source it, set the variables below, then call procs_init. Every message
# starts with "$PROCS_TAG: ".
#
#   PROCS_TAG   the script's name in messages (demo, learner-demo)
#   PROCS_LOG   prefix of the slaves' output and log files (slave, learner)
#
# After procs_init: `procs_tmp` is a private directory removed on exit,
# `pids` the slaves started, `master_pid` the master while it runs,
# `unclean` 1 once a process did not exit 0 on SIGTERM, and `endpoints` the
# slaves' HOST:PORT once procs_wait_listening has returned.

READY_TIMEOUT_S=10 # for each slave's `listening on` line
STOP_TIMEOUT_S=5   # after SIGTERM, before SIGKILL

# True while $1 runs (a zombie awaiting `wait` does not count).
procs_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# SIGTERM to every PID given, a bounded wait, SIGKILL for any still running,
# then reaps each. Sets `unclean` if one did not exit 0.
procs_stop() {
  local pid rc deadline=$((SECONDS + STOP_TIMEOUT_S))
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while procs_alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    if procs_alive "$pid"; then
      echo "$PROCS_TAG: pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rc=0
    wait "$pid" 2>/dev/null || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "$PROCS_TAG: pid $pid exited with status $rc after SIGTERM" >&2
      unclean=1
    fi
  done
}

# Stops whatever is still running: the master first, so that it does not see
# its slaves vanish, then every slave at once.
procs_stop_all() {
  if [ -n "${master_pid:-}" ]; then
    procs_stop "$master_pid"
    master_pid=""
  fi
  if [ ${#pids[@]} -gt 0 ]; then procs_stop "${pids[@]}"; fi
  pids=()
}

procs_cleanup() {
  trap - EXIT INT TERM
  procs_stop_all
  rm -rf "$procs_tmp"
}

# Makes the private directory (named after $1) and sets the traps that stop
# every process on exit.
procs_init() {
  procs_tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  pids=()
  master_pid=""
  unclean=0
  endpoints=()
  trap procs_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Dumps the slaves' logs to stderr (after a failure).
procs_show_logs() {
  local f
  for f in "$procs_tmp/$PROCS_LOG"-*.log; do
    [ -s "$f" ] || continue
    echo "---- $(basename "$f") ----" >&2
    cat "$f" >&2
  done
}

# procs_start_slaves N NAME COMMAND [ARG...]: starts N copies of COMMAND ARG...
# --name NAME-k in the background, k counting every slave started so far,
# each with its own output and log.
# Called again, it numbers on from the slaves already started.
procs_start_slaves() {
  local n=$1 name=$2 i k
  shift 2
  for i in $(seq 0 $((n - 1))); do
    k=${#pids[@]}
    "$@" --name "$name-$k" >"$procs_tmp/$PROCS_LOG-$k.out" 2>"$procs_tmp/$PROCS_LOG-$k.log" &
    pids+=($!)
  done
}

# procs_wait_listening LABEL: waits for every slave's `listening on H:P` line
# (at most READY_TIMEOUT_S each) and appends H:P to `endpoints`. Exits 1,
# after the logs, if a slave exits first or stays silent.
procs_wait_listening() {
  local label=$1 i pid deadline line endpoint
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    deadline=$((SECONDS + READY_TIMEOUT_S))
    line=""
    while [ $SECONDS -lt $deadline ]; do
      line=$(grep -m1 '^listening on ' "$procs_tmp/$PROCS_LOG-$i.out" || true)
      [ -n "$line" ] && break
      procs_alive "$pid" || break
      sleep 0.05
    done
    if [ -z "$line" ]; then
      if procs_alive "$pid"; then
        echo "$PROCS_TAG: $label $i (pid $pid) did not report 'listening on' within ${READY_TIMEOUT_S}s" >&2
      else
        echo "$PROCS_TAG: $label $i (pid $pid) exited before it was listening" >&2
      fi
      procs_show_logs
      exit 1
    fi
    endpoint=${line#listening on }
    echo "$PROCS_TAG: $label $i (pid $pid) listening on $endpoint"
    endpoints+=("$endpoint")
  done
}

# procs_run_master TIMEOUT_S LABEL COMMAND [ARG...]: runs the master and sets
# `master_status` to its exit status, or to 124 (after stopping it) if it runs
# longer than TIMEOUT_S. It runs in the background so that a signal to the
# script is handled at once; the traps stop it with the slaves.
procs_run_master() {
  local timeout_s=$1 label=$2 deadline
  shift 2
  "$@" &
  master_pid=$!
  deadline=$((SECONDS + timeout_s))
  while procs_alive "$master_pid" && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  master_status=0
  if procs_alive "$master_pid"; then
    echo "$PROCS_TAG: $label did not finish within ${timeout_s}s" >&2
    procs_stop "$master_pid"
    master_status=124
  else
    wait "$master_pid" || master_status=$?
  fi
  master_pid=""
}

# procs_finish SLAVES A_SLAVE MASTER: stops the slaves, then exits with the
# master's status, 1 if a slave did not shut down cleanly, or 0. SLAVES and
# A_SLAVE name the slaves in messages ("slaves", "a slave"), MASTER the master.
procs_finish() {
  local slaves=$1 a_slave=$2 master=$3
  echo
  echo "$PROCS_TAG: stopping the $slaves (SIGTERM)"
  procs_stop_all
  if [ "$master_status" -ne 0 ] || [ "$unclean" -ne 0 ]; then procs_show_logs; fi
  procs_cleanup
  if [ "$master_status" -ne 0 ]; then
    echo "$PROCS_TAG: FAILED ($master exited with status $master_status)" >&2
    exit "$master_status"
  fi
  if [ "$unclean" -ne 0 ]; then
    echo "$PROCS_TAG: FAILED ($a_slave did not shut down cleanly)" >&2
    exit 1
  fi
  echo "$PROCS_TAG: OK, all ${#endpoints[@]} $slaves stopped"
}
