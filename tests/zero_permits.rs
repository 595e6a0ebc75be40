//! Zero permits: an unbounded semaphore that starts locked and is opened by releases, as
//! Python's `threading.Semaphore(0)` is; refused where it could never open (bounded).

use std::time::Duration;

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::{Server, sem};

#[tokio::test]
async fn an_unbounded_semaphore_of_zero_permits_starts_locked_and_releases_open_it() {
    let server = Server::start();
    let sem = sem(&server, "gate", 0)
        .bounded(false)
        .build()
        .await
        .unwrap();
    assert_eq!(sem.initial_value(), 0);
    assert_eq!(sem.value().await.unwrap(), 0);
    assert!(sem.locked().await.unwrap());
    assert!(sem.try_acquire().await.unwrap().is_none());
    // More than the count is a wait that can end here: releases add permits.
    assert!(sem.try_acquire_many(2).await.unwrap().is_none());
    assert!(
        sem.acquire_timeout(Duration::from_millis(50))
            .await
            .unwrap()
            .is_none()
    );

    // A waiter, let in by a release from another handle that holds nothing.
    let waiter = {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());
    let other = testkit::sem(&server, "gate", 0)
        .bounded(false)
        .build()
        .await
        .unwrap();
    other.release(1).await.unwrap();
    let permit = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the release lets the waiter in")
        .unwrap()
        .unwrap();
    assert_eq!(permit.slots(), &[0]);
    assert_eq!(sem.value().await.unwrap(), 0);
    permit.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 1);
}

#[tokio::test]
async fn zero_permits_is_stored_and_checked_like_any_count() {
    let server = Server::start();
    let _gate = sem(&server, "zero", 0)
        .bounded(false)
        .build()
        .await
        .unwrap();
    match sem(&server, "zero", 1).bounded(false).build().await {
        Err(Error::ConfigMismatch {
            stored: 0,
            requested: 1,
            ..
        }) => {}
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
    match sem(&server, "zero", 0).build().await {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("at least 1"), "{why}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    // A handle on a semaphore of 1 permit is refused by the stored zero, and back.
    let _one = sem(&server, "one", 1).bounded(false).build().await.unwrap();
    match sem(&server, "one", 0).bounded(false).build().await {
        Err(Error::ConfigMismatch {
            stored: 1,
            requested: 0,
            ..
        }) => {}
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
    // `open` takes the stored zero, and never creates one (whatever `.bounded()` says).
    let opened = AsyncSemaphore::open("zero")
        .master(server.url())
        .build()
        .await
        .unwrap();
    assert_eq!(opened.initial_value(), 0);
    assert!(!opened.bounded());
    match AsyncSemaphore::open("missing")
        .master(server.url())
        .bounded(false)
        .build()
        .await
    {
        Err(Error::NotFound { name }) => assert_eq!(name, "missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        server.int(&["EXISTS", "semaphore:{missing}:config"]),
        0,
        "open created nothing"
    );
}
