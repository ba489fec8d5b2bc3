#!/usr/bin/env bash
# Bring up a single-node SLURM on this machine (Debian slurm-wlm + munge; no systemd and no
# cgroups needed): install what is missing, write /etc/slurm/slurm.conf, start munged,
# slurmctld and slurmd, wait until the node is idle. Idempotent. Needs root.
# Stop it with scripts/slurm-down.sh.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "error: scripts/slurm-up.sh must run as root (it installs and starts SLURM)" >&2
  exit 1
fi
need=()
for pair in sbatch:slurm-client slurmctld:slurmctld slurmd:slurmd munged:munge; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

mkdir -p /run/munge /var/spool/slurm/ctld /var/spool/slurm/d /var/log/slurm /etc/slurm
chown munge:munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile /etc/munge/munge.key 2>/dev/null || \
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged

cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
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
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
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
alive /run/slurmctld.pid || /usr/sbin/slurmctld
alive /run/slurmd.pid || /usr/sbin/slurmd -N localhost
for _ in $(seq 1 300); do
  if sinfo -h -o %T 2>/dev/null | grep -qxE 'idle|mixed|allocated'; then
    echo "SLURM is up: $(sinfo -h -o '%P %a %D %T %N')"
    exit 0
  fi
  sleep 0.1
done
echo "error: SLURM did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
exit 1
