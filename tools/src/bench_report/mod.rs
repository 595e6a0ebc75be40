//! `make bench`: the criterion round trips, the server's own script capacity
//! (redis-benchmark), a load sweep, and npm redis-semaphore beside this crate on the same
//! server in the same run, written to
//!
//! - `target/bench-report/report.md`: every case, the ratios, each target met or not;
//! - `target/bench-report/results.json`: the same figures, for machines;
//! - `target/bench-report/load.svg`: wait and throughput against workers.
//!
//! Everything runs on throwaway servers on loopback. Criterion runs pinned to CPU 0
//! (`--pin false` or `BENCH_PIN=0` not to pin), as docs/PERFORMANCE.md's figures were taken:
//! unpinned, cross-CPU wake-ups on a small VM make its medians jump 3-4x between runs.
//!
//! The peer (`tools/peer/peer.mjs`: npm redis-semaphore and ioredis, versions pinned by its
//! package-lock.json) is installed with `npm ci` into `target/peer` and runs against one
//! throwaway server alternately with `uncontended` and `load --local-observer` (both sides
//! count holders in-process), `--peer-rounds` rounds, the order flipped each round,
//! unpinned; the report gives the median over the rounds. Without node and npm, or if
//! `npm ci` fails, the report says so and the run exits 1 after the rest.
//!
//! The herd: `load --herd`, a crowd of waiter lines (N processes x H handles) on 4 permits
//! with 20 ms holds, measured per cell after 3 s settling, ours and the npm peer taking turns
//! on one server of its own; `load` writes the table (`herd.md`) and the JSON. The open-files
//! limit is raised by `scripts/bench.sh` for its 10,000 connections; a cell the limit cannot
//! hold is skipped, and the table says why. The whole run takes about 7 minutes on 2 cores
//! once built.

mod write;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use serde_json::{Map, Value};
use testkit::Server;

/// The criterion cases, as `tools/benches/semaphore.rs` names them.
const CRITERION_CASES: [&str; 8] = [
    "ping",
    "evalsha_bare",
    "acquire_release",
    "acquire_drop",
    "acquire_release_10000_permits",
    "acquire_release_3_masters",
    "acquire_many_4_release",
    "blocking_acquire_release",
];
/// Where everything is written.
const OUT: &str = "target/bench-report";
/// Where the npm peer is installed.
const PEER_DIR: &str = "target/peer";

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seconds per load case.
    #[arg(long, env = "BENCH_SECS", default_value_t = 3)]
    secs: u64,
    /// Pin criterion to CPU 0 (`taskset -c 0`).
    #[arg(long, env = "BENCH_PIN", default_value = "1", value_parser = clap::builder::BoolishValueParser::new())]
    pin: bool,
    /// Rounds of the comparison with the npm peer.
    #[arg(long, env = "BENCH_PEER_ROUNDS", default_value_t = 3)]
    peer_rounds: usize,
    /// The herd's cells: N processes x H handles.
    #[arg(
        long,
        env = "BENCH_HERD_CELLS",
        default_value = "4x4,200x1,10x100,20x500"
    )]
    herd_cells: String,
    /// Seconds measured per herd cell.
    #[arg(long, env = "BENCH_HERD_SECS", default_value_t = 10)]
    herd_secs: u64,
}

/// Everything measured, for the report and the JSON.
#[derive(Debug, Default)]
struct Measured {
    pinned: bool,
    /// Criterion medians in ns, by case.
    median_ns: BTreeMap<&'static str, f64>,
    /// redis-benchmark, EVALSHA of `return 1`: plain and pipelined 16 deep, requests/s.
    rb_plain: f64,
    rb_pipelined: f64,
    /// The load cases, each its JSON line with `case` and `exit` added.
    load: Vec<Value>,
    /// Why the peer was not installed, and the end of npm's log.
    peer_error: Option<String>,
    peer_log: String,
    /// The peer comparison's runs: "side-workload-round" -> its JSON line, `exit` added.
    peer_runs: BTreeMap<String, Value>,
    peer_failed: bool,
    herd: Value,
    herd_exit: i32,
    /// `uncontended --masters 3 --scaling`.
    scaling: Value,
    failed: bool,
}

pub(crate) fn main(args: Args) -> i32 {
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench: {e}");
            1
        }
    }
}

fn say(what: &str) {
    eprintln!("bench: {what}");
}

fn run(args: &Args) -> Result<i32, String> {
    let started = Instant::now();
    let out = Path::new(OUT);
    fs::create_dir_all(out).map_err(|e| format!("{OUT}: {e}"))?;
    let log = Log::create(&out.join("bench.log"))?;
    let tools = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut m = Measured::default();

    say("building the criterion bench (release)");
    check(
        Command::new("cargo")
            .args(["bench", "-p", "tools", "--bench", "semaphore", "--no-run"])
            .status(),
        "cargo bench --no-run",
    )?;
    install_peer(&mut m, out);
    criterion(&mut m, args, &log)?;
    redis_benchmark(&mut m, &log)?;
    load_sweep(&mut m, args, &tools, &log);
    peer_comparison(&mut m, args, &tools, &log)?;
    herd(&mut m, args, &tools, &log);
    scaling(&mut m, &tools, &log);

    write::sweep_tsv(&m, &out.join("sweep.tsv"))?;
    crate::plot::plot(
        &out.join("sweep.tsv").to_string_lossy(),
        &out.join("load.svg").to_string_lossy(),
    )
    .map_err(|e| format!("plot: {e}"))?;
    let elapsed = started.elapsed().as_secs();
    let report = write::Report::new(&m, args, elapsed);
    fs::write(out.join("report.md"), report.markdown()).map_err(|e| format!("report.md: {e}"))?;
    let json = serde_json::to_string_pretty(&report.json()).expect("JSON");
    fs::write(out.join("results.json"), json + "\n").map_err(|e| format!("results.json: {e}"))?;
    say(&format!(
        "wrote {OUT}/report.md, {OUT}/results.json and {OUT}/load.svg in {elapsed} s"
    ));

    let mut failed = m.failed;
    if let Some(why) = &m.peer_error {
        say(&format!("the npm peer was not measured: {why}"));
        failed = true;
    }
    if m.peer_failed {
        say(&format!("some peer runs failed: see {OUT}/bench.log"));
        failed = true;
    }
    if failed {
        say(&format!(
            "some cases failed: see the exit column, the peer section and {OUT}/bench.log"
        ));
        return Ok(1);
    }
    Ok(0)
}

/// The run's log: what every command printed on stderr.
struct Log(PathBuf);

impl Log {
    fn create(path: &Path) -> Result<Log, String> {
        fs::write(path, "").map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Log(path.to_path_buf()))
    }

    /// A handle to append to, for a child's stderr (or stdout).
    fn stdio(&self) -> Stdio {
        fs::OpenOptions::new()
            .append(true)
            .open(&self.0)
            .map_or_else(|_| Stdio::null(), Stdio::from)
    }

    fn tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.0).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

fn check(status: std::io::Result<std::process::ExitStatus>, what: &str) -> Result<(), String> {
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed: {s}")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Runs `program args` under `timeout SECS`, its stderr to the log; its exit code and the
/// last line of its stdout.
fn run_logged(timeout_secs: u64, program: &Path, args: &[String], log: &Log) -> (i32, String) {
    let output = Command::new("timeout")
        .arg(timeout_secs.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(log.stdio())
        .output();
    match output {
        Ok(out) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let last = stdout.lines().last().unwrap_or("").to_string();
            (out.status.code().unwrap_or(-1), last)
        }
        Err(e) => (-1, format!("cannot run {}: {e}", program.display())),
    }
}

/// A JSON line as an object, `exit` added (an empty object if it is not one).
fn with_exit(line: &str, exit: i32) -> Map<String, Value> {
    let mut fields = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => fields,
        _ => Map::new(),
    };
    fields.insert("exit".into(), exit.into());
    fields
}

/// Copies the peer into target/peer and runs `npm ci` there.
fn install_peer(m: &mut Measured, out: &Path) {
    say(&format!("installing the npm peer into {PEER_DIR} (npm ci)"));
    let has = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has("node") || !has("npm") {
        m.peer_error =
            Some("node and npm are not installed (the peer needs Node 20 or later)".into());
    } else {
        let _ = fs::remove_dir_all(PEER_DIR);
        let copied = fs::create_dir_all(PEER_DIR).is_ok()
            && ["package.json", "package-lock.json", "peer.mjs"]
                .iter()
                .all(|f| {
                    fs::copy(Path::new("tools/peer").join(f), Path::new(PEER_DIR).join(f)).is_ok()
                });
        let log_path = out.join("npm-install.log");
        let npm_log = fs::File::create(&log_path).ok();
        let status = copied.then(|| {
            Command::new("npm")
                .args(["ci", "--prefix", PEER_DIR, "--no-audit", "--no-fund"])
                .stdout(
                    npm_log
                        .as_ref()
                        .and_then(|f| f.try_clone().ok())
                        .map_or_else(Stdio::null, Stdio::from),
                )
                .stderr(npm_log.map_or_else(Stdio::null, Stdio::from))
                .status()
        });
        match status {
            Some(Ok(s)) if s.success() => {}
            other => {
                let code = match other {
                    Some(Ok(s)) => s.code().unwrap_or(-1),
                    _ => 1,
                };
                m.peer_error = Some(format!("`npm ci --prefix {PEER_DIR}` failed (exit {code})"));
                let text = fs::read_to_string(&log_path).unwrap_or_default();
                let lines: Vec<&str> = text
                    .lines()
                    // Not npm's stack trace: `npm error     at ...`.
                    .filter(|l| {
                        !l.strip_prefix("npm error ")
                            .is_some_and(|r| r.trim_start().starts_with("at "))
                    })
                    .collect();
                m.peer_log = lines[lines.len().saturating_sub(12)..].join("\n");
            }
        }
    }
    if let Some(why) = &m.peer_error {
        say(&format!(
            "NPM PEER NOT INSTALLED: {why} (the report will say so; exit 1 at the end)"
        ));
    }
}

/// The criterion round trips, pinned unless told not to; their fresh medians.
fn criterion(m: &mut Measured, args: &Args, log: &Log) -> Result<(), String> {
    m.pinned = args.pin
        && Command::new("taskset")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    say(&format!(
        "criterion round trips (about a minute){}",
        if m.pinned { ", pinned to CPU 0" } else { "" }
    ));
    let began = SystemTime::now();
    let mut command = if m.pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "cargo"]);
        c
    } else {
        Command::new("cargo")
    };
    command
        .args([
            "bench",
            "-p",
            "tools",
            "--bench",
            "semaphore",
            "--",
            "--noplot",
        ])
        .stdout(log.stdio())
        .stderr(log.stdio());
    if check(command.status(), "cargo bench").is_err() {
        eprintln!("{}", log.tail(30));
        return Err(format!("cargo bench failed (log: {OUT}/bench.log)"));
    }
    for case in CRITERION_CASES {
        let path = format!("target/criterion/round_trip/{case}/new/estimates.json");
        let fresh = fs::metadata(&path)
            .and_then(|meta| meta.modified())
            .is_ok_and(|modified| modified >= began);
        let median = fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|v| v["median"]["point_estimate"].as_f64());
        match median {
            Some(ns) if fresh => {
                m.median_ns.insert(case, ns);
            }
            _ => return Err(format!("no fresh median for {case} in {path}")),
        }
    }
    Ok(())
}

/// redis-benchmark's EVALSHA of `return 1` on a throwaway redis-server, 16 clients.
fn redis_benchmark(m: &mut Measured, log: &Log) -> Result<(), String> {
    say("redis-benchmark: EVALSHA of 'return 1'");
    let server = Server::start_bin("redis-server".into(), &[]);
    let sha: String = redis::from_redis_value(server.cmd(&["SCRIPT", "LOAD", "return 1"]))
        .map_err(|e| e.to_string())?;
    let port = server.port().to_string();
    let requests_per_sec = |extra: &[&str]| -> Option<f64> {
        let out = Command::new("redis-benchmark")
            .args(["-h", "127.0.0.1", "-p", &port, "-c", "16", "-q"])
            .args(extra)
            .args(["EVALSHA", &sha, "0"])
            .stderr(log.stdio())
            .output()
            .ok()?;
        // Its progress lines end in \r; the last "N requests per second" is the result.
        String::from_utf8_lossy(&out.stdout)
            .split(['\r', '\n'])
            .filter_map(|line| {
                let (before, _) = line.split_once(" requests per second")?;
                before.rsplit(' ').next()?.parse().ok()
            })
            .next_back()
    };
    m.rb_plain =
        requests_per_sec(&["-n", "200000"]).ok_or("cannot read redis-benchmark's output")?;
    m.rb_pipelined = requests_per_sec(&["-n", "1000000", "-P", "16"])
        .ok_or("cannot read redis-benchmark's output")?;
    Ok(())
}

/// The load cases, each on fresh servers.
fn load_sweep(m: &mut Measured, args: &Args, tools: &Path, log: &Log) {
    let mut cases: Vec<(String, Vec<&str>)> = Vec::new();
    for masters in ["1", "3"] {
        for workers in ["1", "2", "4", "8", "16", "32"] {
            cases.push((
                format!("sweep-m{masters}-w{workers}"),
                vec![
                    "--masters",
                    masters,
                    "--workers",
                    workers,
                    "--permits",
                    "4",
                    "--hold-ms",
                    "5",
                ],
            ));
        }
    }
    let case = |name: &str, a: &[&'static str]| (name.to_string(), a.to_vec());
    cases.extend([
        case(
            "no-hold",
            &["--workers", "16", "--permits", "4", "--hold-ms", "0"],
        ),
        case(
            "fair",
            &["--workers", "16", "--permits", "4", "--hold-ms", "5"],
        ),
        case(
            "unfair",
            &[
                "--workers",
                "16",
                "--permits",
                "4",
                "--hold-ms",
                "5",
                "--unfair",
            ],
        ),
        case(
            "poll-10ms",
            &[
                "--workers",
                "16",
                "--permits",
                "4",
                "--hold-ms",
                "5",
                "--poll-ms",
                "10",
            ],
        ),
        case(
            "4-processes",
            &[
                "--workers",
                "16",
                "--processes",
                "4",
                "--permits",
                "4",
                "--hold-ms",
                "5",
            ],
        ),
    ]);
    for (label, case_args) in cases {
        say(&format!("load {label}: {}", case_args.join(" ")));
        let mut argv: Vec<String> = ["load", "--json", "--secs"].map(String::from).to_vec();
        argv.push(args.secs.to_string());
        argv.extend(case_args.iter().map(|a| a.to_string()));
        let (exit, line) = run_logged(120, tools, &argv, log);
        let mut fields = with_exit(&line, exit);
        if exit != 0 || !line.starts_with('{') {
            say(&format!(
                "load {label} FAILED (exit {exit}; log: {OUT}/bench.log)"
            ));
            m.failed = true;
            fields.entry("masters").or_insert(Value::Null);
        }
        fields.insert("case".into(), label.into());
        m.load.push(Value::Object(fields));
    }
}

/// Ours and npm's on one throwaway server, alternately, the order flipped with every
/// workload and every round, a fresh semaphore name for every run.
fn peer_comparison(m: &mut Measured, args: &Args, tools: &Path, log: &Log) -> Result<(), String> {
    let server = Server::start_bin("redis-server".into(), &[]);
    let url = server.url();
    let secs = args.secs.to_string();
    let node = PathBuf::from("node");
    let peer = format!("{PEER_DIR}/peer.mjs");
    for round in 1..=args.peer_rounds {
        for (w, workload) in ["uncontended", "no-hold", "hold"].into_iter().enumerate() {
            let name = format!("peer-{workload}-r{round}-{}", std::process::id());
            let strings = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
            let (ours, npm) = if workload == "uncontended" {
                (
                    strings(&[
                        "uncontended",
                        "--json",
                        "--url",
                        &url,
                        "--name",
                        &format!("{name}-ours"),
                    ]),
                    strings(&[
                        &peer,
                        "uncontended",
                        "--url",
                        &url,
                        "--name",
                        &format!("{name}-npm"),
                    ]),
                )
            } else {
                let hold = if workload == "hold" { "5" } else { "0" };
                let common = [
                    "--secs",
                    &secs,
                    "--workers",
                    "16",
                    "--permits",
                    "4",
                    "--hold-ms",
                    hold,
                ];
                let mut ours = strings(&[
                    "load",
                    "--json",
                    "--url",
                    &url,
                    "--local-observer",
                    "--warmup",
                ]);
                ours.extend(strings(&common));
                ours.extend(strings(&["--name", &format!("{name}-ours")]));
                let mut npm = strings(&[&peer, "load", "--url", &url]);
                npm.extend(strings(&common));
                npm.extend(strings(&["--name", &format!("{name}-npm")]));
                (ours, npm)
            };
            let mut sides = vec![("ours", tools, ours)];
            if m.peer_error.is_none() {
                sides.push(("npm", node.as_path(), npm));
            }
            if (round + w) % 2 == 0 {
                sides.reverse();
            }
            for (side, program, argv) in sides {
                let key = format!("{side}-{workload}-{round}");
                say(&format!(
                    "peer {key}: {} {}",
                    argv[0].rsplit('/').next().unwrap_or(""),
                    argv.get(1).map_or("", |s| s.as_str())
                ));
                let (exit, line) = run_logged(120, program, &argv, log);
                if exit != 0 || !line.starts_with('{') {
                    say(&format!(
                        "peer {key} FAILED (exit {exit}; log: {OUT}/bench.log)"
                    ));
                    m.peer_failed = true;
                }
                m.peer_runs
                    .insert(key, Value::Object(with_exit(&line, exit)));
            }
        }
    }
    Ok(())
}

/// The herd: `load --herd`, ours and npm's, writing herd.md and its JSON.
fn herd(m: &mut Measured, args: &Args, tools: &Path, log: &Log) {
    say(&format!(
        "herd: {} (processes x handles), 4 permits, 20 ms holds, {} s each",
        args.herd_cells, args.herd_secs
    ));
    let markdown = format!("{OUT}/herd.md");
    let _ = fs::remove_file(&markdown);
    let mut argv: Vec<String> = vec!["load".into(), "--herd".into(), args.herd_cells.clone()];
    for a in [
        "--permits",
        "4",
        "--hold-ms",
        "20",
        "--settle-secs",
        "3",
        "--json",
    ] {
        argv.push(a.into());
    }
    argv.extend([
        "--secs".into(),
        args.herd_secs.to_string(),
        "--markdown".into(),
        markdown,
    ]);
    if m.peer_error.is_none() {
        argv.extend(["--peer".into(), format!("node {PEER_DIR}/peer.mjs")]);
    }
    let (exit, line) = run_logged(900, tools, &argv, log);
    m.herd_exit = exit;
    m.herd = serde_json::from_str(&line).unwrap_or(Value::Null);
    if exit != 0 || !line.starts_with('{') {
        say(&format!("herd FAILED (exit {exit}; log: {OUT}/bench.log)"));
        m.failed = true;
    }
}

/// 3 masters against one, 10,000 permits against 3: one process, its own servers, unpinned.
fn scaling(m: &mut Measured, tools: &Path, log: &Log) {
    say("uncontended scaling: 3 masters, 10,000 permits (unpinned)");
    let argv = ["uncontended", "--json", "--masters", "3", "--scaling"].map(String::from);
    let (exit, line) = run_logged(180, tools, &argv, log);
    match serde_json::from_str::<Value>(&line) {
        Ok(v @ Value::Object(_)) if exit == 0 => m.scaling = v,
        _ => {
            say(&format!(
                "uncontended scaling FAILED (exit {exit}; log: {OUT}/bench.log)"
            ));
            m.failed = true;
            m.scaling = Value::Object(Map::new());
        }
    }
}
