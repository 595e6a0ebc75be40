//! Cancellation: an acquire future dropped at any point leaks nothing, and dropped
//! permits are released in the background.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Context;
use std::time::Duration;

use testkit::{Server, eventually, sem};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_tiny_timeouts_leak_nothing() {
    let server = Server::start();
    let sem = sem(&server, "timeouts", 3).build().await.unwrap();
    // Two other holders churn, so some acquires are granted at once and others wait.
    let stop = Arc::new(AtomicBool::new(false));
    let churn: Vec<_> = (0..2)
        .map(|_| {
            let (sem, stop) = (sem.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let permit = sem.acquire().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    permit.release().await.unwrap();
                }
            })
        })
        .collect();
    let held = sem.acquire().await.unwrap();
    let (mut granted, mut cancelled) = (0, 0);
    for i in 0..400u64 {
        // Cancels land before the request, mid-flight, while waiting and after the grant.
        let d = Duration::from_micros([0, 200, 500, 1000, 2000][(i % 5) as usize]);
        match tokio::time::timeout(d, sem.acquire()).await {
            Ok(permit) => {
                granted += 1;
                drop(permit.unwrap());
            }
            Err(_) => cancelled += 1,
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in churn {
        task.await.unwrap();
    }
    drop(held);
    eprintln!("granted {granted}, cancelled {cancelled}");
    assert!(
        cancelled >= 50,
        "the loop should cancel often: {cancelled} of 400"
    );
    assert!(granted > 0, "and be granted sometimes");
    eventually("value back to N", || async {
        sem.value().await.unwrap() == 3
    })
    .await;
}

#[tokio::test]
async fn cancelled_while_waiting_leaks_nothing() {
    let server = Server::start();
    let sem = sem(&server, "waiting", 1).build().await.unwrap();
    let held = sem.acquire().await.unwrap();
    for _ in 0..50 {
        assert!(
            tokio::time::timeout(Duration::from_millis(3), sem.acquire())
                .await
                .is_err()
        );
    }
    held.release().await.unwrap();
    eventually("value back to N", || async {
        sem.value().await.unwrap() == 1
    })
    .await;
    // And the semaphore still works.
    sem.acquire().await.unwrap().release().await.unwrap();
}

#[tokio::test]
async fn polled_once_then_dropped_leaks_nothing() {
    let server = Server::start();
    let sem = sem(&server, "poll-once", 2).build().await.unwrap();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for _ in 0..100 {
        let mut acquire = pin!(sem.acquire());
        // The request goes out on the first poll; the reply never gets read.
        assert!(acquire.as_mut().poll(&mut cx).is_pending());
    }
    eventually("value back to N", || async {
        sem.value().await.unwrap() == 2
    })
    .await;
}

#[tokio::test]
async fn a_dropped_permit_is_released_in_the_background() {
    let server = Server::start();
    let sem = sem(&server, "drop", 1).build().await.unwrap();
    for _ in 0..20 {
        let permit = sem.acquire().await.unwrap();
        assert!(permit.is_valid());
        drop(permit);
    }
    eventually("released", || async { sem.value().await.unwrap() == 1 }).await;
}

#[tokio::test]
async fn acquire_futures_raced_in_select_leak_nothing() {
    let server = Server::start();
    let sem = sem(&server, "select", 2).build().await.unwrap();
    for _ in 0..100 {
        tokio::select! {
            a = sem.acquire() => drop(a.unwrap()),
            b = sem.acquire_many(2) => drop(b.unwrap()),
        }
    }
    eventually("value back to N", || async {
        sem.value().await.unwrap() == 2
    })
    .await;
    assert!(sem.try_acquire_many(2).await.unwrap().is_some());
}
