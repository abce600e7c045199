#!/usr/bin/env bash
# Remake the image fixtures under fixtures/ from real tools:
#   Docker Engine 20.10 (docker.io), containerd 1.6 (ctr), Podman 4.3, Buildah, Skopeo.
#
#   scripts/make-fixtures.sh [OUT_DIR]        (default: fixtures/ of this repo)
#
# Starts its own private dockerd daemons (scripts/dockerd.sh) and uses a private
# containers-storage for podman/buildah/skopeo; all of it lives in one temp dir
# under /tmp that is removed at exit. Every fixture is checked before it is kept:
# skopeo inspect, and `docker run` of each runnable image after `docker load` of
# the fixture (or a skopeo conversion of it) into a separate, empty daemon.
# Writes OUT_DIR/README.md and OUT_DIR/fixtures.json describing every fixture.
# Needs root. Bytes differ from run to run (timestamps); contents and outputs don't.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$(realpath -m -- "${1:-$ROOT/fixtures}")
DOCKER=/usr/bin/docker              # Docker 20.10 client (not /usr/local/bin/docker)
DOCKERD_SH="$ROOT/scripts/dockerd.sh"

log() { printf '[make-fixtures] %s\n' "$*" >&2; }
die() { printf '[make-fixtures] error: %s\n' "$*" >&2; exit 1; }

for c in "$DOCKER" /usr/sbin/dockerd podman buildah skopeo ctr tar gzip zstd python3 /bin/busybox; do
  if [ "${c#/}" != "$c" ]; then [ -x "$c" ] || die "missing $c: run scripts/install-deps.sh"
  else command -v "$c" >/dev/null || die "missing $c: run scripts/install-deps.sh"; fi
done
[ "$(id -u)" -eq 0 ] || die "must run as root (dockerd, podman storage)"

W=$(mktemp -d /tmp/fxXXXXXX)          # short: holds the dockerd sockets
P="$W/p"                               # producer dockerd (overlay2 -> opaque whiteouts)
C="$W/c"                               # consumer dockerd (vfs, empty) for checks
S="$W/s"                               # podman/buildah/skopeo storage + config
STAGE="$W/out"                         # fixtures are staged here, moved at the end
mkdir -p "$S/tmp" "$STAGE" "$W/tmp"

cleanup() {
  local rc=$?
  set +e
  "$DOCKERD_SH" stop "$P" >/dev/null 2>&1
  "$DOCKERD_SH" stop "$C" >/dev/null 2>&1
  awk -v d="$W/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount -l "$m"; done
  if [ -n "${KEEP_WORKDIR:-}" ]; then log "kept $W"; else rm -rf "$W"; fi
  [ $rc -eq 0 ] || log "FAILED (exit $rc)"
}
trap cleanup EXIT

# ---------------------------------------------------------------- environment
cat >"$S/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$S/run"
graphroot = "$S/graph"
EOF
cat >"$S/containers.conf" <<EOF
[engine]
tmp_dir = "$S/tmp"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$S/events.log"
EOF
cat >"$S/registries.conf" <<EOF
unqualified-search-registries = []
short-name-mode = "disabled"
EOF
export CONTAINERS_STORAGE_CONF="$S/storage.conf"
export CONTAINERS_CONF="$S/containers.conf"
export CONTAINERS_REGISTRIES_CONF="$S/registries.conf"
export TMPDIR="$W/tmp"
export BUILDAH_ISOLATION=chroot
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_CONFIG

log "starting producer dockerd (overlay2) and consumer dockerd (vfs) under $W"
if ! PHOST=$(DOCKERD_STORAGE_DRIVER=overlay2 "$DOCKERD_SH" start "$P"); then
  log "overlay2 unavailable: falling back to vfs (no opaque-dir whiteouts)"
  rm -rf "$P"
  PHOST=$("$DOCKERD_SH" start "$P")
fi
CHOST=$("$DOCKERD_SH" start "$C")
pd() { DOCKER_HOST="$PHOST" "$DOCKER" "$@"; }
cd_() { DOCKER_HOST="$CHOST" "$DOCKER" "$@"; }
CTR=(ctr -a "$P/exec/containerd/containerd.sock" -n ferry-fixtures)

# ---------------------------------------------------------------- busybox base
log "busybox rootfs"
R="$W/bbroot"
mkdir -p "$R/bin" "$R/etc" "$R/tmp" "$R/root"
cp /bin/busybox "$R/bin/busybox"
for a in sh echo cat ls rm ln mkdir printf cp mv touch test true false stat readlink \
         wc head tail grep sed env sha256sum find pwd tr sort; do
  ln -s busybox "$R/bin/$a"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$R/etc/passwd"
echo 'root:x:0:' >"$R/etc/group"
echo 'only in the base layer; deleted by a later layer' >"$R/etc/ferry-base-only"
# GNU tar's own long-name records ('L'/'K' headers) survive docker import/save
# (Docker and containers/storage keep the imported tar stream via tar-split).
GNULONG="/etc/ferry-long/gnu-long-name-$(printf 'y%.0s' $(seq 1 100)).txt"
mkdir -p "$R/etc/ferry-long"
echo 'gnu long name' >"$R$GNULONG"
ln -s "$GNULONG" "$R/etc/ferry-long/gnu-long-target"
chmod 1777 "$R/tmp"
tar --format=gnu --numeric-owner --owner=0 --group=0 -C "$R" -cf "$W/busybox-rootfs.tar" .
BASE=ferry-fixture/busybox:base
pd import --change 'CMD ["/bin/sh"]' "$W/busybox-rootfs.tar" "$BASE" >/dev/null

# ---------------------------------------------------------------- a. docker20-whiteout
log "a. docker20-whiteout (DOCKER_BUILDKIT=0 docker build)"
D20=ferry-fixture/docker20:v1
CHILD=ferry-fixture/docker20-child:v1
OUT_D20='ferry fixture docker20: ok'
OUT_CHILD='ferry fixture docker20-child: ok'
X="$W/ctx-docker20"; mkdir -p "$X"
cat >"$X/check.sh" <<EOF
#!/bin/sh
GNULONG='$GNULONG'
EOF
cat >>"$X/check.sh" <<'EOF'
# Passes only if every layer's changes (adds, rewrites, whiteouts, opaque dir) applied.
fail() { echo "ferry fixture docker20: FAIL: $*"; exit 1; }
[ "$(cat /app/msg)" = rewritten ] || fail "/app/msg not rewritten"
[ "$(head -n 1 /app/log)" = second ] && [ "$(tail -n 1 /app/log)" = third ] || fail "/app/log"
[ ! -e /app/gone ] || fail "whiteout of /app/gone"
[ ! -e /etc/motd ] || fail "whiteout of /etc/motd"
[ ! -e /etc/ferry-base-only ] || fail "whiteout of base-layer file"
[ ! -e /app/olddir ] || fail "whiteout of directory /app/olddir"
[ "$(cat /app/data/new)" = fresh ] || fail "/app/data/new"
[ "$(ls -A /app/data)" = new ] || fail "opaque /app/data: $(ls -A /app/data | tr '\n' ' ')"
[ "$(cat /app/kept/file)" = kept ] || fail "/app/kept"
[ "$FERRY_FIXTURE" = docker20 ] || fail "ENV"
[ "$(pwd)" = /app ] || fail "WORKDIR"
[ "$(cat "$GNULONG")" = "gnu long name" ] || fail "GNU long name in base layer"
[ "$(readlink /etc/ferry-long/gnu-long-target)" = "$GNULONG" ] || fail "GNU long link target"
echo "$GREETING docker20: ok"
EOF
cat >"$X/Dockerfile" <<EOF
FROM $BASE
ENV FERRY_FIXTURE=docker20 GREETING="ferry fixture"
WORKDIR /app
LABEL org.opencontainers.image.title="ferry docker20 whiteout fixture" ferry.fixture=docker20-whiteout
RUN mkdir -p /app/data/sub /app/olddir/deep /app/kept \\
 && echo one > /app/data/sub/file && echo keep > /app/data/keep \\
 && echo first > /app/msg && echo bye > /app/gone && echo x > /app/olddir/deep/x \\
 && echo motd > /etc/motd && echo kept > /app/kept/file
RUN rm -f /app/gone /etc/motd /etc/ferry-base-only && rm -rf /app/olddir \\
 && echo rewritten > /app/msg && echo second >> /app/log
RUN rm -rf /app/data && mkdir -p /app/data && echo fresh > /app/data/new && echo third >> /app/log
COPY check.sh /app/check.sh
CMD ["/bin/sh", "/app/check.sh"]
EOF
DOCKER_BUILDKIT=0 pd build -q -t "$D20" "$X" >/dev/null

X="$W/ctx-child"; mkdir -p "$X"
cat >"$X/Dockerfile" <<EOF
FROM $D20
LABEL ferry.fixture=docker20-child
RUN echo "$OUT_CHILD" > /app/child
CMD ["/bin/sh", "-c", "/bin/sh /app/check.sh && cat /app/child"]
EOF
DOCKER_BUILDKIT=0 pd build -q -t "$CHILD" "$X" >/dev/null
pd tag "$D20" ferry-fixture/docker20:latest

pd save -o "$W/docker20.tar" "$D20"
gzip -9n <"$W/docker20.tar" >"$STAGE/docker20-whiteout.docker.tar.gz"

# ---------------------------------------------------------------- b. multi
log "b. multi (one docker save of two images sharing layers)"
pd save -o "$W/multi.tar" "$D20" ferry-fixture/docker20:latest "$CHILD"
gzip -9n <"$W/multi.tar" >"$STAGE/multi.docker.tar.gz"

# ---------------------------------------------------------------- f. containerd export
# containerd's exporter writes the layout Docker 25+ writes: blobs/sha256/<hex>,
# index.json, oci-layout and a docker manifest.json pointing at blobs/.
log "f. containerd-export (ctr images export: OCI layout + manifest.json)"
"${CTR[@]}" images import --no-unpack "$W/multi.tar" >/dev/null
"${CTR[@]}" images export "$W/ctr.tar" \
  "docker.io/$D20" "docker.io/$CHILD" >/dev/null
gzip -9n <"$W/ctr.tar" >"$STAGE/containerd-export.oci-docker.tar.gz"

# ---------------------------------------------------------------- c. podman-links
log "c. podman-links (podman build --isolation chroot)"
PBASE=localhost/ferry-fixture/busybox:base
PL=localhost/ferry-fixture/podman-links:v1
OUT_PL='ferry fixture podman-links: ok'
podman import -q --change 'CMD ["/bin/sh"]' "$W/busybox-rootfs.tar" "$PBASE" >/dev/null
LONGDIR=/links/long/directory-name-that-is-quite-long-0123456789-abcdefghijklmnopqrstuvwxyz
LONGFILE="file-name-longer-than-one-hundred-bytes-$(printf 'x%.0s' $(seq 1 70))-end.txt"
LONG="$LONGDIR/$LONGFILE"
[ ${#LONGFILE} -gt 100 ] && [ ${#LONG} -gt 150 ] || die "long names not long enough"
X="$W/ctx-podman"; mkdir -p "$X"
cat >"$X/check.sh" <<EOF
#!/bin/sh
fail() { echo "ferry fixture podman-links: FAIL: \$*"; exit 1; }
LONG='$LONG'
[ "\$(cat /etc/ferry-long/gnu-long-target)" = "gnu long name" ] || fail "GNU long names in base layer"
[ "\$(cat /links/dir/file)" = "hardlinked content" ] || fail "file"
[ "\$(cat /links/hard)" = "hardlinked content" ] || fail "hardlink"
[ "\$(stat -c %i /links/hard)" = "\$(stat -c %i /links/dir/file)" ] || fail "hardlink inode"
# a link made in a later layer to a file of an earlier one: podman's layer diff
# stores it as a plain copy (the target is unchanged in that layer)
[ "\$(cat /links/hard2)" = "hardlinked content" ] || fail "link across layers"
[ "\$(readlink /links/rel)" = dir/file ] && [ "\$(cat /links/rel)" = "hardlinked content" ] || fail "relative symlink"
[ "\$(readlink /links/abs)" = /links/dir/file ] && [ "\$(cat /links/abs)" = "hardlinked content" ] || fail "absolute symlink"
[ "\$(readlink /links/dirlink)" = ../links/dir ] && [ -f /links/dirlink/file ] || fail "directory symlink"
[ "\$(cat "\$LONG")" = "long name content" ] || fail "long path"
[ "\$(readlink /links/longlink)" = "\$LONG" ] && [ "\$(cat /links/longlink)" = "long name content" ] || fail "long symlink target"
[ "\$(stat -c %i /links/hard-to-long)" = "\$(stat -c %i "\$LONG")" ] || fail "hardlink to long name"
echo "ferry fixture podman-links: ok"
EOF
cat >"$X/Containerfile" <<EOF
FROM $PBASE
LABEL ferry.fixture=podman-links
ENV FERRY_FIXTURE=podman-links
RUN mkdir -p /links/dir '$LONGDIR' \\
 && echo "hardlinked content" > /links/dir/file \\
 && ln /links/dir/file /links/hard \\
 && ln -s dir/file /links/rel \\
 && ln -s /links/dir/file /links/abs \\
 && ln -s ../links/dir /links/dirlink \\
 && echo "long name content" > '$LONG' \\
 && ln -s '$LONG' /links/longlink \\
 && ln '$LONG' /links/hard-to-long
RUN ln /links/dir/file /links/hard2
COPY check.sh /links/check.sh
CMD ["/bin/sh", "/links/check.sh"]
EOF
podman build -q --pull=never --isolation chroot -t "$PL" -f "$X/Containerfile" "$X" >/dev/null
podman save -q --format docker-archive -o "$W/podman-links.docker.tar" "$PL"
podman save -q --format oci-archive -o "$W/podman-links.oci.tar" "$PL"
gzip -9n <"$W/podman-links.docker.tar" >"$STAGE/podman-links.docker.tar.gz"
zstd -q -19 <"$W/podman-links.oci.tar" >"$STAGE/podman-links.oci.tar.zst"

# ---------------------------------------------------------------- d. skopeo
log "d. skopeo-gzip.oci/ and skopeo-zstd.oci.tar (skopeo copy)"
skopeo copy -q --dest-compress-format gzip --dest-compress \
  "docker-archive:$W/docker20.tar:$D20" "oci:$STAGE/skopeo-gzip.oci:$D20"
skopeo copy -q --dest-compress-format zstd --dest-compress \
  "docker-archive:$W/docker20.tar:$D20" "oci-archive:$STAGE/skopeo-zstd.oci.tar:$D20"

# ---------------------------------------------------------------- e. multiarch
log "e. multiarch (buildah manifest push --all, amd64 + arm64)"
MA=localhost/ferry-fixture/multiarch:v1
MAREF=ferry-fixture/multiarch:v1
OUT_MA='ferry fixture multiarch: amd64'
buildah manifest create "$MA" >/dev/null
for arch in amd64 arm64; do
  X="$W/ctx-ma-$arch"; mkdir -p "$X"
  echo "ferry fixture multiarch: $arch" >"$X/arch.txt"
  if [ "$arch" = amd64 ]; then
    # runnable on this machine: a static amd64 busybox, nothing else
    cp /bin/busybox "$X/busybox"
    cat >"$X/Containerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
COPY arch.txt /arch.txt
CMD ["/bin/busybox", "cat", "/arch.txt"]
EOF
  else
    cat >"$X/Containerfile" <<'EOF'
FROM scratch
COPY arch.txt /arch.txt
EOF
  fi
  buildah build -q --isolation chroot --arch "$arch" --os linux --manifest "$MA" \
    -f "$X/Containerfile" "$X" >/dev/null
done
buildah manifest push -q --all "$MA" "oci-archive:$STAGE/multiarch.oci.tar:$MAREF" >/dev/null

# ---------------------------------------------------------------- checks
log "checking every fixture with skopeo inspect and docker run (empty consumer daemon)"
clean_consumer() {
  local ids
  ids=$(cd_ images -aq | sort -u)
  [ -z "$ids" ] || cd_ rmi -f $ids >/dev/null
}
expect_run() { # image expected-output
  local got
  got=$(cd_ run --rm --pull=never --network none "$1") || die "docker run $1 failed: $got"
  [ "$got" = "$2" ] || die "docker run $1 printed '$got', expected '$2'"
}
load_fixture() { # file (docker load takes gzip as is; zstd needs Docker 23+)
  clean_consumer
  case "$1" in
    *.zst) zstd -dc "$1" | cd_ load -q >/dev/null ;;
    *) cd_ load -q -i "$1" >/dev/null ;;
  esac
}
plain() { # fixture -> path of an uncompressed copy (skopeo 1.9 reads plain tars only)
  local out="$W/plain-$(basename "$1").tar"
  case "$1" in
    *.gz) gzip -dc "$1" >"$out" ;;
    *.zst) zstd -qdc "$1" >"$out" ;;
    *) out=$1 ;;
  esac
  echo "$out"
}
via_skopeo() { # [skopeo flags] SRC docker-archive:$W/conv.tar:REF -> convert, then load
  clean_consumer
  rm -f "$W/conv.tar"
  skopeo copy -q "$@" >/dev/null
  cd_ load -q -i "$W/conv.tar" >/dev/null
}

F="$STAGE/docker20-whiteout.docker.tar.gz"
skopeo inspect "docker-archive:$(plain "$F")" >/dev/null
load_fixture "$F"; expect_run "$D20" "$OUT_D20"

F="$STAGE/multi.docker.tar.gz"
for r in "$D20" ferry-fixture/docker20:latest "$CHILD"; do
  skopeo inspect "docker-archive:$(plain "$F"):$r" >/dev/null
done
load_fixture "$F"
expect_run "$D20" "$OUT_D20"
expect_run ferry-fixture/docker20:latest "$OUT_D20"
expect_run "$CHILD" "$OUT_D20
$OUT_CHILD"

F="$STAGE/containerd-export.oci-docker.tar.gz"
# (its OCI side is walked below, when fixtures.json is written: both images carry
# ref.name "v1", which skopeo 1.9's oci-archive: cannot tell apart)
for r in "$D20" "$CHILD"; do skopeo inspect "docker-archive:$(plain "$F"):$r" >/dev/null; done
load_fixture "$F"
expect_run "$D20" "$OUT_D20"
expect_run "$CHILD" "$OUT_D20
$OUT_CHILD"

F="$STAGE/podman-links.docker.tar.gz"
skopeo inspect "docker-archive:$(plain "$F")" >/dev/null
load_fixture "$F"; expect_run "$PL" "$OUT_PL"

F="$STAGE/podman-links.oci.tar.zst"
skopeo inspect "oci-archive:$(plain "$F")" >/dev/null
via_skopeo "oci-archive:$(plain "$F")" "docker-archive:$W/conv.tar:$PL"
expect_run "$PL" "$OUT_PL"

skopeo inspect "oci:$STAGE/skopeo-gzip.oci:$D20" >/dev/null
via_skopeo "oci:$STAGE/skopeo-gzip.oci:$D20" "docker-archive:$W/conv.tar:$D20"
expect_run "$D20" "$OUT_D20"

skopeo inspect "oci-archive:$STAGE/skopeo-zstd.oci.tar:$D20" >/dev/null
# skopeo 1.9 refuses zstd layers in docker formats: recompress to gzip first
rm -rf "$W/zstd-as-gzip"
skopeo copy -q --dest-compress-format gzip --dest-compress \
  "oci-archive:$STAGE/skopeo-zstd.oci.tar:$D20" "oci:$W/zstd-as-gzip:$D20" >/dev/null
via_skopeo "oci:$W/zstd-as-gzip:$D20" "docker-archive:$W/conv.tar:$D20"
expect_run "$D20" "$OUT_D20"

F="$STAGE/multiarch.oci.tar"
skopeo inspect --raw "oci-archive:$F:$MAREF" >/dev/null
via_skopeo --override-arch amd64 "oci-archive:$F:$MAREF" "docker-archive:$W/conv.tar:$MAREF"
expect_run "$MAREF" "$OUT_MA"
rm -rf "$W/arm64"
skopeo copy -q --override-arch arm64 "oci-archive:$F:$MAREF" "dir:$W/arm64" >/dev/null
arm_cfg=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["config"]["digest"].split(":")[1])' "$W/arm64/manifest.json")
grep -q '"architecture":"arm64"' "$W/arm64/$arm_cfg" || die "multiarch arm64 config is not arm64"
clean_consumer

# ---------------------------------------------------------------- describe
log "writing fixtures.json and README.md"
cat >"$W/spec.json" <<EOF
[
 {"file": "docker20-whiteout.docker.tar.gz", "format": "docker-archive",
  "made_by": "DOCKER_BUILDKIT=0 docker build (Docker 20.10, overlay2 storage) + docker save, gzip -9",
  "images": [{"ref": "$D20", "run_output": "$OUT_D20"}]},
 {"file": "multi.docker.tar.gz", "format": "docker-archive",
  "made_by": "docker save (Docker 20.10) of three tags / two images sharing base layers, gzip -9",
  "images": [{"ref": "$D20", "run_output": "$OUT_D20"},
             {"ref": "ferry-fixture/docker20:latest", "run_output": "$OUT_D20"},
             {"ref": "$CHILD", "run_output": "$OUT_D20\\n$OUT_CHILD"}]},
 {"file": "containerd-export.oci-docker.tar.gz", "format": "oci-archive",
  "made_by": "ctr images import + ctr images export (containerd 1.6) of the multi images: OCI layout plus docker manifest.json (the Docker 25+ docker save layout), gzip -9",
  "images": [{"ref": "docker.io/$D20", "run_output": "$OUT_D20"},
             {"ref": "docker.io/$CHILD", "run_output": "$OUT_D20\\n$OUT_CHILD"}]},
 {"file": "podman-links.docker.tar.gz", "format": "docker-archive",
  "made_by": "podman build --isolation chroot (Podman 4.3) + podman save --format docker-archive, gzip -9",
  "images": [{"ref": "$PL", "run_output": "$OUT_PL"}]},
 {"file": "podman-links.oci.tar.zst", "format": "oci-archive",
  "made_by": "podman save --format oci-archive (Podman 4.3) of the same image, zstd -19",
  "images": [{"ref": "$PL", "run_output": "$OUT_PL"}]},
 {"file": "skopeo-gzip.oci", "format": "oci-dir",
  "made_by": "skopeo copy --dest-compress-format gzip --dest-compress docker-archive:docker20 oci:DIR:REF (Skopeo 1.9)",
  "images": [{"ref": "$D20", "run_output": "$OUT_D20"}]},
 {"file": "skopeo-zstd.oci.tar", "format": "oci-archive",
  "made_by": "skopeo copy --dest-compress-format zstd --dest-compress docker-archive:docker20 oci-archive:FILE:REF (Skopeo 1.9)",
  "images": [{"ref": "$D20", "run_output": "$OUT_D20"}]},
 {"file": "multiarch.oci.tar", "format": "oci-archive",
  "made_by": "buildah build --arch amd64 / arm64 --manifest + buildah manifest push --all oci-archive:FILE:REF (Buildah 1.28); FROM scratch + COPY only",
  "images": [{"ref": "$MAREF", "run_output": "$OUT_MA", "run_output_platform": "linux/amd64"}]}
]
EOF
python3 - "$STAGE" "$W/spec.json" <<'PY'
import gzip, io, json, os, subprocess, sys, tarfile

stage, spec_path = sys.argv[1], sys.argv[2]
spec = json.load(open(spec_path))

def magic_kind(b):
    if b[:2] == b"\x1f\x8b": return "gzip"
    if b[:4] == b"\x28\xb5\x2f\xfd": return "zstd"
    if b[:6] == b"\xfd7zXZ\x00": return "xz"
    if b[:3] == b"BZh": return "bzip2"
    return "none"

def decompress(data):
    k = magic_kind(data)
    if k == "gzip": return gzip.decompress(data)
    if k == "zstd": return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    if k != "none": raise SystemExit("unexpected compression " + k)
    return data

def tar_headers(raw):
    """Raw walk over a tar stream's headers: (typeflag, name, linkname)."""
    off = 0
    while off + 512 <= len(raw):
        h = raw[off:off + 512]
        if h == b"\0" * 512: break
        sz = h[124:136]
        size = int.from_bytes(sz[1:], "big") if sz[0] & 0x80 else int(sz.strip(b"\0 ") or b"0", 8)
        yield chr(h[156]) if h[156] else "0", h[0:100].rstrip(b"\0").decode("utf-8", "replace"), h[157:257].rstrip(b"\0").decode("utf-8", "replace")
        off += 512 + (size + 511) // 512 * 512

def layer_features(raw):
    f = set()
    t = tarfile.open(fileobj=io.BytesIO(raw))
    for m in t.getmembers():
        base = os.path.basename(m.name.rstrip("/"))
        if base == ".wh..wh..opq": f.add("opaque-whiteout")
        elif base.startswith(".wh."): f.add("whiteout")
        if m.islnk(): f.add("hardlink")
        if m.issym():
            f.add("symlink-absolute" if m.linkname.startswith("/") else "symlink-relative")
        if len(m.name.encode()) > 100: f.add("path>100")
        if len(m.linkname.encode()) > 100: f.add("linkname>100")
    for typ, _, _ in tar_headers(raw):
        if typ == "x": f.add("pax-header")
        if typ == "g": f.add("pax-global-header")
        if typ in "LK": f.add("gnu-longname")
    return f

class Source:
    """Files of a fixture: a tar (maybe compressed) or a directory."""
    def __init__(self, path):
        self.path = path
        if os.path.isdir(path):
            self.outer = "none"; self.files = None
        else:
            data = open(path, "rb").read()
            self.outer = magic_kind(data)
            t = tarfile.open(fileobj=io.BytesIO(decompress(data)))
            self.files = {}
            members = {m.name.lstrip("./") if m.name.startswith("./") else m.name: m for m in t.getmembers()}
            self.t, self.members = t, members
    def read(self, name):
        if self.files is None:
            p = os.path.join(self.path, name)
            return open(p, "rb").read() if os.path.exists(p) else None
        m = self.members.get(name)
        if m is None: return None
        while m.issym() or m.islnk():   # docker save links duplicate layers
            tgt = m.linkname if m.islnk() else os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
            name, m = tgt, self.members.get(tgt)
            if m is None: return None
        return self.t.extractfile(m).read()
    def names(self):
        if self.files is None:
            out = []
            for d, _, fs in os.walk(self.path):
                out += [os.path.relpath(os.path.join(d, f), self.path) for f in fs]
            return out
        return list(self.members)

def blob(src, digest):
    return src.read("blobs/" + digest.replace(":", "/"))

def platform_of(cfg):
    p = cfg.get("os", "?") + "/" + cfg.get("architecture", "?")
    return p + ("/" + cfg["variant"] if cfg.get("variant") else "")

results = []
for fx in spec:
    src = Source(os.path.join(stage, fx["file"]))
    refs, platforms, layer_comp, feats, layouts = set(), set(), set(), set(), []
    mj = src.read("manifest.json")
    ij = src.read("index.json")
    seen_layers = set()
    def scan_layer(data, key):
        if key in seen_layers: return
        seen_layers.add(key)
        k = magic_kind(data); layer_comp.add(k)
        feats.update(layer_features(decompress(data)))
    if mj is not None:
        entries = json.loads(mj)
        paths = [l for e in entries for l in e["Layers"]]
        if all(p.startswith("blobs/sha256/") for p in paths):
            kind = "Config/Layers at blobs/sha256/<hex>"
        elif all(p.endswith("/layer.tar") for p in paths):
            kind = "legacy <id>/layer.tar dirs"
        else:
            kind = "flat <hex>.tar files"
        layouts.append("manifest.json (%s)" % kind)
        for e in entries:
            refs.update(e.get("RepoTags") or [])
            platforms.add(platform_of(json.loads(src.read(e["Config"]))))
            for l in e["Layers"]:
                scan_layer(src.read(l), l)
    if ij is not None:
        layouts.append("oci-layout")
        def walk(desc):
            mt = desc.get("mediaType", "")
            body = json.loads(blob(src, desc["digest"]))
            if "manifests" in body:
                for d in body["manifests"]:
                    walk(d)
            else:
                cfg = json.loads(blob(src, body["config"]["digest"]))
                platforms.add(platform_of(cfg))
                for l in body["layers"]:
                    scan_layer(blob(src, l["digest"]), l["digest"])
        for d in json.loads(ij)["manifests"]:
            a = d.get("annotations", {})
            if "io.containerd.image.name" in a: refs.add(a["io.containerd.image.name"])
            elif "org.opencontainers.image.ref.name" in a: refs.add(a["org.opencontainers.image.ref.name"])
            walk(d)
    for im in fx["images"]:
        if im["ref"] not in refs:
            raise SystemExit(f"{fx['file']}: expected ref {im['ref']} not among {sorted(refs)}")
    fx["outer_compression"] = src.outer
    fx["layout"] = " + ".join(layouts)
    fx["layer_compression"] = sorted(layer_comp)
    fx["platforms"] = sorted(platforms)
    fx["layer_features"] = sorted(feats)
    fx["has_manifest_json"] = mj is not None
    fx["has_oci_layout"] = ij is not None
    fx["docker20_loadable"] = mj is not None and layer_comp <= {"none", "gzip"} and src.outer in ("none", "gzip")
    if os.path.isdir(src.path):
        fx["size_bytes"] = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(src.path) for f in fs)
    else:
        fx["size_bytes"] = os.path.getsize(src.path)
    for im in fx["images"]:
        im.setdefault("run_output_platform", "linux/amd64")
        im["run_command"] = "docker run --rm --pull=never --network none " + im["ref"]
    results.append(fx)

doc = {
  "about": "Image fixtures made by scripts/make-fixtures.sh from real tools. run_output is what "
           "`docker run --rm --pull=never --network none REF` prints (stdout, without the final newline) "
           "once the image is loaded; every output was checked when the fixtures were made.",
  "fixtures": results,
}
with open(os.path.join(stage, "fixtures.json"), "w") as f:
    json.dump(doc, f, indent=2); f.write("\n")

lines = ["# Image fixtures", "",
  "Made by `scripts/make-fixtures.sh` (rerun it to remake them; bytes change between runs, contents and",
  "outputs do not) from real tools on Debian 12: Docker Engine 20.10, containerd 1.6, Podman 4.3,",
  "Buildah 1.28, Skopeo 1.9. `fixtures.json` says the same for programs. Every runnable image was",
  "checked when made: `docker load` (or a skopeo conversion) into an empty daemon, then",
  "`docker run --rm --pull=never --network none REF`.", "",
  "The base image is a busybox root filesystem (busybox-static's /bin/busybox plus applet links)",
  "imported with `docker import` / `podman import`. Outer compression is detected by magic bytes;",
  "layer compression is that of the layer blobs inside.", "",
  "| file | format / layout | outer | layers | images (ref -> `docker run` prints) | platforms | layer features | how it was made |",
  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
for fx in results:
    ims = "<br>".join("`%s` -> `%s`" % (i["ref"], i["run_output"].replace("\n", "⏎")) for i in fx["images"])
    lines.append("| `%s` (%d KiB) | %s: %s | %s | %s | %s | %s | %s | %s |" % (
        fx["file"], (fx["size_bytes"] + 1023) // 1024, fx["format"], fx["layout"], fx["outer_compression"],
        ", ".join(fx["layer_compression"]), ims, ", ".join(fx["platforms"]),
        ", ".join(fx["layer_features"]), fx["made_by"]))
lines += ["",
  "Notes:",
  "- `multiarch.oci.tar` is an OCI index of linux/amd64 and linux/arm64; only the amd64 image is",
  "  runnable here (it prints `ferry fixture multiarch: amd64`); the arm64 one holds only /arch.txt",
  "  (`ferry fixture multiarch: arm64`).",
  "- `multi.docker.tar.gz` holds `ferry-fixture/docker20:v1` and `ferry-fixture/docker20:latest` as one",
  "  manifest.json entry with two RepoTags, plus the child image; shared layers appear once.",
  "- `containerd-export.oci-docker.tar.gz` is the Docker 25+ `docker save` layout (oci-layout, index.json",
  "  with `io.containerd.image.name` / `org.opencontainers.image.ref.name` annotations, blobs/sha256/<hex>,",
  "  and a manifest.json whose Config/Layers point into blobs/). No Docker 25+ engine is packaged for this",
  "  machine (Debian 12 has docker.io 20.10 only; no moby-engine/docker-ce), so it was written by containerd",
  "  1.6's exporter (`ctr images export`), the same exporter family Docker 25+ uses; Docker 20.10 loads it.",
  "- Zstd layers (`skopeo-zstd.oci.tar`) and a zstd outer stream (`podman-links.oci.tar.zst`) need",
  "  conversion before Docker 20.10 can load them; `docker20_loadable` in fixtures.json says which files",
  "  `docker load` takes as they are.",
  "- The base layer's tar was written by GNU tar (`--format=gnu`: 'L'/'K' long-name records for a",
  "  path and a symlink target over 100 bytes); Docker and Podman keep imported tar streams byte for",
  "  byte, so every fixture built on it carries them. Layers that Docker/Podman write themselves",
  "  (Go archive/tar) use PAX headers for long names instead (`podman-links`).",
  "- In `podman-links`, /links/hard2 is a hard link made in a later layer to a file of an earlier",
  "  layer; Podman's layer diff stores it as a plain copy (only same-layer hard links become tar",
  "  hard-link entries).",
  "- Docker 20.10 writes whiteouts as `.wh.NAME` and, with the overlay2 storage driver, opaque",
  "  directories as `.wh..wh..opq` (the vfs driver writes one whiteout per removed entry instead).",
  ""]
with open(os.path.join(stage, "README.md"), "w") as f:
    f.write("\n".join(lines))
for fx in results:
    print("%-40s %8d  %s" % (fx["file"], fx["size_bytes"], ", ".join(fx["layer_features"])))
PY

# ---------------------------------------------------------------- install
total=$(du -sb "$STAGE" | cut -f1)
[ "$total" -lt $((10 * 1024 * 1024)) ] || die "fixtures take $total bytes (> 10 MiB)"
mkdir -p "$OUT"
# Replace only what this script makes; anything else under fixtures/ is left alone.
for f in docker20-whiteout.docker.tar.gz multi.docker.tar.gz containerd-export.oci-docker.tar.gz \
         podman-links.docker.tar.gz podman-links.oci.tar.zst skopeo-gzip.oci skopeo-zstd.oci.tar \
         multiarch.oci.tar fixtures.json README.md; do
  rm -rf "${OUT:?}/$f"
  cp -a "$STAGE/$f" "$OUT/$f"
done
log "done: $(du -sh "$OUT" | cut -f1) in $OUT"
