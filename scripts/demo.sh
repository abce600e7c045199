#!/usr/bin/env bash
# ferry's main job on the bundled example image: save a docker-archive as a
# bundle (zstd, sha256), check it with standard tools and with ferry, then load
# it back into an OCI layout. Usage: scripts/demo.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-$(mktemp -d /tmp/ferry-demo.XXXXXX)}
cargo build -q --bin ferry
ferry=target/debug/ferry
image=docker-archive:fixtures/docker20-whiteout.docker.tar.gz
echo "== ferry save $image -o $work/usb"
$ferry save "$image" -o "$work/usb" -n demo
echo "== sha256sum -c (no ferry needed on the other side)"
(cd "$work/usb" && sha256sum -c demo.sha256)
echo "== ferry verify"
$ferry verify "$work/usb/demo.sha256"
echo "== ferry inspect"
$ferry inspect "$work/usb"
echo "== ferry load --into oci:$work/oci"
$ferry load --allow-unsigned "$work/usb" --into "oci:$work/oci"
ls "$work/oci/blobs/sha256" | wc -l | xargs echo "blobs in the loaded OCI layout:"
echo "done: bundle in $work/usb, image in $work/oci"
