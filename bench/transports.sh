#!/usr/bin/env bash
# Transports benchmark (not a test): upload and download one file over loopback with
# ferry and with the reference client of each protocol, in one run:
#   FTP   vsftpd (anonymous pub/incoming)   vs lftp (put / get)
#   SFTP  OpenSSH sshd, internal-sftp       vs OpenSSH sftp -b (put / get)
#   HTTP  nginx WebDAV                      vs curl (-T PUT / GET)
# ferry is timed twice:
#   ferry   `ferry push BUNDLE URL` / `ferry pull URL/STEM -o DIR` of a bundle whose
#           artifact is the file: what a user runs (adds SHA-256 of every byte, the stats
#           before, STEM.sha256 after, the rename, fsync where the backend has it);
#   xfer    transports/examples/xfer.rs: the same Transport put+commit / get, no hashing:
#           the transport alone.
# Runs are interleaved (ferry, reference, xfer, ferry, ...). Ratios are ferry/reference of
# the median wall time of --runs runs (also of the best runs), and of the median CPU time
# (user+sys) of the client process, which other load on a shared machine disturbs less.
# Goals (on the median wall time): <= 1.10 for lftp and curl, <= 1.25 for OpenSSH sftp.
#
#   bash bench/transports.sh                 1 GiB file, 5 runs
#   bash bench/transports.sh --small         64 MiB, 1 run (smoke)
#   options: --size MIB, --runs N, --workdir DIR (default /dev/shm/ferry-bench-transports:
#            tmpfs, so the disk is not what is measured), --only ftp|sftp|http,
#            --perf DIR (record ferry's and xfer's runs with `perf record -g`; writes
#            `perf report` summaries to DIR; timings then include perf's overhead)
#
# Needs root (starts vsftpd, sshd, nginx on 127.0.0.1 with free ports).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

size=1024 runs=5 work=/dev/shm/ferry-bench-transports only= perfdir=
while [ $# -gt 0 ]; do
  case "$1" in
    --small) size=64 runs=1 ;;
    --size) size=$2; shift ;;
    --runs) runs=$2; shift ;;
    --workdir) work=$2; shift ;;
    --only) only=$2; shift ;;
    --perf) perfdir=$(realpath -m "$2"); shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "transports.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
log() { echo "bench: $*" >&2; }
die() { echo "bench: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (starts vsftpd, sshd, nginx)"
for c in /usr/sbin/vsftpd /usr/sbin/sshd /usr/sbin/nginx lftp sftp curl ssh-keygen python3; do
  command -v "$c" >/dev/null || die "missing $c: run scripts/install-deps.sh"
done

log "cargo build --release (ferry, transports example xfer)"
(cd "$repo" && cargo build --release -q --bin ferry && cargo build --release -q -p ferry-transports --example xfer) >&2
ferry=$repo/target/release/ferry
xfer=$repo/target/release/examples/xfer

rm -rf "$work"
mkdir -p "$work"
work=$(realpath "$work")
if [ -n "$perfdir" ]; then
  command -v perf >/dev/null || die "--perf needs perf (package linux-perf)"
  mkdir -p "$perfdir"
fi
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  die "nothing listens on port $1 ($2)"
}

# --- input --------------------------------------------------------------------
src=$work/src
mkdir -p "$src"
log "making a ${size} MiB file of random bytes"
head -c $((size * 1024 * 1024)) /dev/urandom >"$src/big.tar.zst"
(cd "$src" && sha256sum big.tar.zst >big.sha256)
bytes=$(stat -c %s "$src/big.tar.zst")

# --- servers ------------------------------------------------------------------
id -u ferrytest >/dev/null 2>&1 || useradd --system --create-home --home-dir /var/lib/ferrytest --shell /bin/sh ferrytest
mkdir -p /var/lib/ferrytest /var/run/vsftpd/empty /run/sshd

ftp_port=$(free_port)
ftp_root=$work/ftp
ftp_dir=$ftp_root/pub/incoming
mkdir -p "$ftp_dir" && chmod 755 "$ftp_root" "$ftp_root/pub" && chmod 777 "$ftp_dir"
cat >"$work/vsftpd.conf" <<EOF
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=$ftp_port
background=NO
seccomp_sandbox=NO
isolate=NO
isolate_network=NO
pasv_enable=YES
pasv_address=127.0.0.1
secure_chroot_dir=/var/run/vsftpd/empty
write_enable=YES
connect_from_port_20=NO
ftp_username=ferrytest
anonymous_enable=YES
local_enable=NO
anon_root=$ftp_root
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_world_readable_only=NO
anon_umask=022
no_anon_password=YES
EOF
/usr/sbin/vsftpd "$work/vsftpd.conf" >"$work/vsftpd.log" 2>&1 &
pids+=($!)

ssh_port=$(free_port)
ssh_dir=$work/sftp
mkdir -p "$ssh_dir"
ssh-keygen -q -t ed25519 -N '' -f "$work/host_ed25519"
ssh-keygen -q -t ed25519 -N '' -f "$work/client"
cp "$work/client.pub" "$work/authorized_keys"
echo "[127.0.0.1]:$ssh_port $(cut -d' ' -f1,2 "$work/host_ed25519.pub")" >"$work/known_hosts"
cat >"$work/sshd_config" <<EOF
Port $ssh_port
ListenAddress 127.0.0.1
HostKey $work/host_ed25519
AuthorizedKeysFile $work/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PidFile $work/sshd.pid
Subsystem sftp internal-sftp
LogLevel DEBUG1
MaxStartups 50
EOF
/usr/sbin/sshd -D -f "$work/sshd_config" -E "$work/sshd.log" &
pids+=($!)

http_port=$(free_port)
www=$work/www
mkdir -p "$www/drop" "$work/nginx"
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
user root;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body;
  proxy_temp_path $work/nginx/proxy;
  fastcgi_temp_path $work/nginx/fastcgi;
  uwsgi_temp_path $work/nginx/uwsgi;
  scgi_temp_path $work/nginx/scgi;
  default_type application/octet-stream;
  sendfile on;
  server {
    listen 127.0.0.1:$http_port;
    client_max_body_size 0;
    root $www;
    location / { dav_methods PUT DELETE MKCOL COPY MOVE; create_full_put_path on; autoindex on; }
  }
}
EOF
/usr/sbin/nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" &
pids+=($!)
wait_port "$ftp_port" vsftpd
wait_port "$ssh_port" sshd
wait_port "$http_port" nginx

ftp_url=ftp://127.0.0.1:$ftp_port/pub/incoming/
sftp_url=sftp://root@127.0.0.1:$ssh_port$ssh_dir/
http_url=http://127.0.0.1:$http_port/drop/
sshopt=(--ssh-key "$work/client" --known-hosts "$work/known_hosts")
export HOME=$work/home  # no ~/.netrc or ~/.ssh of the caller
mkdir -p "$HOME"
unset SSH_AUTH_SOCK

# --- commands -----------------------------------------------------------------
# server_dir PROTO; ref_up/ref_down PROTO (the reference client); ferry_up/down; xfer_up/down.
server_dir() { case $1 in ftp) echo "$ftp_dir" ;; sftp) echo "$ssh_dir" ;; http) echo "$www/drop" ;; esac; }
url() { case $1 in ftp) echo "$ftp_url" ;; sftp) echo "$sftp_url" ;; http) echo "$http_url" ;; esac; }
net() { [ "$1" = sftp ] && printf '%s\n' "${sshopt[@]}"; return 0; }
lftp_cmd() { lftp -e "set ftp:ssl-allow no; set net:max-retries 1; set cmd:fail-exit yes; cd pub/incoming; $1; quit" -u anonymous, -p "$ftp_port" 127.0.0.1; }
sftp_cmd() {
  echo "$1" | sftp -q -b - -P "$ssh_port" -i "$work/client" -o UserKnownHostsFile="$work/known_hosts" \
    -o StrictHostKeyChecking=yes -o BatchMode=yes root@127.0.0.1 >/dev/null
}
ref_name() { case $1 in ftp) echo "lftp $(lftp --version | sed -n 's/.*Version \([0-9.]*\).*/\1/p;q')" ;; sftp) ssh -V 2>&1 | cut -d, -f1 ;; http) curl --version | head -1 | cut -d' ' -f1,2 ;; esac; }
ref_up() {
  case $1 in
    ftp) lftp_cmd "put $src/big.tar.zst -o ref.bin" ;;
    sftp) sftp_cmd "put $src/big.tar.zst $ssh_dir/ref.bin" ;;
    http) curl -sS -f -T "$src/big.tar.zst" "${http_url}ref.bin" ;;
  esac
}
ref_down() {
  case $1 in
    ftp) lftp_cmd "get big.tar.zst -o $work/dl/ref.bin" ;;
    sftp) sftp_cmd "get $ssh_dir/big.tar.zst $work/dl/ref.bin" ;;
    http) curl -sS -f -o "$work/dl/ref.bin" "${http_url}big.tar.zst" ;;
  esac
}
ref_up_cmd() {
  case $1 in
    ftp) echo "lftp -e 'set ftp:ssl-allow no; cd pub/incoming; put FILE -o ref.bin; quit' -u anonymous, -p PORT 127.0.0.1" ;;
    sftp) echo "echo 'put FILE DIR/ref.bin' | sftp -b - -P PORT -i KEY -o UserKnownHostsFile=KH root@127.0.0.1" ;;
    http) echo "curl -sS -f -T FILE http://127.0.0.1:PORT/drop/ref.bin" ;;
  esac
}
ref_down_cmd() {
  case $1 in
    ftp) echo "lftp ... 'get big.tar.zst -o OUT'" ;;
    sftp) echo "echo 'get DIR/big.tar.zst OUT' | sftp -b - ..." ;;
    http) echo "curl -sS -f -o OUT http://127.0.0.1:PORT/drop/big.tar.zst" ;;
  esac
}
# With --perf: `perf record -g` into DIR/NAME.data (the last run of each kind is kept).
prof() {
  local name=$1; shift
  if [ -n "$perfdir" ]; then
    perf record -q -g -o "$perfdir/$name.data" -- "$@"
  else
    "$@"
  fi
}
ferry_up() { mapfile -t o < <(net "$1"); prof "ferry-$1-up" "$ferry" -q "${o[@]}" push "$src/big.sha256" "$(url "$1")" >/dev/null; }
ferry_down() { mapfile -t o < <(net "$1"); prof "ferry-$1-down" "$ferry" -q "${o[@]}" pull "$(url "$1")big" -o "$work/dl/pulled" >/dev/null; }
xfer_up() { mapfile -t o < <(net "$1"); prof "xfer-$1-up" "$xfer" "${o[@]}" put "$(url "$1")" "$src/big.tar.zst" xfer.bin >/dev/null; }
xfer_down() { mapfile -t o < <(net "$1"); prof "xfer-$1-down" "$xfer" "${o[@]}" get "$(url "$1")" big.tar.zst "$work/dl/xfer.bin" >/dev/null; }

clear_server() { find "$(server_dir "$1")" -mindepth 1 -delete; }
seed_server() {
  clear_server "$1"
  cp "$src/big.tar.zst" "$src/big.sha256" "$(server_dir "$1")/"
  chmod 644 "$(server_dir "$1")"/*
}
clear_dl() { rm -rf "$work/dl"; mkdir -p "$work/dl"; }

# Time one command: prints "wall_seconds cpu_seconds" (cpu = user + sys of the command
# and the children it waited for, e.g. sftp's ssh).
timed() {
  local TIMEFORMAT='%R %U %S'
  { time "$@" 2>&3 || die "$* failed"; } 3>&2 2>"$work/time.out"
  awk '{printf "%.2f:%.2f", $1, $2 + $3}' "$work/time.out"
}
wall() { printf '%s\n' "$@" | cut -d: -f1; }
cpu() { printf '%s\n' "$@" | cut -d: -f2; }
best() { sort -g | head -1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mbs() { echo "scale=0; $bytes / 1000000 / $1" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc | sed 's/^\./0./'; }

command -v bc >/dev/null || die "missing bc"
load_before=$(uptime)
log "load before: $load_before"
declare -A T
protos=(ftp sftp http)
[ -n "$only" ] && protos=("$only")
for p in "${protos[@]}"; do
  for r in $(seq 1 "$runs"); do
    log "$p run $r/$runs"
    clear_server "$p"; T[$p,ferry,up]+=" $(timed ferry_up "$p")"
    cmp -s "$src/big.tar.zst" "$(server_dir "$p")/big.tar.zst" || die "$p: ferry push: content differs"
    clear_server "$p"; T[$p,ref,up]+=" $(timed ref_up "$p")"
    cmp -s "$src/big.tar.zst" "$(server_dir "$p")/ref.bin" || die "$p: reference upload: content differs"
    clear_server "$p"; T[$p,xfer,up]+=" $(timed xfer_up "$p")"
    cmp -s "$src/big.tar.zst" "$(server_dir "$p")/xfer.bin" || die "$p: xfer put: content differs"
    seed_server "$p"
    clear_dl; T[$p,ferry,down]+=" $(timed ferry_down "$p")"
    cmp -s "$src/big.tar.zst" "$work/dl/pulled/big.tar.zst" || die "$p: ferry pull: content differs"
    clear_dl; T[$p,ref,down]+=" $(timed ref_down "$p")"
    cmp -s "$src/big.tar.zst" "$work/dl/ref.bin" || die "$p: reference download: content differs"
    clear_dl; T[$p,xfer,down]+=" $(timed xfer_down "$p")"
    cmp -s "$src/big.tar.zst" "$work/dl/xfer.bin" || die "$p: xfer get: content differs"
    clear_dl
  done
done
load_after=$(uptime)
log "load after: $load_after"
if [ -n "$perfdir" ]; then
  for f in "$perfdir"/*.data; do
    perf report -q -i "$f" --stdio --no-children --sort dso,symbol --percent-limit 1.5 -g none >"${f%.data}.txt" 2>/dev/null || true
  done
  log "perf summaries: $perfdir/*.txt"
fi

# Ciphers negotiated by libssh2 (ferry) and OpenSSH's sftp.
ciphers=$( (grep -o 'kex: client->server cipher: [^ ]*' "$work/sshd.log" || true) | awk '{print $4}' | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "}')

echo
echo "Transports on loopback: $((bytes / 1048576)) MiB file, $runs run(s) each, files on $(df --output=fstype "$work" | tail -1) ($work)"
echo "ferry = ferry push/pull (bundle, SHA-256 checked); xfer = Transport put+commit / get alone"
echo "s (MB/s) = median wall time of the runs; best = ratio of the best runs; cpu = median user+sys of the client (s)"
echo
printf '| protocol | direction | reference | ref s (MB/s) | ferry s (MB/s) | xfer s (MB/s) | ferry/ref | xfer/ref | goal | best: ferry/ref, xfer/ref | cpu: ref, ferry, xfer |\n'
printf '| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
for p in "${protos[@]}"; do
  goal=1.10
  [ "$p" = sftp ] && goal=1.25
  for d in up down; do
    # shellcheck disable=SC2086
    rw=$(wall ${T[$p,ref,$d]} | median); fw=$(wall ${T[$p,ferry,$d]} | median); xw=$(wall ${T[$p,xfer,$d]} | median)
    # shellcheck disable=SC2086
    rb=$(wall ${T[$p,ref,$d]} | best); fb=$(wall ${T[$p,ferry,$d]} | best); xb=$(wall ${T[$p,xfer,$d]} | best)
    # shellcheck disable=SC2086
    rc=$(cpu ${T[$p,ref,$d]} | median); fc=$(cpu ${T[$p,ferry,$d]} | median); xc=$(cpu ${T[$p,xfer,$d]} | median)
    mark() { if [ "$(echo "$1 > $goal" | bc)" = 1 ]; then echo "**$1**"; else echo "$1"; fi; }
    printf '| %s | %s | %s | %.2f (%s) | %.2f (%s) | %.2f (%s) | %s | %s | %s | %s, %s | %.2f, %.2f, %.2f |\n' \
      "$p" "$([ $d = up ] && echo upload || echo download)" "$(ref_name "$p")" "$rw" "$(mbs "$rw")" "$fw" "$(mbs "$fw")" "$xw" "$(mbs "$xw")" \
      "$(mark "$(ratio "$fw" "$rw")")" "$(mark "$(ratio "$xw" "$rw")")" "$goal" "$(ratio "$fb" "$rb")" "$(ratio "$xb" "$rb")" "$rc" "$fc" "$xc"
  done
done
echo
echo "(bold: over the goal)"
echo "all runs (wall:cpu s):"
for p in "${protos[@]}"; do
  for d in up down; do
    echo "  $p $d: ref${T[$p,ref,$d]} | ferry${T[$p,ferry,$d]} | xfer${T[$p,xfer,$d]}"
  done
done
echo "SSH ciphers negotiated (sshd log): ${ciphers:-?}"
echo "load before: $load_before"
echo "load after:  $load_after"
echo "reference commands: $(for p in "${protos[@]}"; do printf '%s: %s / %s; ' "$p" "$(ref_up_cmd "$p")" "$(ref_down_cmd "$p")"; done)"
