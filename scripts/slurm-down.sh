#!/usr/bin/env bash
# Stop what scripts/slurm-up.sh started, by the pid files in its own folder (never by name):
# a pid is killed only if it is a live daemon with the exact command line slurm-up.sh started
# it with. Anything else is left running and reported (exit 1), and nothing is stopped at all
# when /etc/slurm/slurm.conf is not slurm-up.sh's (see scripts/slurm-common.sh).
set -u
# shellcheck source=scripts/slurm-common.sh
source "$(dirname "$0")/slurm-common.sh"
refuse_foreign_conf
refuse_unsafe_run
status=0

# stop PIDFILE USER COMMAND...
stop() {
  local pidfile=$1 user=$2 pid
  [ -f "$pidfile" ] || return 0
  if ! pid=$(pid_of "$pidfile"); then
    echo "error: $pidfile does not hold a pid; not killing anything" >&2
    status=1
    return
  fi
  if ! alive "$pid"; then
    rm -f "$pidfile"
    return
  fi
  if ! our_daemon "$@"; then
    echo "error: $pidfile names pid $pid (user $(stat -c %U "/proc/$pid" 2>/dev/null)," \
      "'$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | cut -c 1-80)'), not the $3" \
      "scripts/slurm-up.sh started ($user: ${*:3}); not stopping it" >&2
    status=1
    return
  fi
  kill "$pid"
  for _ in $(seq 1 100); do
    alive "$pid" || { rm -f "$pidfile"; return; }
    sleep 0.1
  done
  echo "error: $3 (pid $pid) did not exit within 10 s of SIGTERM" >&2
  status=1
}

stop "$run/slurmd.pid" "$me" "${slurmd_cmd[@]}"
stop "$run/slurmctld.pid" "$me" "${slurmctld_cmd[@]}"
stop "$run/munge/munged.pid" munge "${munged_cmd[@]}"
exit "$status"
