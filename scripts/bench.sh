#!/usr/bin/env bash
# `make bench`: the servers and tools it needs, a higher open-files limit for the herd's
# 10,000 connections, then the report (`tools bench-report`, tools/src/bench_report), which
# writes target/bench-report/. Its settings: BENCH_SECS, BENCH_PIN, BENCH_PEER_ROUNDS,
# BENCH_HERD_CELLS, BENCH_HERD_SECS (see `tools bench-report --help`).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  echo "bench: installing redis-server and redis-tools" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi

echo "bench: building the tools (release)" >&2
cargo build --release -p tools
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec "${CARGO_TARGET_DIR:-target}/release/tools" bench-report "$@"
