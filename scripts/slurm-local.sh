#!/usr/bin/env bash
# A throw-away single-node Slurm on this machine, to try the README's Slurm-array recipe
# ("Sweeps and figures") for real (scripts/slurm-sweep-test.sh): installs munge, slurmctld,
# slurmd and slurm-client from Debian's packages when missing (needs root and apt), writes a
# minimal slurm.conf for this host (its hostname, `nproc` CPUs, its memory from `free`; no
# accounting, no cgroups) and a private munge key, and starts munged, slurmctld and slurmd in the
# background (no systemd needed), everything — config, key, sockets, state, spool, logs, pid files —
# under one folder of its own (SLURM_DIR, default /tmp/gpushare-slurm). Waits until `sinfo` shows
# the node idle. Running it again while the daemons are up changes nothing.
#   scripts/slurm-local.sh            # start (idempotent); then, to use it:
#   export SLURM_CONF=/tmp/gpushare-slurm/slurm.conf
#   scripts/slurm-local.sh stop       # stop the three daemons, remove the folder
#   scripts/slurm-local.sh status     # which daemons run, and sinfo
# Knobs: SLURM_DIR, SLURM_PORT (slurmctld's port, default 6917; slurmd uses the next one).
set -euo pipefail
dir=${SLURM_DIR:-/tmp/gpushare-slurm}
port=${SLURM_PORT:-6917}
conf=$dir/slurm.conf
export SLURM_CONF=$conf
say() { echo "slurm-local: $*"; }

# alive NAME: whether the daemon NAME that this script started (its pid file) still runs.
alive() {
  local pid
  [ -f "$dir/run/$1.pid" ] || return 1
  pid=$(cat "$dir/run/$1.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

stop() {
  # slurmd and slurmctld first, munged (which they authenticate with) last; each by its own pid.
  local name pid
  for name in slurmd slurmctld munged; do
    if alive "$name"; then
      pid=$(cat "$dir/run/$name.pid")
      say "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null; then
        say "$name (pid $pid) still runs after 10 s: killing it"
        kill -9 "$pid" 2>/dev/null || true
      fi
    fi
  done
  if [ -d "$dir" ]; then
    say "removing $dir"
    rm -rf "${dir:?}"
  fi
  say "stopped"
}

status() {
  local name
  for name in munged slurmctld slurmd; do
    if alive "$name"; then say "$name runs (pid $(cat "$dir/run/$name.pid"))"; else say "$name does not run"; fi
  done
  if [ -f "$conf" ] && command -v sinfo >/dev/null; then sinfo; fi
}

install() {
  local missing=()
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmctld >/dev/null || missing+=(slurmctld)
  command -v slurmd >/dev/null || missing+=(slurmd)
  command -v sbatch >/dev/null || missing+=(slurm-client)
  if [ ${#missing[@]} -eq 0 ]; then
    say "installed already: munge, slurmctld, slurmd, slurm-client ($(slurmctld -V))"
    return
  fi
  say "installing ${missing[*]} from Debian's packages"
  [ "$(id -u)" -eq 0 ] || { say "need root to install (or install ${missing[*]} yourself)"; exit 1; }
  # The packages' own services stay off: a container has no systemd, and policy-rc.d refuses.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# wait_for WHAT SECONDS COMMAND…: runs COMMAND every half second until it succeeds; gives up
# after SECONDS with the daemons' logs.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  for _ in $(seq $((seconds * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "gave up waiting for $what after $seconds s; the logs:"
  tail -n 20 "$dir"/log/*.log >&2 || true
  exit 1
}

node_idle() { sinfo -h -N -n "$host" -o '%T' | grep -qx 'idle'; }

start() {
  install
  host=$(hostname -s)
  if alive munged && alive slurmctld && alive slurmd; then
    say "already running under $dir (munged, slurmctld, slurmd)"
    wait_for "node $host to be idle" 60 node_idle
    sinfo
    say "use it with: export SLURM_CONF=$conf"
    return
  fi
  if [ -d "$dir" ]; then
    say "a partial earlier start under $dir: stopping what is left of it first"
    stop
  fi
  local cpus mem
  cpus=$(nproc)
  mem=$(free -m | awk '/^Mem:/ {print $2}')
  say "node $host: $cpus CPUs, $mem MiB; everything under $dir"
  mkdir -p "$dir"/{munge,state,log,run} "$dir/spool/slurmd-$host"
  # munged wants its key private to the user it runs as, and its socket folder writable by none
  # else but reachable (execute) by every user who submits.
  chmod 755 "$dir"
  chmod 711 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  cat > "$conf" <<EOF
# Written by scripts/slurm-local.sh: one node, everything under $dir.
ClusterName=gpushare-local
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/slurmd-%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SlurmdTimeout=300
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  : > "$dir/plugstack.conf"
  say "wrote $conf"

  say "starting munged"
  munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
  wait_for "munged" 10 sh -c "munge -S '$dir/munge/munge.socket' -n | unmunge -S '$dir/munge/munge.socket'"

  say "starting slurmctld (port $port)"
  slurmctld -i
  wait_for "slurmctld" 30 scontrol ping
  say "starting slurmd (port $((port + 1)))"
  slurmd
  wait_for "node $host to be idle" 60 node_idle
  sinfo
  say "ready; use it with: export SLURM_CONF=$conf"
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: scripts/slurm-local.sh [start|stop|status]" >&2; exit 2 ;;
esac
