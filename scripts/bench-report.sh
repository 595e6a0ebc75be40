#!/usr/bin/env bash
# `make bench`: the criterion round trips, the server's own script capacity
# (redis-benchmark), a load sweep with examples/load.rs, and the npm redis-semaphore beside
# this crate on the same server in the same run, written to
#   target/bench-report/report.md      every case, the ratios, each target met or not
#   target/bench-report/results.json   the same figures, for machines
#   target/bench-report/load.svg       wait and throughput against workers (examples/plot.rs)
# Everything runs on throwaway servers on loopback. BENCH_SECS sets the seconds per load
# case (default 3). Criterion runs pinned to CPU 0 (BENCH_PIN=0 to not pin), as the
# README's figures were taken: unpinned, cross-CPU wake-ups on a small VM make its medians
# jump 3-4x between runs.
#
# The peer: bench/peer/peer.mjs (npm redis-semaphore and ioredis, versions pinned by
# bench/peer/package-lock.json) is installed with `npm ci` into target/peer, and runs
# against one throwaway server alternately with examples/uncontended.rs and load.rs
# (--local-observer: both sides count holders in-process), BENCH_PEER_ROUNDS rounds
# (default 3, the order flipped each round), unpinned; the report gives the median over
# the rounds. Without node and npm, or if `npm ci` fails, the report says so and the script
# exits 1 after the rest.
#
# The herd: examples/load.rs --herd, a crowd of waiter lines (BENCH_HERD_CELLS, default
# 4x4,200x1,10x100,20x500: N processes x H handles) on 4 permits with 20 ms holds,
# BENCH_HERD_SECS (default 10) measured per cell after 3 s settling, ours and the npm peer
# taking turns on one server of its own; load.rs writes the table (target/bench-report/
# herd.md) and the JSON. `ulimit -n` is raised to the hard limit for its 10,000
# connections; a cell the limit cannot hold is skipped, and the table says why.
# The whole run takes about 7 minutes on 2 cores once built.
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
cargo build --release --example load --example plot --example uncontended
cargo bench --bench semaphore --no-run
load=target/release/examples/load
uncontended=target/release/examples/uncontended

# --- npm peer: installed first, so that a failure is known at once ----------------------
peer=target/peer
peer_error=""
peer_log=""
say "installing the npm peer into $peer (npm ci)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  peer_error="node and npm are not installed (the peer needs Node 20 or later)"
else
  rm -rf "$peer"
  mkdir -p "$peer"
  rc=0
  cp bench/peer/package.json bench/peer/package-lock.json bench/peer/peer.mjs "$peer/" \
    >"$out/npm-install.log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || npm ci --prefix "$peer" --no-audit --no-fund >>"$out/npm-install.log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    peer_error="\`npm ci --prefix $peer\` failed (exit $rc)"
    peer_log=$(grep -v '^npm error  *at ' "$out/npm-install.log" | tail -n 12)
  fi
fi
if [ -n "$peer_error" ]; then
  say "NPM PEER NOT INSTALLED: $peer_error (the report will say so; exit 1 at the end)"
fi

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

# --- against npm redis-semaphore -----------------------------------------------------
# One throwaway server for both sides; each run takes a fresh semaphore name, and the
# sides alternate (the order flips with every workload and every round). Each line is
# JSON with the same field names on both sides; peer_line[side-workload-round].
peer_rounds=${BENCH_PEER_ROUNDS:-3}
declare -A peer_line
peer_failed=0
peer_run() { # peer_run SIDE WORKLOAD ROUND COMMAND...
  local key="$1-$2-$3" line rc=0
  shift 3
  say "peer $key: ${1##*/} ${2:-}"
  line=$(timeout 120 "$@" 2>>"$log" | tail -n 1) || rc=$?
  if [ "$rc" -ne 0 ] || [ "${line:0:1}" != "{" ]; then
    say "peer $key FAILED (exit $rc; log: $log)"
    peer_failed=1
    line='{}'
  fi
  peer_line[$key]="{\"exit\":$rc,${line#\{}"
  peer_line[$key]=${peer_line[$key]/%,\}/\}}
}
peer_scaling='{}'
# Ours runs even when the peer is not installed; the npm side then does not.
npm_run() { if [ -z "$peer_error" ]; then peer_run npm "$@"; fi; }
{
  start_throwaway_redis peer || { say "redis-server did not start"; exit 1; }
  url="redis://127.0.0.1:$port"
  node_peer=(node "$peer/peer.mjs")
  for r in $(seq 1 "$peer_rounds"); do
    w=0
    for wl in uncontended no-hold hold; do
      name="peer-$wl-r$r-$$"
      case $wl in
        uncontended)
          ours=("$uncontended" --json --url "$url" --name "$name-ours")
          npm=("${node_peer[@]}" uncontended --url "$url" --name "$name-npm") ;;
        no-hold | hold)
          hold=0
          [ "$wl" = hold ] && hold=5
          ours=("$load" --json --url "$url" --local-observer --warmup --secs "$secs"
            --workers 16 --permits 4 --hold-ms "$hold" --name "$name-ours")
          npm=("${node_peer[@]}" load --url "$url" --secs "$secs"
            --workers 16 --permits 4 --hold-ms "$hold" --name "$name-npm") ;;
      esac
      if [ $(((r + w) % 2)) -eq 1 ]; then
        peer_run ours "$wl" "$r" "${ours[@]}"
        npm_run "$wl" "$r" "${npm[@]}"
      else
        npm_run "$wl" "$r" "${npm[@]}"
        peer_run ours "$wl" "$r" "${ours[@]}"
      fi
      w=$((w + 1))
    done
  done
  stop_throwaway_redis
}
# --- herd: a crowd of waiter lines, ours and npm's -------------------------------------
herd_cells=${BENCH_HERD_CELLS:-4x4,200x1,10x100,20x500}
herd_secs=${BENCH_HERD_SECS:-10}
herd_peer=()
[ -n "$peer_error" ] || herd_peer=(--peer "node $peer/peer.mjs")
say "herd: $herd_cells (processes x handles), 4 permits, 20 ms holds, ${herd_secs} s each"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
rm -f "$out/herd.md"
rc=0
herd_json=$(timeout 900 "$load" --herd "$herd_cells" --permits 4 --hold-ms 20 \
  --secs "$herd_secs" --settle-secs 3 "${herd_peer[@]}" --markdown "$out/herd.md" --json \
  2>>"$log") || rc=$?
if [ "$rc" -ne 0 ] || [ "${herd_json:0:1}" != "{" ]; then
  say "herd FAILED (exit $rc; log: $log)"
  failed=1
  [ "${herd_json:0:1}" = "{" ] || herd_json=null
fi
herd_section=$(cat "$out/herd.md" 2>/dev/null || echo "**The herd did not run** (exit $rc; see $log).")

# 3 masters against one, 10,000 permits against 3: one process, its own servers, unpinned.
say "uncontended scaling: 3 masters, 10,000 permits (unpinned)"
rc=0
line=$(timeout 180 "$uncontended" --json --masters 3 --scaling 2>>"$log" | tail -n 1) || rc=$?
if [ "$rc" -ne 0 ] || [ "${line:0:1}" != "{" ]; then
  say "uncontended scaling FAILED (exit $rc; log: $log)"
  failed=1
else
  peer_scaling=$line
fi

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
  if [ "$1" = null ] || [ -z "$1" ] || [ "$2" = null ] || [ -z "$2" ]; then
    echo "**not met** (no figure)"
    return
  fi
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
server_short=$(sed -nE 's/^Redis server v=([^ ]+).*/Redis \1/p' <<<"$server")
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (with uncommitted changes)" || true)

# The peer comparison. pmed SIDE WORKLOAD FIELD [DECIMALS]: the median over the rounds
# (the mean of the middle two for an even count; "null" when no round has it), which one
# slow spell of a shared machine does not move; pmax: the highest; pall: every round's.
peer_values() {
  local r j v
  for r in $(seq 1 "$peer_rounds"); do
    j=${peer_line[$1-$2-$r]:-}
    v=$(jf "$3" "$j")
    [ "$v" = null ] || echo "$v"
  done
}
pmed() {
  peer_values "$@" | sort -g | awk -v d="${4:-1}" '{ v[n++] = $1 }
    END { if (!n) { printf "null"; exit } m = (v[int((n - 1) / 2)] + v[int(n / 2)]) / 2; printf "%.*f", d, m }'
}
pmax() {
  peer_values "$@" | awk '{ if (n == 0 || $1 + 0 > m + 0) m = $1; n++ } END { print n ? m : "null" }'
}
pall() {
  local v
  v=$(peer_values "$@" | paste -sd, - | sed 's/,/, /g')
  echo "${v:-none}"
}
# $1 / $2 ("null" if either is absent or $2 is 0).
ratio() {
  if [ "$1" = null ] || [ "$2" = null ] || awk -v b="$2" 'BEGIN { exit !(b + 0 == 0) }'; then
    echo null
  else
    calc "$1 / $2" "${3:-2}"
  fi
}
# A JSON string.
json_str() {
  printf '%s' "$1" | awk 'BEGIN { ORS = ""; printf "\"" }
    { gsub(/\\/, "&&"); gsub(/"/, "\\\""); gsub(/\t/, "\\t"); if (NR > 1) printf "\\n"; print }
    END { printf "\"" }'
}
na() { if [ "$1" = null ]; then echo "n/a"; else echo "$1${2:-}"; fi; }

o_ping=$(pmed ours uncontended ping_p50_us)
n_ping=$(pmed npm uncontended ping_p50_us)
o_ar=$(pmed ours uncontended acquire_release_p50_us)
n_ar=$(pmed npm uncontended acquire_release_p50_us)
o_ar99=$(pmed ours uncontended acquire_release_p99_us)
n_ar99=$(pmed npm uncontended acquire_release_p99_us)
o_ar_x=$(ratio "$o_ar" "$o_ping")
n_ar_x=$(ratio "$n_ar" "$n_ping")
o_drop=$(pmed ours uncontended acquire_drop_p50_us)
o_drop99=$(pmed ours uncontended acquire_drop_p99_us)
o_u_cmd=$(pmed ours uncontended commands_per_cycle 2)
n_u_cmd=$(pmed npm uncontended commands_per_cycle 2)
o_u_acq=$(pmed ours uncontended commands_per_acquire 2)
n_u_acq=$(pmed npm uncontended commands_per_acquire 2)
o_u_rel=$(pmed ours uncontended commands_per_release 2)
n_u_rel=$(pmed npm uncontended commands_per_release 2)
o_u_cpu=$(pmed ours uncontended server_cpu_us_per_cycle)
n_u_cpu=$(pmed npm uncontended server_cpu_us_per_cycle)
pr_ar=$(ratio "$o_ar" "$n_ar")
pr_drop=$(ratio "$o_drop" "$n_ar")
for wl in no-hold hold; do
  v=${wl/-/_}
  for side in o n; do
    sn=ours
    [ "$side" = n ] && sn=npm
    declare "${side}_${v}_rate=$(pmed "$sn" "$wl" cycles_per_sec 0)"
    declare "${side}_${v}_cmd=$(pmed "$sn" "$wl" commands_per_cycle 2)"
    declare "${side}_${v}_cpu=$(pmed "$sn" "$wl" server_cpu_us_per_cycle)"
    declare "${side}_${v}_ccpu=$(pmed "$sn" "$wl" client_cpu_us_per_cycle)"
    declare "${side}_${v}_p50=$(pmed "$sn" "$wl" wait_p50_ms 2)"
    declare "${side}_${v}_p99=$(pmed "$sn" "$wl" wait_p99_ms 2)"
    declare "${side}_${v}_turns=$(pmed "$sn" "$wl" turns_ratio 2)"
    declare "${side}_${v}_calls=$(pmed "$sn" "$wl" calls_per_acquire 2)"
    declare "${side}_${v}_inside=$(pmax "$sn" "$wl" max_inside)"
  done
done
# Ratios: ours / npm.
for f in rate cmd cpu ccpu p50 p99 turns calls; do
  for v in no_hold hold; do
    o="o_${v}_$f"
    n="n_${v}_$f"
    declare "pr_${v}_$f=$(ratio "${!o}" "${!n}")"
  done
done
pr_u_cmd=$(ratio "$o_u_cmd" "$n_u_cmd")
pr_u_cpu=$(ratio "$o_u_cpu" "$n_u_cpu")
pr_ping=$(ratio "$o_ping" "$n_ping")
pr_ar99=$(ratio "$o_ar99" "$n_ar99")
pr_ar_x=$(ratio "$o_ar_x" "$n_ar_x")
s_ar=$(jf acquire_release_p50_us "$peer_scaling")
s_3m=$(jf acquire_release_all_masters_p50_us "$peer_scaling")
s_10k=$(jf acquire_release_10000_permits_p50_us "$peer_scaling")
s_r3m=$(ratio "$s_3m" "$s_ar")
s_r10k=$(ratio "$s_10k" "$s_ar")
# The versions the peer ran with, or those package.json pins when it did not run.
peer_version() {
  local v
  v=$(jf "$1" "${peer_line[npm-uncontended-1]:-}" | tr -d '"')
  if [ "$v" = null ]; then
    v="$(sed -nE "s/.*\"$1\": *\"([^\"]+)\".*/\1/p" bench/peer/package.json) (pinned; not run)"
  fi
  echo "$v"
}
peer_versions="redis-semaphore $(peer_version redis-semaphore) with ioredis $(peer_version ioredis)"
node_version=$(node --version 2>/dev/null || echo "(not installed)")
turns_runs() { # every round's max/min for side $1, workload $2
  local r j out=""
  for r in $(seq 1 "$peer_rounds"); do
    j=${peer_line[$1-$2-$r]:-}
    [ -n "$j" ] || continue
    out+="${out:+, }$(jf turns_max "$j")/$(jf turns_min "$j")"
  done
  echo "${out:-none}"
}
# name|measured|limit|met: the targets against the peer, for the table and the JSON.
peer_targets=(
  "uncontended acquire + awaited release p50 <= npm's|$(na "$pr_ar" x) ($(na "$o_ar" " µs") vs $(na "$n_ar" " µs"))|$pr_ar|1"
  "acquire + drop loop p50 <= 0.6x npm's acquire + release|$(na "$pr_drop" x) ($(na "$o_drop" " µs") vs $(na "$n_ar" " µs"))|$pr_drop|0.6"
  "16 workers, 4 permits, no hold: cycles/s >= 1.2x npm's|$(na "$pr_no_hold_rate" x) ($(na "$o_no_hold_rate") vs $(na "$n_no_hold_rate"))|1.2|$pr_no_hold_rate"
  "same: server CPU per cycle <= 1.5x npm's|$(na "$pr_no_hold_cpu" x) ($(na "$o_no_hold_cpu" " µs") vs $(na "$n_no_hold_cpu" " µs"))|$pr_no_hold_cpu|1.5"
  "same: commands per cycle <= 16|$(na "$o_no_hold_cmd") (npm $(na "$n_no_hold_cmd"))|$o_no_hold_cmd|16"
  "16 workers, 4 permits, 5 ms holds: cycles/s >= npm's|$(na "$pr_hold_rate" x) ($(na "$o_hold_rate") vs $(na "$n_hold_rate"))|1|$pr_hold_rate"
  "same: wait p99 <= 1/5 of npm's|$(na "$pr_hold_p99" x) ($(na "$o_hold_p99" " ms") vs $(na "$n_hold_p99" " ms"))|$pr_hold_p99|0.2"
  "same: turns max/min <= 1.5|$(na "$o_hold_turns") (npm $(na "$n_hold_turns"))|$o_hold_turns|1.5"
  "3 masters acquire + release <= 1.3x one master (unpinned, same run)|$(na "$s_r3m" x) ($(na "$s_3m" " µs") vs $(na "$s_ar" " µs"))|$s_r3m|1.3"
  "10,000 permits <= 1.2x 3 permits (unpinned, same run)|$(na "$s_r10k" x) ($(na "$s_10k" " µs") vs $(na "$s_ar" " µs"))|$s_r10k|1.2"
)
peer_target_rows=""
peer_target_json=""
for t in "${peer_targets[@]}"; do
  IFS='|' read -r t_name t_measured t_a t_b <<<"$t"
  t_met=$(met "$t_a" "$t_b")
  peer_target_rows+="| $t_name | $t_measured | $t_met |"$'\n'
  peer_target_json+="${peer_target_json:+, }$(json_str "$t_name"): $([ "$t_met" = met ] && echo true || echo false)"
done
peer_not_met=$(grep -c 'not met' <<<"$peer_target_rows" || true)

# The section itself.
prow() { # label ours npm ratio
  echo "| $1 | $2 | $3 | $(na "$4" x) |"
}
peer_section=""
if [ -n "$peer_error" ]; then
  peer_section="**The npm peer was not measured: $peer_error.** No npm figures in this run
(n/a below), so every target that compares with npm is not met, and \`make bench\` exits 1.${peer_log:+

The end of target/bench-report/npm-install.log:

\`\`\`
$peer_log
\`\`\`}

"
fi
{
  peer_section+="Both sides on one throwaway \`redis-server\` (${server_short:-$server}), unpinned, alternately:
$peer_rounds round(s), the order flipped with each workload and each round, a fresh semaphore
name for every run, nothing else on that server. Each figure is the median over the rounds;
the ratio is **ours / npm** (above 1: ours is higher, which is better for cycles/s and
worse for everything else).

- npm: $peer_versions on Node $node_version, the library's defaults: lockTimeout
  10 s, refreshInterval 8 s, **retryInterval 10 ms** (a waiter asks again every 10 ms; no
  notification), ioredis's defaults (RESP3); \`new Semaphore(client, key, 4)\` per
  acquire, \`await sem.tryAcquire()\` (acquire without the throw) with acquireTimeout =
  the time left in the run, then \`await sem.release()\`; one ioredis connection per worker,
  all workers in one Node process (bench/peer/peer.mjs).
- ours: the library's defaults (lease 10 s, fair, pushed grants), one handle per worker;
  uncontended on a current-thread Tokio runtime (examples/uncontended.rs), the load on
  the multi-thread runtime (2 threads; examples/load.rs \`--local-observer --warmup\`).
- Uncontended: ${peer_rounds} x 3000 timed operations per case after 300 untimed, one client;
  each side's PING is on its own connection (npm: the semaphore's ioredis connection; ours:
  a redis-rs connection beside the handle's). Load: 16 workers, 4 permits, ${secs} s per run,
  one warm-up cycle first; holders counted in-process on both sides (a yield between
  counting in and out when there is no hold).
- Commands: \`INFO commandstats\` summed over every \`calls=\` (the commands run inside Lua
  count), after minus before less the snapshot's own INFO, per cycle; server CPU:
  \`used_cpu_user + used_cpu_sys\` after minus before, per cycle; client CPU: the client
  process's own (Rust: /proc/self/stat, 10 ms ticks; Node: process.cpuUsage()).

| workload | this project | npm redis-semaphore | ours / npm |
| --- | ---: | ---: | ---: |
$(prow "uncontended acquire + awaited release, p50" "$(na "$o_ar" " µs")" "$(na "$n_ar" " µs")" "$pr_ar")
$(prow "same, p99" "$(na "$o_ar99" " µs")" "$(na "$n_ar99" " µs")" "$pr_ar99")
$(prow "same, x its own PING p50" "$(na "$o_ar_x" x) (PING $(na "$o_ping" " µs"))" "$(na "$n_ar_x" x) (PING $(na "$n_ping" " µs"))" "$pr_ar_x")
$(prow "acquire + drop loop p50 (ours) vs acquire + release (npm)" "$(na "$o_drop" " µs") (p99 $(na "$o_drop99" " µs"))" "$(na "$n_ar" " µs")" "$pr_drop")
$(prow "uncontended: commands per acquire + release (acquire / release)" "$(na "$o_u_cmd") ($(na "$o_u_acq") / $(na "$o_u_rel"))" "$(na "$n_u_cmd") ($(na "$n_u_acq") / $(na "$n_u_rel"))" "$pr_u_cmd")
$(prow "uncontended: server CPU per acquire + release" "$(na "$o_u_cpu" " µs")" "$(na "$n_u_cpu" " µs")" "$pr_u_cpu")
$(prow "16 workers, 4 permits, no hold: cycles/s" "$(na "$o_no_hold_rate")" "$(na "$n_no_hold_rate")" "$pr_no_hold_rate")
$(prow "same: commands per cycle" "$(na "$o_no_hold_cmd")" "$(na "$n_no_hold_cmd")" "$pr_no_hold_cmd")
$(prow "same: server CPU per cycle" "$(na "$o_no_hold_cpu" " µs")" "$(na "$n_no_hold_cpu" " µs")" "$pr_no_hold_cpu")
$(prow "same: client CPU per cycle" "$(na "$o_no_hold_ccpu" " µs")" "$(na "$n_no_hold_ccpu" " µs")" "$pr_no_hold_ccpu")
$(prow "same: wait p99 (p50)" "$(na "$o_no_hold_p99" " ms") ($(na "$o_no_hold_p50"))" "$(na "$n_no_hold_p99" " ms") ($(na "$n_no_hold_p50"))" "$pr_no_hold_p99")
$(prow "same: turns max/min" "$(na "$o_no_hold_turns")" "$(na "$n_no_hold_turns")" "$pr_no_hold_turns")
$(prow "16 workers, 4 permits, 5 ms holds: cycles/s" "$(na "$o_hold_rate")" "$(na "$n_hold_rate")" "$pr_hold_rate")
$(prow "same: wait p50" "$(na "$o_hold_p50" " ms")" "$(na "$n_hold_p50" " ms")" "$pr_hold_p50")
$(prow "same: wait p99" "$(na "$o_hold_p99" " ms")" "$(na "$n_hold_p99" " ms")" "$pr_hold_p99")
$(prow "same: turns max/min" "$(na "$o_hold_turns")" "$(na "$n_hold_turns")" "$pr_hold_turns")
$(prow "same: commands per cycle" "$(na "$o_hold_cmd")" "$(na "$n_hold_cmd")" "$pr_hold_cmd")
$(prow "same: server CPU per cycle" "$(na "$o_hold_cpu" " µs")" "$(na "$n_hold_cpu" " µs")" "$pr_hold_cpu")
$(prow "same: client CPU per cycle" "$(na "$o_hold_ccpu" " µs")" "$(na "$n_hold_ccpu" " µs")" "$pr_hold_ccpu")
$(prow "same: script calls per acquire (attempts per grant)" "$(na "$o_hold_calls")" "$(na "$n_hold_calls")" "$pr_hold_calls")
| most holders seen at once (both load workloads), of 4 | $(na "$(pmax ours no-hold max_inside)")/$(na "$o_hold_inside") | $(na "$(pmax npm no-hold max_inside)")/$(na "$n_hold_inside") | |

The no-hold figure differs from the no-hold case of the load table above, whose workers
also count themselves in and out on an observer server (two more round trips a cycle).
Every round's figure, to show the spread:

- uncontended acquire + release p50, µs: ours $(pall ours uncontended acquire_release_p50_us); \
npm $(pall npm uncontended acquire_release_p50_us)
- no hold, cycles/s: ours $(pall ours no-hold cycles_per_sec); npm $(pall npm no-hold cycles_per_sec)
- 5 ms holds, cycles/s: ours $(pall ours hold cycles_per_sec); npm $(pall npm hold cycles_per_sec)
- 5 ms holds, wait p99, ms: ours $(pall ours hold wait_p99_ms); npm $(pall npm hold wait_p99_ms)
- 5 ms holds, turns max/min: ours $(turns_runs ours hold); npm $(turns_runs npm hold)"
}
peer_section+="

### Targets

The last two from one process of examples/uncontended.rs (\`--masters 3 --scaling\`) on
three throwaway servers of its own, unpinned (3 servers and the client on $(nproc) CPUs), the
cases interleaved: one master $(na "$s_ar" " µs"), 10,000 permits $(na "$s_10k" " µs"), all
3 masters $(na "$s_3m" " µs") (p50 of acquire + awaited release).

| target | measured | |
| --- | --- | --- |
$peer_target_rows"


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

## Against npm redis-semaphore (same server, same run)

$peer_section

## A crowd of waiters (examples/load.rs --herd, ours and npm's, same server, same run)

$herd_section
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
  echo "  \"peer\": {"
  echo "    \"error\": $([ -n "$peer_error" ] && json_str "$peer_error${peer_log:+: $peer_log}" || echo null),"
  echo "    \"rounds\": $peer_rounds, \"secs\": $secs,"
  echo "    \"settings\": {\"npm\": \"new Semaphore(client, key, 4) per acquire; lockTimeout 10000, refreshInterval 8000, retryInterval 10 (defaults); acquireTimeout = time left; one ioredis connection per worker; one Node process\","
  echo "      \"ours\": \"defaults (lease 10 s, fair); one handle per worker; load.rs --local-observer --warmup; uncontended.rs on a current-thread runtime\"},"
  echo "    \"median\": {"
  echo "      \"uncontended\": {\"ours\": {\"ping_p50_us\": $o_ping, \"acquire_release_p50_us\": $o_ar, \"acquire_release_p99_us\": $o_ar99,"
  echo "          \"acquire_drop_p50_us\": $o_drop, \"acquire_drop_p99_us\": $o_drop99, \"commands_per_cycle\": $o_u_cmd,"
  echo "          \"commands_per_acquire\": $o_u_acq, \"commands_per_release\": $o_u_rel, \"server_cpu_us_per_cycle\": $o_u_cpu},"
  echo "        \"npm\": {\"ping_p50_us\": $n_ping, \"acquire_release_p50_us\": $n_ar, \"acquire_release_p99_us\": $n_ar99,"
  echo "          \"commands_per_cycle\": $n_u_cmd, \"commands_per_acquire\": $n_u_acq, \"commands_per_release\": $n_u_rel,"
  echo "          \"server_cpu_us_per_cycle\": $n_u_cpu}},"
  sep=""
  for v in no_hold hold; do
    printf '%s      "%s": {' "$sep" "${v/_/-}"
    sep2=""
    for side in o n; do
      sn=ours
      [ "$side" = n ] && sn=npm
      printf '%s"%s": {' "$sep2" "$sn"
      sep3=""
      for f in rate:cycles_per_sec cmd:commands_per_cycle cpu:server_cpu_us_per_cycle \
        ccpu:client_cpu_us_per_cycle p50:wait_p50_ms p99:wait_p99_ms turns:turns_ratio \
        calls:calls_per_acquire inside:max_inside; do
        var="${side}_${v}_${f%%:*}"
        printf '%s"%s": %s' "$sep3" "${f#*:}" "${!var}"
        sep3=", "
      done
      printf '}'
      sep2=", "
    done
    printf '}'
    sep=$',\n'
  done
  echo
  echo "    },"
  echo "    \"ratios_ours_over_npm\": {\"uncontended_acquire_release_p50\": $pr_ar, \"acquire_drop_vs_npm_acquire_release_p50\": $pr_drop,"
  echo "      \"no_hold_cycles_per_sec\": $pr_no_hold_rate, \"no_hold_commands_per_cycle\": $pr_no_hold_cmd, \"no_hold_server_cpu_per_cycle\": $pr_no_hold_cpu,"
  echo "      \"hold_cycles_per_sec\": $pr_hold_rate, \"hold_wait_p99\": $pr_hold_p99, \"hold_turns_ratio\": $pr_hold_turns},"
  echo "    \"scaling_unpinned\": $peer_scaling,"
  echo "    \"scaling_ratios\": {\"three_masters_vs_one\": $s_r3m, \"permits_10000_vs_3\": $s_r10k},"
  echo "    \"targets_met\": {$peer_target_json},"
  echo "    \"runs\": {"
  sep=""
  for k in $(printf '%s\n' "${!peer_line[@]}" | sort); do
    printf '%s      "%s": %s' "$sep" "$k" "${peer_line[$k]}"
    sep=$',\n'
  done
  echo
  echo "    }"
  echo "  },"
  echo "  \"herd\": $herd_json,"
  echo "  \"seconds\": $elapsed"
  echo "}"
} >"$out/results.json"

say "wrote $out/report.md, $out/results.json and $out/load.svg in ${elapsed} s"
if [ -n "$peer_error" ]; then
  say "the npm peer was not measured: $peer_error"
  failed=1
fi
if [ "$peer_failed" -ne 0 ]; then
  say "some peer runs failed: see $log"
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  say "some cases failed: see the exit column, the peer section and $log"
  exit 1
fi
