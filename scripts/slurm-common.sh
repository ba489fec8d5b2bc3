# Sourced by scripts/slurm-up.sh and scripts/slurm-down.sh: where the single-node test cluster
# keeps its configuration and pid files, how its config is recognised, and how a pid file is
# checked before anything is killed.
#
# HIPSLUIGI_SLURM_ETC (default /etc/slurm) holds slurm.conf; HIPSLUIGI_SLURM_RUN (default
# /run/hipsluigi-slurm) the pid files of the daemons these scripts start.
etc=${HIPSLUIGI_SLURM_ETC:-/etc/slurm}
run=${HIPSLUIGI_SLURM_RUN:-/run/hipsluigi-slurm}
conf=$etc/slurm.conf
# The first line of every slurm.conf slurm-up.sh writes; any other slurm.conf is a real one.
mark="# hipsluigi single-node test cluster: written by scripts/slurm-up.sh, do not edit"
me=$(id -un)
# The exact command lines the daemons are started with, which is what identifies them later.
slurmctld_cmd=(/usr/sbin/slurmctld -f "$conf")
slurmd_cmd=(/usr/sbin/slurmd -f "$conf" -N localhost)
munged_cmd=(/usr/sbin/munged "--pid-file=$run/munge/munged.pid")

# refuse_foreign_conf: exit 1, before anything is installed, started or stopped, when
# slurm.conf exists and slurm-up.sh did not write it.
refuse_foreign_conf() {
  if [ -e "$conf" ] && [ "$(head -n 1 "$conf" 2>/dev/null)" != "$mark" ]; then
    echo "error: $conf exists and was not written by scripts/slurm-up.sh (its first line is" \
      "not '$mark'); refusing to touch this host's SLURM; if it is a leftover test cluster," \
      "stop its daemons and remove the file" >&2
    exit 1
  fi
}

# refuse_unsafe_run: exit 1 when the pid-file folder could hold pid files someone else wrote.
refuse_unsafe_run() {
  [ -e "$run" ] || return 0
  local owner mode
  owner=$(stat -L -c %U "$run") mode=$(stat -L -c %a "$run")
  if [ ! -d "$run" ] || [ "$owner" != "$me" ] || [ $((8#$mode & 8#022)) -ne 0 ]; then
    echo "error: $run (owner $owner, mode $mode) must be a folder of $me that no one else" \
      "can write; refusing to trust the pid files in it" >&2
    exit 1
  fi
}

# alive PID: the process exists and is not a zombie.
alive() {
  [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]
}

# pid_of PIDFILE: the positive integer in PIDFILE, if it holds one.
pid_of() {
  local pid
  pid=$(cat "$1" 2>/dev/null) && [[ "$pid" =~ ^[1-9][0-9]*$ ]] && echo "$pid"
}

# our_daemon PIDFILE USER COMMAND...: PIDFILE names a live process of USER whose command line
# is exactly COMMAND.
our_daemon() {
  local pidfile=$1 user=$2 pid
  shift 2
  pid=$(pid_of "$pidfile") && alive "$pid" &&
    [ "$(stat -c %U "/proc/$pid" 2>/dev/null)" = "$user" ] &&
    cmp -s "/proc/$pid/cmdline" <(printf '%s\0' "$@")
}
