//! Several OS processes contending for one semaphore: no over-admission seen by an
//! independent observer, permits of a SIGKILLed holder back within one lease, and a
//! SIGSTOPped holder that learns it lost its permit.
//!
//! This test binary re-runs itself as the worker processes (`harness = false` in
//! Cargo.toml): with `SEM_WORKER` set, `main` is a worker; without it, the test runner.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::{Observer, Server};

fn main() {
    if let Ok(mode) = std::env::var("SEM_WORKER") {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(worker(&mode));
        return;
    }
    let tests: &[(&str, fn())] = &[
        ("processes_never_exceed_n", processes_never_exceed_n),
        (
            "processes_on_three_and_five_masters_never_exceed_n",
            processes_on_three_and_five_masters_never_exceed_n,
        ),
        (
            "fair_waiting_gives_workers_of_four_processes_even_turns",
            fair_waiting_gives_workers_of_four_processes_even_turns,
        ),
        (
            "a_killed_waiter_does_not_hold_up_the_queue",
            a_killed_waiter_does_not_hold_up_the_queue,
        ),
        (
            "a_release_wakes_one_of_fifty_waiting_processes",
            a_release_wakes_one_of_fifty_waiting_processes,
        ),
        (
            "killed_holder_gives_permits_back_within_one_lease",
            killed_holder_gives_permits_back_within_one_lease,
        ),
        (
            "stopped_holder_learns_it_lost_and_tokens_rise",
            stopped_holder_learns_it_lost_and_tokens_rise,
        ),
    ];
    testkit::run_tests("processes", tests);
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("worker needs {name}"))
}

/// `urls` is one master's URL, or several separated by commas.
async fn build(urls: &str, name: &str, permits: u32, lease_ms: u64) -> AsyncSemaphore {
    AsyncSemaphore::builder(name, permits)
        .masters(urls.split(','))
        .lease(Duration::from_millis(lease_ms))
        .request_timeout(Duration::from_millis(lease_ms / 4))
        .build()
        .await
        .unwrap()
}

async fn worker(mode: &str) {
    let url = env("SEM_URL");
    let permits: u32 = env("SEM_PERMITS").parse().unwrap();
    let lease_ms: u64 = env("SEM_LEASE_MS").parse().unwrap();
    let sem = build(&url, "procs", permits, lease_ms).await;
    let mut out = std::io::stdout();
    match mode {
        "contend" => {
            let rounds: u32 = env("SEM_ROUNDS").parse().unwrap();
            let tasks: u32 = std::env::var("SEM_TASKS").map_or(1, |t| t.parse().unwrap());
            let hold = Duration::from_millis(
                std::env::var("SEM_HOLD_MS").map_or(3, |t| t.parse().unwrap()),
            );
            let observer_url = env("SEM_OBSERVER_URL");
            let mut handles = Vec::new();
            for _ in 0..tasks {
                let sem = sem.clone();
                let observer_url = observer_url.clone();
                handles.push(tokio::spawn(async move {
                    let observer = Observer::connect(&observer_url).await;
                    let mut over = None;
                    for _ in 0..rounds {
                        let permit = sem.acquire().await.unwrap();
                        let inside = observer.enter().await;
                        if inside > permits {
                            over = Some(inside);
                        }
                        tokio::time::sleep(hold).await;
                        observer.exit().await;
                        permit.release().await.unwrap();
                    }
                    over
                }));
            }
            for handle in handles {
                if let Some(inside) = handle.await.unwrap() {
                    writeln!(out, "OVER {inside}").unwrap();
                }
            }
            writeln!(out, "DONE").unwrap();
        }
        "turns" => {
            let start_at: u64 = env("SEM_START_AT_MS").parse().unwrap();
            let run = Duration::from_millis(env("SEM_RUN_MS").parse().unwrap());
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(now_ms))).await;
            let stop = tokio::time::Instant::now() + run;
            let mut handles = Vec::new();
            for _ in 0..4 {
                let sem = sem.clone();
                handles.push(tokio::spawn(async move {
                    let mut turns = 0u32;
                    loop {
                        let left = stop.saturating_duration_since(tokio::time::Instant::now());
                        let Some(permit) = sem.acquire_timeout(left).await.unwrap() else {
                            break;
                        };
                        turns += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        permit.release().await.unwrap();
                        if tokio::time::Instant::now() >= stop {
                            break;
                        }
                    }
                    turns
                }));
            }
            let mut turns = Vec::new();
            for handle in handles {
                turns.push(handle.await.unwrap().to_string());
            }
            writeln!(out, "TURNS {}", turns.join(" ")).unwrap();
        }
        "wait" => {
            writeln!(out, "WAITING").unwrap();
            out.flush().unwrap();
            let permit = sem.acquire().await.unwrap();
            writeln!(out, "GOT {}", permit.fencing_token()).unwrap();
        }
        "hold" => {
            let permit = sem.acquire().await.unwrap();
            writeln!(out, "HOLD {}", permit.fencing_token()).unwrap();
            out.flush().unwrap();
            let lost = tokio::time::timeout(Duration::from_secs(20), permit.lost())
                .await
                .is_ok();
            let valid = permit.is_valid();
            let release = match permit.release().await {
                Ok(()) => "ok".to_string(),
                Err(Error::PermitLost { .. }) => "PermitLost".to_string(),
                Err(other) => format!("{other}"),
            };
            writeln!(out, "LOST {lost} valid={valid} release={release}").unwrap();
        }
        other => panic!("unknown worker mode {other}"),
    }
    out.flush().unwrap();
}

struct Worker {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Worker {
    fn spawn(
        mode: &str,
        server: &Server,
        permits: u32,
        lease_ms: u64,
        extra: &[(&str, String)],
    ) -> Worker {
        Worker::spawn_on(mode, &server.url(), permits, lease_ms, extra)
    }

    /// A worker on the masters `urls`, separated by commas.
    fn spawn_on(
        mode: &str,
        urls: &str,
        permits: u32,
        lease_ms: u64,
        extra: &[(&str, String)],
    ) -> Worker {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.env("SEM_WORKER", mode)
            .env("SEM_URL", urls)
            .env("SEM_PERMITS", permits.to_string())
            .env("SEM_LEASE_MS", lease_ms.to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::null());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Worker { child, lines }
    }

    /// The next line the worker prints (its reads block; every scenario bounds them with
    /// the worker's own timeouts).
    fn line(&mut self) -> String {
        self.lines.next().expect("worker output ended").unwrap()
    }

    fn signal(&self, signal: &str) {
        testkit::signal(signal, self.child.id());
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn processes_never_exceed_n() {
    let server = Server::start();
    let observer = Server::start();
    let permits = 2;
    let extra = [
        ("SEM_OBSERVER_URL", observer.url()),
        ("SEM_ROUNDS", "15".to_string()),
    ];
    let mut workers: Vec<Worker> = (0..5)
        .map(|_| Worker::spawn("contend", &server, permits, 2000, &extra))
        .collect();
    for worker in &mut workers {
        let line = worker.line();
        assert_eq!(line, "DONE", "a worker saw over-admission: {line}");
        assert!(worker.child.wait().unwrap().success());
    }
    let (max, inside) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { Observer::connect(&observer.url()).await.seen().await });
    assert!(max <= permits, "observer saw {max} holders of {permits}");
    assert_eq!(max, permits, "5 processes on 2 permits should fill them");
    assert_eq!(inside, 0);
}

/// Processes of several tasks each contend on 3 masters for 1, 2 and 3 permits, and on 5
/// masters for 2, with no hold time: masters see the requests in different orders, grant
/// different slots, and the acquires settle or retry. The observer must never see more
/// than N inside.
fn processes_on_three_and_five_masters_never_exceed_n() {
    for (masters, permits) in [(3, 1), (3, 2), (3, 3), (5, 2)] {
        let servers: Vec<Server> = (0..masters).map(|_| Server::start()).collect();
        let urls: Vec<String> = servers.iter().map(Server::url).collect();
        let urls = urls.join(",");
        let observer = Server::start();
        // One grant first brings every master's token counter to the same value.
        let start: i64 = tokio::runtime::Runtime::new().unwrap().block_on(async {
            let sem = build(&urls, "procs", permits, 2000).await;
            let permit = sem.acquire().await.unwrap();
            let token = permit.fencing_token();
            permit.release().await.unwrap();
            token as i64
        });
        let extra = [
            ("SEM_OBSERVER_URL", observer.url()),
            ("SEM_ROUNDS", "12".to_string()),
            ("SEM_TASKS", "4".to_string()),
            ("SEM_HOLD_MS", "0".to_string()),
        ];
        let mut workers: Vec<Worker> = (0..3)
            .map(|_| Worker::spawn_on("contend", &urls, permits, 2000, &extra))
            .collect();
        for worker in &mut workers {
            let line = worker.line();
            assert_eq!(
                line, "DONE",
                "{masters} masters, {permits} permits: over-admission: {line}"
            );
            assert!(worker.child.wait().unwrap().success());
        }
        let (max, inside) = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(async { Observer::connect(&observer.url()).await.seen().await });
        assert!(
            max <= permits,
            "{masters} masters: observer saw {max} holders of {permits}"
        );
        assert_eq!(inside, 0);
        // Every grant a master made that did not become a permit raised its token counter
        // past the 3 x 4 x 12 = 144 permits: a sign the masters disagreed.
        let tokens: Vec<i64> = servers
            .iter()
            // The last token each granted (the config's own `token` is a floor kept a
            // block ahead of it).
            .map(|s| s.int(&["HGET", "semaphore:{procs}:holds", "token"]) - start)
            .collect();
        println!(
            "  {masters} masters, {permits} permits: max inside {max}, token counters {tokens:?} for 144 permits"
        );
        if (masters, permits) == (3, 2) {
            assert!(
                tokens.iter().max() > Some(&144),
                "the masters never disagreed: the test did not contend hard enough"
            );
        }
    }
}

/// 16 workers, 4 tasks in each of 4 processes, on 4 permits with 5 ms holds, for a bounded
/// run that every process starts at the same moment: with fair waiting (the default) the
/// most and the fewest turns any worker got differ by at most 1.5x.
fn fair_waiting_gives_workers_of_four_processes_even_turns() {
    let server = Server::start();
    let start_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 700;
    let extra = [
        ("SEM_START_AT_MS", start_at.to_string()),
        ("SEM_RUN_MS", "1500".to_string()),
    ];
    let mut workers: Vec<Worker> = (0..4)
        .map(|_| Worker::spawn("turns", &server, 4, 10_000, &extra))
        .collect();
    let mut turns: Vec<u32> = Vec::new();
    for worker in &mut workers {
        let line = worker.line();
        let counts = line.strip_prefix("TURNS ").expect("TURNS line");
        turns.extend(counts.split(' ').map(|t| t.parse::<u32>().unwrap()));
        assert!(worker.child.wait().unwrap().success());
    }
    let (min, max) = (*turns.iter().min().unwrap(), *turns.iter().max().unwrap());
    println!(
        "  turns per worker: {turns:?}, max/min {:.2}",
        max as f64 / min as f64
    );
    assert_eq!(turns.len(), 16);
    assert!(min > 0 && max * 2 <= min * 3, "turns {turns:?}");
}

/// A waiter at the head of the queue whose process is SIGKILLed holds up the next waiter
/// for at most its waiter lease.
fn a_killed_waiter_does_not_hold_up_the_queue() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let holder = build(&server.url(), "procs", 1, 10_000).await;
        let next = build(&server.url(), "procs", 1, 10_000).await;
        let permit = holder.acquire().await.unwrap();
        let mut waiter = Worker::spawn("wait", &server, 1, 10_000, &[]);
        assert_eq!(waiter.line(), "WAITING");
        testkit::eventually("the worker queued", || async {
            server.int(&["ZCOUNT", "semaphore:{procs}:queue", "0", "+inf"]) == 1
        })
        .await;
        let behind = tokio::spawn(async move { next.acquire().await.unwrap() });
        testkit::eventually("the second waiter queued behind it", || async {
            server.int(&["ZCOUNT", "semaphore:{procs}:queue", "0", "+inf"]) == 2
        })
        .await;
        waiter.signal("KILL");
        permit.release().await.unwrap();
        let released = Instant::now();
        let permit = tokio::time::timeout(Duration::from_secs(3), behind)
            .await
            .expect("the queue moved on past the dead waiter")
            .unwrap();
        let took = released.elapsed();
        println!("  past a killed waiter after {took:?}");
        assert!(
            took < redis_semaphore::WAITER_LEASE + Duration::from_millis(700),
            "{took:?}"
        );
        permit.release().await.unwrap();
    });
}

/// Fifty processes wait in line for one permit, which goes down the line (each worker
/// takes it, exits and so releases it). Every hand-off wakes one process: it is one message
/// on the channel of the process it serves, so each process receives exactly one message
/// (its own grant), not one per release; and nothing is said on the semaphore's own
/// channel, which only waiters outside the queue hear.
fn a_release_wakes_one_of_fifty_waiting_processes() {
    use futures_util::StreamExt;
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let holder = build(&server.url(), "procs", 1, 10_000).await;
        let permit = holder.acquire().await.unwrap();
        let mut pubsub = server.client().get_async_pubsub().await.unwrap();
        pubsub.psubscribe("semaphore:{procs}:wake*").await.unwrap();
        let mut workers = Vec::new();
        for queued in 1..=50 {
            let mut worker = Worker::spawn("wait", &server, 1, 10_000, &[]);
            assert_eq!(worker.line(), "WAITING");
            testkit::eventually("the worker queued", || async {
                server.int(&["ZCOUNT", "semaphore:{procs}:queue", "0", "+inf"]) == queued
            })
            .await;
            workers.push(worker);
        }
        permit.release().await.unwrap();
        for worker in &mut workers {
            let got = worker.line();
            assert!(got.starts_with("GOT "), "{got}");
        }
        let mut per_channel: std::collections::HashMap<String, Vec<String>> = Default::default();
        let mut messages = pubsub.on_message();
        while let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(500), messages.next()).await
        {
            let payload: String = message.get_payload().unwrap();
            per_channel
                .entry(message.get_channel_name().to_string())
                .or_default()
                .push(payload);
        }
        assert!(
            !per_channel.contains_key("semaphore:{procs}:wake"),
            "a wake-up for everyone: {per_channel:?}"
        );
        assert_eq!(
            per_channel.len(),
            50,
            "one channel per process: {per_channel:?}"
        );
        for (channel, received) in &per_channel {
            assert_eq!(received.len(), 1, "{channel} received {received:?}");
            let entries: Vec<&str> = received[0].split(' ').collect();
            assert_eq!(
                entries.len(),
                2,
                "a stamp and one line's grant: {received:?}"
            );
            assert!(entries[1].contains('='), "a pushed grant: {received:?}");
        }
        println!("  50 hand-offs: 50 messages, one to each process");
    });
}

fn killed_holder_gives_permits_back_within_one_lease() {
    let server = Server::start();
    let lease = Duration::from_millis(800);
    let mut holder = Worker::spawn("hold", &server, 1, lease.as_millis() as u64, &[]);
    let hold = holder.line();
    assert!(hold.starts_with("HOLD "), "{hold}");
    holder.signal("KILL");
    let killed_at = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sem = build(&server.url(), "procs", 1, lease.as_millis() as u64).await;
        let permit = sem
            .acquire_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .expect("permit back");
        let back = killed_at.elapsed();
        assert!(
            back <= lease + Duration::from_millis(200),
            "back after {back:?}"
        );
        permit.release().await.unwrap();
    });
}

fn stopped_holder_learns_it_lost_and_tokens_rise() {
    let server = Server::start();
    let lease_ms = 600;
    let mut holder = Worker::spawn("hold", &server, 1, lease_ms, &[]);
    let hold = holder.line();
    let old_token: u64 = hold
        .strip_prefix("HOLD ")
        .expect("HOLD line")
        .parse()
        .unwrap();
    holder.signal("STOP");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sem = build(&server.url(), "procs", 1, lease_ms).await;
        let permit = sem
            .acquire_timeout(Duration::from_secs(5))
            .await
            .unwrap()
            .expect("lease passed");
        assert!(
            permit.fencing_token() > old_token,
            "{} after {old_token}",
            permit.fencing_token()
        );
        holder.signal("CONT");
        let report = holder.line();
        assert_eq!(report, "LOST true valid=false release=PermitLost");
        assert!(permit.is_valid(), "the new holder keeps its permit");
        permit.release().await.unwrap();
    });
}
