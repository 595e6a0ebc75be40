//! Uncontended round trips, one client, timed one by one: what `make bench` sets beside
//! the npm `redis-semaphore` (tools/peer/peer.mjs times the same things the same way).
//!
//! ```text
//! cargo run -p tools --release -- uncontended --url redis://127.0.0.1:6379 --json
//! cargo run -p tools --release -- uncontended --masters 3 --scaling
//! ```
//!
//! Why not the criterion bench: the peer comparison needs both sides on the same
//! `redis-server` process, in the same run, with the same statistic. Criterion starts its
//! own server and reports the median of batch means; this times each operation on its own
//! (p50 and p99 of single operations, as the node script does), against a server given by
//! `--url` (or `--masters M` throwaway ones), and measures each side's own PING the same
//! way on its own connection, so each side has a ratio against its own floor.
//!
//! One client on a current-thread Tokio runtime, as Node runs its event loop on one thread
//! (and as the criterion bench runs); the semaphores use the library's defaults (lease
//! 10 s, fair). The cases are interleaved in `--rounds` rounds, after a warm-up, so that a
//! slow spell of a shared machine falls on all of them:
//!
//! - `ping`: PING on a connection of its own to the first master;
//! - `acquire_release`: `acquire()`, then `permit.release().await` (3 permits);
//! - `acquire_drop`: `acquire()`, then drop the permit: the release goes in the background,
//!   and the next acquire starts at once (each sample is one acquire and one drop);
//! - with `--scaling`: `acquire_release` on a 10,000-permit semaphore, and on every master
//!   at once (needs several masters).
//!
//! Also counted, from `INFO commandstats` and `INFO cpu` on the first master (which
//! nothing else should use meanwhile), on a connection of its own: Redis commands per
//! acquire + release (every `calls=`, so the commands the scripts run count too; the INFO
//! of each snapshot is taken off), per acquire alone and per release alone (a snapshot
//! between each, `--count` times), and the server CPU per acquire + release.
//! Prints one JSON line with `--json`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis_semaphore::AsyncSemaphore;
use testkit::info::{Served, Stats};

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// A master (repeat for several); none: start throwaway servers.
    #[arg(long = "url", value_name = "URL")]
    urls: Vec<String>,
    /// How many throwaway masters to start without --url.
    #[arg(long, default_value_t = 1)]
    masters: usize,
    /// Timed operations per case.
    #[arg(long, default_value_t = 3000)]
    cycles: usize,
    /// Untimed operations per case first.
    #[arg(long, default_value_t = 300)]
    warmup: usize,
    /// Rounds the cases are interleaved in.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Acquires and releases counted one by one.
    #[arg(long, default_value_t = 100)]
    count: usize,
    /// Prefix of the semaphores' names (default: a fresh one per run).
    #[arg(long)]
    name: Option<String>,
    /// Also 10,000 permits and every master at once.
    #[arg(long)]
    scaling: bool,
    /// Print the results as one JSON line.
    #[arg(long)]
    json: bool,
}

async fn connect(url: &str) -> Result<MultiplexedConnection, String> {
    redis::Client::open(url)
        .map_err(|e| format!("{url}: {e}"))?
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("{url}: {e}"))
}

async fn semaphore(urls: &[String], name: &str, permits: u32) -> Result<AsyncSemaphore, String> {
    AsyncSemaphore::builder(name, permits)
        .masters(urls)
        .build()
        .await
        .map_err(|e| format!("cannot build semaphore {name}: {e}"))
}

/// One case: what it times, on what.
enum Case {
    Ping(MultiplexedConnection),
    AcquireRelease(AsyncSemaphore),
    AcquireDrop(AsyncSemaphore),
}

impl Case {
    /// Runs the case once; returns how long it took.
    async fn once(&mut self) -> Result<Duration, String> {
        let t = Instant::now();
        match self {
            Case::Ping(con) => {
                let _: String = redis::cmd("PING")
                    .query_async(con)
                    .await
                    .map_err(|e| format!("PING: {e}"))?;
            }
            Case::AcquireRelease(sem) => {
                let permit = sem.acquire().await.map_err(|e| format!("acquire: {e}"))?;
                permit
                    .release()
                    .await
                    .map_err(|e| format!("release: {e}"))?;
            }
            Case::AcquireDrop(sem) => {
                drop(sem.acquire().await.map_err(|e| format!("acquire: {e}"))?);
            }
        }
        Ok(t.elapsed())
    }

    /// Waits for what the case left running in the background (the dropped permits'
    /// releases, which go out on the handle's connection before this request).
    async fn settle(&mut self) -> Result<(), String> {
        if let Case::AcquireDrop(sem) = self {
            sem.value().await.map_err(|e| format!("value: {e}"))?;
        }
        Ok(())
    }
}

/// Nearest-rank quantile of sorted `v`, in µs.
fn quantile_us(v: &[Duration], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1].as_secs_f64() * 1e6
}

async fn measure(o: &Options) -> Result<String, String> {
    let name = o.name.clone().unwrap_or_else(|| {
        let us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        format!("uncontended-{}-{us}", std::process::id())
    });
    let first = &o.urls[..1];
    let mut cases: Vec<(&str, Case)> = vec![
        ("ping", Case::Ping(connect(&o.urls[0]).await?)),
        (
            "acquire_release",
            Case::AcquireRelease(semaphore(first, &format!("{name}:ar"), 3).await?),
        ),
        (
            "acquire_drop",
            Case::AcquireDrop(semaphore(first, &format!("{name}:ad"), 3).await?),
        ),
    ];
    if o.scaling {
        let many = semaphore(first, &format!("{name}:10k"), 10_000).await?;
        cases.push(("acquire_release_10000_permits", Case::AcquireRelease(many)));
        if o.urls.len() > 1 {
            let all = semaphore(&o.urls, &format!("{name}:all"), 3).await?;
            cases.push(("acquire_release_all_masters", Case::AcquireRelease(all)));
        }
    }
    for (_, case) in &mut cases {
        for _ in 0..o.warmup {
            case.once().await?;
        }
        case.settle().await?;
    }

    // Timed, interleaved; the acquire_release chunks are counted on the first master.
    let mut stats = Stats::connect(first).await?;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(o.cycles); cases.len()];
    let mut counted = Served::default();
    for round in 0..o.rounds {
        let n = o.cycles / o.rounds + usize::from(round < o.cycles % o.rounds);
        for (i, (label, case)) in cases.iter_mut().enumerate() {
            let before = if *label == "acquire_release" {
                Some(stats.snapshot().await?)
            } else {
                None
            };
            for _ in 0..n {
                samples[i].push(case.once().await?);
            }
            case.settle().await?;
            if let Some(before) = before {
                counted.add(&stats.since(&before).await?);
            }
        }
    }

    // Acquire alone and release alone, a snapshot between each.
    let sem = semaphore(first, &format!("{name}:count"), 3).await?;
    drop(sem.acquire().await.map_err(|e| format!("acquire: {e}"))?);
    sem.value().await.map_err(|e| format!("value: {e}"))?;
    let (mut acquires, mut releases) = (0, 0);
    for _ in 0..o.count {
        let s0 = stats.snapshot().await?;
        let permit = sem.acquire().await.map_err(|e| format!("acquire: {e}"))?;
        acquires += stats.since(&s0).await?.commands;
        let s1 = stats.snapshot().await?;
        permit
            .release()
            .await
            .map_err(|e| format!("release: {e}"))?;
        releases += stats.since(&s1).await?.commands;
    }

    let mut fields = vec![
        "\"side\":\"ours\"".to_string(),
        format!("\"masters\":{}", o.urls.len()),
        format!("\"cycles\":{}", o.cycles),
        format!("\"rounds\":{}", o.rounds),
    ];
    let mut text = Vec::new();
    for ((label, _), s) in cases.iter().zip(&mut samples) {
        s.sort_unstable();
        let (p50, p99) = (quantile_us(s, 0.5), quantile_us(s, 0.99));
        fields.push(format!(
            "\"{label}_p50_us\":{p50:.1},\"{label}_p99_us\":{p99:.1}"
        ));
        text.push(format!(
            "  {label:<30} p50 {p50:>8.1} µs  p99 {p99:>8.1} µs"
        ));
    }
    // Every acquire_release cycle was counted; `--count` acquires and releases.
    let cmds = counted.commands as f64 / o.cycles as f64;
    let cpu = counted.cpu_us / o.cycles as f64;
    let acq = acquires as f64 / o.count.max(1) as f64;
    let rel = releases as f64 / o.count.max(1) as f64;
    fields.push(format!(
        "\"commands_per_cycle\":{cmds:.2},\"server_cpu_us_per_cycle\":{cpu:.1},\
         \"commands_per_acquire\":{acq:.2},\"commands_per_release\":{rel:.2}"
    ));
    text.push(format!(
        "  acquire + release: {cmds:.2} commands, {cpu:.1} µs server CPU; \
         acquire alone {acq:.2} commands, release alone {rel:.2}"
    ));
    Ok(if o.json {
        format!("{{{}}}", fields.join(","))
    } else {
        format!(
            "uncontended: {} master(s), {} operations per case in {} rounds\n{}",
            o.urls.len(),
            o.cycles,
            o.rounds,
            text.join("\n")
        )
    })
}

pub(crate) fn main(mut o: Options) -> i32 {
    if o.masters == 0 || o.cycles == 0 || o.rounds == 0 || o.rounds > o.cycles {
        eprintln!("uncontended: --masters and --cycles must be at least 1, --rounds 1 to --cycles");
        return 2;
    }
    // Throwaway servers, killed when `servers` drops (before the exit below).
    let mut servers = Vec::new();
    if o.urls.is_empty() {
        servers.extend((0..o.masters).map(|_| testkit::Server::start()));
        o.urls = servers.iter().map(testkit::Server::url).collect();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(measure(&o));
    drop(runtime);
    drop(servers);
    match result {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("uncontended: {e}");
            1
        }
    }
}
