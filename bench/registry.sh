#!/usr/bin/env bash
# Push speed: `ferry load BUNDLE --into docker://` against `skopeo copy
# oci:DIR docker://` of the same image into a fresh distribution 2.8
# (Debian docker-registry, plain HTTP on 127.0.0.1, storage under WORKDIR),
# wall time and peak RSS of each (`/usr/bin/time -f '%e %M'`).
#
#   bash bench/registry.sh [--size MIB] [--runs N] [--workdir DIR] [--ferry PATH]
#   FERRY_ARGS="-j 1" bash bench/registry.sh ...   (extra global flags for ferry)
#
# The image: an OCI layout of four gzip layers of random bytes (what registries
# mostly hold: compressed layers), SIZE MiB in all (default 1024), cached in
# WORKDIR. ferry's bundle is the default one (zstd outer stream, unsigned,
# loaded with --allow-unsigned): ferry verifies and decompresses as it pushes.
# Each run pushes into an empty registry (nothing to skip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
size=1024 runs=3 work=/var/tmp/ferry-bench-registry ferry=
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size=$2; shift ;;
    --runs) runs=$2; shift ;;
    --workdir) work=$2; shift ;;
    --ferry) ferry=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "registry.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for bin in docker-registry skopeo gzip /usr/bin/time; do
  command -v "$bin" >/dev/null || { echo "registry.sh: missing $bin (scripts/install-deps.sh)" >&2; exit 1; }
done
if [ -z "$ferry" ]; then
  (cd "$repo" && cargo build --release --bin ferry >&2)
  ferry=$repo/target/release/ferry
fi
mkdir -p "$work"
layout=$work/image-$size
if [ ! -f "$layout/index.json" ]; then
  rm -rf "$layout"; mkdir -p "$layout/blobs/sha256"
  per=$((size / 4)); layers=() diffs=()
  for n in 1 2 3 4; do
    head -c $((per << 20)) /dev/urandom > "$work/f$n"
    tar -C "$work" -cf "$work/l$n.tar" "f$n"; rm "$work/f$n"
    diffs+=("\"sha256:$(sha256sum "$work/l$n.tar" | cut -d' ' -f1)\"")
    gzip -1 -c "$work/l$n.tar" > "$work/l$n.tgz"; rm "$work/l$n.tar"
    hex=$(sha256sum "$work/l$n.tgz" | cut -d' ' -f1)
    layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$hex\",\"size\":$(stat -c %s "$work/l$n.tgz")}")
    mv "$work/l$n.tgz" "$layout/blobs/sha256/$hex"
  done
  config="{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[$(IFS=,; echo "${diffs[*]}")]}}"
  chex=$(printf %s "$config" | sha256sum | cut -d' ' -f1); printf %s "$config" > "$layout/blobs/sha256/$chex"
  manifest="{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:$chex\",\"size\":${#config}},\"layers\":[$(IFS=,; echo "${layers[*]}")]}"
  mhex=$(printf %s "$manifest" | sha256sum | cut -d' ' -f1); printf %s "$manifest" > "$layout/blobs/sha256/$mhex"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"bench","io.containerd.image.name":"docker.io/ferry/bench:v1"}}]}' "$mhex" "${#manifest}" > "$layout/index.json"
fi
bundle=$work/bundle-$size
if [ ! -f "$bundle/bench.sha256" ]; then
  "$ferry" -q save "oci:$layout" -o "$bundle" -n bench
fi

regdir=$work/registry pid=
stop() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  pid=; rm -rf "$regdir"
}
trap stop EXIT
start() {
  stop; mkdir -p "$regdir/data"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'version: 0.1\nlog: {level: warn, accesslog: {disabled: true}}\nstorage: {filesystem: {rootdirectory: %s/data}}\nhttp: {addr: "127.0.0.1:%s", secret: bench}\n' "$regdir" "$port" > "$regdir/config.yml"
  docker-registry serve "$regdir/config.yml" > "$regdir/log" 2>&1 & pid=$!
  for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.1; done
  echo "registry.sh: the registry did not start" >&2; cat "$regdir/log" >&2; exit 1
}
measure() { # NAME COMMAND... → "NAME seconds peak_kib"
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > /dev/null 2> "$work/err" || { cat "$work/err" >&2; exit 1; }
  echo "$name $(cat "$work/time")"
}
echo "# $(date -u +%FT%TZ) size=${size}MiB runs=$runs load: $(cut -d' ' -f1-3 /proc/loadavg) cores: $(nproc)"
# The loop runs in a pipeline's subshell: it stops its own last registry (the EXIT trap does not see its pid).
for r in $(seq "$runs"); do
  start
  # shellcheck disable=SC2086 # FERRY_ARGS are words, e.g. "-j 1"
  measure ferry "$ferry" -q ${FERRY_ARGS:-} load --allow-unsigned --plain-http "$bundle/bench.sha256" --into "docker://127.0.0.1:$port/f"
  start
  measure skopeo skopeo copy -q --dest-tls-verify=false "oci:$layout:bench" "docker://127.0.0.1:$port/s/bench:v1"
  [ "$r" = "$runs" ] && stop
done | tee "$work/results"
awk '{t[$1]+=$2; n[$1]++; if ($3>m[$1]) m[$1]=$3} END {
  printf "ferry  mean %.1f s  peak RSS %.0f MiB\nskopeo mean %.1f s  peak RSS %.0f MiB\nratio ferry/skopeo %.2f (goal <= 0.8)\n",
    t["ferry"]/n["ferry"], m["ferry"]/1024, t["skopeo"]/n["skopeo"], m["skopeo"]/1024, (t["ferry"]/n["ferry"])/(t["skopeo"]/n["skopeo"]) }' "$work/results"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
