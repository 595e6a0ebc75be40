//! `raise_on_redis_errors`: an unreachable master is an error at once when asked for,
//! and otherwise retried until the acquire's own time limit, as pottery-semaphore does.

mod support;

use std::time::{Duration, Instant};

use redis_semaphore::Error;
use support::{Server, sem};

#[tokio::test]
async fn raising_returns_the_master_error_promptly() {
    let mut server = Server::start();
    let sem = sem(&server, "raise", 1)
        .raise_on_redis_errors(true)
        .build()
        .await
        .unwrap();
    server.kill();
    let started = Instant::now();
    match sem.acquire().await {
        Err(err @ Error::Redis { .. }) => {
            assert!(err.is_transient(), "{err}");
            assert!(
                err.to_string().contains(&server.port().to_string()),
                "names the master: {err}"
            );
        }
        other => panic!("expected a redis error, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(sem.try_acquire().await, Err(Error::Redis { .. })));
}

#[tokio::test]
async fn without_raising_an_acquire_waits_out_its_own_timeout() {
    let mut server = Server::start();
    let sem = sem(&server, "patient", 1).build().await.unwrap();
    server.kill();
    assert!(
        sem.try_acquire().await.unwrap().is_none(),
        "try_acquire reports no permit"
    );
    let started = Instant::now();
    assert!(
        sem.acquire_timeout(Duration::from_millis(400))
            .await
            .unwrap()
            .is_none()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

#[tokio::test]
async fn without_raising_an_acquire_rides_out_a_restart() {
    let mut server = Server::start();
    let sem = sem(&server, "restart", 2).build().await.unwrap();
    server.kill();
    let waiter = {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire_many(2).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "nothing to grant while the master is down"
    );
    server.restart();
    let permit = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("granted after the restart")
        .unwrap()
        .unwrap();
    assert_eq!(permit.permits(), 2);
    permit.release().await.unwrap();
}
