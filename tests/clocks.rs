//! Clock faults: one master's clock jumps forward past the lease, or goes back, while
//! workers contend, and an independent observer (a server that is no master) counts who is
//! inside.
//!
//! Leases are read from each master's own clock (`TIME` in the scripts), so a master whose
//! clock jumps ahead by more than a lease expires every lease at once and grants the slots
//! again while their holders, timing their validity on their own monotonic clocks, still
//! hold them. That is Redlock's clock assumption, and what docs/lib.md's "What Redis must
//! promise" states:
//! - on 1 master the jump over-admits: the test shows it (a probe right after each jump is
//!   granted a slot whose holder is still inside) and prints the figures;
//! - on 3 masters, one master's jump costs nothing: the other two still hold every slot,
//!   so no slot can get a second majority. The test asserts never more than N inside;
//! - a clock that goes back lengthens leases on that master (a crashed holder's permits
//!   come back later); it never admits more than N, on 1 master or 3.
//!
//! The masters run under libfaketime, which moves a running server's clock through a file
//! (`testkit/src/faketime.rs`). They are valkey-server whatever `REDIS_SERVER_BIN` says:
//! Redis's Debian build uses jemalloc, which cannot start under libfaketime's preload;
//! Valkey's libc build can. The observer runs on the suite's server.
//!
//! Run with `--nocapture` to see the figures (`over-admitted ...` lines).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis_semaphore::AsyncSemaphore;
use testkit::faketime::FakeClock;
use testkit::{Observer, Server};

const PERMITS: u32 = 2;
const LEASE: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
const WORKERS: usize = 6;
/// Jumps per run, and the time between two.
const JUMPS: usize = 4;
const BETWEEN_JUMPS: Duration = Duration::from_millis(2500);
/// A jump: one second more than the lease.
const JUMP_SECS: i64 = 6;

/// What one run saw.
#[derive(Debug, Default)]
struct Figures {
    /// Most holders inside at once (the observer's count).
    max_inside: u32,
    /// Entries into the critical section that found N already inside.
    over_admitted: u64,
    /// Probes (a fresh handle's `try_acquire` right after a jump) that were granted.
    probes_granted: u64,
    grants: u64,
    lost: u64,
}

/// Contenders and one probe on `masters`, while `jump` moves master 0's clock by
/// `jump_secs` each time, [`JUMPS`] times.
async fn contend(name: &str, masters: &mut [FakeClock], jump_secs: i64) -> Figures {
    let observer_server = Server::start();
    let urls: Vec<String> = masters.iter().map(FakeClock::url).collect();
    let handle = || {
        AsyncSemaphore::builder(name, PERMITS)
            .masters(urls.clone())
            .lease(LEASE)
            .request_timeout(REQUEST_TIMEOUT)
            .build()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let over = Arc::new(AtomicU64::new(0));
    let grants = Arc::new(AtomicU64::new(0));
    let lost = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let sem = handle().await.unwrap();
        let observer = Observer::connect(&observer_server.url()).await;
        let (stop, over, grants, lost) = (stop.clone(), over.clone(), grants.clone(), lost.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(permit)) = sem.acquire_timeout(LEASE).await else {
                    continue;
                };
                grants.fetch_add(1, Ordering::Relaxed);
                if permit.is_valid() {
                    if observer.enter().await > PERMITS {
                        over.fetch_add(1, Ordering::Relaxed);
                    }
                    // A careful holder: it leaves as soon as it learns the permit is lost.
                    let hold = Duration::from_millis(rand::random_range(300..1500));
                    tokio::select! {
                        _ = tokio::time::sleep(hold) => {}
                        _ = permit.lost() => { lost.fetch_add(1, Ordering::Relaxed); }
                    }
                    observer.exit().await;
                }
                let _ = permit.release().await;
            }
        }));
    }
    let probe = handle().await.unwrap();
    let probe_observer = Observer::connect(&observer_server.url()).await;
    let mut probes_granted = 0;
    for _ in 0..JUMPS {
        tokio::time::sleep(BETWEEN_JUMPS).await;
        masters[0].jump(jump_secs);
        // A newcomer right after the jump, while the workers hold both slots.
        if let Ok(Some(permit)) = probe.try_acquire().await {
            probes_granted += 1;
            if probe_observer.enter().await > PERMITS {
                over.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            probe_observer.exit().await;
            let _ = permit.release().await;
        }
    }
    tokio::time::sleep(BETWEEN_JUMPS).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        tokio::time::timeout(LEASE * 3, task)
            .await
            .expect("a worker stops within an acquire and a hold")
            .expect("a worker panicked");
    }
    let (max_inside, inside) = probe_observer.seen().await;
    assert_eq!(inside, 0, "every holder left");
    Figures {
        max_inside,
        over_admitted: over.load(Ordering::Relaxed),
        probes_granted,
        grants: grants.load(Ordering::Relaxed),
        lost: lost.load(Ordering::Relaxed),
    }
}

fn report(what: &str, masters: usize, f: &Figures) {
    println!(
        "over-admitted {what}, {masters} master(s), {PERMITS} permits, lease {LEASE:?}: \
         {} entries found {PERMITS} already inside over {JUMPS} jumps ({:.2} per jump), \
         at most {} inside at once; probes granted {}/{JUMPS}; grants {}, permits lost {}",
        f.over_admitted,
        f.over_admitted as f64 / JUMPS as f64,
        f.max_inside,
        f.probes_granted,
        f.grants,
        f.lost
    );
}

fn clocks(n: usize) -> Vec<FakeClock> {
    (0..n).map(|_| FakeClock::start()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jumping_past_the_lease_over_admits_on_one_master() {
    let mut masters = clocks(1);
    let f = contend("clock-ahead-1", &mut masters, JUMP_SECS).await;
    report("clock jumps +6 s", 1, &f);
    // Not a guarantee but the documented failure, shown: if this stops happening the test
    // no longer exercises what docs/lib.md states.
    assert!(
        f.max_inside > PERMITS,
        "a master whose clock jumps past the lease grants held slots again ({f:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jumping_past_the_lease_on_one_of_three_masters_admits_at_most_n() {
    let mut masters = clocks(3);
    let f = contend("clock-ahead-3", &mut masters, JUMP_SECS).await;
    report("clock jumps +6 s", 3, &f);
    assert!(
        f.max_inside <= PERMITS,
        "one master's clock cannot over-admit on 3 ({f:?})"
    );
    assert_eq!(f.over_admitted, 0, "{f:?}");
    assert!(f.grants > 0, "the workers got permits ({f:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_going_back_admits_at_most_n_on_one_master() {
    let mut masters = clocks(1);
    let f = contend("clock-back-1", &mut masters, -JUMP_SECS).await;
    report("clock goes back 6 s", 1, &f);
    assert!(f.max_inside <= PERMITS, "{f:?}");
    assert!(f.grants > 0, "the workers got permits ({f:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_going_back_on_one_of_three_masters_admits_at_most_n() {
    let mut masters = clocks(3);
    let f = contend("clock-back-3", &mut masters, -JUMP_SECS).await;
    report("clock goes back 6 s", 3, &f);
    assert!(f.max_inside <= PERMITS, "{f:?}");
    assert!(f.grants > 0, "the workers got permits ({f:?})");
}
