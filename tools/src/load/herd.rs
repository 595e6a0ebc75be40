//! `--herd`: what a crowd of waiters costs per hand-off, ours beside npm redis-semaphore.
//!
//! ```text
//! cargo run --release --example load -- --herd 4x4,200x1,10x100,20x500 \
//!     --permits 4 --hold-ms 20 --secs 10 --peer "node target/peer/peer.mjs"
//! ```
//!
//! Each cell `NxH` is N real OS processes (this binary again, as `--processes` runs them)
//! of H handles each: N x H waiter lines, every one looping acquire, hold, release on one
//! semaphore. A per-process cost (a wake-up that every subscribed process reads) only
//! shows with processes of their own, each with its own connections. With `--peer CMD`,
//! `CMD herd ...` (tools/peer/peer.mjs) runs npm redis-semaphore with N x H ioredis
//! connections, one per line, in as many Node processes (at most [`NPM_PROCESSES`]): npm's
//! waiters poll, each on its own connection, with no pub/sub, so its server cost is per
//! connection, not per process; the processes only give its event loops the CPU that one
//! would lack at 10,000 connections (its timers fire late, and holds stretch). The two
//! sides take turns on one `redis-server` started for the run (or `--url`), a fresh
//! semaphore name each, never at the same time, the order flipped from one cell to the
//! next.
//!
//! Both sides speak the `--processes` protocol: READY once every line has its connection,
//! GO on stdin, then after the run one `C worker start grant let_go release full` line per
//! cycle (µs since the epoch), `E` errors, `SPAN`, `DONE`. Every figure is computed here,
//! from those lines and from the server, in the same way for both.
//!
//! The measured window is `--secs` long and starts `--settle-secs` after GO, so that the
//! first acquire of every line, a burst that does not repeat, is left out (when the lines
//! take longer than that to line up, as 10,000 of them can, the rest of the burst is in);
//! the lines run one second past it, so that the waiters giving up at the end are not
//! counted.
//! Over the window:
//! - hand-offs: grants (acquire returned) inside it; every figure "per hand-off" divides by
//!   them: the server's CPU (`INFO cpu`, `used_cpu_user + used_cpu_sys`), its commands
//!   (`INFO commandstats`, every `calls=`, those run from Lua too), its script calls,
//!   PUBLISHes and bytes written to clients (`INFO stats`), and the CPU of the clients'
//!   processes (`/proc/PID/stat`);
//! - permits busy: the time holders held (from the grant to the call of release), clipped
//!   to the window, over permits x window;
//! - wait p50 / p99: from the call of acquire to the grant, of the grants in the window;
//!   beside it what perfect FIFO gives, lines x hold / permits.
//!
//! Over the whole run: turns max/min (the most grants of any line over the fewest; lines
//! never served are counted apart), and the most holders at once: from each holder's grant
//! to its call of release, which lie inside the time it really held, so more than
//! `--permits` is an over-admission (exit 3), never a false alarm.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::time::{Instant, sleep_until, timeout_at};

use testkit::info::{Served, Stats};

use super::{CHILD_ENV, Cycle, Options, quantile_ms, runtime};
use crate::measure::{cpu_us_of, now_us};

/// At most this many cells, processes per cell, handles per process and lines per cell.
const MAX_CELLS: usize = 16;
const MAX_PROCESSES: usize = 500;
const MAX_HANDLES: usize = 1000;
const MAX_LINES: usize = 20_000;
/// npm's lines run in as many Node processes as ours, up to this many (each some 50 MB).
const NPM_PROCESSES: usize = 20;
/// The lines run this long past the measured window.
const TAIL: Duration = Duration::from_secs(1);
/// How long the lines of one cell may take to connect and say READY.
const SETUP: Duration = Duration::from_secs(120);
/// How long past its run a side may take to report before it is killed.
const GRACE: Duration = Duration::from_secs(60);
/// File descriptors kept aside besides one per connection (the server's own, the
/// client's runtime, stdio).
const SPARE_FDS: u64 = 64;

/// The cells of `--herd`: (processes, handles each); none outside herd mode.
#[derive(Debug, Clone, Default)]
pub(super) struct Cells(Vec<(usize, usize)>);

impl std::ops::Deref for Cells {
    type Target = [(usize, usize)];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Cells {
    /// `NxH[,NxH...]`: N processes of H handles each; empty: none.
    pub(super) fn parse(spec: &str) -> Result<Cells, String> {
        if spec.is_empty() {
            return Ok(Cells::default());
        }
        parse_cells(spec).map(Cells)
    }
}

/// `NxH[,NxH...]`: N processes of H handles each.
fn parse_cells(spec: &str) -> Result<Vec<(usize, usize)>, String> {
    let cells = spec
        .split(',')
        .map(|cell| {
            let bad = || format!("--herd: {cell:?} is not NxH (processes x handles)");
            let (n, h) = cell.trim().split_once('x').ok_or_else(bad)?;
            let n: usize = n.parse().map_err(|_| bad())?;
            let h: usize = h.parse().map_err(|_| bad())?;
            if !(1..=MAX_PROCESSES).contains(&n) || !(1..=MAX_HANDLES).contains(&h) {
                return Err(format!(
                    "--herd: {cell}: 1 to {MAX_PROCESSES} processes of 1 to {MAX_HANDLES} handles"
                ));
            }
            if n * h > MAX_LINES {
                return Err(format!("--herd: {cell}: at most {MAX_LINES} lines"));
            }
            Ok((n, h))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if cells.len() > MAX_CELLS {
        return Err(format!("--herd: at most {MAX_CELLS} cells"));
    }
    Ok(cells)
}

/// Whose semaphore a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    Npm,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Npm => "npm",
        }
    }
}

/// One cell of one side: measured, skipped (why), or failed (why).
#[derive(Debug)]
struct Run {
    processes: usize,
    handles: usize,
    side: Side,
    result: Result<Measured, Outcome>,
}

#[derive(Debug)]
enum Outcome {
    Skipped(String),
    Failed(String),
}

/// What one side did in one cell.
#[derive(Debug)]
struct Measured {
    window_secs: f64,
    handoffs: usize,
    served: Served,
    /// The clients' processes' CPU over the window, µs (`None` off Linux).
    client_cpu_us: Option<f64>,
    busy: f64,
    /// Waits of the grants in the window, µs, sorted.
    waits: Vec<u64>,
    /// Grants per line over the whole run.
    turns: Vec<u64>,
    max_inside: u32,
    errors: Vec<String>,
}

impl Measured {
    fn per_handoff(&self, x: f64) -> Option<f64> {
        (self.handoffs > 0).then(|| x / self.handoffs as f64)
    }

    fn turns_min_max(&self) -> (u64, u64) {
        let min = self.turns.iter().copied().min().unwrap_or(0);
        let max = self.turns.iter().copied().max().unwrap_or(0);
        (min, max)
    }

    fn unserved(&self) -> usize {
        self.turns.iter().filter(|&&t| t == 0).count()
    }

    fn publishes(&self) -> u64 {
        ["publish", "spublish"]
            .iter()
            .filter_map(|c| self.served.by_command.get(*c))
            .sum()
    }
}

/// Runs every cell, ours and (with `--peer`) npm's; prints the table (or JSON); returns the
/// exit code.
pub(super) fn run(mut o: Options) -> i32 {
    if o.urls.len() > 1 || o.masters > 1 || o.observer.is_some() || o.local_observer {
        eprintln!("load: --herd runs on one server, with no observer");
        return 2;
    }
    let nofile = open_files_limit();
    let most_lines = o.herd.iter().map(|(n, h)| n * h).max().unwrap_or(0) as u64;
    // The server needs a descriptor per connection: it is started with room for the
    // largest cell, within this process's limit (which it inherits).
    let maxclients = (most_lines + SPARE_FDS).min(nofile.unwrap_or(u64::MAX).saturating_sub(32));
    let server = o
        .urls
        .is_empty()
        .then(|| testkit::Server::start_with(&["--maxclients", &maxclients.to_string()]));
    if let Some(server) = &server {
        o.urls = vec![server.url()];
    }
    let url = o.urls[0].clone();
    let rt = runtime();
    let version = rt.block_on(server_version(&url)).unwrap_or_else(|e| e);
    // The machine is shared: what else ran says how far to trust the figures.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into());

    let mut runs = Vec::new();
    for (i, &(processes, handles)) in o.herd.iter().enumerate() {
        let mut sides = vec![Side::Ours];
        if o.peer.is_some() {
            sides.push(Side::Npm);
        }
        if i % 2 == 1 {
            sides.reverse();
        }
        for side in sides {
            let lines = (processes * handles) as u64;
            eprintln!(
                "load: herd {processes}x{handles} ({lines} lines), {}",
                side.label()
            );
            // Each connection is a descriptor in the server (one per line) and in the
            // client's process.
            let needed = shape(side, processes, handles).1 as u64 + SPARE_FDS;
            let result = match nofile {
                Some(limit) if needed > limit || lines + SPARE_FDS > maxclients + 32 => {
                    Err(Outcome::Skipped(format!(
                        "{lines} connections need {} file descriptors, `ulimit -n` is {limit}",
                        needed.max(lines + SPARE_FDS)
                    )))
                }
                _ => rt
                    .block_on(measure(&o, &url, side, processes, handles, i))
                    .map_err(Outcome::Failed),
            };
            if let Err(Outcome::Failed(e) | Outcome::Skipped(e)) = &result {
                eprintln!("load: herd {processes}x{handles} {}: {e}", side.label());
            }
            runs.push(Run {
                processes,
                handles,
                side,
                result,
            });
        }
    }
    drop(server);

    let table = markdown(&o, &runs, &version, &load);
    if let Some(path) = &o.markdown
        && let Err(e) = std::fs::write(path, &table)
    {
        eprintln!("load: cannot write {path}: {e}");
        return 1;
    }
    if o.json {
        println!("{}", json(&o, &runs, &version, &load));
    } else {
        print!("{table}");
    }
    let mut code = 0;
    for run in &runs {
        match &run.result {
            Ok(m) => {
                for e in &m.errors {
                    eprintln!("load: error: {e}");
                }
                if m.max_inside > o.permits && run.side == Side::Npm {
                    // The peer's own failing (its leases are timed on the clients' clocks):
                    // a finding of the comparison, in the table's `most inside` column.
                    eprintln!(
                        "load: the npm peer held {} holders of {} permits at once ({}x{})",
                        m.max_inside, o.permits, run.processes, run.handles
                    );
                } else if m.max_inside > o.permits {
                    eprintln!(
                        "load: OVER-ADMISSION: {} holders of {} permits ({}x{} {})",
                        m.max_inside,
                        o.permits,
                        run.processes,
                        run.handles,
                        run.side.label()
                    );
                    code = 3;
                } else if !m.errors.is_empty() && code == 0 {
                    code = 1;
                }
            }
            Err(Outcome::Failed(_)) if code == 0 => code = 1,
            Err(_) => {}
        }
    }
    code
}

/// `redis_version` (or Valkey's) of the server, for the table.
async fn server_version(url: &str) -> Result<String, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut con)
        .await
        .map_err(|e| e.to_string())?;
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
    };
    Ok(match field("valkey_version:") {
        Some(v) => format!("Valkey {v}"),
        None => format!("Redis {}", field("redis_version:").unwrap_or_default()),
    })
}

/// How a side runs a cell: processes, and lines in the largest.
fn shape(side: Side, processes: usize, handles: usize) -> (usize, usize) {
    match side {
        Side::Ours => (processes, handles),
        Side::Npm => {
            let lines = processes * handles;
            let n = processes.min(NPM_PROCESSES);
            (n, lines.div_ceil(n))
        }
    }
}

/// This process's limit on open files (`ulimit -n`), from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A side's processes, with their output read line by line.
struct Proc {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

/// Starts one side's processes for a cell, runs them, and measures the window.
async fn measure(
    o: &Options,
    url: &str,
    side: Side,
    processes: usize,
    handles: usize,
    cell: usize,
) -> Result<Measured, String> {
    let lines = processes * handles;
    let name = format!("herd-{}-{cell}-{}", std::process::id(), side.label());
    let total = o.settle_secs + o.secs + TAIL.as_secs_f64();
    let mut commands = Vec::new();
    match side {
        Side::Ours => {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let child = Options {
                urls: vec![url.to_string()],
                name: Some(name),
                secs: total,
                warmup: true,
                ..o.clone()
            };
            for p in 0..processes {
                let mut c = Command::new(&exe);
                c.args(child.child_args(handles))
                    .env(CHILD_ENV, (p * handles).to_string());
                commands.push(c);
            }
        }
        Side::Npm => {
            let peer = o.peer.as_deref().unwrap_or_default();
            let mut words = peer.split_whitespace();
            let program = words.next().ok_or("--peer is empty")?;
            let args: Vec<&str> = words.collect();
            let (n, _) = shape(side, processes, handles);
            let mut first = 0;
            for p in 0..n {
                let count = lines / n + usize::from(p < lines % n);
                let mut c = Command::new(program);
                c.args(&args).arg("herd").args([
                    "--url",
                    url,
                    "--name",
                    &name,
                    "--first",
                    &first.to_string(),
                    "--workers",
                    &count.to_string(),
                    "--permits",
                    &o.permits.to_string(),
                    "--hold-ms",
                    &o.hold.as_millis().to_string(),
                    "--secs",
                    &total.to_string(),
                ]);
                commands.push(c);
                first += count;
            }
        }
    }
    let mut procs = Vec::new();
    for mut c in commands {
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", c.as_std().get_program()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        procs.push(Proc {
            child,
            lines: BufReader::new(stdout).lines(),
        });
    }

    let ready_by = Instant::now() + SETUP;
    for p in &mut procs {
        let line = next_line(p, ready_by).await?;
        if line != "READY" {
            return Err(format!("a process said {line:?} instead of READY"));
        }
    }
    let pids: Vec<String> = procs
        .iter()
        .filter_map(|p| p.child.id())
        .map(|pid| format!("/proc/{pid}/stat"))
        .collect();
    let clients_cpu = || -> Option<f64> { pids.iter().map(|p| cpu_us_of(p)).sum() };
    let mut stats = Stats::connect(&[url.to_string()]).await?;
    for p in &mut procs {
        let stdin = p.child.stdin.as_mut().expect("piped stdin");
        stdin
            .write_all(b"GO\n")
            .await
            .map_err(|e| format!("cannot start a process: {e}"))?;
        stdin.flush().await.map_err(|e| e.to_string())?;
    }
    let go = Instant::now();
    sleep_until(go + Duration::from_secs_f64(o.settle_secs)).await;
    let (before, window_start, cpu_before) = {
        let t = now_us();
        let snap = stats.snapshot().await?;
        (snap, (t + now_us()) / 2, clients_cpu())
    };
    sleep_until(go + Duration::from_secs_f64(o.settle_secs + o.secs)).await;
    let (served, window_end, cpu_after) = {
        let t = now_us();
        let served = stats.since(&before).await?;
        (served, (t + now_us()) / 2, clients_cpu())
    };

    let done_by = go + Duration::from_secs_f64(total) + GRACE;
    let mut cycles = Vec::new();
    let mut errors = Vec::new();
    for p in &mut procs {
        // A bounded number of lines, then DONE, or the deadline.
        loop {
            let line = next_line(p, done_by).await?;
            let mut f = line.split(' ').skip(1);
            let mut n = || f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            match line.split(' ').next() {
                Some("C") => cycles.push(Cycle {
                    worker: n() as usize,
                    start: n(),
                    grant: n(),
                    let_go: n(),
                    release: n(),
                    full: n() == 1,
                }),
                Some("E") => errors.push(line[2..].to_string()),
                Some("SPAN") => {}
                Some("DONE") => break,
                _ => return Err(format!("a process said {line:?}")),
            }
        }
        match timeout_at(done_by, p.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => errors.push(format!("a process exited with {status}")),
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err("a process did not exit in time (killed)".into()),
        }
    }
    Ok(figures(
        o,
        lines,
        (window_start, window_end),
        cycles,
        served,
        cpu_after.zip(cpu_before).map(|(a, b)| a - b),
        errors,
    ))
}

/// The next line of `p`'s output, by `deadline` (else the side is killed, on drop).
async fn next_line(p: &mut Proc, deadline: Instant) -> Result<String, String> {
    match timeout_at(deadline, p.lines.next_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        Ok(Ok(None)) => Err("a process ended early (its error is above)".into()),
        Ok(Err(e)) => Err(format!("cannot read a process's output: {e}")),
        Err(_) => Err("a process did not answer in time (killed)".into()),
    }
}

/// The figures of one side's cycles and what the server served in the window.
fn figures(
    o: &Options,
    lines: usize,
    (start, end): (u64, u64),
    cycles: Vec<Cycle>,
    served: Served,
    client_cpu_us: Option<f64>,
    errors: Vec<String>,
) -> Measured {
    let inside = |c: &Cycle| (start..end).contains(&c.grant);
    let mut waits: Vec<u64> = cycles
        .iter()
        .filter(|c| inside(c))
        .map(|c| c.grant.saturating_sub(c.start))
        .collect();
    waits.sort_unstable();
    let held: u64 = cycles
        .iter()
        .map(|c| c.let_go.min(end).saturating_sub(c.grant.max(start)))
        .sum();
    let window = end.saturating_sub(start);
    let busy = if window > 0 {
        held as f64 / (f64::from(o.permits) * window as f64)
    } else {
        0.0
    };
    let mut turns = vec![0u64; lines];
    for c in &cycles {
        if let Some(t) = turns.get_mut(c.worker) {
            *t += 1;
        }
    }
    // The most holders at once: +1 at each grant, -1 at each let-go, the let-go first at
    // the same microsecond.
    let mut events: Vec<(u64, i32)> = cycles
        .iter()
        .flat_map(|c| [(c.grant, 1), (c.let_go, -1)])
        .collect();
    events.sort_unstable();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in events {
        now += d;
        most = most.max(now);
    }
    Measured {
        window_secs: window as f64 / 1e6,
        handoffs: waits.len(),
        served,
        client_cpu_us,
        busy,
        waits,
        turns,
        max_inside: most.max(0) as u32,
        errors,
    }
}

/// A figure with `d` decimals, or `null`.
fn num(v: Option<f64>, d: usize) -> String {
    v.filter(|v| v.is_finite())
        .map_or_else(|| "null".to_string(), |v| format!("{v:.d$}"))
}

/// A JSON string.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The whole run as one JSON object: the settings, then one entry per cell and side.
fn json(o: &Options, runs: &[Run], version: &str, load: &str) -> String {
    let mut out = format!(
        "{{\"mode\":\"herd\",\"server\":{},\"loadavg_before\":{},\"permits\":{},\"hold_ms\":{},\"secs\":{},\
         \"settle_secs\":{},\"fair\":{},\"peer\":{},\"runs\":[",
        json_str(version),
        json_str(load),
        o.permits,
        o.hold.as_millis(),
        o.secs,
        o.settle_secs,
        o.fair,
        o.peer.as_deref().map_or_else(|| "null".into(), json_str),
    );
    for (i, run) in runs.iter().enumerate() {
        let lines = run.processes * run.handles;
        let _ = write!(
            out,
            "{}{{\"cell\":\"{}x{}\",\"side\":\"{}\",\"processes\":{},\"handles\":{},\"lines\":{lines}",
            if i > 0 { "," } else { "" },
            run.processes,
            run.handles,
            run.side.label(),
            shape(run.side, run.processes, run.handles).0,
            shape(run.side, run.processes, run.handles).1,
        );
        match &run.result {
            Err(Outcome::Skipped(why)) => {
                let _ = write!(out, ",\"skipped\":{}}}", json_str(why));
            }
            Err(Outcome::Failed(why)) => {
                let _ = write!(out, ",\"failed\":{}}}", json_str(why));
            }
            Ok(m) => {
                let per = |x: f64, d| num(m.per_handoff(x), d);
                let (tmin, tmax) = m.turns_min_max();
                let fifo_ms = lines as f64 * o.hold.as_secs_f64() * 1e3 / f64::from(o.permits);
                let by_command: Vec<String> = m
                    .served
                    .by_command
                    .iter()
                    .map(|(c, n)| format!("{}:{}", json_str(c), per(*n as f64, 2)))
                    .collect();
                let _ = write!(
                    out,
                    concat!(
                        ",\"window_secs\":{:.3},\"handoffs\":{},\"handoffs_per_sec\":{:.1},",
                        "\"server_cpu_us_per_handoff\":{},\"commands_per_handoff\":{},",
                        "\"scripts_per_handoff\":{},\"scripts_per_sec\":{:.0},",
                        "\"publish_per_handoff\":{},\"net_out_bytes_per_handoff\":{},",
                        "\"client_cpu_us_per_handoff\":{},\"busy_pct\":{:.1},",
                        "\"wait_p50_ms\":{},\"wait_p99_ms\":{},\"fifo_wait_ms\":{:.0},",
                        "\"turns_min\":{},\"turns_max\":{},\"turns_ratio\":{},",
                        "\"unserved_lines\":{},\"max_inside\":{},\"errors\":{},",
                        "\"commands_per_handoff_by_name\":{{{}}}}}"
                    ),
                    m.window_secs,
                    m.handoffs,
                    m.handoffs as f64 / m.window_secs.max(1e-9),
                    per(m.served.cpu_us, 1),
                    per(m.served.commands as f64, 2),
                    per(m.served.script_calls as f64, 2),
                    m.served.script_calls as f64 / m.window_secs.max(1e-9),
                    per(m.publishes() as f64, 2),
                    per(m.served.net_out_bytes as f64, 0),
                    num(m.client_cpu_us.and_then(|c| m.per_handoff(c)), 1),
                    m.busy * 100.0,
                    num(quantile_ms(&m.waits, 0.50), 3),
                    num(quantile_ms(&m.waits, 0.99), 3),
                    fifo_ms,
                    tmin,
                    tmax,
                    num((tmin > 0).then(|| tmax as f64 / tmin as f64), 3),
                    m.unserved(),
                    m.max_inside,
                    m.errors.len(),
                    by_command.join(","),
                );
            }
        }
    }
    out.push_str("]}");
    out
}

/// `1 process`, `4 processes`.
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The table for the report and docs/PERFORMANCE.md: a row per cell and side.
fn markdown(o: &Options, runs: &[Run], version: &str, load: &str) -> String {
    let mut out = format!(
        "{} permits, {} ms holds, {} s measured after {} s settling, {version} on loopback; \
         each line its own handle (ours: N processes x H handles; npm: N x H ioredis \
         connections in N Node processes, at most {NPM_PROCESSES}, with its defaults: a poll \
         every 10 ms). The sides take turns on the server; load average before the run: \
         {load} on {} CPUs.\n\n",
        o.permits,
        o.hold.as_millis(),
        o.secs,
        o.settle_secs,
        std::thread::available_parallelism().map_or(0, usize::from),
    );
    out.push_str(
        "| lines | side | hand-offs/s | server CPU per hand-off | commands per hand-off \
         | scripts/s (per hand-off) | PUBLISH per hand-off | bytes out per hand-off \
         | client CPU per hand-off | permits busy | wait p50 / p99 (FIFO) | turns max/min \
         | never served | most inside |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
         | ---: | ---: |\n",
    );
    let mut first: BTreeMap<&str, f64> = BTreeMap::new();
    for run in runs {
        let lines = run.processes * run.handles;
        let label = format!(
            "{lines} ({} x {})",
            plural(run.processes, "process", "processes"),
            plural(run.handles, "handle", "handles")
        );
        let side = match run.side {
            Side::Ours => "ours".to_string(),
            Side::Npm => {
                let (n, _) = shape(run.side, run.processes, run.handles);
                format!(
                    "npm: {lines} connections in {}",
                    plural(n, "process", "processes")
                )
            }
        };
        let m = match &run.result {
            Ok(m) => m,
            Err(Outcome::Skipped(why)) => {
                let _ = writeln!(out, "| {label} | {side} | not run: {why} ||||||||||||");
                continue;
            }
            Err(Outcome::Failed(why)) => {
                let _ = writeln!(out, "| {label} | {side} | FAILED: {why} ||||||||||||");
                continue;
            }
        };
        let cpu = m.per_handoff(m.served.cpu_us);
        let growth = match (cpu, first.get(run.side.label())) {
            (Some(c), Some(f)) if *f > 0.0 => format!(" ({:.1}x)", c / f),
            (Some(c), None) => {
                first.insert(run.side.label(), c);
                String::new()
            }
            _ => String::new(),
        };
        let fixed = |v: Option<f64>, d: usize, unit: &str| {
            v.map_or_else(|| "-".to_string(), |v| format!("{v:.d$}{unit}"))
        };
        let ms = |v: Option<f64>| match v {
            Some(v) if v >= 1000.0 => format!("{:.1} s", v / 1000.0),
            Some(v) if v >= 10.0 => format!("{v:.0} ms"),
            Some(v) => format!("{v:.1} ms"),
            None => "-".to_string(),
        };
        let (tmin, tmax) = m.turns_min_max();
        let fifo_ms = lines as f64 * o.hold.as_secs_f64() * 1e3 / f64::from(o.permits);
        let scripts_per_sec = m.served.script_calls as f64 / m.window_secs.max(1e-9);
        let _ = writeln!(
            out,
            "| {label} | {side}{} | {:.0} | {}{growth} | {} | {scripts_per_sec:.0} ({}) | {} | {} \
             | {} | {:.1}% | {} / {} ({}) | {tmax}/{tmin} | {} | {}/{} |",
            if m.errors.is_empty() {
                String::new()
            } else {
                format!(" ({} errors)", m.errors.len())
            },
            m.handoffs as f64 / m.window_secs.max(1e-9),
            fixed(cpu, 0, " µs"),
            fixed(m.per_handoff(m.served.commands as f64), 0, ""),
            fixed(m.per_handoff(m.served.script_calls as f64), 1, ""),
            fixed(m.per_handoff(m.publishes() as f64), 2, ""),
            fixed(m.per_handoff(m.served.net_out_bytes as f64), 0, ""),
            fixed(m.client_cpu_us.and_then(|c| m.per_handoff(c)), 0, " µs"),
            m.busy * 100.0,
            ms(quantile_ms(&m.waits, 0.50)),
            ms(quantile_ms(&m.waits, 0.99)),
            ms(Some(fifo_ms)),
            m.unserved(),
            m.max_inside,
            o.permits,
        );
    }
    out.push_str(
        "\nPer hand-off: over the grants in the window. Server CPU: `INFO cpu` after minus \
         before (the growth from the first cell of the same side in parentheses); commands: \
         `INFO commandstats` (those run from Lua too); scripts: EVALSHA and EVAL; bytes out: \
         `total_net_output_bytes` (replies and pushed messages); client CPU: the clients' \
         processes (`/proc`). Permits busy: the time holders held (grant to the call of \
         release) over permits x window. FIFO: the wait perfect FIFO gives, lines x hold / \
         permits. Turns: grants per line over the whole run (a line never served counts \
         0; `never served` counts them). Most inside: the most holders at once, from the \
         clients' clocks.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        #[derive(clap::Parser)]
        struct Load {
            #[command(flatten)]
            options: Options,
        }
        let o = <Load as clap::Parser>::try_parse_from(["load", "--herd", "1x2"])
            .expect("valid")
            .options;
        o.validate().expect("valid");
        o
    }

    fn cycle(worker: usize, start: u64, grant: u64, let_go: u64) -> Cycle {
        Cycle {
            worker,
            start,
            grant,
            let_go,
            release: let_go + 1,
            full: false,
        }
    }

    #[test]
    fn cells_are_processes_by_handles_within_bounds() {
        assert_eq!(parse_cells("4x4, 200x1").unwrap(), vec![(4, 4), (200, 1)]);
        assert!(parse_cells("4").is_err());
        assert!(parse_cells("0x4").is_err());
        assert!(parse_cells("501x1").is_err());
        assert!(
            parse_cells("100x1000")
                .unwrap_err()
                .contains("at most 20000 lines")
        );
    }

    #[test]
    fn npm_runs_in_as_many_processes_as_ours_up_to_its_cap() {
        assert_eq!(shape(Side::Ours, 200, 1), (200, 1));
        assert_eq!(shape(Side::Npm, 4, 4), (4, 4));
        assert_eq!(shape(Side::Npm, 200, 1), (20, 10));
        assert_eq!(shape(Side::Npm, 3, 1), (3, 1));
    }

    #[test]
    fn figures_count_the_window_and_the_whole_run() {
        let o = options();
        // Window 1000..2000 µs; 4 permits by default.
        let cycles = vec![
            // Before the window: a turn, not a hand-off; held into the window for 100 µs.
            cycle(0, 0, 900, 1100),
            // Inside: hand-offs, waits 200 and 400 µs.
            cycle(1, 1000, 1200, 1500),
            cycle(0, 1000, 1400, 2500),
        ];
        let m = figures(
            &o,
            3,
            (1000, 2000),
            cycles,
            Served::default(),
            None,
            Vec::new(),
        );
        assert_eq!(m.handoffs, 2);
        assert_eq!(m.waits, vec![200, 400]);
        assert_eq!(m.turns, vec![2, 1, 0]);
        assert_eq!(m.unserved(), 1);
        // Held 100 + 300 + 600 µs of 4 permits x 1000 µs.
        assert!((m.busy - 0.25).abs() < 1e-9, "{}", m.busy);
        // From 1400 to 1500 two hold at once.
        assert_eq!(m.max_inside, 2);
    }

    #[test]
    fn a_let_go_and_a_grant_in_the_same_microsecond_do_not_overlap() {
        let o = options();
        let cycles = vec![cycle(0, 0, 10, 20), cycle(1, 0, 20, 30)];
        let m = figures(&o, 2, (0, 100), cycles, Served::default(), None, Vec::new());
        assert_eq!(m.max_inside, 1);
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("a \"b\"\\\n"), "\"a \\\"b\\\"\\\\\\u000a\"");
    }
}
