#!/usr/bin/env bash
# Flatten benchmark: on a multi-layer image of >= 1 GB built here (files from
# /usr/share and /usr/lib, random data; files deleted and overwritten in later
# layers), saved with `docker save`:
#   ferry flatten docker-archive:big.tar docker-archive:flat.tar
# vs the Docker way of getting one layer:
#   docker create IMG + docker export CID -o export.tar
# Prints wall times (median of RUNS=3 alternating runs), CPU, peak RSS
# (/usr/bin/time -v), the ratio (ferry / docker), the sizes and how many bytes
# ferry wrote to disk (temporary files + output).
#
#   bench/flatten.sh                 # builds target/release/ferry if missing
#   bench/flatten.sh --small         # a ~270 MB image: smoke run, no size check
#   COMPARE=1 bench/flatten.sh       # also compare both trees entry by entry (python3)
#   FERRY=path/to/ferry bench/flatten.sh
#   DOCKERD_STORAGE_DRIVER=vfs bench/flatten.sh   (default overlay2)
#
# Needs root, docker.io (20.10), busybox-static, GNU time; ~10 GB free in /tmp.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKER=/usr/bin/docker
FERRY=${FERRY:-$ROOT/target/release/ferry}
export DOCKERD_STORAGE_DRIVER=${DOCKERD_STORAGE_DRIVER:-overlay2}
IMG=ferry-bench/flatten:1
SMALL=0
[ "${1:-}" = "--small" ] && SMALL=1

if [ ! -x "$FERRY" ]; then
  (cd "$ROOT" && cargo build --release --bin ferry)
fi
for c in "$DOCKER" /usr/sbin/dockerd /bin/busybox /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "missing $c: run scripts/install-deps.sh" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/fflat.XXXXXX)
D=$WORK/d
cleanup() {
  bash "$ROOT/scripts/dockerd.sh" stop "$D" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

DH=$(bash "$ROOT/scripts/dockerd.sh" start "$D")
dk() { DOCKER_HOST=$DH "$DOCKER" "$@"; }

echo "== building $IMG (storage driver $DOCKERD_STORAGE_DRIVER)" >&2
mkdir -p "$WORK/rootfs/bin" "$WORK/rootfs/tmp" "$WORK/rootfs/etc" "$WORK/ctx"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for a in sh cat head cp ls du rm mv find ln mkdir; do ln -s busybox "$WORK/rootfs/bin/$a"; done
tar --numeric-owner --owner=0 --group=0 -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" .
dk import "$WORK/rootfs.tar" ferry-bench/base:1 >/dev/null
if [ $SMALL = 1 ]; then
  mkdir -p "$WORK/ctx/share"
  cp -a /usr/share/doc "$WORK/ctx/share/doc"
  cp -a /usr/lib/x86_64-linux-gnu/perl-base "$WORK/ctx/lib" 2>/dev/null || cp -a /usr/share/perl5 "$WORK/ctx/lib"
  RANDOM_BYTES=10000000
else
  cp -a /usr/share "$WORK/ctx/share"
  cp -a /usr/lib/x86_64-linux-gnu "$WORK/ctx/lib"
  RANDOM_BYTES=200000000
fi
cat >"$WORK/ctx/Dockerfile" <<EOF
FROM ferry-bench/base:1
COPY share /opt/share
COPY lib /opt/lib
RUN head -c $RANDOM_BYTES /dev/urandom > /opt/random1 && head -c $RANDOM_BYTES /dev/urandom > /opt/random2
# deletions (whiteouts, some of whole directories) and overwrites
RUN rm -rf /opt/share/locale /opt/share/man /opt/lib/gconv /opt/random2 \\
 && head -c $((RANDOM_BYTES / 2)) /dev/urandom > /opt/random1 \\
 && mkdir -p /opt/share/locale && echo replaced > /opt/share/locale/README
RUN head -c $RANDOM_BYTES /dev/urandom > /opt/random3 && cp -a /opt/share/doc /opt/doc-copy \\
 && ln /opt/random3 /opt/random3.hardlink && ln -s ../random3 /opt/share/random3.symlink
RUN rm -rf /opt/doc-copy/[a-l]* && find /opt/lib -name '*.a' | while read -r f; do rm -f "\$f"; done
CMD ["du", "-s", "/opt"]
EOF
if ! DOCKER_BUILDKIT=0 dk build -t "$IMG" "$WORK/ctx" >"$WORK/build.log" 2>&1; then
  cat "$WORK/build.log" >&2
  exit 1
fi
rm -rf "$WORK/ctx" "$WORK/rootfs" "$WORK/rootfs.tar"
SIZE=$(dk image inspect -f '{{.Size}}' "$IMG")
LAYERS=$(dk image inspect -f '{{len .RootFS.Layers}}' "$IMG")
if [ $SMALL = 0 ] && [ "$SIZE" -lt 1000000000 ]; then
  echo "image is only $SIZE bytes; need >= 1 GB" >&2
  exit 1
fi
dk save -o "$WORK/big.tar" "$IMG"
SAVED=$(stat -c %s "$WORK/big.tar")
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

field() { # file "label" -> value of a /usr/bin/time -v line
  awk -F': ' -v k="$2" 'index($1, k) {print $2}' "$1" | head -1
}
wall() { # "h:mm:ss" or "m:ss.xx" -> seconds
  awk -F: '{ if (NF == 3) print $1*3600 + $2*60 + $3; else print $1*60 + $2 }' <<<"$1"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
max() { sort -g | tail -1; }
cpu() { # time file -> user + system seconds
  awk -v u="$(field "$1" "User time")" -v s="$(field "$1" "System time")" 'BEGIN { print u + s }'
}

cat >"$WORK/export.sh" <<EOF
set -e
cid=\$(DOCKER_HOST=$DH $DOCKER create --pull=never --network none $IMG)
DOCKER_HOST=$DH $DOCKER export -o $WORK/export.tar "\$cid"
DOCKER_HOST=$DH $DOCKER rm "\$cid" >/dev/null
EOF
cat "$WORK/big.tar" >/dev/null   # page cache warm for ferry, as the image store is for docker
dk rm "$(dk create --pull=never --network none "$IMG")" >/dev/null   # and the daemon warm

# Alternate the two, RUNS times each (the machine may be shared: medians).
RUNS=${RUNS:-3}
for i in $(seq 1 "$RUNS"); do
  echo "== run $i/$RUNS: ferry flatten" >&2
  /usr/bin/time -v -o "$WORK/ferry.$i.time" "$FERRY" -q flatten "docker-archive:$WORK/big.tar" "docker-archive:$WORK/flat.tar"
  FLAT=$(stat -c %s "$WORK/flat.tar")
  rm -f "$WORK/flat.tar"
  echo "== run $i/$RUNS: docker create + docker export" >&2
  /usr/bin/time -v -o "$WORK/docker.$i.time" bash "$WORK/export.sh"
  EXPORT=$(stat -c %s "$WORK/export.tar")
  rm -f "$WORK/export.tar"
done
each() { # ferry|docker "label" -> one value per run
  for i in $(seq 1 "$RUNS"); do field "$WORK/$1.$i.time" "$2"; done
}
ferry_all=$(for i in $(seq 1 "$RUNS"); do wall "$(field "$WORK/ferry.$i.time" "Elapsed")"; done)
docker_all=$(for i in $(seq 1 "$RUNS"); do wall "$(field "$WORK/docker.$i.time" "Elapsed")"; done)
ferry_s=$(median <<<"$ferry_all")
docker_s=$(median <<<"$docker_all")
ferry_cpu=$(for i in $(seq 1 "$RUNS"); do cpu "$WORK/ferry.$i.time"; done | median)
docker_cpu=$(for i in $(seq 1 "$RUNS"); do cpu "$WORK/docker.$i.time"; done | median)
ferry_rss=$(each ferry "Maximum resident" | max)
docker_rss=$(each docker "Maximum resident" | max)
# What the process wrote to storage (rusage, 512-byte units): ferry's
# temporary files plus its output.
ferry_written=$(( $(each ferry "File system outputs" | max) * 512 ))
dockerd_hwm=$(awk '/VmHWM/ {print $2}' /proc/"$(cat "$D/docker.pid")"/status)

if [ "${COMPARE:-0}" = 1 ]; then
  # Both trees entry by entry (path, type, mode, owner, size, content, link
  # target, hard-link groups), ignoring what Docker adds to every container.
  echo "== comparing ferry's flattened layer with docker export" >&2
  "$FERRY" -q flatten "docker-archive:$WORK/big.tar" "docker-archive:$WORK/flat.tar"
  bash "$WORK/export.sh"
  python3 - "$WORK/flat.tar" "$WORK/export.tar" <<'PY'
import hashlib, json, sys, tarfile
IGNORE = {".dockerenv", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab"}
def norm(p): return "/".join(c for c in p.split("/") if c not in ("", "."))
def tree(tf, members=None):
    nodes, links = {}, []
    for m in members if members is not None else tf:
        p = norm(m.name)
        if not p or p in IGNORE or p.split("/")[0] in ("dev", "proc", "sys"): continue
        if m.islnk(): links.append((p, norm(m.linkname))); continue
        h = hashlib.sha256(tf.extractfile(m).read()).hexdigest() if m.isreg() else ""
        nodes[p] = (m.type, m.mode & 0o7777, m.uid, m.gid, m.size if m.isreg() else 0, h, m.linkname if m.issym() else "")
    groups = {}
    for p, t in links:
        nodes[p] = nodes[t]; groups.setdefault(t, {t}).add(p)
    return nodes, sorted(sorted(g) for g in groups.values())
outer = tarfile.open(sys.argv[1])
layer = json.load(outer.extractfile("manifest.json"))[0]["Layers"][0]
ferry = tree(tarfile.open(fileobj=outer.extractfile(layer)))
docker = tree(tarfile.open(sys.argv[2]))
diff = [p for p in sorted(set(ferry[0]) | set(docker[0])) if ferry[0].get(p) != docker[0].get(p)]
for p in diff[:20]: print("differs:", p, ferry[0].get(p), docker[0].get(p), file=sys.stderr)
if diff or ferry[1] != docker[1]:
    sys.exit(f"ferry's flattened layer and docker export differ: {len(diff)} path(s); hard-link groups equal: {ferry[1] == docker[1]}")
print(f"compare: ferry's flattened layer equals docker export: {len(ferry[0])} paths, {len(ferry[1])} hard-link group(s)")
PY
  rm -f "$WORK/flat.tar" "$WORK/export.tar"
fi

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
join() { tr '\n' ' ' | sed 's/ $//'; }
cat <<EOF
image:   $IMG, $SIZE bytes in Docker, $LAYERS layers; docker save tar $SAVED bytes (storage driver $DOCKERD_STORAGE_DRIVER)
output:  ferry flat.tar $FLAT bytes; docker export tar $EXPORT bytes
ferry flatten docker-archive:big.tar docker-archive:flat.tar:
         median $ferry_s s (runs: $(join <<<"$ferry_all")), CPU $ferry_cpu s, peak RSS $(mib "$ferry_rss"), wrote $ferry_written bytes (temporary files + output)
docker create + docker export -o export.tar:
         median $docker_s s (runs: $(join <<<"$docker_all")), CPU $docker_cpu s (client), peak RSS $(mib "$docker_rss") (client; dockerd VmHWM $(mib "$dockerd_hwm"))
ratio (ferry / docker, medians): $(ratio "$ferry_s" "$docker_s")
machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load average before the runs $LOAD; $(dk version -f 'Docker {{.Server.Version}} (API {{.Server.APIVersion}})'); ferry $("$FERRY" --version | awk '{print $2}')
EOF
