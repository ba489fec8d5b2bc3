#!/usr/bin/env bash
# Stop the luigid started by scripts/luigid-up.sh [STATE_DIR] (default ./luigid).
# It kills only a process of this user that runs luigid with this folder's state file, so a
# stale pid file (or one pointing elsewhere) never stops another process: that is refused.
set -u
dir=${1:-luigid}
if [ ! -f "$dir/luigid.pid" ]; then
  echo "luigid is not running (no $dir/luigid.pid)"
  exit 0
fi
state=$(cd "$dir" && pwd -P)
pidfile="$state/luigid.pid"
me=$(id -u)
# A zombie (exited, not yet reaped by its new parent) counts as gone.
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }
pid=$(cat "$pidfile")
if ! [[ "$pid" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: $pidfile holds '$pid', not a pid; not killing anything" >&2
  exit 1
fi
if ! alive "$pid"; then
  echo "luigid is not running (pid $pid in $pidfile has exited)"
  rm -f "$pidfile"
  exit 0
fi

# Same test as luigid-up.sh: a live process of this user running with this state file.
ours=false
mapfile -d '' args 2>/dev/null < "/proc/$pid/cmdline"
if [ "$(stat -c %u "/proc/$pid" 2>/dev/null)" = "$me" ]; then
  for ((i = 0; i + 1 < ${#args[@]}; i++)); do
    if [ "${args[i]}" = --state-path ] && [ "${args[i+1]}" = "$state/luigi-state.pickle" ]; then
      ours=true
    fi
  done
fi
if [ "$ours" != true ]; then
  echo "error: $pidfile names pid $pid (uid $(stat -c %u "/proc/$pid" 2>/dev/null)," \
    "'${args[*]:0:3}'), which is not the luigid scripts/luigid-up.sh started for $state;" \
    "not killing it" >&2
  exit 1
fi
kill "$pid"
# luigid pickles its state on SIGTERM before it exits; wait for that.
for _ in $(seq 1 100); do
  alive "$pid" || { rm -f "$pidfile"; exit 0; }
  sleep 0.1
done
echo "error: luigid (pid $pid) did not exit within 10 s of SIGTERM" >&2
exit 1
