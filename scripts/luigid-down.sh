#!/usr/bin/env bash
# Stop the luigid started by scripts/luigid-up.sh [STATE_DIR] (default ./luigid).
set -u
pidfile="${1:-luigid}/luigid.pid"
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
exit 0
