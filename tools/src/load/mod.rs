//! A load generator for what the criterion benches do not measure: many workers contending
//! for a few permits for a few seconds, with the wait, the hand-off, the script calls per
//! acquire, the fairness of turns, and an independent count of holders.
//!
//! ```text
//! cargo run -p tools --release -- load --workers 16 --permits 4 --hold-ms 5 --secs 3
//! cargo run -p tools --release -- load --masters 3 --processes 4 --json
//! cargo run -p tools --release -- load --url redis://127.0.0.1:6379 --poll-ms 10
//! ```
//!
//! Each worker has its own semaphore handle, as separate processes would, and loops
//! acquire, hold, release until the time is up; its last acquire waits only for the time
//! left, so the run ends on time. Without `--url` it starts throwaway `redis-server`s on
//! free loopback ports (`REDIS_SERVER_BIN` picks another binary): one per master and one
//! for the observer. `--processes P` runs the workers in P child processes of this same
//! binary (`LOAD_CHILD` set), which report every cycle back over stdout.
//!
//! The observer lives on a server that is not a master: every holder counts itself in and
//! out there, and a small script keeps the highest count. More than N holders at once ends
//! the run with exit code 3. `--local-observer` counts in this process instead (atomics; one
//! process only), with no round trips to another server: `make bench` uses it beside the npm
//! peer (tools/peer/peer.mjs), which counts its holders in-process too, so that neither
//! side pays for an observer the other does not. With it and no hold, a worker yields to the
//! scheduler once between counting in and out (the peer yields to its event loop), so
//! that holders can overlap and be seen.
//!
//! Besides the script calls, the masters' `INFO commandstats` and `INFO cpu` are read on
//! connections of their own before and after the run: every command they served (`calls=`
//! summed, which counts the commands scripts run; the snapshot's own INFO is taken off)
//! and their CPU time (`used_cpu_user + used_cpu_sys`), both per cycle, and this process's
//! own CPU per cycle (one process only). `--warmup` first makes one untimed, uncounted
//! acquire and release, so a server that has not cached the scripts yet is not counted
//! loading them.
//!
//! `--herd 4x4,200x1,10x100,20x500` measures what a crowd of waiters costs instead: for
//! each cell, N processes x H handles (each handle its own waiter line), and with `--peer`
//! npm redis-semaphore with N x H connections beside it, on one `redis-server` started for
//! the run. See `herd.rs`.

mod herd;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use redis_semaphore::{AsyncSemaphore, Permit};
use testkit::info::{Served, Stats};
use tokio::time::Instant;

use crate::measure::{millis, now_us, process_cpu_us};

/// Set in a child process to the index of its first worker.
const CHILD_ENV: &str = "LOAD_CHILD";

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// A master (repeat for several); none: start throwaway servers.
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// How many throwaway masters to start without --url.
    #[arg(long, default_value_t = 1)]
    masters: usize,
    /// The observer's server (default: a throwaway one).
    #[arg(long, value_name = "URL")]
    observer: Option<String>,
    /// Count holders in this process instead (one process only).
    #[arg(long)]
    local_observer: bool,
    /// One acquire and release before the run, not counted.
    #[arg(long)]
    warmup: bool,
    /// Workers, each with its own handle.
    #[arg(long, default_value_t = 16)]
    workers: usize,
    /// The semaphore's permits.
    #[arg(long, default_value_t = 4)]
    permits: u32,
    /// How long each grant is held, in ms.
    #[arg(long = "hold-ms", value_name = "MS", default_value = "5", value_parser = millis)]
    hold: Duration,
    /// How long the run lasts, in seconds.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Run the workers in this many child processes.
    #[arg(long, default_value_t = 1)]
    processes: usize,
    /// Builder::fair(false).
    #[arg(long = "unfair", action = clap::ArgAction::SetFalse)]
    fair: bool,
    /// Wait by try_acquire and a sleep of this many ms, as npm redis-semaphore does.
    #[arg(long = "poll-ms", value_name = "MS", value_parser = millis)]
    poll: Option<Duration>,
    /// The semaphore's name (default: a fresh one per run).
    #[arg(long)]
    name: Option<String>,
    /// Print the results as one JSON line.
    #[arg(long)]
    json: bool,
    /// Herd mode (one server, no observer; --workers and --processes come from the cells):
    /// NxH[,NxH...], N processes of H handles each, e.g. 4x4,200x1,10x100.
    #[arg(long, value_name = "CELLS", default_value = "", value_parser = herd::Cells::parse,
          hide_default_value = true)]
    herd: herd::Cells,
    /// Herd mode: run this long before the measured --secs begin.
    #[arg(long, default_value_t = 2.0)]
    settle_secs: f64,
    /// Herd mode: also run npm redis-semaphore with N x H connections, as `CMD herd ...`
    /// (e.g. "node target/peer/peer.mjs").
    #[arg(long, value_name = "CMD")]
    peer: Option<String>,
    /// Herd mode: write the herd table there too.
    #[arg(long, value_name = "FILE")]
    markdown: Option<String>,
}

impl Options {
    /// What clap cannot check alone.
    fn validate(&self) -> Result<(), String> {
        let o = self;
        if o.workers == 0 || o.permits == 0 || o.masters == 0 {
            return Err("--workers, --permits and --masters must be at least 1".into());
        }
        if !(o.secs > 0.0 && o.secs <= 3600.0) {
            return Err("--secs must be above 0 and at most 3600".into());
        }
        if o.processes == 0 || o.processes > o.workers {
            return Err("--processes must be between 1 and --workers".into());
        }
        if o.local_observer && (o.processes > 1 || o.observer.is_some()) {
            return Err("--local-observer takes one process and no --observer".into());
        }
        if o.poll.is_some_and(|p| p.is_zero()) {
            return Err("--poll-ms must be at least 1".into());
        }
        if !(0.0..=60.0).contains(&o.settle_secs) {
            return Err("--settle-secs must be between 0 and 60".into());
        }
        if o.herd.is_empty() && (o.peer.is_some() || o.markdown.is_some()) {
            return Err("--peer and --markdown go with --herd".into());
        }
        Ok(())
    }

    /// The arguments that make a child run `workers` of these workers.
    fn child_args(&self, workers: usize) -> Vec<String> {
        let mut args = vec!["load".to_string()];
        for url in &self.urls {
            args.extend(["--url".into(), url.clone()]);
        }
        // None in herd mode: the children count nothing, the parent reads the cycles.
        if let Some(observer) = &self.observer {
            args.extend(["--observer".into(), observer.clone()]);
        }
        args.extend(["--name".into(), self.name.clone().unwrap_or_default()]);
        args.extend(["--workers".into(), workers.to_string()]);
        args.extend(["--permits".into(), self.permits.to_string()]);
        args.extend(["--hold-ms".into(), self.hold.as_millis().to_string()]);
        args.extend(["--secs".into(), self.secs.to_string()]);
        if !self.fair {
            args.push("--unfair".into());
        }
        if self.warmup {
            args.push("--warmup".into());
        }
        if let Some(poll) = self.poll {
            args.extend(["--poll-ms".into(), poll.as_millis().to_string()]);
        }
        args
    }
}

/// One acquire, hold and release of one worker.
#[derive(Debug, Clone, Copy)]
struct Cycle {
    worker: usize,
    /// When the acquire was called.
    start: u64,
    /// When it returned the permit.
    grant: u64,
    /// When `release()` was called: the holder held from `grant` to here.
    let_go: u64,
    /// When `release()` returned.
    release: u64,
    /// Whether all N permits were held just before this one was released.
    full: bool,
}

/// What the workers of one process did.
#[derive(Debug, Default)]
struct Outcome {
    cycles: Vec<Cycle>,
    errors: Vec<String>,
    /// When the workers started and when the last one stopped.
    began: u64,
    ended: u64,
}

/// Counts holders in and out, keeping the highest count: on a server that is not a
/// master, or (`--local-observer`) in this process.
#[derive(Debug)]
enum Observer {
    Server {
        conn: redis::aio::MultiplexedConnection,
        enter: redis::Script,
        inside: String,
        max: String,
    },
    Local,
}

/// The in-process count of `--local-observer`: holders inside now, and the most at once.
static LOCAL_INSIDE: AtomicI64 = AtomicI64::new(0);
static LOCAL_MAX: AtomicU32 = AtomicU32::new(0);

impl Observer {
    async fn connect(url: &str, name: &str) -> Result<Observer, String> {
        let client = redis::Client::open(url).map_err(|e| format!("observer {url}: {e}"))?;
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("observer {url}: {e}"))?;
        let enter = redis::Script::new(
            "local v = redis.call('INCR', KEYS[1]) \
             if v > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], v) end \
             return v",
        );
        Ok(Observer::Server {
            conn,
            enter,
            inside: format!("load-observer:{name}:inside"),
            max: format!("load-observer:{name}:max"),
        })
    }

    /// Counts a holder in; returns how many are inside now.
    async fn enter(&mut self) -> Result<u32, String> {
        match self {
            Observer::Server {
                conn,
                enter,
                inside,
                max,
            } => enter
                .key(&*inside)
                .key(&*max)
                .invoke_async(conn)
                .await
                .map_err(|e| format!("observer enter: {e}")),
            Observer::Local => {
                let now = LOCAL_INSIDE.fetch_add(1, Ordering::SeqCst) + 1;
                let now = u32::try_from(now).unwrap_or(0);
                LOCAL_MAX.fetch_max(now, Ordering::SeqCst);
                Ok(now)
            }
        }
    }

    /// Counts a holder out; returns how many are left inside.
    async fn exit(&mut self) -> Result<i64, String> {
        match self {
            Observer::Server { conn, inside, .. } => redis::cmd("DECR")
                .arg(&*inside)
                .query_async(conn)
                .await
                .map_err(|e| format!("observer exit: {e}")),
            Observer::Local => Ok(LOCAL_INSIDE.fetch_sub(1, Ordering::SeqCst) - 1),
        }
    }

    /// The highest number of holders inside at once.
    async fn max(&mut self) -> Result<u32, String> {
        match self {
            Observer::Server { conn, max, .. } => {
                let max: Option<u32> = redis::cmd("GET")
                    .arg(&*max)
                    .query_async(conn)
                    .await
                    .map_err(|e| format!("observer read: {e}"))?;
                Ok(max.unwrap_or(0))
            }
            Observer::Local => Ok(LOCAL_MAX.load(Ordering::SeqCst)),
        }
    }
}

/// One worker's handle and observer connection, made before the clock starts.
struct Worker {
    index: usize,
    sem: AsyncSemaphore,
    observer: Observer,
}

async fn prepare(o: &Options, first: usize, count: usize) -> Result<Vec<Worker>, String> {
    let name = o
        .name
        .as_deref()
        .expect("a name is chosen before the workers");
    let observer_url = o.observer.as_deref();
    let mut workers = Vec::with_capacity(count);
    for index in first..first + count {
        let sem = AsyncSemaphore::builder(name, o.permits)
            .masters(&o.urls)
            .fair(o.fair)
            .build()
            .await
            .map_err(|e| format!("worker {index} cannot build its semaphore: {e}"))?;
        let observer = match observer_url {
            Some(url) => Observer::connect(url, name).await?,
            None => Observer::Local,
        };
        if o.warmup && index == 0 {
            let permit = sem
                .acquire()
                .await
                .map_err(|e| format!("warm-up acquire: {e}"))?;
            permit
                .release()
                .await
                .map_err(|e| format!("warm-up release: {e}"))?;
        }
        workers.push(Worker {
            index,
            sem,
            observer,
        });
    }
    Ok(workers)
}

/// Runs every worker for `o.secs` from now.
async fn run(o: &Options, workers: Vec<Worker>) -> Outcome {
    let began = now_us();
    let stop = Instant::now() + Duration::from_secs_f64(o.secs);
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|w| tokio::spawn(work(o.clone(), w, stop)))
        .collect();
    let mut outcome = Outcome {
        began,
        ..Outcome::default()
    };
    for task in tasks {
        match task.await {
            Ok((cycles, error)) => {
                outcome.cycles.extend(cycles);
                outcome.errors.extend(error);
            }
            Err(e) => outcome.errors.push(format!("a worker panicked: {e}")),
        }
    }
    outcome.ended = now_us();
    outcome
}

/// Loops acquire, hold, release until `stop`; returns its cycles and the error that ended
/// it early, if one did.
async fn work(o: Options, mut w: Worker, stop: Instant) -> (Vec<Cycle>, Option<String>) {
    let mut cycles = Vec::new();
    // Bounded by `stop`: every wait below ends by then, and a cycle that began before
    // it takes one hold and two round trips more.
    while let Some(left) = stop
        .checked_duration_since(Instant::now())
        .filter(|l| !l.is_zero())
    {
        let start = now_us();
        let permit = match o.poll {
            None => w.sem.acquire_timeout(left).await.map_err(|e| e.to_string()),
            Some(every) => poll(&w.sem, every, stop).await,
        };
        let permit = match permit {
            Ok(Some(permit)) => permit,
            Ok(None) => break,
            Err(e) => return (cycles, Some(format!("worker {}: acquire: {e}", w.index))),
        };
        let grant = now_us();
        match cycle(&o, &mut w, permit).await {
            Ok((full, let_go)) => cycles.push(Cycle {
                worker: w.index,
                start,
                grant,
                let_go,
                release: now_us(),
                full,
            }),
            Err(e) => return (cycles, Some(format!("worker {}: {e}", w.index))),
        }
    }
    (cycles, None)
}

/// Holds `permit` for the hold time, counted in and out by the observer, and releases it.
/// Returns whether all N permits were held when this one was let go, and when `release()`
/// was called.
async fn cycle(o: &Options, w: &mut Worker, permit: Permit) -> Result<(bool, u64), String> {
    w.observer.enter().await?;
    if !o.hold.is_zero() {
        tokio::time::sleep(o.hold).await;
    } else if o.local_observer {
        tokio::task::yield_now().await;
    }
    let left_inside = w.observer.exit().await?;
    let let_go = now_us();
    permit
        .release()
        .await
        .map_err(|e| format!("release: {e}"))?;
    Ok((left_inside + 1 >= i64::from(o.permits), let_go))
}

/// The polling baseline: `try_acquire`, then sleep `every`, until a permit or `stop`.
async fn poll(
    sem: &AsyncSemaphore,
    every: Duration,
    stop: Instant,
) -> Result<Option<Permit>, String> {
    loop {
        if let Some(permit) = sem.try_acquire().await.map_err(|e| e.to_string())? {
            return Ok(Some(permit));
        }
        let left = stop.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        tokio::time::sleep(every.min(left)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A child process: builds its workers, says READY, waits for GO on stdin, runs, and
/// prints one line per cycle, then DONE.
fn child(o: &Options, first: usize) -> Result<(), String> {
    let rt = runtime();
    let workers = rt.block_on(prepare(o, first, o.workers))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "READY")
        .and_then(|()| out.flush())
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    if line.trim() != "GO" {
        return Err(format!("expected GO from the parent, got {line:?}"));
    }
    let outcome = rt.block_on(run(o, workers));
    let write = |out: &mut dyn Write| -> std::io::Result<()> {
        for c in &outcome.cycles {
            let full = u8::from(c.full);
            writeln!(
                out,
                "C {} {} {} {} {} {full}",
                c.worker, c.start, c.grant, c.let_go, c.release
            )?;
        }
        for e in &outcome.errors {
            writeln!(out, "E {}", e.replace('\n', " "))?;
        }
        writeln!(out, "SPAN {} {}", outcome.began, outcome.ended)?;
        writeln!(out, "DONE")?;
        out.flush()
    };
    write(&mut out).map_err(|e| e.to_string())
}

/// Runs the workers in `o.processes` children; what the masters served is counted between
/// the moment every child is ready and the moment every one is done.
fn run_processes(o: &Options) -> Result<(Outcome, Served, Option<f64>), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    let mut first = 0;
    for p in 0..o.processes {
        let count = o.workers / o.processes + usize::from(p < o.workers % o.processes);
        let mut child = Command::new(&exe)
            .args(o.child_args(count))
            .env(CHILD_ENV, first.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start child process: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        children.push((child, BufReader::new(stdout).lines()));
        first += count;
    }
    let read = |lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>| {
        lines
            .next()
            .unwrap_or_else(|| Err(std::io::ErrorKind::UnexpectedEof.into()))
            .map_err(|e| format!("a child process ended early: {e}"))
    };
    for (_, lines) in &mut children {
        let line = read(lines)?;
        if line != "READY" {
            return Err(format!("a child process said {line:?} instead of READY"));
        }
    }
    let rt = runtime();
    let mut stats = rt.block_on(Stats::connect(&o.urls))?;
    let before = rt.block_on(stats.snapshot())?;
    for (child, _) in &mut children {
        let stdin = child.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "GO")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("cannot start a child: {e}"))?;
    }
    let mut outcome = Outcome {
        began: u64::MAX,
        ..Outcome::default()
    };
    for (child, lines) in &mut children {
        // Each child prints a bounded number of lines and then DONE, or its output ends.
        loop {
            let line = read(lines)?;
            let mut f = line.split(' ');
            let mut n = || f.next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            match line.split(' ').next() {
                Some("C") => {
                    n();
                    outcome.cycles.push(Cycle {
                        worker: n() as usize,
                        start: n(),
                        grant: n(),
                        let_go: n(),
                        release: n(),
                        full: n() == 1,
                    });
                }
                Some("E") => outcome.errors.push(line[2..].to_string()),
                Some("SPAN") => {
                    n();
                    outcome.began = outcome.began.min(n());
                    outcome.ended = outcome.ended.max(n());
                }
                Some("DONE") => break,
                _ => return Err(format!("a child process said {line:?}")),
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            outcome
                .errors
                .push(format!("a child process exited with {status}"));
        }
    }
    let served = rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        stats.since(&before).await
    })?;
    Ok((outcome, served, None))
}

/// Runs the workers in this process; returns what they did, what the masters served
/// meanwhile, and this process's CPU time meanwhile.
fn run_here(o: &Options) -> Result<(Outcome, Served, Option<f64>), String> {
    runtime().block_on(async {
        let workers = prepare(o, 0, o.workers).await?;
        let mut stats = Stats::connect(&o.urls).await?;
        let cpu_before = process_cpu_us();
        let before = stats.snapshot().await?;
        let outcome = run(o, workers).await;
        // Waiters that timed out at the end hand their place on in the background.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let served = stats.since(&before).await?;
        let cpu = process_cpu_us().zip(cpu_before).map(|(a, b)| a - b);
        Ok((outcome, served, cpu))
    })
}

/// The `q` quantile of sorted `v`, in milliseconds (nearest rank).
fn quantile_ms(v: &[u64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    Some(v[rank - 1] as f64 / 1000.0)
}

/// What a run measured.
#[derive(Debug)]
struct Report {
    cycles: usize,
    secs: f64,
    waits: Vec<u64>,
    handoffs: Vec<u64>,
    script_calls: u64,
    calls_per_acquire: Option<f64>,
    /// Every command the masters served, and their CPU time in µs.
    commands: u64,
    server_cpu_us: f64,
    /// This process's CPU time in µs (one process only).
    client_cpu_us: Option<f64>,
    turns: Vec<u64>,
    max_inside: u32,
}

impl Report {
    fn new(
        o: &Options,
        outcome: &Outcome,
        served: Served,
        client_cpu_us: Option<f64>,
        max_inside: u32,
    ) -> Report {
        let script_calls = served.script_calls;
        let cycles = &outcome.cycles;
        let mut waits: Vec<u64> = cycles.iter().map(|c| c.grant - c.start).collect();
        waits.sort_unstable();

        // Hand-off: for each grant, the time since the latest release that returned before
        // it, counted only when that release let go of a full semaphore and the grant's
        // acquire was already waiting then (so a worker re-acquiring after its own release
        // is not counted). Approximate: two releases close together both look like the
        // cause of the grants after the later one, which makes the figure a little low;
        // and a release's reply can reach its worker after the grant it caused, which
        // then counts from the release before.
        let mut releases: Vec<(u64, bool)> = cycles.iter().map(|c| (c.release, c.full)).collect();
        releases.sort_unstable();
        let mut handoffs: Vec<u64> = cycles
            .iter()
            .filter_map(|c| {
                let i = releases.partition_point(|&(t, _)| t <= c.grant);
                let (t, full) = *releases.get(i.checked_sub(1)?)?;
                (full && c.start <= t).then(|| c.grant - t)
            })
            .collect();
        handoffs.sort_unstable();

        // Script calls per acquire: every master serves one call per acquire attempt and
        // one per release (requests fan out to all M masters), so the calls the masters
        // served, divided by M, less one per release, are the acquire attempts; divided by
        // the grants, that is how many attempts a grant took (1.0 at best). Renewals
        // (every lease / 3), settling calls with several masters, and the hand-over of a
        // queue place by a waiter that timed out at the end count against the acquires.
        let masters = o.urls.len() as f64;
        let grants = cycles.len() as f64;
        let calls_per_acquire =
            (grants > 0.0).then(|| (script_calls as f64 / masters - grants) / grants);

        let mut turns = vec![0u64; o.workers];
        for c in cycles {
            if let Some(t) = turns.get_mut(c.worker) {
                *t += 1;
            }
        }
        let secs = (outcome.ended.saturating_sub(outcome.began)) as f64 / 1e6;
        Report {
            cycles: cycles.len(),
            secs,
            waits,
            handoffs,
            script_calls,
            calls_per_acquire,
            commands: served.commands,
            server_cpu_us: served.cpu_us,
            client_cpu_us,
            turns,
            max_inside,
        }
    }

    /// `x` per cycle, if there were cycles.
    fn per_cycle(&self, x: f64) -> Option<f64> {
        (self.cycles > 0).then(|| x / self.cycles as f64)
    }

    fn cycles_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.cycles as f64 / self.secs
        } else {
            0.0
        }
    }

    fn turns_min_max(&self) -> (u64, u64) {
        let min = self.turns.iter().copied().min().unwrap_or(0);
        let max = self.turns.iter().copied().max().unwrap_or(0);
        (min, max)
    }

    fn turns_ratio(&self) -> Option<f64> {
        let (min, max) = self.turns_min_max();
        (min > 0).then(|| max as f64 / min as f64)
    }

    fn json(&self, o: &Options, errors: usize) -> String {
        let num = |v: Option<f64>| v.map_or_else(|| "null".to_string(), |v| format!("{v:.3}"));
        let (tmin, tmax) = self.turns_min_max();
        format!(
            concat!(
                "{{\"masters\":{},\"workers\":{},\"processes\":{},\"permits\":{},",
                "\"hold_ms\":{},\"secs\":{:.3},\"fair\":{},\"poll_ms\":{},",
                "\"cycles\":{},\"cycles_per_sec\":{:.1},",
                "\"wait_p50_ms\":{},\"wait_p99_ms\":{},\"wait_max_ms\":{},",
                "\"handoff_p50_ms\":{},\"handoff_p99_ms\":{},\"handoff_samples\":{},",
                "\"script_calls\":{},\"calls_per_acquire\":{},",
                "\"commands\":{},\"commands_per_cycle\":{},",
                "\"server_cpu_us_per_cycle\":{},\"client_cpu_us_per_cycle\":{},",
                "\"turns_min\":{},\"turns_max\":{},\"turns_ratio\":{},",
                "\"max_inside\":{},\"observer\":\"{}\",\"errors\":{}}}"
            ),
            o.urls.len(),
            o.workers,
            o.processes,
            o.permits,
            o.hold.as_millis(),
            self.secs,
            o.fair,
            o.poll
                .map_or_else(|| "null".to_string(), |p| p.as_millis().to_string()),
            self.cycles,
            self.cycles_per_sec(),
            num(quantile_ms(&self.waits, 0.50)),
            num(quantile_ms(&self.waits, 0.99)),
            num(quantile_ms(&self.waits, 1.0)),
            num(quantile_ms(&self.handoffs, 0.50)),
            num(quantile_ms(&self.handoffs, 0.99)),
            self.handoffs.len(),
            self.script_calls,
            num(self.calls_per_acquire),
            self.commands,
            num(self.per_cycle(self.commands as f64)),
            num(self.per_cycle(self.server_cpu_us)),
            num(self.client_cpu_us.and_then(|c| self.per_cycle(c))),
            tmin,
            tmax,
            num(self.turns_ratio()),
            self.max_inside,
            if o.local_observer { "local" } else { "server" },
            errors,
        )
    }

    fn text(&self, o: &Options) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2} ms"));
        let one = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}"));
        let (tmin, tmax) = self.turns_min_max();
        let waiting = match o.poll {
            Some(p) => format!("polling every {} ms", p.as_millis()),
            None if o.fair => "fair".to_string(),
            None => "unfair".to_string(),
        };
        format!(
            "load: {} workers in {} process(es), {} permits, hold {} ms, {waiting}, {} master(s)\n\
             \x20 cycles        {} in {:.2} s = {:.0}/s\n\
             \x20 wait          p50 {}  p99 {}  max {}\n\
             \x20 hand-off      p50 {}  p99 {}  ({} samples)\n\
             \x20 script calls  {} per acquire ({} on the masters)\n\
             \x20 per cycle     {} commands, {} µs server CPU, {} µs CPU here\n\
             \x20 turns         max {tmax} / min {tmin} = {}\n\
             \x20 observer      at most {} holders of {}",
            o.workers,
            o.processes,
            o.permits,
            o.hold.as_millis(),
            o.urls.len(),
            self.cycles,
            self.secs,
            self.cycles_per_sec(),
            ms(quantile_ms(&self.waits, 0.50)),
            ms(quantile_ms(&self.waits, 0.99)),
            ms(quantile_ms(&self.waits, 1.0)),
            ms(quantile_ms(&self.handoffs, 0.50)),
            ms(quantile_ms(&self.handoffs, 0.99)),
            self.handoffs.len(),
            self.calls_per_acquire
                .map_or_else(|| "-".to_string(), |c| format!("{c:.3}")),
            self.script_calls,
            one(self.per_cycle(self.commands as f64)),
            one(self.per_cycle(self.server_cpu_us)),
            one(self.client_cpu_us.and_then(|c| self.per_cycle(c))),
            self.turns_ratio()
                .map_or_else(|| "inf".to_string(), |r| format!("{r:.2}")),
            self.max_inside,
            o.permits,
        )
    }
}

/// Runs the whole load; returns the exit code, once the throwaway servers are gone.
pub(crate) fn main(mut o: Options) -> i32 {
    if let Err(e) = o.validate() {
        eprintln!("load: {e}");
        return 2;
    }
    if let Ok(first) = std::env::var(CHILD_ENV) {
        let first = first.parse().expect("LOAD_CHILD is a worker index");
        return match child(&o, first) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("load (child): {e}");
                1
            }
        };
    }
    if !o.herd.is_empty() {
        return herd::run(o);
    }

    // Throwaway servers, killed when this function returns.
    let mut servers = Vec::new();
    if o.urls.is_empty() {
        servers.extend((0..o.masters).map(|_| testkit::Server::start()));
        o.urls = servers.iter().map(testkit::Server::url).collect();
    }
    if o.observer.is_none() && !o.local_observer {
        let observer = testkit::Server::start();
        o.observer = Some(observer.url());
        servers.push(observer);
    }
    if o.urls.iter().any(|u| Some(u) == o.observer.as_ref()) {
        eprintln!("load: the observer must be a server that is not a master");
        return 2;
    }
    if o.name.is_none() {
        o.name = Some(format!("load-{}-{}", std::process::id(), now_us()));
    }

    let run = if o.processes > 1 {
        run_processes(&o)
    } else {
        run_here(&o)
    };
    let observer = o.observer.clone();
    let name = o.name.clone().expect("a name");
    let measured = run.and_then(|(outcome, served, cpu)| {
        let max_inside = runtime().block_on(async {
            match &observer {
                Some(url) => Observer::connect(url, &name).await?.max().await,
                None => Observer::Local.max().await,
            }
        })?;
        Ok((outcome, served, cpu, max_inside))
    });
    let (outcome, served, cpu, max_inside) = match measured {
        Ok(m) => m,
        Err(e) => {
            eprintln!("load: {e}");
            return 1;
        }
    };
    let report = Report::new(&o, &outcome, served, cpu, max_inside);
    if o.json {
        println!("{}", report.json(&o, outcome.errors.len()));
    } else {
        println!("{}", report.text(&o));
    }
    for e in &outcome.errors {
        eprintln!("load: error: {e}");
    }
    if max_inside > o.permits {
        eprintln!(
            "load: OVER-ADMISSION: the observer saw {max_inside} holders of {} permits",
            o.permits
        );
        return 3;
    }
    i32::from(!outcome.errors.is_empty())
}
