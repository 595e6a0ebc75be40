//! report.md and results.json from the figures.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::{Report, met, na, raw};
use crate::bench_report::OUT;

/// A row of the peer table: label, ours, npm's, ours / npm.
fn prow(out: &mut String, label: &str, ours: String, npm: String, r: Option<f64>) {
    let _ = writeln!(out, "| {label} | {ours} | {npm} | {} |", na(r, "x"));
}

impl Report<'_> {
    fn machine(&self) -> (usize, String, String) {
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("model name")
                        .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let git = |args: &[&str]| {
            std::process::Command::new("git")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty =
            git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
        let commit = if dirty {
            format!("{commit} (with uncommitted changes)")
        } else {
            commit
        };
        (nproc, cpu, commit)
    }

    fn peer_section(&self) -> String {
        let m = self.m;
        let mut s = String::new();
        if let Some(why) = &m.peer_error {
            let _ = write!(
                s,
                "**The npm peer was not measured: {why}.** No npm figures in this run\n\
                 (n/a below), so every target that compares with npm is not met, and `make bench` exits 1.\n\n"
            );
            if !m.peer_log.is_empty() {
                let _ = write!(
                    s,
                    "The end of {OUT}/npm-install.log:\n\n```\n{}\n```\n\n",
                    m.peer_log
                );
            }
        }
        let server_short = self
            .server
            .strip_prefix("Redis server v=")
            .and_then(|r| r.split(' ').next())
            .map_or_else(|| self.server.clone(), |v| format!("Redis {v}"));
        let node = std::process::Command::new("node")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map_or_else(
                || "(not installed)".into(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
            );
        let (rounds, secs) = (self.rounds, self.secs);
        let _ = write!(
            s,
            "Both sides on one throwaway `redis-server` ({server_short}), unpinned, alternately:
{rounds} round(s), the order flipped with each workload and each round, a fresh semaphore
name for every run, nothing else on that server. Each figure is the median over the rounds;
the ratio is **ours / npm** (above 1: ours is higher, which is better for cycles/s and
worse for everything else).

- npm: redis-semaphore {} with ioredis {} on Node {node}, the library's defaults: lockTimeout
  10 s, refreshInterval 8 s, **retryInterval 10 ms** (a waiter asks again every 10 ms; no
  notification), ioredis's defaults (RESP3); `new Semaphore(client, key, 4)` per
  acquire, `await sem.tryAcquire()` (acquire without the throw) with acquireTimeout =
  the time left in the run, then `await sem.release()`; one ioredis connection per worker,
  all workers in one Node process (tools/peer/peer.mjs).
- ours: the library's defaults (lease 10 s, fair, pushed grants), one handle per worker;
  uncontended on a current-thread Tokio runtime (`tools uncontended`), the load on
  the multi-thread runtime (2 threads; `tools load --local-observer --warmup`).
- Uncontended: {rounds} x 3000 timed operations per case after 300 untimed, one client;
  each side's PING is on its own connection (npm: the semaphore's ioredis connection; ours:
  a redis-rs connection beside the handle's). Load: 16 workers, 4 permits, {secs} s per run,
  one warm-up cycle first; holders counted in-process on both sides (a yield between
  counting in and out when there is no hold).
- Commands: `INFO commandstats` summed over every `calls=` (the commands run inside Lua
  count), after minus before less the snapshot's own INFO, per cycle; server CPU:
  `used_cpu_user + used_cpu_sys` after minus before, per cycle; client CPU: the client
  process's own (Rust: /proc/self/stat, 10 ms ticks; Node: process.cpuUsage()).

| workload | this project | npm redis-semaphore | ours / npm |
| --- | ---: | ---: | ---: |
",
            self.peer_version("redis-semaphore"),
            self.peer_version("ioredis"),
        );
        self.peer_rows(&mut s);
        let _ = write!(
            s,
            "
The no-hold figure differs from the no-hold case of the load table above, whose workers
also count themselves in and out on an observer server (two more round trips a cycle).
Every round's figure, to show the spread:

- uncontended acquire + release p50, µs: ours {}; npm {}
- no hold, cycles/s: ours {}; npm {}
- 5 ms holds, cycles/s: ours {}; npm {}
- 5 ms holds, wait p99, ms: ours {}; npm {}
- 5 ms holds, turns max/min: ours {}; npm {}
",
            self.pall("ours", "uncontended", "acquire_release_p50_us"),
            self.pall("npm", "uncontended", "acquire_release_p50_us"),
            self.pall("ours", "no-hold", "cycles_per_sec"),
            self.pall("npm", "no-hold", "cycles_per_sec"),
            self.pall("ours", "hold", "cycles_per_sec"),
            self.pall("npm", "hold", "cycles_per_sec"),
            self.pall("ours", "hold", "wait_p99_ms"),
            self.pall("npm", "hold", "wait_p99_ms"),
            self.turns_runs("ours", "hold"),
            self.turns_runs("npm", "hold"),
        );
        let (s_ar, s_3m, s_10k) = self.scaling();
        let nproc = self.machine().0;
        let _ = write!(
            s,
            "
### Targets

The last two from one process of `tools uncontended --masters 3 --scaling` on
three throwaway servers of its own, unpinned (3 servers and the client on {nproc} CPUs), the
cases interleaved: one master {}, 10,000 permits {}, all
3 masters {} (p50 of acquire + awaited release).

| target | measured | |
| --- | --- | --- |
",
            na(s_ar, " µs"),
            na(s_10k, " µs"),
            na(s_3m, " µs"),
        );
        for t in self.targets() {
            let _ = writeln!(s, "| {} | {} | {} |", t.name, t.measured, t.met);
        }
        s
    }

    fn peer_rows(&self, s: &mut String) {
        let us = |v| na(v, " µs");
        let ms = |v| na(v, " ms");
        let plain = |v| na(v, "");
        let (o_ping, n_ping, _) = self.both("uncontended", "ping_p50_us", 1);
        let (o_ar, n_ar, pr_ar) = self.both("uncontended", "acquire_release_p50_us", 1);
        let (o_ar99, n_ar99, pr_ar99) = self.both("uncontended", "acquire_release_p99_us", 1);
        let (o_x, n_x) = (super::ratio(o_ar, o_ping, 2), super::ratio(n_ar, n_ping, 2));
        let o_drop = self.pmed("ours", "uncontended", "acquire_drop_p50_us", 1);
        let o_drop99 = self.pmed("ours", "uncontended", "acquire_drop_p99_us", 1);
        let (o_cmd, n_cmd, pr_cmd) = self.both("uncontended", "commands_per_cycle", 2);
        let (o_acq, n_acq, _) = self.both("uncontended", "commands_per_acquire", 2);
        let (o_rel, n_rel, _) = self.both("uncontended", "commands_per_release", 2);
        let (o_cpu, n_cpu, pr_cpu) = self.both("uncontended", "server_cpu_us_per_cycle", 1);
        prow(
            s,
            "uncontended acquire + awaited release, p50",
            us(o_ar),
            us(n_ar),
            pr_ar,
        );
        prow(s, "same, p99", us(o_ar99), us(n_ar99), pr_ar99);
        prow(
            s,
            "same, x its own PING p50",
            format!("{} (PING {})", na(o_x, "x"), us(o_ping)),
            format!("{} (PING {})", na(n_x, "x"), us(n_ping)),
            super::ratio(o_x, n_x, 2),
        );
        prow(
            s,
            "acquire + drop loop p50 (ours) vs acquire + release (npm)",
            format!("{} (p99 {})", us(o_drop), us(o_drop99)),
            us(n_ar),
            super::ratio(o_drop, n_ar, 2),
        );
        prow(
            s,
            "uncontended: commands per acquire + release (acquire / release)",
            format!("{} ({} / {})", plain(o_cmd), plain(o_acq), plain(o_rel)),
            format!("{} ({} / {})", plain(n_cmd), plain(n_acq), plain(n_rel)),
            pr_cmd,
        );
        prow(
            s,
            "uncontended: server CPU per acquire + release",
            us(o_cpu),
            us(n_cpu),
            pr_cpu,
        );
        type Row = (
            &'static str,
            &'static str,
            &'static str,
            usize,
            &'static str,
        );
        let rows: [Row; 13] = [
            (
                "16 workers, 4 permits, no hold: cycles/s",
                "no-hold",
                "cycles_per_sec",
                0,
                "",
            ),
            (
                "same: commands per cycle",
                "no-hold",
                "commands_per_cycle",
                2,
                "",
            ),
            (
                "same: server CPU per cycle",
                "no-hold",
                "server_cpu_us_per_cycle",
                1,
                " µs",
            ),
            (
                "same: client CPU per cycle",
                "no-hold",
                "client_cpu_us_per_cycle",
                1,
                " µs",
            ),
            ("same: wait p99 (p50)", "no-hold", "wait_p99_ms", 2, " ms"),
            ("same: turns max/min", "no-hold", "turns_ratio", 2, ""),
            (
                "16 workers, 4 permits, 5 ms holds: cycles/s",
                "hold",
                "cycles_per_sec",
                0,
                "",
            ),
            ("same: wait p50", "hold", "wait_p50_ms", 2, " ms"),
            ("same: wait p99", "hold", "wait_p99_ms", 2, " ms"),
            ("same: turns max/min", "hold", "turns_ratio", 2, ""),
            (
                "same: commands per cycle",
                "hold",
                "commands_per_cycle",
                2,
                "",
            ),
            (
                "same: server CPU per cycle",
                "hold",
                "server_cpu_us_per_cycle",
                1,
                " µs",
            ),
            (
                "same: client CPU per cycle",
                "hold",
                "client_cpu_us_per_cycle",
                1,
                " µs",
            ),
        ];
        for (label, workload, field, d, unit) in rows {
            let (o, n, r) = self.both(workload, field, d);
            if field == "wait_p99_ms" && workload == "no-hold" {
                let (o50, n50, _) = self.both(workload, "wait_p50_ms", 2);
                prow(
                    s,
                    label,
                    format!("{} ({})", ms(o), plain(o50)),
                    format!("{} ({})", ms(n), plain(n50)),
                    r,
                );
            } else {
                prow(s, label, na(o, unit), na(n, unit), r);
            }
        }
        let (o_calls, n_calls, pr_calls) = self.both("hold", "calls_per_acquire", 2);
        prow(
            s,
            "same: script calls per acquire (attempts per grant)",
            plain(o_calls),
            plain(n_calls),
            pr_calls,
        );
        let _ = writeln!(
            s,
            "| most holders seen at once (both load workloads), of 4 | {}/{} | {}/{} | |",
            plain(self.pmax("ours", "no-hold", "max_inside")),
            plain(self.pmax("ours", "hold", "max_inside")),
            plain(self.pmax("npm", "no-hold", "max_inside")),
            plain(self.pmax("npm", "hold", "max_inside")),
        );
    }

    fn load_rows(&self) -> String {
        let mut rows = String::new();
        for j in &self.m.load {
            let waiting = if !j["poll_ms"].is_null() {
                format!("poll {} ms", raw(j, "poll_ms"))
            } else if j["fair"] == true {
                "fair".into()
            } else {
                "unfair".into()
            };
            let f = |k| raw(j, k);
            let _ = writeln!(
                rows,
                "| {} | {} | {} | {} | {} | {waiting} | {} | {} | {} | {} | {} | {} | {} | {}/{} = {} | {}/{} | {} |",
                j["case"].as_str().unwrap_or(""),
                f("masters"),
                f("workers"),
                f("processes"),
                f("hold_ms"),
                f("cycles_per_sec"),
                f("wait_p50_ms"),
                f("wait_p99_ms"),
                f("wait_max_ms"),
                f("handoff_p50_ms"),
                f("handoff_p99_ms"),
                f("calls_per_acquire"),
                f("turns_max"),
                f("turns_min"),
                f("turns_ratio"),
                f("max_inside"),
                f("permits"),
                f("exit"),
            );
        }
        rows
    }

    /// report.md.
    pub(in crate::bench_report) fn markdown(&self) -> String {
        let m = self.m;
        let (nproc, cpu, commit) = self.machine();
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let [r_ar, r_ad, r_3m, r_10k, r_many, r_blk] = self.criterion_ratios();
        let fair = self.case("fair");
        let (fair_p99, fair_calls, fair_turns) = (
            super::num(fair, "wait_p99_ms"),
            super::num(fair, "calls_per_acquire"),
            super::num(fair, "turns_ratio"),
        );
        let nohold_rate = super::num(self.case("no-hold"), "cycles_per_sec");
        let share = nohold_rate.unwrap_or(0.0) * 2.0 / m.rb_plain * 100.0;
        let pinning = if m.pinned {
            "Pinned to CPU 0 (`taskset -c 0`) with its servers: steady, but nothing overlaps, so\n\
             the 3 masters are served one after another and acquire_drop gains nothing from\n\
             pipelining its release. `BENCH_PIN=0 make bench` runs unpinned."
        } else {
            "Unpinned (`BENCH_PIN=0`): on a small VM, medians can jump 3-4x between runs."
        };
        let herd = std::fs::read_to_string(format!("{OUT}/herd.md")).unwrap_or_else(|_| {
            format!(
                "**The herd did not run** (exit {}; see {OUT}/bench.log).",
                m.herd_exit
            )
        });
        let opt = |v: Option<f64>| v.map_or_else(|| "null".into(), |v| v.to_string());
        let us = |c| self.us(c);
        format!(
            "# Performance report

- machine: {nproc} CPUs, {cpu}; {server}; {rustc}
- commit {commit}, {date}; `make bench` took {elapsed} s

## Round trips (criterion, median, one client, loopback)

{pinning}

| case | median | ratio | target |
| --- | ---: | --- | --- |
| ping | {} µs | | |
| evalsha_bare (`return 1`) | {} µs | | |
| acquire_release (awaited) | {} µs | {r_ar}x two bare EVALSHA | <= 1.2x: {} |
| acquire_drop (release in the background) | {} µs | {r_ad}x one bare EVALSHA | <= 1.3x: {} |
| acquire_release_3_masters | {} µs | {r_3m}x one master | <= 1.3x: {} |
| acquire_release_10000_permits | {} µs | {r_10k}x 3 permits | <= 1.2x: {} |
| acquire_many_4_release | {} µs | {r_many}x acquire_release | |
| blocking_acquire_release | {} µs | {r_blk}x acquire_release | |

## The server's own script capacity (redis-benchmark, 16 clients)

| case | requests/s |
| --- | ---: |
| EVALSHA of `return 1` | {rb_plain} |
| same, pipelined 16 deep (`-P 16`) | {rb_pipelined} |

Load case no-hold (16 workers, 4 permits): {nohold} cycles/s, that is {share:.0}% of
the unpipelined capacity counting 2 script calls per cycle (an acquire and a release); each
cycle also makes 2 observer calls to another server on the same 2 CPUs.

## Load (`tools load`, {secs} s per case, 4 permits, fresh servers per case)

Wait is the time in `acquire`; hand-off is from a `release()` that returned on a full
semaphore to the next grant of a worker already waiting (approximate, see tools/src/load);
calls are script calls per acquire, (EVALSHA on the masters / masters - releases) / grants,
1.0 at best; turns are the most and fewest cycles of any worker; inside is the most holders
the observer saw at once. Times in ms.

| case | masters | workers | procs | hold | waiting | cycles/s | wait p50 | wait p99 | wait max | hand-off p50 | hand-off p99 | calls/acquire | turns max/min | inside | exit |
| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |
{rows}
![wait and throughput against workers](load.svg)

## Targets

| target | measured | |
| --- | ---: | --- |
| uncontended acquire+release <= 1.2x two bare EVALSHA | {r_ar}x | {} |
| acquire+drop <= 1.3x one bare EVALSHA | {r_ad}x | {} |
| 3 masters <= 1.3x one master | {r_3m}x | {} |
| 10,000 permits <= 1.2x 3 permits | {r_10k}x | {} |
| 16 workers, 4 permits, 5 ms hold, fair: wait p99 <= 40 ms | {} ms | {} |
| same: script calls per acquire <= 1.3 | {} | {} |
| same: turns max/min <= 1.5 | {} | {} |

## Against npm redis-semaphore (same server, same run)

{peer}

## A crowd of waiters (`tools load --herd`, ours and npm's, same server, same run)

{herd}
",
            us("ping"),
            us("evalsha_bare"),
            us("acquire_release"),
            met(Some(r_ar), Some(1.2)),
            us("acquire_drop"),
            met(Some(r_ad), Some(1.3)),
            us("acquire_release_3_masters"),
            met(Some(r_3m), Some(1.3)),
            us("acquire_release_10000_permits"),
            met(Some(r_10k), Some(1.2)),
            us("acquire_many_4_release"),
            us("blocking_acquire_release"),
            met(Some(r_ar), Some(1.2)),
            met(Some(r_ad), Some(1.3)),
            met(Some(r_3m), Some(1.3)),
            met(Some(r_10k), Some(1.2)),
            opt(fair_p99),
            met(fair_p99, Some(40.0)),
            opt(fair_calls),
            met(fair_calls, Some(1.3)),
            opt(fair_turns),
            met(fair_turns, Some(1.5)),
            server = self.server,
            date = utc_now(),
            elapsed = self.elapsed,
            rb_plain = m.rb_plain,
            rb_pipelined = m.rb_pipelined,
            nohold = opt(nohold_rate),
            secs = self.secs,
            rows = self.load_rows(),
            peer = self.peer_section(),
        )
    }

    /// results.json.
    pub(in crate::bench_report) fn json(&self) -> Value {
        let m = self.m;
        let (nproc, cpu, commit) = self.machine();
        let [r_ar, r_ad, r_3m, r_10k, _, _] = self.criterion_ratios();
        let side = |name: &str, workload: &str| {
            let fields: [(&str, usize); 9] = [
                ("cycles_per_sec", 0),
                ("commands_per_cycle", 2),
                ("server_cpu_us_per_cycle", 1),
                ("client_cpu_us_per_cycle", 1),
                ("wait_p50_ms", 2),
                ("wait_p99_ms", 2),
                ("turns_ratio", 2),
                ("calls_per_acquire", 2),
                ("max_inside", 0),
            ];
            let mut o = serde_json::Map::new();
            for (field, d) in fields {
                let v = if field == "max_inside" {
                    self.pmax(name, workload, field)
                } else {
                    self.pmed(name, workload, field, d)
                };
                o.insert(field.into(), json!(v));
            }
            Value::Object(o)
        };
        let uncontended = |name: &str| {
            let mut o = serde_json::Map::new();
            for (field, d) in [
                ("ping_p50_us", 1),
                ("acquire_release_p50_us", 1),
                ("acquire_release_p99_us", 1),
                ("acquire_drop_p50_us", 1),
                ("acquire_drop_p99_us", 1),
                ("commands_per_cycle", 2),
                ("commands_per_acquire", 2),
                ("commands_per_release", 2),
                ("server_cpu_us_per_cycle", 1),
            ] {
                if name == "npm" && field.starts_with("acquire_drop") {
                    continue;
                }
                o.insert(
                    field.into(),
                    json!(self.pmed(name, "uncontended", field, d)),
                );
            }
            Value::Object(o)
        };
        let ratio_of = |workload, field, d| self.both(workload, field, d).2;
        let n_ar = self.pmed("npm", "uncontended", "acquire_release_p50_us", 1);
        let o_drop = self.pmed("ours", "uncontended", "acquire_drop_p50_us", 1);
        let (s_ar, s_3m, s_10k) = self.scaling();
        let targets: serde_json::Map<String, Value> = self
            .targets()
            .into_iter()
            .map(|t| (t.name.to_string(), json!(t.met == "met")))
            .collect();
        let error = m.peer_error.as_ref().map(|e| {
            if m.peer_log.is_empty() {
                e.clone()
            } else {
                format!("{e}: {}", m.peer_log)
            }
        });
        json!({
            "machine": {"nproc": nproc, "cpu": cpu, "server": self.server, "commit": commit},
            "criterion_median_ns": m.median_ns,
            "redis_benchmark_evalsha_per_sec": {"plain": m.rb_plain, "pipelined_16": m.rb_pipelined},
            "ratios": {"acquire_release_vs_2_evalsha": r_ar, "acquire_drop_vs_evalsha": r_ad,
                "three_masters_vs_one": r_3m, "permits_10000_vs_3": r_10k},
            "load": m.load,
            "peer": {
                "error": error,
                "rounds": self.rounds,
                "secs": self.secs,
                "settings": {
                    "npm": "new Semaphore(client, key, 4) per acquire; lockTimeout 10000, refreshInterval 8000, retryInterval 10 (defaults); acquireTimeout = time left; one ioredis connection per worker; one Node process",
                    "ours": "defaults (lease 10 s, fair); one handle per worker; tools load --local-observer --warmup; tools uncontended on a current-thread runtime"
                },
                "median": {
                    "uncontended": {"ours": uncontended("ours"), "npm": uncontended("npm")},
                    "no-hold": {"ours": side("ours", "no-hold"), "npm": side("npm", "no-hold")},
                    "hold": {"ours": side("ours", "hold"), "npm": side("npm", "hold")},
                },
                "ratios_ours_over_npm": {
                    "uncontended_acquire_release_p50": ratio_of("uncontended", "acquire_release_p50_us", 1),
                    "acquire_drop_vs_npm_acquire_release_p50": super::ratio(o_drop, n_ar, 2),
                    "no_hold_cycles_per_sec": ratio_of("no-hold", "cycles_per_sec", 0),
                    "no_hold_commands_per_cycle": ratio_of("no-hold", "commands_per_cycle", 2),
                    "no_hold_server_cpu_per_cycle": ratio_of("no-hold", "server_cpu_us_per_cycle", 1),
                    "hold_cycles_per_sec": ratio_of("hold", "cycles_per_sec", 0),
                    "hold_wait_p99": ratio_of("hold", "wait_p99_ms", 2),
                    "hold_turns_ratio": ratio_of("hold", "turns_ratio", 2),
                },
                "scaling_unpinned": m.scaling,
                "scaling_ratios": {"three_masters_vs_one": super::ratio(s_3m, s_ar, 2),
                    "permits_10000_vs_3": super::ratio(s_10k, s_ar, 2)},
                "targets_met": targets,
                "runs": m.peer_runs,
            },
            "herd": m.herd,
            "seconds": self.elapsed,
        })
    }
}

/// Now in UTC as `2025-01-31T12:00:00Z`, from `date` (the one place a calendar is needed).
fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
