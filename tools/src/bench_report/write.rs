//! The report of `make bench`: report.md, results.json and the sweep for the plot.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::{Args, Measured};

/// `a / b` to `d` decimals, if both are there and `b` is not 0.
fn ratio(a: Option<f64>, b: Option<f64>, d: usize) -> Option<f64> {
    let (a, b) = (a?, b?);
    (b != 0.0).then(|| round(a / b, d))
}

fn round(x: f64, d: usize) -> f64 {
    format!("{x:.d$}").parse().unwrap_or(x)
}

/// A figure with its unit, or "n/a".
fn na(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v}{unit}"))
}

/// "met" or "**not met**": is `a <= b`? (an absent figure is not met)
fn met(a: Option<f64>, b: Option<f64>) -> &'static str {
    match (a, b) {
        (Some(a), Some(b)) if a <= b => "met",
        (Some(_), Some(_)) => "**not met**",
        _ => "**not met** (no figure)",
    }
}

/// A field of a JSON object as the JSON text it is ("null" when absent).
fn raw(v: &Value, field: &str) -> String {
    v.get(field).map_or_else(|| "null".into(), Value::to_string)
}

fn num(v: &Value, field: &str) -> Option<f64> {
    v.get(field).and_then(Value::as_f64)
}

/// The median of `values` (the mean of the middle two for an even count).
fn median(mut values: Vec<f64>, d: usize) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(round((values[(n - 1) / 2] + values[n / 2]) / 2.0, d))
}

/// The sweep's 1- and 3-master cases against the worker count, for the plot.
pub(super) fn sweep_tsv(m: &Measured, path: &Path) -> Result<(), String> {
    let mut tsv = String::from("# masters workers cycles_per_sec wait_p50_ms wait_p99_ms\n");
    for case in m
        .load
        .iter()
        .filter(|c| c["case"].as_str().is_some_and(|c| c.starts_with("sweep-")))
    {
        let fields = [
            "masters",
            "workers",
            "cycles_per_sec",
            "wait_p50_ms",
            "wait_p99_ms",
        ];
        let line: Vec<String> = fields.iter().map(|f| raw(case, f)).collect();
        tsv += &(line.join("\t") + "\n");
    }
    std::fs::write(path, tsv).map_err(|e| format!("{}: {e}", path.display()))
}

/// The figures the report and the JSON are written from.
pub(super) struct Report<'a> {
    m: &'a Measured,
    rounds: usize,
    secs: u64,
    elapsed: u64,
    server: String,
}

/// One target against the peer: its name, what was measured, and whether `a <= b`.
struct Target {
    name: &'static str,
    measured: String,
    met: &'static str,
}

impl<'a> Report<'a> {
    pub(super) fn new(m: &'a Measured, args: &Args, elapsed: u64) -> Report<'a> {
        let server = Command::new("redis-server")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        Report {
            m,
            rounds: args.peer_rounds,
            secs: args.secs,
            elapsed,
            server,
        }
    }

    fn ns(&self, case: &str) -> f64 {
        self.m.median_ns.get(case).copied().unwrap_or(f64::NAN)
    }

    fn us(&self, case: &str) -> String {
        format!("{:.1}", self.ns(case) / 1000.0)
    }

    /// The criterion ratios: awaited acquire + release over two bare EVALSHA, acquire +
    /// drop over one, 3 masters over one, 10,000 permits over 3, acquire_many(4) and the
    /// blocking twin over acquire + release.
    fn criterion_ratios(&self) -> [f64; 6] {
        let ar = self.ns("acquire_release");
        [
            ar / (2.0 * self.ns("evalsha_bare")),
            self.ns("acquire_drop") / self.ns("evalsha_bare"),
            self.ns("acquire_release_3_masters") / ar,
            self.ns("acquire_release_10000_permits") / ar,
            self.ns("acquire_many_4_release") / ar,
            self.ns("blocking_acquire_release") / ar,
        ]
        .map(|r| round(r, 2))
    }

    fn case(&self, name: &str) -> &Value {
        static EMPTY: Value = Value::Null;
        self.m
            .load
            .iter()
            .find(|c| c["case"] == name)
            .unwrap_or(&EMPTY)
    }

    /// Every round's value of `field` for `side` and `workload`.
    fn rounds_of(&self, side: &str, workload: &str, field: &str) -> Vec<f64> {
        (1..=self.rounds)
            .filter_map(|r| self.m.peer_runs.get(&format!("{side}-{workload}-{r}")))
            .filter_map(|run| num(run, field))
            .collect()
    }

    /// The median over the rounds, which one slow spell of a shared machine does not move.
    fn pmed(&self, side: &str, workload: &str, field: &str, d: usize) -> Option<f64> {
        median(self.rounds_of(side, workload, field), d)
    }

    fn pmax(&self, side: &str, workload: &str, field: &str) -> Option<f64> {
        self.rounds_of(side, workload, field)
            .into_iter()
            .reduce(f64::max)
    }

    fn pall(&self, side: &str, workload: &str, field: &str) -> String {
        let all: Vec<String> = self
            .rounds_of(side, workload, field)
            .iter()
            .map(f64::to_string)
            .collect();
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    }

    fn turns_runs(&self, side: &str, workload: &str) -> String {
        let all: Vec<String> = (1..=self.rounds)
            .filter_map(|r| self.m.peer_runs.get(&format!("{side}-{workload}-{r}")))
            .map(|run| format!("{}/{}", raw(run, "turns_max"), raw(run, "turns_min")))
            .collect();
        if all.is_empty() {
            "none".into()
        } else {
            all.join(", ")
        }
    }

    /// The versions the peer ran with, or those package.json pins when it did not run.
    fn peer_version(&self, package: &str) -> String {
        if let Some(v) = self
            .m
            .peer_runs
            .get("npm-uncontended-1")
            .and_then(|r| r[package].as_str())
        {
            return v.to_string();
        }
        let pinned = std::fs::read_to_string("tools/peer/package.json")
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|p| p["dependencies"][package].as_str().map(str::to_string))
            .unwrap_or_default();
        format!("{pinned} (pinned; not run)")
    }

    /// One figure of both sides, by workload, field and decimals: (ours, npm, ours / npm).
    fn both(
        &self,
        workload: &str,
        field: &str,
        d: usize,
    ) -> (Option<f64>, Option<f64>, Option<f64>) {
        let (o, n) = (
            self.pmed("ours", workload, field, d),
            self.pmed("npm", workload, field, d),
        );
        (o, n, ratio(o, n, 2))
    }

    fn scaling(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let s = &self.m.scaling;
        (
            num(s, "acquire_release_p50_us"),
            num(s, "acquire_release_all_masters_p50_us"),
            num(s, "acquire_release_10000_permits_p50_us"),
        )
    }

    fn targets(&self) -> Vec<Target> {
        let (o_ar, n_ar, pr_ar) = self.both("uncontended", "acquire_release_p50_us", 1);
        let o_drop = self.pmed("ours", "uncontended", "acquire_drop_p50_us", 1);
        let pr_drop = ratio(o_drop, n_ar, 2);
        let (o_nr, n_nr, pr_nr) = self.both("no-hold", "cycles_per_sec", 0);
        let (o_ncpu, n_ncpu, pr_ncpu) = self.both("no-hold", "server_cpu_us_per_cycle", 1);
        let (o_ncmd, n_ncmd, _) = self.both("no-hold", "commands_per_cycle", 2);
        let (o_hr, n_hr, pr_hr) = self.both("hold", "cycles_per_sec", 0);
        let (o_h99, n_h99, pr_h99) = self.both("hold", "wait_p99_ms", 2);
        let (o_ht, n_ht, _) = self.both("hold", "turns_ratio", 2);
        let (s_ar, s_3m, s_10k) = self.scaling();
        let (s_r3m, s_r10k) = (ratio(s_3m, s_ar, 2), ratio(s_10k, s_ar, 2));
        let vs = |r: Option<f64>, a: Option<f64>, b: Option<f64>, unit: &str| {
            format!("{} ({} vs {})", na(r, "x"), na(a, unit), na(b, unit))
        };
        let t = |name, measured, met| Target {
            name,
            measured,
            met,
        };
        vec![
            t(
                "uncontended acquire + awaited release p50 <= npm's",
                vs(pr_ar, o_ar, n_ar, " µs"),
                met(pr_ar, Some(1.0)),
            ),
            t(
                "acquire + drop loop p50 <= 0.6x npm's acquire + release",
                vs(pr_drop, o_drop, n_ar, " µs"),
                met(pr_drop, Some(0.6)),
            ),
            t(
                "16 workers, 4 permits, no hold: cycles/s >= 1.2x npm's",
                vs(pr_nr, o_nr, n_nr, ""),
                met(Some(1.2), pr_nr),
            ),
            t(
                "same: server CPU per cycle <= 1.5x npm's",
                vs(pr_ncpu, o_ncpu, n_ncpu, " µs"),
                met(pr_ncpu, Some(1.5)),
            ),
            t(
                "same: commands per cycle <= 16",
                format!("{} (npm {})", na(o_ncmd, ""), na(n_ncmd, "")),
                met(o_ncmd, Some(16.0)),
            ),
            t(
                "16 workers, 4 permits, 5 ms holds: cycles/s >= npm's",
                vs(pr_hr, o_hr, n_hr, ""),
                met(Some(1.0), pr_hr),
            ),
            t(
                "same: wait p99 <= 1/5 of npm's",
                vs(pr_h99, o_h99, n_h99, " ms"),
                met(pr_h99, Some(0.2)),
            ),
            t(
                "same: turns max/min <= 1.5",
                format!("{} (npm {})", na(o_ht, ""), na(n_ht, "")),
                met(o_ht, Some(1.5)),
            ),
            t(
                "3 masters acquire + release <= 1.3x one master (unpinned, same run)",
                vs(s_r3m, s_3m, s_ar, " µs"),
                met(s_r3m, Some(1.3)),
            ),
            t(
                "10,000 permits <= 1.2x 3 permits (unpinned, same run)",
                vs(s_r10k, s_10k, s_ar, " µs"),
                met(s_r10k, Some(1.2)),
            ),
        ]
    }
}

mod markdown;
