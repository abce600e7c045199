#!/usr/bin/env bash
# Before/after check of one change: save, verify and load of the same
# docker-archive by two ferry binaries, interleaved, ROUNDS rounds; prints wall
# seconds and peak RSS (KiB) per command and the load average.
#   BASE=/path/to/old/ferry HEAD=/path/to/new/ferry IMAGE=big.tar bash bench/regress.sh
# (docs/PERFORMANCE.md "Before/after checks" says how the image was made.)
set -euo pipefail
: "${BASE:?old ferry binary}" "${HEAD:?new ferry binary}" "${IMAGE:?a docker-archive}"
work=${WORK:-$(mktemp -d /var/tmp/ferry-regress.XXXXXX)}
IMAGE=$(realpath "$IMAGE")
cd "$work"
ROUNDS=${ROUNDS:-5}
declare -A bin=([base]=$BASE [head]=$HEAD)
rm -rf ref && ${bin[base]} save docker-archive:$IMAGE -o ref -n b -q
for r in $(seq 1 "$ROUNDS"); do
  for who in base head; do
    f=${bin[$who]}
    rm -rf out oci; sync
    s=$( { /usr/bin/time -f "%e %M" $f save docker-archive:$IMAGE -o out -n b -q; } 2>&1 | tail -n 1)
    v=$( { /usr/bin/time -f "%e %M" $f verify ref/b.sha256 -q; } 2>&1 | tail -n 1)
    l=$( { /usr/bin/time -f "%e %M" $f load ref --allow-unsigned --into oci:oci -q; } 2>&1 | tail -n 1)
    echo "round $r $who save $s verify $v load $l load_avg $(cut -d' ' -f1 /proc/loadavg)"
  done
done
