#!/usr/bin/env bash
# Bring up a single-node SLURM on this machine (Debian slurm-wlm + munge; no systemd and no
# cgroups needed): install what is missing, write /etc/slurm/slurm.conf, start munged,
# slurmctld and slurmd, wait until the node is idle. Idempotent. Needs root.
# Stop it with scripts/slurm-down.sh.
#
# It is for machines without a SLURM of their own: it refuses, before doing anything, when
# /etc/slurm/slurm.conf exists and it did not write it (see scripts/slurm-common.sh). The pid
# files of the daemons it starts are in /run/hipsluigi-slurm, which is all slurm-down.sh stops.
set -euo pipefail
umask 022
# shellcheck source=scripts/slurm-common.sh
source "$(dirname "$0")/slurm-common.sh"
refuse_foreign_conf
if [ "$(id -u)" -ne 0 ]; then
  echo "error: scripts/slurm-up.sh must run as root (it installs and starts SLURM)" >&2
  exit 1
fi
refuse_unsafe_run
need=()
for pair in sbatch:slurm-client slurmctld:slurmctld slurmd:slurmd munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# munged runs as munge and writes its own pid file, so it gets a folder of its own in $run.
mkdir -p /run/munge /var/spool/slurm/ctld /var/spool/slurm/d /var/log/slurm "$etc" \
  "$run/munge"
chmod 755 "$run"
chown munge:munge /run/munge "$run/munge"
chmod 700 "$run/munge"
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || \
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
if our_daemon "$run/munge/munged.pid" munge "${munged_cmd[@]}"; then
  :
elif munge -n </dev/null >/dev/null 2>&1; then
  echo "note: using the munged already running (not started by this script, so" \
    "scripts/slurm-down.sh will leave it running)"
else
  runuser -u munge -- "${munged_cmd[@]}"
fi

cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > "$conf.tmp" <<CONF
$mark
ClusterName=hipsluigi
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MailProg=/bin/true
ReturnToService=2
MinJobAge=3600
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurm/ctld
SlurmdSpoolDir=/var/spool/slurm/d
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
mv -f "$conf.tmp" "$conf"
export SLURM_CONF=$conf
our_daemon "$run/slurmctld.pid" "$me" "${slurmctld_cmd[@]}" || "${slurmctld_cmd[@]}"
our_daemon "$run/slurmd.pid" "$me" "${slurmd_cmd[@]}" || "${slurmd_cmd[@]}"
for _ in $(seq 1 300); do
  if sinfo -h -o %T 2>/dev/null | grep -qxE 'idle|mixed|allocated'; then
    echo "SLURM is up: $(sinfo -h -o '%P %a %D %T %N')"
    exit 0
  fi
  sleep 0.1
done
echo "error: SLURM did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
