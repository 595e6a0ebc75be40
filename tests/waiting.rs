//! Waiting without polling: published wake-ups, the local line, the fair queue.
//!
//! Figures (hand-off latency, script calls per acquire) are printed beside those of a
//! polling loop (try, then sleep 10 ms, the way redis-semaphore on npm waits) measured in
//! the same test; the assertions are loose bounds that a busy machine still meets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Permit};
use testkit::{Server, eventually, sem};

/// The queue: its lines are scored by their arrival (µs); the member `~`, scored -1, keeps
/// the key.
const QUEUE: &str = "semaphore:{w}:queue";
const CHANNEL: &str = "semaphore:{w}:wake";

/// How the waiter in a hand-off waits.
#[derive(Clone, Copy, Debug)]
enum Waiter {
    /// `acquire()`: sleeps on wake-ups.
    Ours,
    /// `try_acquire()` every 10 ms.
    Polling,
}

async fn wait_for(sem: &AsyncSemaphore, how: Waiter) -> Permit {
    match how {
        Waiter::Ours => sem.acquire().await.unwrap(),
        Waiter::Polling => loop {
            if let Some(permit) = sem.try_acquire().await.unwrap() {
                break permit;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        },
    }
}

/// Median time from `release()` returning to the waiter (another handle, so no local
/// shortcut) holding the permit, over `rounds` hand-offs.
async fn hand_off_median(server: &Server, how: Waiter, rounds: usize) -> Duration {
    let holder = sem(server, "w", 1).build().await.unwrap();
    let waiter = sem(server, "w", 1).build().await.unwrap();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let permit = holder.acquire().await.unwrap();
        let waiting = {
            let waiter = waiter.clone();
            tokio::spawn(async move {
                let permit = wait_for(&waiter, how).await;
                (Instant::now(), permit)
            })
        };
        // Long enough for the waiter to have asked, been refused and gone to sleep.
        tokio::time::sleep(Duration::from_millis(30)).await;
        permit.release().await.unwrap();
        let released = Instant::now();
        let (got, permit) = waiting.await.unwrap();
        times.push(got.saturating_duration_since(released));
        permit.release().await.unwrap();
    }
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_hands_off_to_a_sleeping_waiter_at_once() {
    let server = Server::start();
    let ours = hand_off_median(&server, Waiter::Ours, 15).await;
    let polling = hand_off_median(&server, Waiter::Polling, 15).await;
    println!("hand-off median: ours {ours:?}, polling every 10 ms {polling:?}");
    assert!(ours < Duration::from_millis(20), "hand-off median {ours:?}");
    assert!(ours < polling, "ours {ours:?} vs polling {polling:?}");
}

/// 16 workers (`handles` handles of 16 / `handles` tasks) on 4 permits with 5 ms holds for
/// `run`; returns the script calls per successful acquire and the per-worker turns.
async fn contend(
    server: &Server,
    how: Waiter,
    fair: bool,
    handles: usize,
    run: Duration,
) -> (f64, Vec<u64>) {
    let tasks_per_handle = 16 / handles;
    let mut built = Vec::new();
    for _ in 0..handles {
        built.push(sem(server, "w", 4).fair(fair).build().await.unwrap());
    }
    server.cmd(&["CONFIG", "RESETSTAT"]);
    let grants = Arc::new(AtomicU64::new(0));
    let stop = Instant::now() + run;
    let mut tasks = Vec::new();
    for handle in &built {
        for _ in 0..tasks_per_handle {
            let sem = handle.clone();
            let grants = Arc::clone(&grants);
            tasks.push(tokio::spawn(async move {
                let mut turns = 0;
                while Instant::now() < stop {
                    let permit = wait_for(&sem, how).await;
                    turns += 1;
                    grants.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    permit.release().await.unwrap();
                }
                turns
            }));
        }
    }
    let mut turns = Vec::new();
    for task in tasks {
        turns.push(task.await.unwrap());
    }
    let grants = grants.load(Ordering::Relaxed);
    // Every grant was released with one script call; the rest were acquires.
    let acquires = server.evalsha_calls() - grants;
    (acquires as f64 / grants as f64, turns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_ask_about_once_per_grant() {
    let server = Server::start();
    let run = Duration::from_millis(1500);
    let (ours, turns) = contend(&server, Waiter::Ours, true, 4, run).await;
    let (alone, _) = contend(&server, Waiter::Ours, true, 16, run).await;
    let (unfair, _) = contend(&server, Waiter::Ours, false, 4, run).await;
    let (polling, _) = contend(&server, Waiter::Polling, false, 4, run).await;
    println!(
        "script calls per acquire, 16 workers on 4 permits, 5 ms holds: fair {ours:.2} \
         (4 handles of 4 tasks), fair {alone:.2} (a handle each), unfair {unfair:.2}, \
         polling every 10 ms {polling:.2}; turns {turns:?}"
    );
    // A release grants the next waiter in its own script: about one call per acquire.
    assert!(ours < 1.5, "{ours:.2} script calls per acquire");
    assert!(
        alone < 1.5,
        "{alone:.2} script calls per acquire, a handle per worker"
    );
    assert!(ours < polling, "ours {ours:.2} vs polling {polling:.2}");
    let (min, max) = (turns.iter().min().unwrap(), turns.iter().max().unwrap());
    assert!(*min > 0 && *max * 2 <= *min * 3, "turns {turns:?}");
}

#[tokio::test]
async fn a_cancelled_waiter_leaves_the_queue() {
    let server = Server::start();
    let holder = sem(&server, "w", 1).build().await.unwrap();
    let first = sem(&server, "w", 1).build().await.unwrap();
    let second = sem(&server, "w", 1).build().await.unwrap();
    let permit = holder.acquire().await.unwrap();
    let cancelled = tokio::spawn(async move {
        tokio::time::timeout(Duration::from_millis(150), first.acquire())
            .await
            .is_err()
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let waiting = tokio::spawn(async move { second.acquire().await.unwrap() });
    eventually("two waiters queued", || async {
        server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == 2
    })
    .await;
    assert!(cancelled.await.unwrap(), "the first waiter timed out");
    eventually("the cancelled waiter left the queue", || async {
        server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == 1
    })
    .await;
    permit.release().await.unwrap();
    let released = Instant::now();
    let permit = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("the second waiter is not held up")
        .unwrap();
    println!("hand-off past a cancelled waiter: {:?}", released.elapsed());
    permit.release().await.unwrap();
    assert_eq!(server.int(&["ZCOUNT", QUEUE, "0", "+inf"]), 0);
}

#[tokio::test]
async fn a_try_does_not_jump_the_queue() {
    let server = Server::start();
    let holder = sem(&server, "w", 1).build().await.unwrap();
    let waiter = sem(&server, "w", 1).build().await.unwrap();
    let other = sem(&server, "w", 1).build().await.unwrap();
    let permit = holder.acquire().await.unwrap();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.acquire().await.unwrap() })
    };
    eventually("the waiter queued", || async {
        server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == 1
    })
    .await;
    // A try while someone waits: refused, and it does not join the line.
    assert!(other.try_acquire().await.unwrap().is_none());
    assert_eq!(server.int(&["ZCOUNT", QUEUE, "0", "+inf"]), 1);
    // Nor does a try on the waiter's own handle take the line's place.
    assert!(waiter.try_acquire().await.unwrap().is_none());
    assert_eq!(server.int(&["ZCOUNT", QUEUE, "0", "+inf"]), 1);
    permit.release().await.unwrap();
    let permit = waiting.await.unwrap();
    assert!(other.try_acquire().await.unwrap().is_none(), "held");
    permit.release().await.unwrap();
    let mine = other
        .try_acquire()
        .await
        .unwrap()
        .expect("free and nobody waiting");
    mine.release().await.unwrap();
}

async fn subscribers(server: &Server) -> i64 {
    server.subscribers(CHANNEL, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscriber_reconnects_after_its_connection_drops() {
    let mut server = Server::start();
    let holder = sem(&server, "w", 1).build().await.unwrap();
    let waiter = sem(&server, "w", 1).build().await.unwrap();
    let permit = holder.acquire().await.unwrap();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.acquire().await.unwrap() })
    };
    eventually("the waiter subscribed", || async {
        subscribers(&server).await == 1
    })
    .await;

    // The connection is cut: the subscriber connects and subscribes again.
    server.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    eventually("subscribed again", || async {
        subscribers(&server).await == 1
    })
    .await;
    permit.release().await.unwrap();
    let permit = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .unwrap()
        .unwrap();
    permit.release().await.unwrap();

    // The server restarts empty, which frees the held permit: the subscriber connects
    // again, wakes its waiters, and the waiter gets the permit.
    let lost = holder.acquire().await.unwrap();
    let waiting = {
        let waiter = waiter.clone();
        tokio::spawn(async move { waiter.acquire().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.restart();
    eventually("subscribed after the restart", || async {
        subscribers(&server).await == 1
    })
    .await;
    let permit = tokio::time::timeout(Duration::from_secs(2), waiting)
        .await
        .expect("the waiter got the permit the restart freed")
        .unwrap();
    permit.release().await.unwrap();
    drop(lost);
}

/// A subscriber started on a runtime that shuts down (a blocking semaphore's) is replaced:
/// an async handle that shared it subscribes again at its next wait.
#[test]
fn a_subscriber_whose_runtime_stopped_is_replaced() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(sem(&server, "w", 1).build()).unwrap();
    let waiter = runtime.block_on(sem(&server, "w", 1).build()).unwrap();
    let permit = runtime.block_on(holder.acquire()).unwrap();

    // A blocking handle waits first: the process's subscriber for this master starts on
    // the blocking handle's own runtime.
    let blocking = redis_semaphore::blocking::Semaphore::builder("w", 1)
        .master(server.url())
        .request_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    assert!(
        blocking
            .acquire_timeout(Duration::from_millis(100))
            .unwrap()
            .is_none()
    );
    // The async waiter shares it, then the blocking handle and its runtime go.
    let missed = runtime.block_on(waiter.acquire_timeout(Duration::from_millis(100)));
    assert!(missed.unwrap().is_none());
    drop(blocking);
    runtime.block_on(async {
        eventually("the old subscriber's connection closed", || async {
            subscribers(&server).await == 0
        })
        .await;
        let waiting = {
            let waiter = waiter.clone();
            tokio::spawn(async move { waiter.acquire().await.unwrap() })
        };
        eventually("the waiter subscribed again", || async {
            subscribers(&server).await == 1
        })
        .await;
        permit.release().await.unwrap();
        let permit = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap();
        permit.release().await.unwrap();
    });
}

/// A grant pushed to a waiter that cannot hear of it (cut off from the master since it
/// queued) keeps the slot from the next waiter for at most a waiter lease, not a full lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_pushed_to_a_cut_off_waiter_expires_after_a_waiter_lease() {
    let server = Server::start();
    let proxy = testkit::proxy::Proxy::start(&server);
    let lease = Duration::from_secs(10);
    let holder = sem(&server, "w", 1).lease(lease).build().await.unwrap();
    let cut_off = redis_semaphore::AsyncSemaphore::builder("w", 1)
        .master(proxy.url())
        .lease(lease)
        .request_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let next = sem(&server, "w", 1).lease(lease).build().await.unwrap();
    let permit = holder.acquire().await.unwrap();
    let stranded = {
        let cut_off = cut_off.clone();
        tokio::spawn(async move { cut_off.acquire_timeout(Duration::from_secs(5)).await })
    };
    eventually("the first waiter queued", || async {
        server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == 1
    })
    .await;
    let waiting = tokio::spawn(async move { next.acquire().await.unwrap() });
    eventually("the second waiter queued behind it", || async {
        server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == 2
    })
    .await;
    // The first waiter is cut off: the release pushes it the slot, and it never hears.
    proxy.partition(true);
    permit.release().await.unwrap();
    let released = Instant::now();
    let pushed = holder.holders().await.unwrap();
    assert_eq!(
        pushed.len(),
        1,
        "the release granted the head waiter at once"
    );
    assert!(pushed[0].masters[0].lease_left <= redis_semaphore::WAITER_LEASE);
    let permit = tokio::time::timeout(Duration::from_secs(4), waiting)
        .await
        .expect("the next waiter is not held up for a lease")
        .unwrap();
    let took = released.elapsed();
    println!("past a grant pushed to a cut-off waiter: {took:?}");
    assert!(
        took < redis_semaphore::WAITER_LEASE + Duration::from_millis(600),
        "{took:?}"
    );
    permit.release().await.unwrap();
    proxy.partition(false);
    drop(stranded);
}

/// A holder crashes while waiters are registered, and the master is paused past its lease
/// and a second more: keys 2-4 must still expire together, so the semaphore does not
/// wedge (a slot recorded as held with no lease) and no slot is ever granted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_and_a_paused_master_neither_wedge_nor_double_grant() {
    let server = Server::start();
    let lease = Duration::from_millis(600);
    let url = server.url();
    let handle = move |url: String| async move {
        redis_semaphore::AsyncSemaphore::builder("w", 1)
            .master(url)
            .lease(lease)
            .build()
            .await
            .unwrap()
    };
    // The holder, on a runtime of its own that then stops: no renewal, no release.
    let (holder_runtime, holder_id) = {
        let url = url.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let id = runtime.block_on(async {
                let sem = handle(url).await;
                let permit = sem.acquire().await.unwrap();
                let id = permit.id().to_string();
                std::mem::forget(permit);
                std::mem::forget(sem);
                id
            });
            (runtime, id)
        })
        .join()
        .unwrap()
    };
    let (first, second) = (handle(url.clone()).await, handle(url.clone()).await);
    let mut w = tokio::spawn(async move { first.acquire().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut v = tokio::spawn(async move { second.acquire().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    holder_runtime.shutdown_background();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.pause();
    tokio::time::sleep(lease + Duration::from_millis(1050)).await;
    server.resume();
    // Either waiter may come first: their places in the queue lapsed during the pause.
    let (first, rest) = tokio::time::timeout(Duration::from_secs(3), async {
        tokio::select! {
            w = &mut w => (w.unwrap(), v),
            v = &mut v => (v.unwrap(), w),
        }
    })
    .await
    .expect("a waiter is served once the master is back");
    // An operator frees the crashed holder's permit, long gone: nothing of the new holder's
    // may go.
    let admin = handle(url).await;
    assert_eq!(admin.release_holder(&holder_id).await.unwrap(), 0);
    tokio::time::sleep(lease).await;
    assert!(first.is_valid());
    assert!(
        !rest.is_finished(),
        "one permit, held by the first waiter served"
    );
    assert_eq!(admin.holders().await.unwrap().len(), 1);
    first.release().await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(2), rest)
        .await
        .unwrap()
        .unwrap();
    second.release().await.unwrap();
}

/// A line far back in the queue keeps its place for a minute without a single request:
/// the scripts wake it when its turn comes. Eight lines wait ahead of it (the few at the
/// head watch the earliest lease), and the permit's holder renews throughout; the line's
/// handle talks to the server through a proxy that counts its scripts. When the permit
/// goes round, the line gets it after the eight ahead, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_line_keeps_its_place_for_a_minute_without_asking() {
    let server = Server::start();
    let proxy = testkit::proxy::Proxy::start(&server);
    let holder = sem(&server, "w", 1)
        .lease(Duration::from_secs(3))
        .build()
        .await
        .unwrap();
    let permit = holder.acquire().await.unwrap();
    let order = Arc::new(AtomicU64::new(0));
    let mut ahead = Vec::new();
    for queued in 1..=8 {
        let sem = sem(&server, "w", 1).build().await.unwrap();
        let order = order.clone();
        ahead.push(tokio::spawn(async move {
            let permit = sem.acquire().await.unwrap();
            let turn = order.fetch_add(1, Ordering::SeqCst);
            permit.release().await.unwrap();
            turn
        }));
        eventually("the line queued", || async {
            server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == queued
        })
        .await;
    }
    let far = redis_semaphore::AsyncSemaphore::builder("w", 1)
        .master(proxy.url())
        .request_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let last = {
        let order = order.clone();
        tokio::spawn(async move {
            let permit = far.acquire().await.unwrap();
            let turn = order.fetch_add(1, Ordering::SeqCst);
            permit.release().await.unwrap();
            turn
        })
    };
    eventually("the far line queued", || async {
        server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == 9
    })
    .await;
    // Its first asks (joining, then again once subscribed) are done.
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.clear_evalshas();
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(proxy.evalshas(), Vec::<String>::new(), "the far line asked");
    assert_eq!(server.int(&["ZCOUNT", QUEUE, "0", "+inf"]), 9);
    assert!(permit.is_valid(), "the holder renewed throughout");
    permit.release().await.unwrap();
    for line in ahead {
        assert!(line.await.unwrap() < 8);
    }
    let turn = tokio::time::timeout(Duration::from_secs(5), last)
        .await
        .expect("the far line's turn came")
        .unwrap();
    assert_eq!(turn, 8, "the far line kept its place behind the eight");
}

/// A waiter whose connections (its subscriber's too) are cut while it is queued still
/// gets the permit when it is freed: the release finds nobody listening for its line and
/// drops it, and the waiter, once reconnected, asks again and joins at its first arrival,
/// ahead of a line that came after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_cut_off_while_queued_still_gets_its_grant() {
    let server = Server::start();
    let proxy = testkit::proxy::Proxy::start(&server);
    let holder = sem(&server, "w", 1).build().await.unwrap();
    let permit = holder.acquire().await.unwrap();
    let cut = redis_semaphore::AsyncSemaphore::builder("w", 1)
        .master(proxy.url())
        .request_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let first = tokio::spawn(async move {
        let permit = cut.acquire().await.unwrap();
        (Instant::now(), permit)
    });
    eventually("the waiter queued and listens", || async {
        server.int(&["ZCOUNT", QUEUE, "0", "+inf"]) == 1 && server.subscribers(CHANNEL, false) == 1
    })
    .await;
    proxy.drop_connections();
    eventually("its subscriber is cut off", || async {
        server.subscribers(CHANNEL, false) == 0
    })
    .await;
    permit.release().await.unwrap();
    let released = Instant::now();
    let (got, permit) = tokio::time::timeout(Duration::from_secs(3), first)
        .await
        .expect("the cut-off waiter got the permit once reconnected")
        .unwrap();
    println!(
        "cut-off waiter granted {:?} after the release",
        got - released
    );
    permit.release().await.unwrap();
}
