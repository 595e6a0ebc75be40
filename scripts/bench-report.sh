#!/usr/bin/env bash
# `make bench`: the criterion round trips, the server's own script capacity
# (redis-benchmark), and a load sweep with examples/load.rs, written to
#   target/bench-report/report.md      every case, the ratios, each target met or not
#   target/bench-report/results.json   the same figures, for machines
#   target/bench-report/load.svg       wait and throughput against workers (examples/plot.rs)
# Everything runs on throwaway servers on loopback. BENCH_SECS sets the seconds per load
# case (default 3). Criterion runs pinned to CPU 0 (BENCH_PIN=0 to not pin), as the
# README's figures were taken: unpinned, cross-CPU wake-ups on a small VM make its medians
# jump 3-4x between runs. The whole run takes about 3 minutes on 2 cores once built.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
cd "$(dirname "${BASH_SOURCE[0]}")/.."

out=target/bench-report
secs=${BENCH_SECS:-3}
started=$(date +%s)
mkdir -p "$out"
log="$out/bench.log"
: >"$log"
say() { echo "bench: $*" >&2; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  say "installing redis-server and redis-tools"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi

# --- build ---------------------------------------------------------------------------
say "building (release)"
cargo build --release --example load --example plot
cargo bench --bench semaphore --no-run
load=target/release/examples/load

# --- criterion -----------------------------------------------------------------------
pin=()
if [ "${BENCH_PIN:-1}" != 0 ] && command -v taskset >/dev/null 2>&1; then pin=(taskset -c 0); fi
say "criterion round trips (about a minute)${pin:+, pinned to CPU 0}"
marker="$out/.criterion-start"
touch "$marker"
"${pin[@]}" cargo bench --bench semaphore -- --noplot >>"$log" 2>&1 || {
  tail -n 30 "$log" >&2
  say "cargo bench failed (log: $log)"
  exit 1
}
criterion_cases="ping evalsha_bare acquire_release acquire_drop acquire_release_10000_permits
  acquire_release_3_masters acquire_many_4_release blocking_acquire_release"
declare -A median_ns
for c in $criterion_cases; do
  f="target/criterion/round_trip/$c/new/estimates.json"
  if [ -f "$f" ] && [ "$f" -nt "$marker" ]; then
    median_ns[$c]=$(sed -nE 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([0-9.eE+-]+).*/\1/p' "$f")
  fi
  [ -n "${median_ns[$c]:-}" ] || { say "no fresh median for $c in $f"; exit 1; }
done

# --- redis-benchmark -----------------------------------------------------------------
say "redis-benchmark: EVALSHA of 'return 1'"
# shellcheck source=scripts/throwaway-redis.sh
source scripts/throwaway-redis.sh
start_throwaway_redis bench || { say "redis-server did not start"; exit 1; }
sha=$(redis-cli -p "$port" SCRIPT LOAD "return 1")
# Requests per second from `redis-benchmark -q` (its progress lines end in \r).
rb() {
  redis-benchmark -h 127.0.0.1 -p "$port" -c 16 -q "$@" EVALSHA "$sha" 0 2>>"$log" |
    tr '\r' '\n' | sed -nE 's/.*: ([0-9.]+) requests per second.*/\1/p' | tail -n 1
}
rb_plain=$(rb -n 200000)
rb_pipelined=$(rb -n 1000000 -P 16)
[ -n "$rb_plain" ] && [ -n "$rb_pipelined" ] || { say "cannot read redis-benchmark's output"; exit 1; }
stop_throwaway_redis

# --- load ----------------------------------------------------------------------------
# Each case: a label, then the load arguments. Every case runs on fresh servers.
failed=0
load_json=()
run_load() {
  local label=$1
  shift
  say "load $label: $*"
  local line rc=0
  line=$(timeout 120 "$load" --json --secs "$secs" "$@" 2>>"$log") || rc=$?
  if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
    say "load $label FAILED (exit $rc; log: $log)"
    failed=1
    [ -n "$line" ] || line='{"masters":null}'
  fi
  load_json+=("{\"case\":\"$label\",\"exit\":$rc,${line#\{}")
}
for m in 1 3; do
  for w in 1 2 4 8 16 32; do
    run_load "sweep-m$m-w$w" --masters "$m" --workers "$w" --permits 4 --hold-ms 5
  done
done
run_load no-hold --workers 16 --permits 4 --hold-ms 0
run_load fair --workers 16 --permits 4 --hold-ms 5
run_load unfair --workers 16 --permits 4 --hold-ms 5 --unfair
run_load poll-10ms --workers 16 --permits 4 --hold-ms 5 --poll-ms 10
run_load 4-processes --workers 16 --processes 4 --permits 4 --hold-ms 5

# --- report --------------------------------------------------------------------------
# A field of a flat JSON line ("null" when absent).
jf() {
  local v
  v=$(sed -nE "s/.*\"$1\":(\"[^\"]*\"|[^,}]*).*/\1/p" <<<"$2")
  echo "${v:-null}"
}
case_json() {
  local j
  for j in "${load_json[@]}"; do
    [ "$(jf case "$j")" = "\"$1\"" ] && { echo "$j"; return; }
  done
  echo '{}'
}
calc() { awk "BEGIN { x = $1; printf \"%.${2:-2}f\", x }"; }
us() { calc "${median_ns[$1]} / 1000" 1; }
# "met" or "**not met**": is `$1 <= $2`? (an absent figure is not met)
met() {
  if [ "$1" = null ] || [ -z "$1" ]; then echo "**not met** (no figure)"; return; fi
  awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 <= b + 0) ? "met" : "**not met**" }'
}

r_ar=$(calc "${median_ns[acquire_release]} / (2 * ${median_ns[evalsha_bare]})")
r_ad=$(calc "${median_ns[acquire_drop]} / ${median_ns[evalsha_bare]}")
r_3m=$(calc "${median_ns[acquire_release_3_masters]} / ${median_ns[acquire_release]}")
r_10k=$(calc "${median_ns[acquire_release_10000_permits]} / ${median_ns[acquire_release]}")
r_many=$(calc "${median_ns[acquire_many_4_release]} / ${median_ns[acquire_release]}")
r_blk=$(calc "${median_ns[blocking_acquire_release]} / ${median_ns[acquire_release]}")
fair=$(case_json fair)
fair_p99=$(jf wait_p99_ms "$fair")
fair_calls=$(jf calls_per_acquire "$fair")
fair_turns=$(jf turns_ratio "$fair")
nohold=$(case_json no-hold)
nohold_rate=$(jf cycles_per_sec "$nohold")
nohold_share=$(calc "${nohold_rate/null/0} * 2 / $rb_plain * 100" 0)

cpu=$(sed -nE 's/^model name[[:space:]]*: (.*)/\1/p' /proc/cpuinfo | head -n 1)
server=$(redis-server --version)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)

rows=""
for j in "${load_json[@]}"; do
  poll=$(jf poll_ms "$j")
  if [ "$poll" != null ]; then waiting="poll ${poll} ms"
  elif [ "$(jf fair "$j")" = true ]; then waiting=fair
  else waiting=unfair; fi
  turns="$(jf turns_max "$j")/$(jf turns_min "$j") = $(jf turns_ratio "$j")"
  rows+="| $(jf case "$j" | tr -d '"') | $(jf masters "$j") | $(jf workers "$j") | $(jf processes "$j") \
| $(jf hold_ms "$j") | $waiting | $(jf cycles_per_sec "$j") | $(jf wait_p50_ms "$j") | $(jf wait_p99_ms "$j") \
| $(jf wait_max_ms "$j") | $(jf handoff_p50_ms "$j") | $(jf handoff_p99_ms "$j") | $(jf calls_per_acquire "$j") \
| $turns | $(jf max_inside "$j")/$(jf permits "$j") | $(jf exit "$j") |"$'\n'
done

# The plot: the sweep's 1- and 3-master cases against the worker count.
{
  echo "# masters workers cycles_per_sec wait_p50_ms wait_p99_ms"
  for j in "${load_json[@]}"; do
    case "$(jf case "$j")" in
      '"sweep-'*) printf '%s\t%s\t%s\t%s\t%s\n' "$(jf masters "$j")" "$(jf workers "$j")" \
        "$(jf cycles_per_sec "$j")" "$(jf wait_p50_ms "$j")" "$(jf wait_p99_ms "$j")" ;;
    esac
  done
} >"$out/sweep.tsv"
target/release/examples/plot "$out/sweep.tsv" "$out/load.svg"

elapsed=$(($(date +%s) - started))
{
  cat <<EOF
# Performance report

- machine: $(nproc) CPUs, ${cpu:-unknown CPU}; $server; $(rustc --version)
- commit $commit$dirty, $(date -u +%Y-%m-%dT%H:%M:%SZ); \`make bench\` took ${elapsed} s

## Round trips (criterion, median, one client, loopback)

$(if [ "${#pin[@]}" -gt 0 ]; then
  echo "Pinned to CPU 0 (\`taskset -c 0\`) with its servers: steady, but nothing overlaps, so"
  echo "the 3 masters are served one after another and acquire_drop gains nothing from"
  echo "pipelining its release. \`BENCH_PIN=0 make bench\` runs unpinned."
else
  echo "Unpinned (\`BENCH_PIN=0\`): on a small VM, medians can jump 3-4x between runs."
fi)

| case | median | ratio | target |
| --- | ---: | --- | --- |
| ping | $(us ping) µs | | |
| evalsha_bare (\`return 1\`) | $(us evalsha_bare) µs | | |
| acquire_release (awaited) | $(us acquire_release) µs | ${r_ar}x two bare EVALSHA | <= 1.2x: $(met "$r_ar" 1.2) |
| acquire_drop (release in the background) | $(us acquire_drop) µs | ${r_ad}x one bare EVALSHA | <= 1.3x: $(met "$r_ad" 1.3) |
| acquire_release_3_masters | $(us acquire_release_3_masters) µs | ${r_3m}x one master | <= 1.3x: $(met "$r_3m" 1.3) |
| acquire_release_10000_permits | $(us acquire_release_10000_permits) µs | ${r_10k}x 3 permits | <= 1.2x: $(met "$r_10k" 1.2) |
| acquire_many_4_release | $(us acquire_many_4_release) µs | ${r_many}x acquire_release | |
| blocking_acquire_release | $(us blocking_acquire_release) µs | ${r_blk}x acquire_release | |

## The server's own script capacity (redis-benchmark, 16 clients)

| case | requests/s |
| --- | ---: |
| EVALSHA of \`return 1\` | $rb_plain |
| same, pipelined 16 deep (\`-P 16\`) | $rb_pipelined |

Load case no-hold (16 workers, 4 permits): $nohold_rate cycles/s, that is ${nohold_share}% of
the unpipelined capacity counting 2 script calls per cycle (an acquire and a release); each
cycle also makes 2 observer calls to another server on the same 2 CPUs.

## Load (examples/load.rs, ${secs} s per case, 4 permits, fresh servers per case)

Wait is the time in \`acquire\`; hand-off is from a \`release()\` that returned on a full
semaphore to the next grant of a worker already waiting (approximate, see load.rs); calls
are script calls per acquire, (EVALSHA on the masters / masters - releases) / grants, 1.0 at
best; turns are the most and fewest cycles of any worker; inside is the most holders the
observer saw at once. Times in ms.

| case | masters | workers | procs | hold | waiting | cycles/s | wait p50 | wait p99 | wait max | hand-off p50 | hand-off p99 | calls/acquire | turns max/min | inside | exit |
| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |
$rows
![wait and throughput against workers](load.svg)

## Targets

| target | measured | |
| --- | ---: | --- |
| uncontended acquire+release <= 1.2x two bare EVALSHA | ${r_ar}x | $(met "$r_ar" 1.2) |
| acquire+drop <= 1.3x one bare EVALSHA | ${r_ad}x | $(met "$r_ad" 1.3) |
| 3 masters <= 1.3x one master | ${r_3m}x | $(met "$r_3m" 1.3) |
| 10,000 permits <= 1.2x 3 permits | ${r_10k}x | $(met "$r_10k" 1.2) |
| 16 workers, 4 permits, 5 ms hold, fair: wait p99 <= 40 ms | $fair_p99 ms | $(met "$fair_p99" 40) |
| same: script calls per acquire <= 1.3 | $fair_calls | $(met "$fair_calls" 1.3) |
| same: turns max/min <= 1.5 | $fair_turns | $(met "$fair_turns" 1.5) |
EOF
} >"$out/report.md"

{
  echo "{"
  echo "  \"machine\": {\"nproc\": $(nproc), \"cpu\": \"${cpu//\"/}\", \"server\": \"${server//\"/}\", \"commit\": \"$commit\"},"
  echo "  \"criterion_median_ns\": {"
  sep=""
  for c in $criterion_cases; do
    printf '%s    "%s": %s' "$sep" "$c" "${median_ns[$c]}"
    sep=$',\n'
  done
  echo
  echo "  },"
  echo "  \"redis_benchmark_evalsha_per_sec\": {\"plain\": $rb_plain, \"pipelined_16\": $rb_pipelined},"
  echo "  \"ratios\": {\"acquire_release_vs_2_evalsha\": $r_ar, \"acquire_drop_vs_evalsha\": $r_ad,"
  echo "    \"three_masters_vs_one\": $r_3m, \"permits_10000_vs_3\": $r_10k},"
  echo "  \"load\": ["
  sep=""
  for j in "${load_json[@]}"; do
    printf '%s    %s' "$sep" "$j"
    sep=$',\n'
  done
  echo
  echo "  ],"
  echo "  \"seconds\": $elapsed"
  echo "}"
} >"$out/results.json"

say "wrote $out/report.md, $out/results.json and $out/load.svg in ${elapsed} s"
if [ "$failed" -ne 0 ]; then
  say "some load cases failed: see the exit column and $log"
  exit 1
fi
