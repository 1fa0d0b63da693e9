#!/usr/bin/env bash
# Runs a test command (its arguments) and, however it ends, kills every process it spawned that is still alive.
# tests/processes.py writes the pid of each worker, fake shop and app it starts (each leads a process group) to
# $LOYALTY_TEST_PID_FILE; pytest reaps them itself at exit, and this trap catches what a SIGKILLed pytest left.
# A pid is killed only if its environment names this run's file, so a recycled pid is never someone else's.
set -uo pipefail
pids=$(mktemp "${TMPDIR:-/tmp}/loyalty-test-pids.XXXXXX")
export LOYALTY_TEST_PID_FILE=$pids

reap() {
  while read -r pid; do
    if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qxF "LOYALTY_TEST_PID_FILE=$pids"; then
      pkill -KILL -P "$pid" 2>/dev/null  # an RQ work horse leads a process group of its own
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
      echo "reaped leftover test process $pid" >&2
    fi
  done < "$pids"
  rm -f "$pids"
}
trap reap EXIT

# The command runs in the background so this shell can act on signals at once; it ends a run like Ctrl-C
# (tests/conftest.py turns SIGTERM into KeyboardInterrupt), so pytest's own teardown still runs first.
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' INT TERM
status=0
while :; do
  wait "$child"
  status=$?
  kill -0 "$child" 2>/dev/null || break  # `wait` returned for a trapped signal: wait again for the child
done
exit "$status"
