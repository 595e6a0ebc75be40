//! A soak: workers contend for a few permits through fault-injecting proxies while masters
//! are paused, killed and restarted empty (after one lease), slowed, partitioned from some
//! clients, black-holed, their connections dropped and their replies cut, and holder
//! processes are SIGKILLed; an independent checker counts who is inside. At the end it
//! prints what it did and what it saw, and exits 1 if anything was over-admitted or leaked.
//!
//! With `--sentinel` each master is a Sentinel group instead (a primary, two replicas and
//! three sentinels, `testkit/src/sentinel.rs`), reached through its sentinels, and the
//! faults are failovers: forced (`SENTINEL FAILOVER`) and the primary SIGKILLed and
//! restarted empty; `--replicas N` makes grants wait for N replicas (2 by default: every
//! replica, the setting under which a failover cannot over-admit).
//!
//! ```text
//! cargo run -p tools --release -- soak --secs 20                 # one master
//! cargo run -p tools --release -- soak --secs 30 --sentinel      # failovers
//! cargo run -p tools --release -- soak --secs 600 --masters 3
//! REDIS_SERVER_BIN=$(scripts/valkey-bin.sh) cargo run -p tools --release -- soak --secs 20 --masters 3
//! ```
//!
//! Every server is a throwaway one on a free loopback port (the test harness in
//! the test kit, `REDIS_SERVER_BIN` picks the binary): the masters, and the checker's
//! server, which is none of them. Each worker has its own handle; half the workers reach
//! the masters through one set of proxies, half through another, so a fault can cut some
//! clients off a master and not others. One fault runs at a time, with a calm of 0.2-1 s
//! between two; dropped connections and cut replies come on top, at any moment.
//!
//! The checks, each counted rather than stopped at:
//! - more than N holders inside at once, or two inside with the same slot (the checker);
//! - a fencing token not above the last one accepted for its slot;
//! - after the run, with every fault healed and one lease passed: `value()` below N, or
//!   anyone left in `holders()` (a leaked permit).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::proxy::Proxy;
use testkit::sentinel::{Group, SERVICE};
use testkit::{Observer, Server};
use tokio::time::Instant;

use crate::measure::millis;

/// Set in a holder process (a child of this binary) to the masters' URLs.
const HOLDER_ENV: &str = "SOAK_HOLDER";
const NAME: &str = "soak";

#[derive(Debug, Clone)]
struct Options {
    secs: f64,
    masters: usize,
    permits: u32,
    workers: usize,
    lease: Duration,
    faults: Vec<String>,
    fair: bool,
    json: bool,
    clock: bool,
    sentinel: bool,
    replicas: u32,
}

/// The faults, one at a time: a master paused, killed and restarted empty, slowed, cut off
/// from half the clients (closed or silent), a holder process killed.
const MAIN_FAULTS: [&str; 6] = ["pause", "kill", "slow", "partition", "blackhole", "holder"];
/// On top, at any moment: a proxy's connections dropped, a request's reply cut.
const SMALL_FAULTS: [&str; 2] = ["drop", "cut"];

/// The soak's command line; [`Options`] is what it means.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How long the faults run, in seconds.
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
    /// Masters: 1 or 3 (any odd number works).
    #[arg(long, default_value_t = 1)]
    masters: usize,
    /// The semaphore's permits.
    #[arg(long, default_value_t = 2)]
    permits: u32,
    /// Workers, each with its own handle.
    #[arg(long, default_value_t = 8)]
    workers: usize,
    /// The lease in ms; the request timeout is a sixth of it.
    #[arg(long = "lease-ms", value_name = "MS", default_value = "600", value_parser = millis)]
    lease: Duration,
    /// Which faults, comma-separated (default all): pause, kill, slow, partition,
    /// blackhole, holder, drop, cut, clock (as --clock).
    #[arg(long, value_name = "LIST")]
    faults: Option<String>,
    /// Run the masters under libfaketime (valkey-server, whatever REDIS_SERVER_BIN says) and
    /// add the fault `clock`: a master's clock jumps ahead by a lease and a half, then back.
    /// On 1 master this over-admits (docs/lib.md, "What Redis must promise"): use --masters 3.
    #[arg(long)]
    clock: bool,
    /// Each master is a Sentinel group (a primary, two replicas, three sentinels); the
    /// faults are failovers, forced and by killing the primary (the proxies' faults do not
    /// apply).
    #[arg(long)]
    sentinel: bool,
    /// With --sentinel: grants wait for this many replicas (2, every replica; 0: none,
    /// where a failover may over-admit).
    #[arg(long, default_value_t = 2)]
    replicas: u32,
    /// Inject no faults (a baseline).
    #[arg(long)]
    calm: bool,
    /// Builder::fair(false) for every handle.
    #[arg(long)]
    unfair: bool,
    /// Print the summary as one JSON line as well.
    #[arg(long)]
    json: bool,
}

impl Options {
    fn from_args(args: Args) -> Result<Options, String> {
        let mut o = Options {
            secs: args.secs,
            masters: args.masters,
            permits: args.permits,
            workers: args.workers,
            lease: args.lease,
            faults: MAIN_FAULTS
                .iter()
                .chain(&SMALL_FAULTS)
                .map(|f| f.to_string())
                .collect(),
            fair: !args.unfair,
            json: args.json,
            clock: args.clock,
            sentinel: args.sentinel,
            replicas: args.replicas,
        };
        if let Some(list) = args.faults {
            o.faults = list.split(',').map(|f| f.trim().to_string()).collect();
            if let Some(bad) = o.faults.iter().find(|f| {
                !MAIN_FAULTS.contains(&f.as_str())
                    && !SMALL_FAULTS.contains(&f.as_str())
                    && f.as_str() != "clock"
            }) {
                return Err(format!("unknown fault {bad:?}"));
            }
            o.clock |= o.faults.iter().any(|f| f == "clock");
        }
        if args.calm {
            o.faults.clear();
        }
        if !(o.secs > 0.0 && o.secs <= 24.0 * 3600.0) {
            return Err("--secs must be above 0 and at most a day".into());
        }
        if o.masters == 0 || o.masters > 7 {
            return Err("--masters must be between 1 and 7".into());
        }
        if o.permits == 0 || o.workers < 2 || o.workers > 256 {
            return Err("--permits must be at least 1, --workers between 2 and 256".into());
        }
        if o.lease < Duration::from_millis(120) || o.lease > Duration::from_secs(10) {
            return Err("--lease-ms must be between 120 and 10000".into());
        }
        if o.replicas > 2 {
            return Err("--replicas: a group has 2 replicas".into());
        }
        if o.sentinel && o.clock {
            return Err("--sentinel and --clock do not go together".into());
        }
        Ok(o)
    }

    fn request_timeout(&self) -> Duration {
        self.lease / 6
    }
}

/// What the workers did and the checks saw.
#[derive(Debug, Default)]
struct Stats {
    acquisitions: AtomicU64,
    timeouts: AtomicU64,
    /// Granted, but no longer valid when the reply came (a slow master).
    stale_grants: AtomicU64,
    /// Lost during the hold.
    lost: AtomicU64,
    over: AtomicU64,
    slot_twice: AtomicU64,
    fence_refused: AtomicU64,
    max_inside: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    faults: Mutex<BTreeMap<&'static str, u64>>,
}

impl Stats {
    fn error(&self, what: &str, error: &Error) {
        let kind = match error {
            Error::Redis { .. } => "redis",
            Error::Quorum { .. } => "quorum",
            Error::PermitLost { .. } => "permit lost",
            Error::WrongType { .. } => "wrong type",
            Error::ConfigMismatch { .. } => "config mismatch",
            Error::InvalidArgument(_) => "invalid argument",
            _ => "other",
        };
        *self
            .errors
            .lock()
            .unwrap()
            .entry(format!("{what}: {kind}"))
            .or_default() += 1;
    }

    fn fault(&self, kind: &'static str) {
        *self.faults.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn saw(&self, entered: testkit::Entered, permits: u32) {
        self.max_inside
            .fetch_max(u64::from(entered.inside), Ordering::Relaxed);
        if entered.inside > permits {
            self.over.fetch_add(1, Ordering::Relaxed);
        }
        if entered.shared_slot.is_some() {
            self.slot_twice.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

pub(crate) fn main(args: Args) -> i32 {
    if let Ok(urls) = std::env::var(HOLDER_ENV) {
        holder_process(&urls);
        return 0;
    }
    let o = match Options::from_args(args) {
        Ok(o) => o,
        Err(why) => {
            eprintln!("soak: {why}");
            return 2;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ok = runtime.block_on(soak(o));
    if ok { 0 } else { 1 }
}

fn rand_ms(range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(rand::random_range(range))
}

async fn build(urls: &[String], o: &Options) -> AsyncSemaphore {
    build_from(
        AsyncSemaphore::builder(NAME, o.permits).masters(urls.iter().cloned()),
        o,
    )
    .await
}

/// `builder`, its masters given, with `o`'s lease, request timeout and fairness, built.
async fn build_from(builder: redis_semaphore::Builder, o: &Options) -> AsyncSemaphore {
    builder
        .lease(o.lease)
        .request_timeout(o.request_timeout())
        .fair(o.fair)
        .build()
        .await
        .unwrap_or_else(|e| panic!("cannot build the semaphore: {e}"))
}

/// Starts a worker on `sem`: acquire, hold, release, checked, until `stop`.
fn spawn_worker(
    sem: AsyncSemaphore,
    checker: &Observer,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
    o: &Options,
) -> tokio::task::JoinHandle<()> {
    let (checker, stats, stop) = (checker.clone(), stats.clone(), stop.clone());
    let (permits, lease) = (o.permits, o.lease);
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            cycle(&sem, &checker, &stats, permits, lease).await;
        }
    })
}

/// Waits until `direct` sees every permit free and no holder, at most `allowed` after
/// `stopped`; what it saw last.
async fn wait_free(
    direct: &AsyncSemaphore,
    o: &Options,
    stopped: Instant,
    allowed: Duration,
) -> (Option<u32>, Option<usize>) {
    loop {
        let value = direct.value().await.ok();
        let holders = direct.holders().await.ok().map(|h| h.len());
        let free = value == Some(o.permits) && holders == Some(0);
        if free || stopped.elapsed() > allowed {
            return (value, holders);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn soak(o: Options) -> bool {
    if o.sentinel {
        return soak_sentinel(o).await;
    }
    let started = Instant::now();
    let (mut masters, mut clocks): (Vec<Server>, Vec<testkit::faketime::Clock>) = if o.clock {
        (0..o.masters)
            .map(|_| testkit::faketime::FakeClock::start().into_parts())
            .unzip()
    } else {
        (
            (0..o.masters).map(|_| Server::start()).collect(),
            Vec::new(),
        )
    };
    let observer = Server::start();
    // proxies[group][master]
    let proxies: Arc<Vec<Vec<Proxy>>> = Arc::new(
        (0..2)
            .map(|_| masters.iter().map(Proxy::start).collect())
            .collect(),
    );
    let urls = |group: usize| -> Vec<String> { proxies[group].iter().map(Proxy::url).collect() };
    let checker = Observer::connect(&observer.url())
        .await
        .with_limit(o.permits);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));

    let mut workers = Vec::new();
    for w in 0..o.workers {
        let sem = build(&urls(w % 2), &o).await;
        workers.push(spawn_worker(sem, &checker, &stats, &stop, &o));
    }

    // Dropped connections and cut replies, at any moment.
    let small: Vec<&'static str> = SMALL_FAULTS
        .into_iter()
        .filter(|f| o.faults.iter().any(|g| g == f))
        .collect();
    let mut main_faults: Vec<&str> = MAIN_FAULTS
        .into_iter()
        .filter(|f| o.faults.iter().any(|g| g == f))
        .collect();
    if o.clock {
        main_faults.push("clock");
    }
    let small_faults = spawn_small_faults(small, &proxies, &stats, &stop);

    let end = started + Duration::from_secs_f64(o.secs);
    let mut last_report = Instant::now();
    let mut rig = Rig {
        masters: &mut masters,
        clocks: &mut clocks,
        proxies: &proxies,
        observer: &observer,
        checker: &checker,
    };
    while Instant::now() < end {
        tokio::time::sleep(rand_ms(200..1000)).await;
        if main_faults.is_empty() {
            continue;
        }
        let fault = main_faults[rand::random_range(0..main_faults.len())];
        rig.inject(fault, &stats, &o).await;
        if last_report.elapsed() >= Duration::from_secs(30) {
            last_report = Instant::now();
            eprintln!(
                "soak: {:.0} s, {} acquisitions, max inside {} of {}, {} faults",
                started.elapsed().as_secs_f64(),
                Stats::get(&stats.acquisitions),
                Stats::get(&stats.max_inside),
                o.permits,
                stats.faults.lock().unwrap().values().sum::<u64>()
            );
        }
    }
    let ran = started.elapsed();

    stop.store(true, Ordering::Relaxed);
    small_faults.await.unwrap();
    proxies.iter().flatten().for_each(Proxy::heal);
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    let stopped = Instant::now();

    // One lease after the holders stopped, with every fault healed, nothing is held.
    let direct = build(&masters.iter().map(Server::url).collect::<Vec<_>>(), &o).await;
    let (value, holders) = wait_free(&direct, &o, stopped, o.lease + Duration::from_secs(1)).await;
    let freed_after = stopped.elapsed();
    let ok = report(&o, &stats, &checker, ran, value, holders, freed_after).await;
    drop(direct);
    masters.clear();
    ok
}

/// What the main faults act on.
struct Rig<'a> {
    masters: &'a mut Vec<Server>,
    clocks: &'a mut Vec<testkit::faketime::Clock>,
    /// `proxies[group][master]`
    proxies: &'a [Vec<Proxy>],
    observer: &'a Server,
    checker: &'a Observer,
}

impl Rig<'_> {
    /// One main fault, on a master chosen at random (and, for the faults of a proxy, one
    /// of the two groups of clients), lasting a random while; counted once it is over.
    async fn inject(&mut self, fault: &str, stats: &Stats, o: &Options) {
        let m = rand::random_range(0..self.masters.len());
        let group = rand::random_range(0..2);
        let lease_ms = o.lease.as_millis() as u64;
        let urls: Vec<String> = self.proxies[group].iter().map(Proxy::url).collect();
        match fault {
            "pause" => {
                self.masters[m].pause();
                tokio::time::sleep(rand_ms(lease_ms / 6..lease_ms * 2)).await;
                self.masters[m].resume();
                stats.fault("master paused");
            }
            "kill" => {
                self.masters[m].kill();
                // The delayed-restart rule: back, empty, after one lease at the least.
                tokio::time::sleep(o.lease + rand_ms(0..lease_ms / 2)).await;
                self.masters[m].restart();
                stats.fault("master killed, restarted empty");
            }
            "slow" => {
                let timeout_ms = o.request_timeout().as_millis() as u64;
                for g in self.proxies.iter() {
                    g[m].set_latency(rand_ms(timeout_ms * 3 / 10..timeout_ms / 2));
                    g[m].set_jitter(Duration::from_millis(timeout_ms / 10));
                }
                tokio::time::sleep(rand_ms(300..1500)).await;
                for g in self.proxies.iter() {
                    g[m].heal();
                }
                stats.fault("master slowed near the timeout");
            }
            "partition" => {
                self.proxies[group][m].partition(true);
                tokio::time::sleep(rand_ms(lease_ms / 3..lease_ms * 2)).await;
                self.proxies[group][m].partition(false);
                stats.fault("master partitioned from half the clients");
            }
            "blackhole" => {
                self.proxies[group][m].blackhole(true);
                tokio::time::sleep(rand_ms(lease_ms / 3..lease_ms * 2)).await;
                self.proxies[group][m].blackhole(false);
                stats.fault("master black-holed for half the clients");
            }
            "clock" => {
                // Ahead by a lease and a half (every lease on it expires), then back.
                let ahead = (lease_ms * 3 / 2).div_ceil(1000) as i64;
                self.clocks[m].write(ahead);
                tokio::time::sleep(rand_ms(lease_ms / 2..lease_ms * 2)).await;
                self.clocks[m].write(0);
                stats.fault("master clock jumped ahead past the lease, then back");
            }
            _holder => {
                if kill_a_holder(&urls, self.observer, self.checker, stats, o).await {
                    stats.fault("holder process killed");
                }
            }
        }
    }
}

/// Drops a proxy's connections or cuts a request's reply, at random moments, until `stop`.
fn spawn_small_faults(
    small: Vec<&'static str>,
    proxies: &Arc<Vec<Vec<Proxy>>>,
    stats: &Arc<Stats>,
    stop: &Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let (proxies, stats, stop) = (proxies.clone(), stats.clone(), stop.clone());
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(rand_ms(50..400)).await;
            if small.is_empty() {
                continue;
            }
            let group = &proxies[rand::random_range(0..proxies.len())];
            let proxy = &group[rand::random_range(0..group.len())];
            if small[rand::random_range(0..small.len())] == "drop" {
                proxy.drop_connections();
                stats.fault("dropped connections");
            } else {
                proxy.cut_reply_to(b"EVALSHA");
                stats.fault("cut reply");
            }
        }
    })
}

/// Prints what the run did and saw; true if nothing was over-admitted or leaked.
async fn report(
    o: &Options,
    stats: &Stats,
    checker: &Observer,
    ran: Duration,
    value: Option<u32>,
    holders: Option<usize>,
    freed_after: Duration,
) -> bool {
    let (max_seen, inside) = checker.seen().await;
    let first_violation = checker.violation().await;
    let leaked = o.permits.saturating_sub(value.unwrap_or(0));

    let over = Stats::get(&stats.over) + Stats::get(&stats.slot_twice);
    let fence = Stats::get(&stats.fence_refused);
    let ok = over == 0
        && fence == 0
        && max_seen <= o.permits
        && leaked == 0
        && holders == Some(0)
        && inside == 0;
    let acquisitions = Stats::get(&stats.acquisitions);
    let faults = stats.faults.lock().unwrap().clone();
    let errors = stats.errors.lock().unwrap().clone();
    let server = server_version();
    let list = |m: &BTreeMap<String, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let faults_text: BTreeMap<String, u64> =
        faults.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    let kind = match (o.sentinel, o.masters) {
        (false, 1) => "master".to_string(),
        (false, _) => "masters".to_string(),
        (true, m) => format!(
            "Sentinel group{} (replicas({}))",
            if m == 1 { "" } else { "s" },
            o.replicas
        ),
    };
    println!(
        "soak: {:.0} s on {} {kind} ({server}), {} permits, {} workers, lease {:?}, request timeout {:?}",
        ran.as_secs_f64(),
        o.masters,
        o.permits,
        o.workers,
        o.lease,
        o.request_timeout()
    );
    println!(
        "acquisitions:      {acquisitions} ({:.1}/s); {} timed out after a lease, {} stale on arrival, {} lost while held",
        acquisitions as f64 / ran.as_secs_f64(),
        Stats::get(&stats.timeouts),
        Stats::get(&stats.stale_grants),
        Stats::get(&stats.lost)
    );
    println!(
        "faults injected:   {} ({})",
        faults.values().sum::<u64>(),
        list(&faults_text)
    );
    println!(
        "max concurrency:   {max_seen} of {} (over-admissions {}, a slot held twice {}, fencing tokens refused {fence}{})",
        o.permits,
        Stats::get(&stats.over),
        Stats::get(&stats.slot_twice),
        first_violation
            .map(|v| format!("; first violation: {v}"))
            .unwrap_or_default()
    );
    println!(
        "leaked permits:    {leaked} (value {} of {}, {} holders, {freed_after:?} after the workers stopped)",
        value.map_or("?".into(), |v| v.to_string()),
        o.permits,
        holders.map_or("?".into(), |h| h.to_string())
    );
    println!("errors by kind:    {}", list(&errors));
    println!("result:            {}", if ok { "OK" } else { "FAILED" });
    if o.json {
        let json_map = |m: &BTreeMap<String, u64>| {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("{{{}}}", items.join(","))
        };
        println!(
            "{{\"secs\":{:.1},\"masters\":{},\"permits\":{},\"workers\":{},\"acquisitions\":{acquisitions},\
             \"faults\":{},\"max_inside\":{max_seen},\"over_admissions\":{over},\"fence_refused\":{fence},\
             \"leaked\":{leaked},\"errors\":{},\"ok\":{ok}}}",
            ran.as_secs_f64(),
            o.masters,
            o.permits,
            o.workers,
            json_map(&faults_text),
            json_map(&errors)
        );
    }
    ok
}

/// A handle on the Sentinel groups `groups`, with `o`'s settings.
async fn build_sentinel(groups: &[Group], o: &Options) -> AsyncSemaphore {
    let mut builder = AsyncSemaphore::builder(NAME, o.permits);
    for group in groups {
        builder = builder.sentinel(group.sentinel_urls(), SERVICE);
    }
    if o.replicas > 0 {
        builder = builder.replicas(o.replicas, o.lease / 4);
    }
    build_from(builder, o).await
}

/// The soak with Sentinel groups as the masters, and failovers as the faults: forced, or
/// the primary SIGKILLed and restarted empty (it rejoins as a replica), one at a time, each
/// waited out (the new primary named and both replicas in sync) before the next.
async fn soak_sentinel(o: Options) -> bool {
    let started = Instant::now();
    let mut groups: Vec<Group> = (0..o.masters)
        .map(|_| tokio::task::block_in_place(Group::start))
        .collect();
    let observer = Server::start();
    let checker = Observer::connect(&observer.url())
        .await
        .with_limit(o.permits);
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..o.workers {
        let sem = build_sentinel(&groups, &o).await;
        workers.push(spawn_worker(sem, &checker, &stats, &stop, &o));
    }
    let faults = !o.faults.is_empty();
    let end = started + Duration::from_secs_f64(o.secs);
    while Instant::now() < end {
        tokio::time::sleep(rand_ms(500..1500)).await;
        if !faults {
            continue;
        }
        let group = &mut groups[rand::random_range(0..o.masters)];
        if rand::random_range(0..2) == 0 {
            tokio::task::block_in_place(|| group.force_failover());
            stats.fault("forced failover");
        } else {
            tokio::task::block_in_place(|| group.kill_primary());
            stats.fault("primary killed, a replica promoted");
        }
    }
    let ran = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.expect("a worker panicked");
    }
    let stopped = Instant::now();
    let direct = build_sentinel(&groups, &o).await;
    let (value, holders) = wait_free(&direct, &o, stopped, o.lease + Duration::from_secs(3)).await;
    let freed_after = stopped.elapsed();
    report(&o, &stats, &checker, ran, value, holders, freed_after).await
}

/// One acquire, hold and release, checked.
async fn cycle(
    sem: &AsyncSemaphore,
    checker: &Observer,
    stats: &Stats,
    permits: u32,
    lease: Duration,
) {
    let permit = match sem.acquire_timeout(lease).await {
        Ok(Some(permit)) => permit,
        Ok(None) => {
            stats.timeouts.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(error) => {
            stats.error("acquire", &error);
            tokio::time::sleep(Duration::from_millis(10)).await;
            return;
        }
    };
    stats.acquisitions.fetch_add(1, Ordering::Relaxed);
    if permit.is_valid() {
        stats.saw(checker.try_enter(permit.slots()).await, permits);
        for &slot in permit.slots() {
            if !checker.fence(slot, permit.fencing_token()).await {
                stats.fence_refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(rand_ms(1..20)) => {}
            _ = permit.lost() => { stats.lost.fetch_add(1, Ordering::Relaxed); }
        }
        checker.exit_holding(permit.slots()).await;
    } else {
        stats.stale_grants.fetch_add(1, Ordering::Relaxed);
    }
    if let Err(error) = permit.release().await {
        stats.error("release", &error);
    }
}

/// Starts a holder process on `urls`, lets it take a permit and count itself in, and
/// SIGKILLs it while it holds. False if it got no permit in time.
async fn kill_a_holder(
    urls: &[String],
    observer: &Server,
    checker: &Observer,
    stats: &Stats,
    o: &Options,
) -> bool {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("soak")
        .env(HOLDER_ENV, urls.join(","))
        .env("SOAK_OBSERVER", observer.url())
        .env("SOAK_PERMITS", o.permits.to_string())
        .env("SOAK_LEASE_MS", o.lease.as_millis().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the holder process starts");
    let stdout = child.stdout.take().unwrap();
    // Its first line: `HOLD <slot> <inside> <shared slot or -1>` or `NONE`.
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        line
    })
    .await
    .unwrap();
    let held = line
        .strip_prefix("HOLD ")
        .map(|rest| {
            let parts: Vec<i64> = rest
                .split_whitespace()
                .map(|p| p.parse().unwrap())
                .collect();
            (parts[0] as u32, parts[1] as u32, parts[2])
        })
        .map(|(slot, inside, shared)| {
            stats.saw(
                testkit::Entered {
                    inside,
                    shared_slot: u32::try_from(shared).ok(),
                },
                o.permits,
            );
            slot
        });
    if held.is_some() {
        tokio::time::sleep(rand_ms(20..300)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    if let Some(slot) = held {
        // Dead, it touches nothing any more.
        checker.exit_holding(&[slot]).await;
        stats.acquisitions.fetch_add(1, Ordering::Relaxed);
    }
    held.is_some()
}

/// A holder process: takes a permit, counts itself in, says so, and holds until killed
/// (at most 30 s, should its parent be gone).
fn holder_process(urls: &str) {
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| panic!("holder needs {name}"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let lease = Duration::from_millis(env("SOAK_LEASE_MS").parse().unwrap());
        let permits: u32 = env("SOAK_PERMITS").parse().unwrap();
        let sem = AsyncSemaphore::builder(NAME, permits)
            .masters(urls.split(','))
            .lease(lease)
            .request_timeout(lease / 6)
            .build()
            .await;
        let permit = match sem {
            Ok(sem) => sem.acquire_timeout(lease * 2).await.ok().flatten(),
            Err(_) => None,
        };
        let mut out = std::io::stdout();
        match permit.filter(|p| p.is_valid()) {
            Some(permit) => {
                let checker = Observer::connect(&env("SOAK_OBSERVER"))
                    .await
                    .with_limit(permits);
                let slot = permit.slots()[0];
                let entered = checker.try_enter(&[slot]).await;
                let shared = entered.shared_slot.map_or(-1, i64::from);
                writeln!(out, "HOLD {slot} {} {shared}", entered.inside).unwrap();
                out.flush().unwrap();
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(permit);
            }
            None => {
                writeln!(out, "NONE").unwrap();
                out.flush().unwrap();
            }
        }
    });
}

/// "Redis 7.0.15" from the server binary's `--version`, else the binary's path.
fn server_version() -> String {
    let bin = testkit::server_binary();
    crate::measure::server_version(&bin).unwrap_or(bin)
}
