#!/usr/bin/env bash
# Start luigid, Luigi's central scheduler and its web visualiser, on 127.0.0.1 only, keeping
# finished tasks visible for a day. Usage: scripts/luigid-up.sh [PORT] [STATE_DIR]
# (defaults 8082 and ./luigid). Stop it with scripts/luigid-down.sh [STATE_DIR].
# It runs hipsluigi's indexed scheduler (python -m hipsluigi.luigid); LUIGID=<path to luigid>
# runs Luigi's own instead.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
port=${1:-8082}
state=$(mkdir -p "${2:-luigid}" && cd "${2:-luigid}" && pwd)
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
if [ -f "$state/luigid.pid" ] && kill -0 "$(cat "$state/luigid.pid")" 2>/dev/null; then
  echo "luigid already running (pid $(cat "$state/luigid.pid"))"
else
  LUIGI_CONFIG_PATH="$state/luigid.cfg" "${luigid[@]}" --address 127.0.0.1 --port "$port" \
    --background --logdir "$state/log" --pidfile "$state/luigid.pid" \
    --state-path "$state/luigi-state.pickle"
fi
for _ in $(seq 1 100); do
  if curl -sf -o /dev/null "http://127.0.0.1:$port/api/task_list"; then
    echo "luigid is up: http://127.0.0.1:$port/static/visualiser/index.html"
    exit 0
  fi
  sleep 0.1
done
echo "error: luigid did not answer on 127.0.0.1:$port; see $state/log" >&2
exit 1
