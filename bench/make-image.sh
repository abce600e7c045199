#!/usr/bin/env bash
# Build a realistic multi-layer image with a real dockerd and `docker save` it.
#
#   bench/make-image.sh WORKDIR SIZE_MB OUT.tar [BIG_MB BIG.tar]
#
# The image: a busybox base (docker import) plus four COPY layers filled by
# bench/pick-files.py from files on this machine (shared libraries, text,
# already-compressed data, many small files). The optional big image is built
# FROM it with three more layers of large files (libraries, text, compressed
# data; no more small files, which Docker copies slowly) up to BIG_MB. An
# existing OUT.tar is loaded instead of rebuilt. Built with a private dockerd
# (scripts/dockerd.sh, storage driver overlay2 unless DOCKERD_STORAGE_DRIVER
# says otherwise) that is stopped and removed afterwards.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
DOCKER=/usr/bin/docker

[ $# -eq 3 ] || [ $# -eq 5 ] || { echo "usage: $0 WORKDIR SIZE_MB OUT.tar [BIG_MB BIG.tar]" >&2; exit 2; }
work=$(realpath -m "$1") size=$2 out=$3 big=${4:-} big_out=${5:-}
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

# build TAG CONTEXT_ARGS... -- DOCKERFILE_LINES: fill a context, build, save.
build_and_save() {
  local tag=$1 mb=$2 dest=$3 dockerfile=$4; shift 4
  echo "make-image: building $tag (~${mb} MiB of machine files) -> $dest" >&2
  rm -rf "$work/ctx"; mkdir -p "$work/ctx"
  python3 "$here/pick-files.py" "$work/ctx" "$mb" "$@" >&2
  printf '%s\n' "$dockerfile" >"$work/ctx/Dockerfile"
  DOCKER_BUILDKIT=0 "$DOCKER" build -q -t "$tag" "$work/ctx" >/dev/null
  rm -rf "$work/ctx"
  "$DOCKER" save -o "$dest.tmp" "$tag"
  mv "$dest.tmp" "$dest"
  echo "make-image: $dest: $(du -m "$dest" | cut -f1) MiB" >&2
}

tag="ferry-bench:${size}m"
if [ -s "$out" ]; then
  "$DOCKER" load -q -i "$out" >/dev/null
else
  build_and_save "$tag" "$size" "$out" "FROM ferry-bench-base:latest
COPY libs /data/libs
COPY text /data/text
COPY compressed /data/compressed
COPY small /data/small"
fi
if [ -n "$big" ]; then
  extra=$(( big - size ))
  [ "$extra" -gt 0 ] || { echo "make-image: BIG_MB must exceed SIZE_MB" >&2; exit 2; }
  build_and_save "ferry-bench:${big}m" "$extra" "$big_out" "FROM $tag
COPY libs /data/more/libs
COPY text /data/more/text
COPY compressed /data/more/compressed" --kinds libs,text,compressed --seed ferry-bench-more
fi
