#!/usr/bin/env bash
# Docker Engine benchmark: on an image of >= 1 GB built here,
#   ferry save IMG -o DIR           vs  docker save IMG | zstd -3 -T0 > f
#   ferry load DIR (into a daemon)  vs  zstd -d < f | docker load
#   ferry save IMG -o DIR           vs  the same pipe && sync f (durable, as ferry's output)
#   ferry save --sign -r / load -k -i (sealed)  vs  the same unsealed
# Two private daemons (scripts/dockerd.sh): a producer and an empty consumer.
# Prints the times (min / median of RUNS=5 interleaved rounds), the ratios
# (ferry / docker) and the sizes.
#
#   bench/engine.sh                 # builds target/release/ferry if missing
#   FERRY=path/to/ferry bench/engine.sh
#   DOCKERD_STORAGE_DRIVER=vfs bench/engine.sh   (default overlay2)
#
# Needs root, docker.io (20.10), zstd, busybox-static, GNU time; ~8 GB free in /tmp.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKER=/usr/bin/docker
FERRY=${FERRY:-$ROOT/target/release/ferry}
export DOCKERD_STORAGE_DRIVER=${DOCKERD_STORAGE_DRIVER:-overlay2}
IMG=ferry-bench/big:1

if [ ! -x "$FERRY" ]; then
  (cd "$ROOT" && cargo build --release --bin ferry)
fi
for c in "$DOCKER" /usr/sbin/dockerd zstd /bin/busybox /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "missing $c: run scripts/install-deps.sh" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/fbench.XXXXXX)
P=$WORK/p
C=$WORK/c
cleanup() {
  bash "$ROOT/scripts/dockerd.sh" stop "$P" >/dev/null 2>&1 || true
  bash "$ROOT/scripts/dockerd.sh" stop "$C" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

PH=$(bash "$ROOT/scripts/dockerd.sh" start "$P")
CH=$(bash "$ROOT/scripts/dockerd.sh" start "$C")
prod() { DOCKER_HOST=$PH "$DOCKER" "$@"; }
cons() { DOCKER_HOST=$CH "$DOCKER" "$@"; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== building $IMG (storage driver $DOCKERD_STORAGE_DRIVER)" >&2
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp" "$WORK/ctx"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for a in sh cat head cp ls du; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar --numeric-owner --owner=0 --group=0 -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
prod import "$WORK/rootfs.tar" ferry-bench/base:1 >/dev/null
# Real files (compressible: shared libraries, docs) and random data (not compressible).
cp -a /usr/share "$WORK/ctx/share"
cp -a /usr/lib/x86_64-linux-gnu "$WORK/ctx/lib"
cat >"$WORK/ctx/Dockerfile" <<'EOF'
FROM ferry-bench/base:1
COPY share /opt/share
COPY lib /opt/lib
RUN head -c 200000000 /dev/urandom > /opt/random1
RUN head -c 200000000 /dev/urandom > /opt/random2
CMD ["du", "-s", "/opt"]
EOF
DOCKER_BUILDKIT=0 prod build -q -t "$IMG" "$WORK/ctx" >/dev/null
rm -rf "$WORK/ctx" "$WORK/rootfs"
SIZE=$(prod image inspect -f '{{.Size}}' "$IMG")
LAYERS=$(prod image inspect -f '{{len .RootFS.Layers}}' "$IMG")
if [ "$SIZE" -lt 1000000000 ]; then
  echo "image is only $SIZE bytes; need >= 1 GB" >&2
  exit 1
fi

# RUNS interleaved rounds (ferry, then the reference, then the other way round).
RUNS=${RUNS:-5}
prod save "$IMG" >/dev/null   # warm the page cache for both contenders
ferry_saves=() docker_saves=() durable_saves=() ferry_loads=() docker_loads=() sealed_saves=() sealed_loads=()
# Sealing (issue 3): the same save and load signed and encrypted.
"$FERRY" keygen -o "$WORK/keys" --no-password >/dev/null
RECIPIENT=$(sed -n 's/^# public key: //p' "$WORK/keys/ferry.age")
time_docker_save() {
  local t0 t1; t0=$(now)
  prod save "$IMG" | zstd -3 -T0 -q -f -o "$WORK/docker.tar.zst"
  t1=$(now); docker_saves+=("$(secs "$t0" "$t1")")
}
# ferry fsyncs its artifact before renaming it into place; this reference
# pays the same: the pipe, then `sync FILE` (fsync of that file).
time_durable_save() {
  local t0 t1; t0=$(now)
  prod save "$IMG" | zstd -3 -T0 -q -f -o "$WORK/durable.tar.zst" && sync "$WORK/durable.tar.zst"
  t1=$(now); durable_saves+=("$(secs "$t0" "$t1")")
  rm -f "$WORK/durable.tar.zst"
}
# Peak RSS (KiB) of each ferry run, from /usr/bin/time -f %M.
rss() { /usr/bin/time -f %M -o "$WORK/rss.$1" "${@:2}"; cat "$WORK/rss.$1" >>"$WORK/rss.$1.all"; }
time_ferry_save() {
  local t0 t1; rm -rf "$WORK/bundle"; t0=$(now)
  DOCKER_HOST=$PH rss save "$FERRY" -q save "$IMG" -o "$WORK/bundle" -n big
  t1=$(now); ferry_saves+=("$(secs "$t0" "$t1")")
}
empty_consumer() {
  cons rmi -f "$IMG" >/dev/null 2>&1 || true
  test -z "$(cons images -aq)"
}
time_sealed_save() {
  local t0 t1; rm -rf "$WORK/sealed"; t0=$(now)
  DOCKER_HOST=$PH "$FERRY" -q save "$IMG" -o "$WORK/sealed" -n big --sign "$WORK/keys/ferry.key" -r "$RECIPIENT"
  t1=$(now); sealed_saves+=("$(secs "$t0" "$t1")")
}
time_sealed_load() {
  local t0 t1; empty_consumer; t0=$(now)
  DOCKER_HOST=$CH "$FERRY" -q load "$WORK/sealed" -k "$WORK/keys/ferry.pub" -i "$WORK/keys/ferry.age"
  t1=$(now); sealed_loads+=("$(secs "$t0" "$t1")")
  test "$(cons image inspect -f '{{.Id}}' "$IMG")" = "$(prod image inspect -f '{{.Id}}' "$IMG")"
}
time_ferry_load() {
  local t0 t1; empty_consumer; t0=$(now)
  DOCKER_HOST=$CH rss load "$FERRY" -q load "$WORK/bundle" --allow-unsigned
  t1=$(now); ferry_loads+=("$(secs "$t0" "$t1")")
  test "$(cons image inspect -f '{{.Id}}' "$IMG")" = "$(prod image inspect -f '{{.Id}}' "$IMG")"
}
time_docker_load() {
  local t0 t1; empty_consumer; t0=$(now)
  zstd -d -q <"$WORK/docker.tar.zst" | cons load -q >/dev/null
  t1=$(now); docker_loads+=("$(secs "$t0" "$t1")")
}
for r in $(seq "$RUNS"); do
  echo "== round $r/$RUNS" >&2
  if [ $((r % 2)) = 1 ]; then time_ferry_save; time_docker_save; time_durable_save; time_sealed_save; else time_sealed_save; time_durable_save; time_docker_save; time_ferry_save; fi
  if [ $((r % 2)) = 1 ]; then time_ferry_load; time_docker_load; time_sealed_load; else time_sealed_load; time_docker_load; time_ferry_load; fi
done
# min / median of a list of seconds
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f / %.2f", v[1], v[int((NR + 1) / 2)] }'; }
first() { printf '%s\n' "$@" | sort -g | head -1; }
middle() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ferry_save="$(stats "${ferry_saves[@]}")" docker_save="$(stats "${docker_saves[@]}")"
ferry_load="$(stats "${ferry_loads[@]}")" docker_load="$(stats "${docker_loads[@]}")"
save_ratio="$(ratio "$(first "${ferry_saves[@]}")" "$(first "${docker_saves[@]}")") ($(ratio "$(middle "${ferry_saves[@]}")" "$(middle "${docker_saves[@]}")"))"
durable_save="$(stats "${durable_saves[@]}")"
durable_ratio="$(ratio "$(first "${ferry_saves[@]}")" "$(first "${durable_saves[@]}")") ($(ratio "$(middle "${ferry_saves[@]}")" "$(middle "${durable_saves[@]}")"))"
sealed_save="$(stats "${sealed_saves[@]}")" sealed_load="$(stats "${sealed_loads[@]}")"
sealed_save_ratio="$(ratio "$(first "${sealed_saves[@]}")" "$(first "${ferry_saves[@]}")") ($(ratio "$(middle "${sealed_saves[@]}")" "$(middle "${ferry_saves[@]}")"))"
sealed_load_ratio="$(ratio "$(first "${sealed_loads[@]}")" "$(first "${ferry_loads[@]}")") ($(ratio "$(middle "${sealed_loads[@]}")" "$(middle "${ferry_loads[@]}")"))"
all_runs="ferry save ${ferry_saves[*]} | docker save|zstd ${docker_saves[*]} | ... && sync f ${durable_saves[*]} | sealed save ${sealed_saves[*]} | ferry load ${ferry_loads[*]} | zstd -d|docker load ${docker_loads[*]} | sealed load ${sealed_loads[*]}"
# Each round runs both contenders back to back, under the same machine load:
# the median of the per-round ratios is the least noisy of these figures.
paired() { paste -d' ' <(printf '%s\n' $1) <(printf '%s\n' $2) | awk '{ print $1 / $2 }' | sort -g | awk '{ v[NR] = $1 } END { printf "%.2f", v[int((NR + 1) / 2)] }'; }
save_paired=$(paired "${ferry_saves[*]}" "${docker_saves[*]}")
load_paired=$(paired "${ferry_loads[*]}" "${docker_loads[*]}")
load_ratio="$(ratio "$(first "${ferry_loads[@]}")" "$(first "${docker_loads[@]}")") ($(ratio "$(middle "${ferry_loads[@]}")" "$(middle "${docker_loads[@]}")"))"

bundle_size=$(du -cb "$WORK"/bundle/big.* | tail -1 | cut -f1)
docker_size=$(stat -c %s "$WORK/docker.tar.zst")
cat <<EOF
image:  $IMG, $SIZE bytes uncompressed, $LAYERS layers (storage driver $DOCKERD_STORAGE_DRIVER)
sizes:  ferry bundle $bundle_size bytes; docker save | zstd -3 $docker_size bytes
runs:   $RUNS interleaved; seconds min / median; ratio ferry / reference on the min (median), per round: median of the rounds' ratios
save:   ferry $ferry_save s   docker save | zstd -3 -T0  $docker_save s   ratio $save_ratio, per round $save_paired
save:   ferry $ferry_save s   ... && sync f (durable)   $durable_save s   ratio $durable_ratio
load:   ferry $ferry_load s   zstd -d | docker load      $docker_load s   ratio $load_ratio, per round $load_paired
sealed: ferry save --sign -r  $sealed_save s   vs ferry save  ratio $sealed_save_ratio
sealed: ferry load -k -i      $sealed_load s   vs ferry load  ratio $sealed_load_ratio
peak RSS: ferry save $(sort -n "$WORK/rss.save.all" | tail -1 | awk '{printf "%.1f", $1/1024}') MiB, ferry load $(sort -n "$WORK/rss.load.all" | tail -1 | awk '{printf "%.1f", $1/1024}') MiB (the largest of the rounds)
each run (s): $all_runs
load average: $(cut -d' ' -f1-3 /proc/loadavg)
machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(prod version -f 'Docker {{.Server.Version}} (API {{.Server.APIVersion}})'), $(zstd --version | head -1)
EOF
