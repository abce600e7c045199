#!/usr/bin/env bash
# Build a realistic multi-layer image with a real dockerd and `docker save` it.
#
#   bench/make-image.sh WORKDIR SIZE_MB OUT.tar [SIZE_MB OUT.tar]...
#
# Each image: a busybox base (docker import) plus four COPY layers filled by
# bench/pick-files.py from files on this machine (shared libraries, text,
# already-compressed data, many small files). Built with a private dockerd
# (scripts/dockerd.sh, storage driver overlay2 unless DOCKERD_STORAGE_DRIVER
# says otherwise) that is stopped and removed afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
DOCKER=/usr/bin/docker

[ $# -ge 3 ] && [ $(( ($# - 1) % 2 )) -eq 0 ] || { echo "usage: $0 WORKDIR SIZE_MB OUT.tar [SIZE_MB OUT.tar]..." >&2; exit 2; }
work=$(realpath -m "$1"); shift
mkdir -p "$work"
ddir="$work/d"
export DOCKERD_STORAGE_DRIVER=${DOCKERD_STORAGE_DRIVER:-overlay2}

cleanup() {
  bash "$repo/scripts/dockerd.sh" stop "$ddir" >/dev/null 2>&1 || true
  rm -rf "$ddir" "$work/ctx" "$work/base"
}
trap cleanup EXIT

if ! DOCKER_HOST=$(bash "$repo/scripts/dockerd.sh" start "$ddir"); then
  if [ "$DOCKERD_STORAGE_DRIVER" != vfs ]; then
    echo "make-image: dockerd with $DOCKERD_STORAGE_DRIVER failed; retrying with vfs" >&2
    bash "$repo/scripts/dockerd.sh" stop "$ddir" >/dev/null 2>&1 || true
    rm -rf "$ddir"
    export DOCKERD_STORAGE_DRIVER=vfs
    DOCKER_HOST=$(bash "$repo/scripts/dockerd.sh" start "$ddir")
  else
    exit 1
  fi
fi
export DOCKER_HOST

# Base image: busybox-static and its applet links.
rm -rf "$work/base"; mkdir -p "$work/base/rootfs/bin" "$work/base/rootfs/etc" "$work/base/rootfs/tmp"
cp /bin/busybox "$work/base/rootfs/bin/busybox"
for a in sh ls cat cp mv rm mkdir echo true; do ln -s busybox "$work/base/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' >"$work/base/rootfs/etc/passwd"
tar -C "$work/base/rootfs" -cf "$work/base/rootfs.tar" .
"$DOCKER" import "$work/base/rootfs.tar" ferry-bench-base:latest >/dev/null

while [ $# -gt 0 ]; do
  size=$1 out=$2; shift 2
  tag="ferry-bench:${size}m"
  echo "make-image: building $tag (~${size} MiB of machine files) -> $out" >&2
  rm -rf "$work/ctx"; mkdir -p "$work/ctx"
  python3 "$here/pick-files.py" "$work/ctx" "$size" >&2
  cat >"$work/ctx/Dockerfile" <<'DOCKERFILE'
FROM ferry-bench-base:latest
COPY libs /data/libs
COPY text /data/text
COPY compressed /data/compressed
COPY small /data/small
DOCKERFILE
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$tag" "$work/ctx" >/dev/null
  rm -rf "$work/ctx"
  "$DOCKER" save -o "$out.tmp" "$tag"
  mv "$out.tmp" "$out"
  "$DOCKER" rmi "$tag" >/dev/null
  echo "make-image: $out: $(du -m "$out" | cut -f1) MiB" >&2
done
