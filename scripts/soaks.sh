#!/usr/bin/env bash
# Short soaks of the mixed-fault workload (`tools soak`; the hand-run one lasts 10 min):
# 1 and 3 masters, clock jumps, and a Sentinel group's failovers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/common.sh

soak() { # soak <binary> <soak args...>
  local bin="$1"
  shift
  REDIS_SERVER_BIN="$bin" cargo run -q -p tools --features cluster,tls,tracing -- soak "$@"
}
step "soak, 15 s, 1 master ($(server_name "$redis_bin"))" soak "$redis_bin" --secs 15 --masters 1
step "soak, 15 s, 3 masters ($(server_name "$valkey_bin"))" \
  soak "$valkey_bin" --secs 15 --masters 3
# libfaketime: the masters are valkey-server whatever the binary (tests/clocks.rs says why).
step "soak, 15 s, 3 masters, clock jumps ($(server_name "$valkey_bin"))" \
  soak "$valkey_bin" --secs 15 --masters 3 --clock
# A primary, two replicas, three sentinels; forced and killed-primary failovers, grants
# counted once both replicas have them.
step "soak, 20 s, a Sentinel group, failovers, replicas(2) ($(server_name "$redis_bin"))" \
  soak "$redis_bin" --secs 20 --sentinel --replicas 2 --lease-ms 2000
summary
