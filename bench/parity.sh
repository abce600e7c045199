#!/usr/bin/env bash
# Parity benchmark (issue 20): on the bench image (bench/make-image.sh), in
# RUNS interleaved rounds,
#   ferry save docker-archive:IMAGE -o DIR --split SPLIT              (no parity)
#   ferry save docker-archive:IMAGE -o DIR --split SPLIT --parity 2
#   ferry verify DIR  on both (the parity bundle hashes its parts first)
#   ferry verify DIR  on the parity bundle with one data part deleted (rebuilt on the fly)
# Prints min / median seconds, the ratios (parity / no parity) and peak RSS (/usr/bin/time).
#
#   bench/make-image.sh /var/tmp/fb 1024 /var/tmp/fb/image.tar     # once: the 1.1 GiB bench image
#   bench/parity.sh /var/tmp/fb/image.tar                          # SPLIT=48M RUNS=5; builds target/release/ferry if missing
#   FERRY=path/to/ferry SPLIT=64M RUNS=7 bench/parity.sh IMAGE.tar
#
# Needs GNU time; free disk for two bundles in /var/tmp.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FERRY=${FERRY:-$ROOT/target/release/ferry}
IMAGE=${1:?usage: bench/parity.sh IMAGE.tar}
SPLIT=${SPLIT:-48M}
RUNS=${RUNS:-5}
if [ ! -x "$FERRY" ]; then
  (cd "$ROOT" && cargo build --release --bin ferry)
fi
W=$(mktemp -d /var/tmp/fparityXXXX)
trap 'rm -rf "$W"' EXIT

# run LABEL CMD...: time one command, append "seconds peak_kib" to $W/LABEL.
run() {
  local label=$1
  shift
  /usr/bin/time -f "%e %M" -o "$W/t" "$@" >/dev/null 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  cat "$W/t" >>"$W/$label"
}

# stats LABEL: "min median max_rss_MiB" over the runs.
stats() {
  local n
  n=$(wc -l <"$W/$1")
  sort -n "$W/$1" | awk -v n="$n" '{ s[NR]=$1; if ($2>m) m=$2 } END { med = (n%2) ? s[(n+1)/2] : (s[n/2]+s[n/2+1])/2; printf "%.2f %.2f %.0f\n", s[1], med, m/1024 }'
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$RUNS"); do
  rm -rf "$W/plain" "$W/parity"
  run save "$FERRY" save "docker-archive:$IMAGE" -o "$W/plain" -n b --split "$SPLIT" -q
  run save_parity "$FERRY" save "docker-archive:$IMAGE" -o "$W/parity" -n b --split "$SPLIT" --parity 2 -q
  run verify "$FERRY" verify "$W/plain" -q
  run verify_parity "$FERRY" verify "$W/parity" -q
  mv "$W/parity/b.tar.zst.003" "$W/held"
  run verify_rebuild "$FERRY" verify "$W/parity" -q
  mv "$W/held" "$W/parity/b.tar.zst.003"
done
echo "load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"

data=$(ls "$W/parity" | grep -c '\.tar\.zst\.[0-9]*$')
artifact=$(du -cb "$W/plain"/b.tar.zst.* | tail -1 | cut -f1)
parity=$(du -cb "$W/parity"/b.parity.* | tail -1 | cut -f1)
echo "image $(du -b "$IMAGE" | cut -f1) bytes; artifact $artifact bytes in $data data parts of $SPLIT; parity parts $parity bytes; $RUNS runs"
printf '%-34s %8s %8s %10s\n' "" "min s" "median s" "peak RSS MiB"
for l in save save_parity verify verify_parity verify_rebuild; do
  read -r min med rss < <(stats "$l")
  printf '%-34s %8s %8s %10s\n' "$l" "$min" "$med" "$rss"
done
ratio() { echo "scale=3; $1 / $2" | bc; }
read -r smin smed _ < <(stats save)
read -r pmin pmed _ < <(stats save_parity)
echo "save --parity 2 / save: min $(ratio "$pmin" "$smin"), median $(ratio "$pmed" "$smed") (goal <= 1.10)"
read -r vmin vmed _ < <(stats verify)
read -r qmin qmed _ < <(stats verify_parity)
echo "verify parity bundle / verify: min $(ratio "$qmin" "$vmin"), median $(ratio "$qmed" "$vmed")"
