#!/usr/bin/env bash
# Registry pull benchmark (issue 16), on the bench image (bench/make-image.sh, >= 1 GB):
#   ferry save docker://HOST/bench/big:1 -o DIR     vs     skopeo copy docker://HOST/bench/big:1 oci-archive:F
# against a local distribution 2.8 (docker-registry) with TLS and basic auth on
# 127.0.0.1, the image pushed there by skopeo first. RUNS (default 3)
# interleaved rounds; prints min/median wall seconds of each, the ratio
# ferry/skopeo (goal <= 0.75), ferry's peak RSS (KiB) and the load average.
#
#   bench/registry-pull.sh [SIZE_MB]      # default 1100; image cached in $CACHE
#   FERRY=path/to/ferry JOBS=4 RUNS=5 FERRY_ARGS="--compress none" bench/registry-pull.sh
#
# Needs docker.io (to build the image once), docker-registry, skopeo, openssl,
# htpasswd (apache2-utils), GNU time; ~4x SIZE_MB free in /var/tmp.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FERRY=${FERRY:-$ROOT/target/release/ferry}
SIZE=${1:-1100}
CACHE=${CACHE:-/var/tmp/ferry-regpull-bench}
RUNS=${RUNS:-3}
JOBS=${JOBS:-4}

for c in docker-registry skopeo openssl htpasswd /usr/bin/time; do
  command -v "$c" >/dev/null || { echo "missing $c: run scripts/install-deps.sh" >&2; exit 1; }
done
if [ ! -x "$FERRY" ]; then
  (cd "$ROOT" && cargo build --release --locked --bin ferry)
fi
mkdir -p "$CACHE"
IMG=$CACHE/big-${SIZE}m.tar
[ -s "$IMG" ] || bash "$ROOT/bench/make-image.sh" "$CACHE/build" "$SIZE" "$IMG"

WORK=$(mktemp -d /var/tmp/frpull.XXXXXX)
R=$WORK/reg
REG_PID=
cleanup() {
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- the registry (docs: ../shared/TESTBED.md "Registry") ---------------------
mkdir -p "$R/data" "$R/certs"
(
  cd "$R"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3 -subj /CN=bench-ca 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout key.pem -out srv.csr -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out cert.pem -days 3 -extfile ext.cnf 2>/dev/null
  cp ca.crt certs/ca.crt
  htpasswd -Bbn alice s3cret >htpasswd
)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$R/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $R/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT, tls: {certificate: $R/cert.pem, key: $R/key.pem}}
auth: {htpasswd: {realm: bench, path: $R/htpasswd}}
EOF
docker-registry serve "$R/config.yml" 2>"$R/log" &
REG_PID=$!
for _ in $(seq 50); do
  curl -s -o /dev/null --cacert "$R/ca.crt" "https://127.0.0.1:$PORT/v2/" && break
  sleep 0.2
done
HOST=127.0.0.1:$PORT
AUTH=$(printf alice:s3cret | base64)
printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$HOST" "$AUTH" >"$R/auth.json"
echo "== pushing $IMG to $HOST/bench/big:1 (skopeo)" >&2
skopeo copy -q --dest-cert-dir "$R/certs" --dest-creds alice:s3cret "docker-archive:$IMG" "docker://$HOST/bench/big:1" >&2
STORED=$(du -sb "$R/data" | cut -f1)

T=$WORK/time.txt
ferry_times=() skopeo_times=() rss=()
run_ferry() {
  rm -rf "$WORK/out"
  # shellcheck disable=SC2086  # FERRY_ARGS: extra save flags, e.g. "--compress none"
  /usr/bin/time -f "%e %M" -o "$T" "$FERRY" -q save "docker://$HOST/bench/big:1" -o "$WORK/out" -n big -j "$JOBS" ${FERRY_ARGS:-} \
    --ca-cert "$R/ca.crt" --registry-auth "$R/auth.json"
  ferry_times+=("$(cut -d' ' -f1 "$T")")
  rss+=("$(cut -d' ' -f2 "$T")")
}
run_skopeo() {
  rm -f "$WORK/big.oci.tar"
  /usr/bin/time -f "%e %M" -o "$T" skopeo copy -q --src-cert-dir "$R/certs" --src-creds alice:s3cret \
    "docker://$HOST/bench/big:1" "oci-archive:$WORK/big.oci.tar"
  skopeo_times+=("$(cut -d' ' -f1 "$T")")
}
# Warm the registry's page cache for both.
run_skopeo
skopeo_times=()
for i in $(seq "$RUNS"); do
  if [ $((i % 2)) = 1 ]; then run_ferry; run_skopeo; else run_skopeo; run_ferry; fi
  echo "round $i: ferry ${ferry_times[-1]} s (peak RSS ${rss[-1]} KiB), skopeo ${skopeo_times[-1]} s" >&2
done
stats() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "min %.2f median %.2f", a[1], a[int((NR+1)/2)]}'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
fm=$(median "${ferry_times[@]}") sm=$(median "${skopeo_times[@]}")
echo "image: $IMG ($(du -m "$IMG" | cut -f1) MiB docker-archive; $((STORED / 1048576)) MiB in the registry)"
echo "ferry save docker:// -o DIR (-j $JOBS): $(stats "${ferry_times[@]}") s; peak RSS max $(printf '%s\n' "${rss[@]}" | sort -n | tail -1) KiB"
echo "skopeo copy docker:// oci-archive:    $(stats "${skopeo_times[@]}") s"
echo "ratio (median ferry / median skopeo): $(awk -v a="$fm" -v b="$sm" 'BEGIN { printf "%.2f", a / b }')"
echo "bundle: $(du -m "$WORK/out" | cut -f1) MiB; oci-archive: $(du -m "$WORK/big.oci.tar" | cut -f1) MiB"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
