#!/usr/bin/env bash
# Delta benchmark (issue 17): a one-layer change on a large base, in a private
# Docker 20.10 daemon (scripts/dockerd.sh): app:1 and app:2 share a base of
# BASE_MIB MiB of random data; app:2 adds a CHANGE_MIB MiB random layer.
#   ferry save app:2 -o full                              (full bundle)
#   ferry have docker-daemon:app:1 -o app1.have           (what the consumer holds)
#   ferry save app:2 --have app1.have -o delta             (delta)
# Prints both artifact sizes, the delta's overhead over the changed layer, and the save times.
#
#   bench/delta.sh                        # BASE_MIB=1024 CHANGE_MIB=1; builds target/release/ferry if missing
#   FERRY=target/debug/ferry BASE_MIB=512 bench/delta.sh
#
# Needs root, docker.io (20.10), zstd, busybox-static, bc; ~4 GB free in /tmp (vfs copies each layer).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKER=/usr/bin/docker
FERRY=${FERRY:-$ROOT/target/release/ferry}
BASE_MIB=${BASE_MIB:-1024}
CHANGE_MIB=${CHANGE_MIB:-1}
if [ ! -x "$FERRY" ]; then
  (cd "$ROOT" && cargo build --release --bin ferry)
fi
W=$(mktemp -d /tmp/fdeltaXXXX)
cleanup() { bash "$ROOT/scripts/dockerd.sh" stop "$W/d" >/dev/null 2>&1 || true; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/d" "$W/root/bin" "$W/root/tmp" "$W/c0" "$W/c1" "$W/c2"
DOCKER_HOST=$(bash "$ROOT/scripts/dockerd.sh" start "$W/d")
export DOCKER_HOST DOCKER_BUILDKIT=0

cp /bin/busybox "$W/root/bin/"
for a in sh cat head echo; do ln -s busybox "$W/root/bin/$a"; done
tar -C "$W/root" -cf "$W/base.tar" .
$DOCKER import --change 'CMD ["/bin/sh"]' "$W/base.tar" ferry-bench/bb:1 >/dev/null
printf 'FROM ferry-bench/bb:1\nRUN head -c %d /dev/urandom > /big\n' $((BASE_MIB << 20)) > "$W/c0/Dockerfile"
$DOCKER build -q -t ferry-bench/big:1 "$W/c0" >/dev/null
printf 'FROM ferry-bench/big:1\nRUN echo v1 > /v\n' > "$W/c1/Dockerfile"
$DOCKER build -q -t app:1 "$W/c1" >/dev/null
printf 'FROM ferry-bench/big:1\nRUN head -c %d /dev/urandom > /changed && echo v2 > /v\n' $((CHANGE_MIB << 20)) > "$W/c2/Dockerfile"
$DOCKER build -q -t app:2 "$W/c2" >/dev/null

"$FERRY" have docker-daemon:app:1 -o "$W/app1.have" -q
t0=$(date +%s.%N)
"$FERRY" save docker-daemon:app:2 -o "$W/full" -n app -q
t1=$(date +%s.%N)
"$FERRY" save docker-daemon:app:2 --have "$W/app1.have" -o "$W/delta" -n app -q
t2=$(date +%s.%N)
full=$(stat -c %s "$W/full/app.tar.zst")
delta=$(stat -c %s "$W/delta/app.tar.zst")
# The changed layer compressed alone (zstd -3, as the bundle): the goal's yardstick.
biggest=$(zstd -dc "$W/delta/app.tar.zst" | tar -tv | sort -k3 -n | tail -1 | awk '{print $NF}')
changed=$(zstd -dc "$W/delta/app.tar.zst" | tar -x -O "$biggest" | zstd -3 -c | wc -c)
echo "base ${BASE_MIB} MiB, change ${CHANGE_MIB} MiB (random)"
echo "full bundle:  $full bytes, save $(echo "$t1 - $t0" | bc) s"
echo "delta bundle: $delta bytes, save $(echo "$t2 - $t1" | bc) s"
echo "changed layer alone, zstd -3: $changed bytes"
echo "delta overhead: $((delta - changed)) bytes (goal: < 65536)"
