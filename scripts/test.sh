#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need, then
# runs every test of the workspace against real servers and tools.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export CARGO_TERM_COLOR=never
# Formatting and lints first: they take seconds and name the file at fault.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Tests start their own dockerd/vsftpd/sshd/nginx on loopback; two jobs suit 2 cores.
cargo build --workspace --all-targets --locked
cargo test --workspace --all-targets --locked --no-fail-fast -- --test-threads="${FERRY_TEST_THREADS:-2}"
# Doc tests: the compile_fail examples prove the trust type cannot be bypassed.
cargo test --workspace --doc --locked
if [ -x bench/run.sh ]; then
  # The benchmark harness in its small mode, so it cannot rot (numbers not asserted;
  # the debug build, whose dependencies are optimised, saves a release build in CI).
  # A private work directory: another run (a developer's benchmark) may use the default one.
  bench_dir=$(mktemp -d /var/tmp/ferry-bench-ci.XXXXXX)
  bash bench/run.sh --small --ferry "$PWD/target/debug/ferry" --workdir "$bench_dir"
  rm -rf "$bench_dir"
fi
