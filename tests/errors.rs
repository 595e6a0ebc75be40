//! `raise_on_redis_errors`: an unreachable master is an error at once when asked for,
//! and otherwise retried until the acquire's own time limit, as pottery-semaphore does.

use std::time::{Duration, Instant};

use redis_semaphore::Error;
use testkit::{Server, sem};

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

#[tokio::test]
async fn a_try_on_a_dead_server_says_why_it_got_no_permit() {
    let mut server = Server::start();
    let sem = sem(&server, "why", 1).build().await.unwrap();
    assert!(sem.last_error().is_none(), "the server answered");
    server.kill();
    // pottery-semaphore's answer stays: no permit, no error...
    assert!(sem.try_acquire().await.unwrap().is_none());
    assert!(sem.try_acquire().await.unwrap().is_none());
    // ...but the handle says the master did not answer, which and since when.
    let down = sem.last_error().expect("the master's failure is visible");
    assert!(
        down.master.ends_with(&format!(":{}", server.port())),
        "{}",
        down.master
    );
    assert!(down.error.is_transient(), "{}", down.error);
    assert!(down.failures >= 2, "{}", down.failures);
    assert!(down.since <= down.at);
    assert_eq!(sem.master_errors().len(), 1);
    // value() agrees that something is wrong.
    assert!(sem.value().await.is_err());

    server.restart();
    let mut permit = None;
    for _ in 0..100 {
        permit = sem.try_acquire().await.unwrap();
        if permit.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(permit.is_some(), "granted once the server is back");
    assert!(sem.last_error().is_none(), "cleared by the next answer");
    assert!(sem.master_errors().is_empty());
}

#[tokio::test]
async fn a_waiting_acquire_gives_up_after_the_outage_timeout() {
    let mut server = Server::start();
    let bound = Duration::from_millis(400);
    let sem = sem(&server, "outage", 1)
        .outage_timeout(bound)
        .build()
        .await
        .unwrap();
    server.kill();
    let started = Instant::now();
    // Three waiters of one handle give up together, not one bound after another.
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let sem = sem.clone();
            tokio::spawn(async move { sem.acquire().await })
        })
        .collect();
    for waiter in waiters {
        let result = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("gave up within the bound")
            .unwrap();
        match result {
            Err(err @ Error::Outage { .. }) => {
                assert!(err.is_transient(), "{err}");
                let text = err.to_string();
                assert!(text.contains("outage timeout"), "{text}");
                assert!(text.contains(&server.port().to_string()), "{text}");
                let Error::Outage { lasted, .. } = err else {
                    unreachable!()
                };
                assert!(lasted >= bound, "{lasted:?}");
            }
            other => panic!("expected Error::Outage, got {other:?}"),
        }
    }
    let took = started.elapsed();
    assert!(
        took >= bound && took < bound * 2 + Duration::from_millis(500),
        "{took:?}"
    );
    // acquire_timeout with a longer limit gives up at the outage timeout too.
    let started = Instant::now();
    assert!(matches!(
        sem.acquire_timeout(Duration::from_secs(10)).await,
        Err(Error::Outage { .. })
    ));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Back: the next acquire is granted, and no error is left.
    server.restart();
    let permit = tokio::time::timeout(Duration::from_secs(5), sem.acquire())
        .await
        .expect("granted once the server is back")
        .unwrap();
    assert!(sem.last_error().is_none());
    permit.release().await.unwrap();
}

#[tokio::test]
async fn without_an_outage_timeout_an_acquire_waits_on() {
    let mut server = Server::start();
    let sem = sem(&server, "forever", 1)
        .outage_timeout(None)
        .build()
        .await
        .unwrap();
    server.kill();
    assert!(
        tokio::time::timeout(Duration::from_millis(600), sem.acquire())
            .await
            .is_err(),
        "still waiting"
    );
    assert!(sem.last_error().is_some());
}
