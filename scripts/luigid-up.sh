#!/usr/bin/env bash
# Start luigid, Luigi's central scheduler and its web visualiser, on 127.0.0.1 only, keeping
# finished tasks visible for a day. Usage: scripts/luigid-up.sh [PORT] [STATE_DIR]
# (defaults 8082 and ./luigid). Stop it with scripts/luigid-down.sh [STATE_DIR].
# It runs hipsluigi's indexed scheduler (python -m hipsluigi.luigid); LUIGID=<path to luigid>
# runs Luigi's own instead.
#
# The state folder is private (mode 0700, every file 0600): luigid unpickles its state file on
# start and luigid-down.sh kills the pid its pid file names, so a file another local user could
# write would let them run code as this user or kill any of its processes. An existing folder
# that is not this user's, or that holds anything writable by others, is refused.
set -euo pipefail
umask 077
root=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8082}
dir=${2:-luigid}
me=$(id -u)

refuse() { echo "error: luigid state folder $dir: $*; not starting luigid" >&2; exit 1; }

if [ -e "$dir" ]; then
  [ -d "$dir" ] || refuse "exists and is not a folder"
  owner=$(stat -L -c %u "$dir")
  [ "$owner" = "$me" ] || refuse "is owned by uid $owner, not by you (uid $me)"
  mode=$(stat -L -c %a "$dir")
  # Whatever was in a folder others could write may have been planted: refuse, don't repair.
  [ $((8#$mode & 8#022)) -eq 0 ] ||
    refuse "is writable by group or others (mode $mode); use a fresh folder"
  bad=$(find "$dir/" -mindepth 1 \( ! -uid "$me" -o ! -type l -perm /022 \) -print -quit)
  [ -z "$bad" ] || refuse "$(stat -c '%n (mode %a, uid %u)' "$bad") is writable by others or \
not yours and may have been tampered with; check it and remove it"
  chmod 700 "$dir"
else
  mkdir -p "$dir"
fi
state=$(cd "$dir" && pwd -P)

# Same test as luigid-down.sh: a live process of this user running with this state file.
our_luigid() {
  local pid args i
  pid=$(cat "$state/luigid.pid" 2>/dev/null) || return 1
  [[ "$pid" =~ ^[1-9][0-9]*$ ]] && [ "$(stat -c %u "/proc/$pid" 2>/dev/null)" = "$me" ] ||
    return 1
  mapfile -d '' args 2>/dev/null < "/proc/$pid/cmdline" || return 1
  for ((i = 0; i + 1 < ${#args[@]}; i++)); do
    [ "${args[i]}" = --state-path ] && [ "${args[i+1]}" = "$state/luigi-state.pickle" ] &&
      return 0
  done
  return 1
}

if [ -n "${LUIGID:-}" ]; then
  luigid=("$LUIGID")
else
  luigid=("$root/.venv/bin/python" -m hipsluigi.luigid)
fi
cat > "$state/luigid.cfg" <<CFG
[core]
autoload_range = false
[scheduler]
remove_delay = 86400
worker_disconnect_delay = 60
record_task_history = false
# above this many tasks /api/task_list returns counts (keeps the web view responsive at scale)
max_shown_tasks = 10000
state_path = $state/luigi-state.pickle
CFG
if our_luigid; then
  echo "luigid already running (pid $(cat "$state/luigid.pid"))"
else
  # Daemonised here rather than with luigid --background: python-daemon resets the umask to
  # 0, which made every file luigid writes world-writable. A background job of a
  # non-interactive shell is not a process-group leader, so setsid does not fork and $! is
  # luigid's pid.
  mkdir -p "$state/log"
  LUIGI_CONFIG_PATH="$state/luigid.cfg" setsid "${luigid[@]}" --address 127.0.0.1 \
    --port "$port" --logdir "$state/log" --state-path "$state/luigi-state.pickle" \
    < /dev/null >> "$state/log/luigid.out" 2>&1 &
  echo "$!" > "$state/luigid.pid.tmp"
  mv -f "$state/luigid.pid.tmp" "$state/luigid.pid"
fi
for _ in $(seq 1 100); do
  if curl -sf -o /dev/null "http://127.0.0.1:$port/api/task_list"; then
    if ! our_luigid; then
      echo "error: something answers on 127.0.0.1:$port, but not the luigid of $state" >&2
      exit 1
    fi
    echo "luigid is up: http://127.0.0.1:$port/static/visualiser/index.html"
    exit 0
  fi
  our_luigid || break
  sleep 0.1
done
echo "error: luigid did not answer on 127.0.0.1:$port; see $state/log" >&2
exit 1
