#!/usr/bin/env bash
# containerd target benchmark (issue 18), on the bench image (bench/make-image.sh):
#   ferry load DIR --into containerd:    vs  zstd -d < ARTIFACT | ctr images import -
# Both write the content store and unpack into the overlayfs snapshotter of a
# private containerd 1.6 (own root, state and socket; CRI off), started fresh
# for every run so neither finds anything there. Prints min / median of RUNS
# interleaved rounds, the ratio ferry / ctr, ferry's peak RSS and the load average.
#
#   bash bench/containerd.sh [--size MB] [--runs N] [--workdir DIR] [--snapshotter NAME]
#
# The image is cached in the work directory (default /var/tmp/ferry-bench, shared
# with bench/run.sh: big-${MB}m.tar). Needs root, containerd, ctr, zstd, GNU time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
size=1024 runs=5 work=/var/tmp/ferry-bench snapshotter=overlayfs
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift ;;
    --runs) runs=$2; shift ;;
    --workdir) work=$2; shift ;;
    --snapshotter) snapshotter=$2; shift ;;
    *) echo "usage: $0 [--size MB] [--runs N] [--workdir DIR] [--snapshotter NAME]" >&2; exit 2 ;;
  esac
  shift
done
ferry=${FERRY:-$repo/target/release/ferry}
[ -x "$ferry" ] || (cd "$repo" && cargo build --release --bin ferry)
for c in containerd ctr zstd /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "missing $c: run scripts/install-deps.sh" >&2; exit 1; }
done
mkdir -p "$work"
img="$work/big-${size}m.tar"
[ -s "$img" ] || bash "$here/make-image.sh" "$work/build" "$size" "$img"

run_dir=$(mktemp -d /tmp/fcb.XXXXXX)
ctd_pid=
stop_ctd() {
  if [ -n "$ctd_pid" ]; then kill "$ctd_pid" 2>/dev/null || true; wait "$ctd_pid" 2>/dev/null || true; ctd_pid=; fi
  rm -rf "$run_dir/c"
}
cleanup() { stop_ctd; rm -rf "$run_dir"; }
trap cleanup EXIT
sock="$run_dir/c/containerd.sock"
start_ctd() {
  stop_ctd
  mkdir -p "$run_dir/c"
  cat >"$run_dir/c/config.toml" <<CONF
version = 2
root = "$run_dir/c/root"
state = "$run_dir/c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$run_dir/c/ttrpc.sock"
CONF
  containerd --config "$run_dir/c/config.toml" >"$run_dir/c/log" 2>&1 &
  ctd_pid=$!
  for _ in $(seq 100); do ctr -a "$sock" version >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "containerd did not start:" >&2; cat "$run_dir/c/log" >&2; exit 1
}
unpacked() { ctr -a "$sock" -n k8s.io images check | awk 'NR > 1 && $NF == "true"' | wc -l; }

"$ferry" -q save "docker-archive:$img" -o "$run_dir/bundle" -n big
artifact="$run_dir/bundle/big.tar.zst"
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ferry_runs=() ctr_runs=() rss=()
time_ferry() {
  start_ctd; sync
  local t0 t1; t0=$(now)
  /usr/bin/time -f %M -o "$run_dir/rss" "$ferry" -q load "$run_dir/bundle" --allow-unsigned --into containerd: \
    --containerd-address "$sock" --snapshotter "$snapshotter"
  t1=$(now); ferry_runs+=("$(secs "$t0" "$t1")"); rss+=("$(cat "$run_dir/rss")")
  [ "$(unpacked)" -ge 1 ] || { echo "ferry: no unpacked image" >&2; exit 1; }
}
time_ctr() {
  start_ctd; sync
  local t0 t1; t0=$(now)
  zstd -d -q <"$artifact" | ctr -a "$sock" -n k8s.io images import --snapshotter "$snapshotter" - >/dev/null
  t1=$(now); ctr_runs+=("$(secs "$t0" "$t1")")
  [ "$(unpacked)" -ge 1 ] || { echo "ctr: no unpacked image" >&2; exit 1; }
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$runs"); do
  echo "== round $r/$runs" >&2
  if [ $((r % 2)) = 1 ]; then time_ferry; time_ctr; else time_ctr; time_ferry; fi
done
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f / %.2f", v[1], v[int((NR + 1) / 2)] }'; }
first() { printf '%s\n' "$@" | sort -g | head -1; }
middle() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<OUT
image:    $img ($(stat -c %s "$img") bytes docker-archive), artifact $(stat -c %s "$artifact") bytes (zstd)
runs:     $runs interleaved, fresh containerd each, snapshotter $snapshotter; seconds min / median
load:     ferry $(stats "${ferry_runs[@]}") s   zstd -d | ctr images import -  $(stats "${ctr_runs[@]}") s   ratio $(ratio "$(first "${ferry_runs[@]}")" "$(first "${ctr_runs[@]}")") ($(ratio "$(middle "${ferry_runs[@]}")" "$(middle "${ctr_runs[@]}")"))
peak RSS: ferry load $(printf '%s\n' "${rss[@]}" | sort -n | tail -1 | awk '{printf "%.1f", $1/1024}') MiB (largest of the rounds)
each run (s): ferry ${ferry_runs[*]} | ctr ${ctr_runs[*]}
load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)
machine:  $(nproc) cores, $(containerd --version | awk '{print $3}'), $(zstd --version | head -1)
OUT
