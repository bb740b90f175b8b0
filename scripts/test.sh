#!/usr/bin/env bash
# The project's test command: formatting, lints, every test (engine unit tests, scenario
# transcripts, 1,000 simulator seeds, the planted-bug sensitivity suite, the linearizability
# corpus), a release simulator run on further fixed seeds, and the benchmarks in test mode.
# README.md names this command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is not installed (see https://rustup.rs)" >&2
  exit 1
fi
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace

step "cargo bench -- --test (benchmarks compile and run once)"
cargo bench --workspace -q -- --test

# Last, so that the run ends on the simulator's 'N passed, M failed' line.
step "simulator: seeds 1000..2999 in release"
cargo run --release -q -p coracle-sim -- --seeds 2000 --start 1000
