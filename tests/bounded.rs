//! No call stalls the server: the largest asks the API allows (acquire_many at the cap, the
//! count set far down and up, thousands of holders listed, leases of thousands of slots
//! reclaimed after their holder vanished) while a prober on its own connection pings the
//! server every 5 ms. Redis runs one script at a time for all of its clients, so a long
//! script is a stall of every other user: no ping may wait 100 ms, none may be answered
//! BUSY, and SLOWLOG may show no command of 50 ms. These are bounds with wide margins
//! (the slowest script here takes a few ms), not timings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use redis_semaphore::{Error, MAX_ACQUIRE_MANY, Permit};
use testkit::proxy::Proxy;
use testkit::{Server, checks, sem, sem_on};

/// The most a ping may wait, and the slowest command SLOWLOG may show.
const PING_LIMIT: Duration = Duration::from_millis(100);
const SLOWEST_US: i64 = 50_000;

/// A server that logs every command of 1 ms or more.
fn logged_server() -> Server {
    Server::start_with(&[
        "--slowlog-log-slower-than",
        "1000",
        "--slowlog-max-len",
        "100000",
    ])
}

/// Pings the server every 5 ms on its own connection until stopped.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Probed>,
}

#[derive(Debug, Default)]
struct Probed {
    pings: u64,
    busy: u64,
    slowest: Duration,
}

impl Prober {
    fn start(server: &Server) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let mut con = server.client().get_connection().expect("prober connects");
        con.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut probed = Probed::default();
            // Bounded: at most 10 minutes of pings, whatever the test does.
            let end = Instant::now() + Duration::from_secs(600);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < end {
                let sent = Instant::now();
                match redis::cmd("PING").query::<String>(&mut con) {
                    Ok(_) => {}
                    Err(e) if e.to_string().contains("BUSY") => probed.busy += 1,
                    Err(e) => panic!("the prober's ping failed: {e}"),
                }
                probed.slowest = probed.slowest.max(sent.elapsed());
                probed.pings += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            probed
        });
        Prober { stop, thread }
    }

    /// Stops the prober and checks what it and SLOWLOG saw; returns the slowest command
    /// in SLOWLOG (µs, and its name).
    fn check(self, server: &Server) -> (i64, String) {
        self.stop.store(true, Ordering::Relaxed);
        let probed = self.thread.join().expect("the prober panicked");
        assert!(probed.pings > 10, "the prober hardly ran: {probed:?}");
        assert_eq!(probed.busy, 0, "pings answered BUSY: {probed:?}");
        assert!(
            probed.slowest < PING_LIMIT,
            "a ping waited too long: {probed:?}"
        );
        let slowest = slowest_logged(server);
        assert!(
            slowest.0 < SLOWEST_US,
            "SLOWLOG shows a command of {} µs: {}",
            slowest.0,
            slowest.1
        );
        println!(
            "{} pings, slowest {:?}; slowest command in SLOWLOG: {} µs ({})",
            probed.pings, probed.slowest, slowest.0, slowest.1
        );
        slowest
    }
}

/// The slowest entry of SLOWLOG: its duration (µs) and command (0 and "" when empty).
fn slowest_logged(server: &Server) -> (i64, String) {
    let redis::Value::Array(entries) = server.cmd(&["SLOWLOG", "GET", "-1"]) else {
        panic!("SLOWLOG GET did not answer a list");
    };
    let mut slowest = (0, String::new());
    for entry in entries {
        let redis::Value::Array(fields) = entry else {
            panic!("a SLOWLOG entry is not a list");
        };
        let micros: i64 = redis::from_redis_value(fields[2].clone()).unwrap();
        let args: Vec<String> = redis::from_redis_value(fields[3].clone()).unwrap_or_default();
        if micros > slowest.0 {
            slowest = (
                micros,
                args.iter().take(3).cloned().collect::<Vec<_>>().join(" "),
            );
        }
    }
    slowest
}

fn invalid(result: Result<Option<Permit>, Error>) -> String {
    match result {
        Err(Error::InvalidArgument(why)) => why,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_asks_never_stall_the_server() {
    let server = logged_server();
    let prober = Prober::start(&server);
    let permits = 4_000_000_000;
    let sem = sem(&server, "huge", permits)
        .lease(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();

    // Past the cap: refused at once, naming it, with no request sent.
    let sent = server.evalsha_calls();
    for k in [MAX_ACQUIRE_MANY + 1, 1_000_000, u32::MAX] {
        let why = invalid(sem.try_acquire_many(k).await);
        assert!(
            why.contains("the most is 1000") && why.contains("MAX_ACQUIRE_MANY"),
            "{why}"
        );
        let why = invalid(sem.acquire_many_timeout(k, Duration::from_secs(1)).await);
        assert!(why.contains("the most is 1000"), "{why}");
    }
    assert_eq!(server.evalsha_calls(), sent, "a refused ask sent a script");

    // At the cap: granted, twice.
    let big: Vec<Permit> = vec![
        sem.try_acquire_many(MAX_ACQUIRE_MANY)
            .await
            .unwrap()
            .expect("1000 are free"),
        sem.acquire_many(MAX_ACQUIRE_MANY).await.unwrap(),
    ];
    assert!(big.iter().all(|p| p.permits() == MAX_ACQUIRE_MANY));

    // Thousands of holders, listed a page at a time.
    let mut small = Vec::new();
    for _ in 0..30 {
        let batch = join_all((0..100).map(|_| sem.try_acquire())).await;
        small.extend(
            batch
                .into_iter()
                .map(|p| p.unwrap().expect("a permit is free")),
        );
    }
    let holders = sem.holders().await.unwrap();
    assert_eq!(holders.len(), 3002);
    let slots: usize = holders.iter().map(|h| h.slots.len()).sum();
    assert_eq!(slots, 5000);
    assert_eq!(sem.value().await.unwrap(), permits - 5000);

    // The count far down and back far up.
    sem.set_permits(1).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 0);
    sem.set_permits(u32::MAX).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), u32::MAX - 5000);

    for permit in big {
        permit.release().await.unwrap();
    }
    drop(small);
    sem.flush().await;
    checks::all_free(&sem, u32::MAX).await;
    assert!(sem.delete().await.unwrap());
    prober.check(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_holder_of_thousands_of_slots_is_reclaimed_in_batches() {
    let server = logged_server();
    let prober = Prober::start(&server);
    let proxy = Proxy::start(&server);
    let permits = 10_000;
    // The holder reaches the server through a proxy that then drops everything: to the
    // server it is gone, its leases run out, and nobody releases them.
    let holder = redis_semaphore::AsyncSemaphore::builder("crowd", permits)
        .master(proxy.url())
        .lease(Duration::from_secs(1))
        .request_timeout(Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(holder.acquire_many(MAX_ACQUIRE_MANY).await.unwrap());
    }
    proxy.blackhole(true);
    let other = sem(&server, "crowd", permits)
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Each call reclaims one batch of 1000 expired slots; the rest stay held until the
    // next calls reclaim them.
    for reclaimed in 1..=5 {
        assert_eq!(
            other.value().await.unwrap(),
            permits - 5000 + reclaimed * 1000
        );
    }
    assert_eq!(other.value().await.unwrap(), permits);
    assert!(other.holders().await.unwrap().is_empty());
    drop(held);
    prober.check(&server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_masters_count_more_held_slots_than_a_page() {
    let servers = testkit::masters(3);
    let sem = sem_on(&servers, "paged", 3000)
        .request_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap();
    let mut held = Vec::new();
    for k in [MAX_ACQUIRE_MANY, MAX_ACQUIRE_MANY, 500] {
        held.push(sem.acquire_many(k).await.unwrap());
    }
    let small = join_all((0..50).map(|_| sem.acquire())).await;
    // value() on several masters counts the slots held on a majority: 2550 of them, over
    // three pages on each master.
    assert_eq!(sem.value().await.unwrap(), 3000 - 2550);
    let holders = sem.holders().await.unwrap();
    assert_eq!(holders.len(), 53);
    assert!(
        holders.iter().all(|h| h.masters.len() == 3),
        "{:?}",
        &holders[0]
    );
    let mut slots: Vec<u32> = holders.iter().flat_map(|h| h.slots.clone()).collect();
    slots.sort_unstable();
    assert_eq!(
        slots,
        (0..2550).collect::<Vec<u32>>(),
        "each held slot once"
    );
    drop(small);
    drop(held);
    sem.flush().await;
    checks::all_free(&sem, 3000).await;
}
