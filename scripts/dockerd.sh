#!/usr/bin/env bash
# Start/stop a private Docker Engine (Debian docker.io 20.10) for tests and fixtures.
#
#   scripts/dockerd.sh start DIR   -> prints unix://DIR/docker.sock once the daemon answers
#   scripts/dockerd.sh stop DIR    -> stops that daemon and its containerd, waits for them
#
# Everything lives under DIR (data root, exec root, socket, pid file, log), so
# several daemons with different DIRs run side by side (producer + consumer).
# Keep DIR short: unix socket paths are limited to 108 bytes and containerd's
# socket ends up at DIR/exec/containerd/containerd.sock.
# DOCKERD_STORAGE_DRIVER overrides the storage driver (default vfs; overlay2
# yields opaque-directory whiteouts in saved layers).
# Needs root. No network: --bridge=none, no iptables; run containers with
# --network none --pull=never.
set -euo pipefail

DOCKER=/usr/bin/docker      # not /usr/local/bin/docker (a newer client only)
DOCKERD=${DOCKERD:-/usr/sbin/dockerd}
TIMEOUT=${DOCKERD_TIMEOUT:-60}

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$(realpath -m -- "$2")

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }

wait_gone() { # pid seconds
  local pid=$1 n=$(( $2 * 10 ))
  while pid_alive "$pid" && [ $n -gt 0 ]; do
    # reap-less check: a zombie still answers kill -0; treat Z as gone
    [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" = Z ] && return 0
    sleep 0.1; n=$((n - 1))
  done
  ! pid_alive "$pid" || [ "$(awk '{print $3}' /proc/"$pid"/stat 2>/dev/null)" = Z ]
}

stop_pid() { # pid name grace-seconds
  local pid=$1 name=$2 grace=$3
  pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$grace"; then
    echo "dockerd.sh: $name ($pid) did not stop in ${grace}s, killing" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || true
  fi
}

# Processes (containerd shims, leftover containerd) whose command line names our
# exec root: found by pid, so nothing outside DIR is touched.
pids_under_dir() {
  local p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] && continue
    if { tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qF -- "$dir/exec/"; then
      echo "$p"
    fi
  done
}

unmount_under_dir() {
  local m
  # deepest first
  awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo 2>/dev/null \
    | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

do_stop() {
  local pid cpid p
  pid=$(read_pid "$dir/docker.pid")
  [ -n "$pid" ] || pid=$(read_pid "$dir/dockerd.spawn.pid")
  cpid=$(read_pid "$dir/exec/containerd/containerd.pid")
  if [ -n "$pid" ]; then stop_pid "$pid" dockerd 30; fi
  if [ -n "$cpid" ]; then stop_pid "$cpid" containerd 10; fi
  for p in $(pids_under_dir); do stop_pid "$p" "process" 5; done
  unmount_under_dir
  rm -f "$dir/docker.pid" "$dir/dockerd.spawn.pid" "$dir/docker.sock"
}

ready() { DOCKER_HOST="unix://$dir/docker.sock" "$DOCKER" version >/dev/null 2>&1; }

do_start() {
  if [ ! -x "$DOCKERD" ]; then
    echo "dockerd.sh: missing $DOCKERD (package docker.io): run scripts/install-deps.sh" >&2
    exit 1
  fi
  if [ ! -x "$DOCKER" ]; then
    echo "dockerd.sh: missing $DOCKER (package docker.io): run scripts/install-deps.sh" >&2
    exit 1
  fi
  local sock="$dir/exec/containerd/containerd.sock"
  if [ ${#sock} -ge 100 ]; then
    echo "dockerd.sh: DIR too long ($dir): $sock must stay under 108 bytes" >&2
    exit 2
  fi
  mkdir -p "$dir"
  local old
  old=$(read_pid "$dir/docker.pid")
  if pid_alive "$old" && ready; then
    echo "unix://$dir/docker.sock"
    return 0
  fi
  do_stop   # leftovers from a crashed run
  mkdir -p "$dir/root" "$dir/exec"
  [ -f "$dir/daemon.json" ] || echo '{}' >"$dir/daemon.json"
  : >"$dir/dockerd.log"
  # Detach fully (own session, no inherited stdio) so that callers capturing our
  # stdout are not held open by the daemon.
  setsid "$DOCKERD" \
    --config-file "$dir/daemon.json" \
    --iptables=false --ip6tables=false --bridge=none --storage-driver="${DOCKERD_STORAGE_DRIVER:-vfs}" \
    --data-root "$dir/root" --exec-root "$dir/exec" \
    -H "unix://$dir/docker.sock" --pidfile "$dir/docker.pid" \
    </dev/null >>"$dir/dockerd.log" 2>&1 &
  local spawned=$!
  echo "$spawned" >"$dir/dockerd.spawn.pid"
  local n=$((TIMEOUT * 5))
  while ! ready; do
    if ! pid_alive "$spawned" && ! pid_alive "$(read_pid "$dir/docker.pid")"; then
      echo "dockerd.sh: dockerd exited during start-up; log tail ($dir/dockerd.log):" >&2
      tail -n 40 "$dir/dockerd.log" >&2
      do_stop
      exit 1
    fi
    n=$((n - 1))
    if [ $n -le 0 ]; then
      echo "dockerd.sh: dockerd did not answer within ${TIMEOUT}s; log tail ($dir/dockerd.log):" >&2
      tail -n 40 "$dir/dockerd.log" >&2
      do_stop
      exit 1
    fi
    sleep 0.2
  done
  echo "unix://$dir/docker.sock"
}

case "$cmd" in
  start) do_start ;;
  stop) do_stop ;;
  *) usage ;;
esac
