#!/usr/bin/env bash
# ferry's performance harness: ferry against the reference tools, same input,
# one run. See docs/PERFORMANCE.md.
#
#   bash bench/run.sh                 full run: ~1 GiB image (+ 4 GiB for peak RSS), 5 runs each
#   bash bench/run.sh --write-doc     ... and update docs/PERFORMANCE.md
#   bash bench/run.sh --small         CI mode: tens of MB, a couple of minutes
#
# Options: --runs N, --size MIB, --big MIB (0 skips the big input), --workdir DIR
# (default /var/tmp/ferry-bench, where images are cached between runs; --small
# uses a new /var/tmp/ferry-bench-small.XXXXXX),
# --rebuild (rebuild cached images), --keep (keep outputs; --small removes its
# workdir otherwise), --ferry PATH (skip `cargo build --release`), --priority
# (as root, on a machine shared with other work: run in a session of its own
# whose scheduler autogroup gets nice -10, and the measured commands under
# `nice -n -10`, so that ferry and the references get about the cores they
# would have on a quiet machine; the report says so).
# Exit status: non-zero only when something is broken (a command failed, a
# loaded layout is missing); missed ratios are reported, not failures.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

small=0 write_doc=0 runs= size= big= work= rebuild=0 keep=0 ferry= priority=0
args=("$@")
while [ $# -gt 0 ]; do
  case "$1" in
    --small) small=1 ;;
    --write-doc) write_doc=1 ;;
    --runs) runs=$2; shift ;;
    --size) size=$2; shift ;;
    --big) big=$2; shift ;;
    --workdir) work=$2; shift ;;
    --rebuild) rebuild=1 ;;
    --keep) keep=1 ;;
    --ferry) ferry=$2; shift ;;
    --priority) priority=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
if [ $priority = 1 ] && [ -z "${FERRY_BENCH_SESSION:-}" ] && [ "$(id -u)" -eq 0 ] && command -v setsid >/dev/null; then
  # Nice values only order threads within one autogroup (one session): raise a new session's.
  FERRY_BENCH_SESSION=1 exec setsid --wait bash "$0" "${args[@]}"
fi
if [ $small = 1 ]; then
  # A private directory: CI runs may overlap, and small images are quick to make.
  size=${size:-24} big=${big:-96} runs=${runs:-3}
  if [ -z "$work" ]; then work=$(mktemp -d /var/tmp/ferry-bench-small.XXXXXX); fi
else
  # 5 runs: on a shared VM single runs move by 10-20 %; the min of 5 is steadier.
  size=${size:-1024} big=${big:-4096} work=${work:-/var/tmp/ferry-bench} runs=${runs:-5}
fi
work=$(realpath -m "$work")
mkdir -p "$work"
if [ $small = 1 ] && [ $keep = 0 ]; then trap 'rm -rf "$work"' EXIT; fi
# One run per work directory at a time (cached images, outputs, results).
exec 9>"$work/.lock"
if ! flock -n 9; then
  echo "bench: another bench/run.sh is using $work; waiting for it" >&2
  flock 9
fi
log() { echo "bench: $*" >&2; }
die() { echo "bench: FAILED: $*" >&2; exit 1; }

bash "$repo/scripts/install-deps.sh" >&2
for c in zstd openssl age /usr/bin/time python3 tar; do
  command -v "$c" >/dev/null || die "missing $c (scripts/install-deps.sh installs it)"
done

if [ -z "$ferry" ]; then
  log "cargo build --release"
  (cd "$repo" && cargo build --release --locked -q --bin ferry) >&2
  ferry="$repo/target/release/ferry"
fi
[ -x "$ferry" ] || die "no ferry binary at $ferry"

# --- inputs -------------------------------------------------------------------
img="$work/big-${size}m.tar"
img_big="$work/big-${big}m.tar"
need=0
if [ $rebuild = 1 ]; then rm -f "$img" "$img_big"; fi
[ -s "$img" ] || need=1
if [ "$big" != 0 ] && [ ! -s "$img_big" ]; then need=1; fi
if [ $need = 1 ]; then
  args=("$size" "$img")
  [ "$big" != 0 ] && args+=("$big" "$img_big")
  log "building input image(s) with dockerd: ${args[*]}"
  bash "$here/make-image.sh" "$work/build" "${args[@]}" || die "building the input image"
fi
keys="$work/keys"
if [ ! -s "$keys/ferry.key" ]; then
  rm -rf "$keys"
  "$ferry" keygen -o "$keys" --no-password >/dev/null || die "ferry keygen"
fi
recipient=$(sed -n 's/^# public key: //p' "$keys/ferry.age")
[ -n "$recipient" ] || die "no age recipient in $keys/ferry.age"

# --- measuring ----------------------------------------------------------------
nice_cmd=()
if [ $priority = 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    nice_cmd=(nice -n -10)
    { echo -10 >/proc/self/autogroup; } 2>/dev/null || log "could not raise the session's autogroup priority"
  else
    log "--priority needs root; measuring at normal priority"; priority=0
  fi
fi
results="$work/results.tsv"
: >"$results"
out="$work/out"
T="$work/time.txt"

# measure ROW WHO PREP CMD: run PREP (untimed), then CMD under /usr/bin/time;
# record wall seconds, peak RSS (KiB) and CPU seconds.
measure() {
  local row=$1 who=$2 prep=$3 cmd=$4 t0 t1
  bash -c "$prep" || die "$row ($who): preparing: $prep"
  sync
  t0=$(date +%s%N)
  if ! "${nice_cmd[@]}" /usr/bin/time -f '%M %U %S' -o "$T" bash -c "$cmd" >"$work/cmd.log" 2>&1; then
    cat "$work/cmd.log" >&2
    die "$row ($who): $cmd"
  fi
  t1=$(date +%s%N)
  read -r rss usr sys <"$T"
  printf '%s\t%s\t%s\t%s\t%s\n' "$row" "$who" "$(( (t1 - t0) / 1000 ))" "$rss" "$usr+$sys" >>"$results"
}

F="$ferry"
A="$out/plain"          # plain bundle (save)
S="$out/sealed"         # sealed bundle (save --sign -r)
R="$out/ref"
art_plain="$A/big.tar.zst"
art_sealed="$S/big.tar.zst.age"
in_tar="$img"

# Artifacts the read-side rows use (made once, before timing).
rm -rf "$A" "$S"
"$F" save -q "docker-archive:$in_tar" -o "$A" -n big || die "ferry save"
"$F" save -q "docker-archive:$in_tar" -o "$S" -n big --sign "$keys/ferry.key" -r "$recipient" || die "ferry save --sign -r"
[ -s "$art_plain" ] && [ -s "$art_sealed" ] || die "bundle artifacts missing"

log "input $(du -m "$in_tar" | cut -f1) MiB, artifact $(du -m "$art_plain" | cut -f1) MiB; $runs runs; load: $(cut -d' ' -f1-3 /proc/loadavg)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$runs"); do
  log "run $i/$runs: save"
  measure save ferry "rm -rf '$A.t'" "exec '$F' save -q 'docker-archive:$in_tar' -o '$A.t' -n big"
  measure save ref "rm -rf '$R'; mkdir -p '$R'" "zstd -q -3 -T0 <'$in_tar' >'$R/f.tar.zst' && openssl dgst -sha256 '$R/f.tar.zst' >/dev/null"
  log "run $i/$runs: sealed save"
  measure sealed_save ferry "rm -rf '$S.t'" "exec '$F' save -q 'docker-archive:$in_tar' -o '$S.t' -n big --sign '$keys/ferry.key' -r '$recipient'"
  measure sealed_save ref "rm -rf '$R'; mkdir -p '$R'" "zstd -q -3 -T0 <'$in_tar' | age -r '$recipient' >'$R/f.tar.zst.age' && openssl dgst -sha256 '$R/f.tar.zst.age' >/dev/null"
  log "run $i/$runs: verify"
  measure verify_sums ferry "true" "exec '$F' verify -q '$S' -k '$keys/ferry.pub'"
  measure verify_sums ref "true" "openssl dgst -sha256 '$art_sealed' >/dev/null"
  measure verify_full ferry "true" "exec '$F' verify -q '$A'"
  measure verify_full ref "true" "zstd -q -d <'$art_plain' | openssl dgst -sha256 >/dev/null"
  log "run $i/$runs: load"
  measure load ferry "rm -rf '$out/L'" "exec '$F' load -q '$A' --into 'oci:$out/L' --allow-unsigned"
  [ -s "$out/L/index.json" ] || die "ferry load wrote no $out/L/index.json"
  measure load ref "rm -rf '$out/L'; mkdir -p '$out/L'" "zstd -q -d <'$art_plain' | tar -x -C '$out/L'"
  measure sealed_load ferry "rm -rf '$out/L'" "exec '$F' load -q '$S' --into 'oci:$out/L' -k '$keys/ferry.pub' -i '$keys/ferry.age'"
  [ -s "$out/L/index.json" ] || die "ferry load (sealed) wrote no $out/L/index.json"
done
rm -rf "$out/L" "$R" "$A.t" "$S.t"

if [ "$big" != 0 ]; then
  log "peak RSS at $big MiB input (1 run each)"
  measure rss_big_save ferry "rm -rf '$out/B'" "exec '$F' save -q 'docker-archive:$img_big' -o '$out/B' -n big"
  measure rss_big_load ferry "rm -rf '$out/BL'" "exec '$F' load -q '$out/B' --into 'oci:$out/BL' --allow-unsigned"
  [ -s "$out/BL/index.json" ] || die "ferry load (big) wrote no index.json"
  rm -rf "$out/B" "$out/BL"
fi
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -------------------------------------------------------------------
report_args=(--results "$results" --input "$in_tar" --artifact "$art_plain" --runs "$runs"
  --load-before "$load_before" --load-after "$load_after" --size "$size" --big "$big")
[ "$big" != 0 ] && report_args+=(--big-input "$img_big")
[ $small = 1 ] && report_args+=(--small)
[ $priority = 1 ] && report_args+=(--priority)
[ $write_doc = 1 ] && report_args+=(--write-doc "$repo/docs/PERFORMANCE.md")
python3 "$here/report.py" "${report_args[@]}" || die "writing the report"

rm -rf "$A" "$S"
