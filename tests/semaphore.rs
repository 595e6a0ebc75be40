//! The semaphore's core promises against a real server: at most N holders, one EVALSHA
//! per acquire and per release, config stored with the semaphore, release(n) semantics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::{Observer, Server, eventually, sem};

#[tokio::test]
async fn never_more_than_n_holders_across_handles() {
    let server = Server::start();
    let observer = Server::start();
    let inside = Arc::new(AtomicU32::new(0));
    let max_seen = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for worker in 0..12 {
        // A handle per worker, as separate processes would have.
        let sem = sem(&server, "crowd", 3).build().await.unwrap();
        let observer = Observer::connect(&observer.url()).await;
        let (inside, max_seen) = (Arc::clone(&inside), Arc::clone(&max_seen));
        tasks.push(tokio::spawn(async move {
            for round in 0..8 {
                let permit = sem.acquire().await.unwrap();
                let now = observer.enter().await;
                assert!(
                    now <= 3,
                    "worker {worker} round {round}: {now} holders of 3 permits"
                );
                let local = inside.fetch_add(1, Ordering::SeqCst) + 1;
                max_seen.fetch_max(local, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                observer.exit().await;
                permit.release().await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max <= 3, "saw {max} holders");
    assert!(
        max >= 2,
        "the test should reach contention, saw at most {max} holders"
    );
    let sem = sem(&server, "crowd", 3).build().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 3);
}

#[tokio::test]
async fn one_handle_shared_by_many_tasks() {
    let server = Server::start();
    let sem = sem(&server, "shared", 2).build().await.unwrap();
    let inside = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (sem, inside) = (sem.clone(), Arc::clone(&inside));
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let permit = sem.acquire().await.unwrap();
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                assert!(now <= 2, "{now} holders of 2 permits");
                tokio::time::sleep(Duration::from_millis(1)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eventually("all permits back", || async {
        sem.value().await.unwrap() == 2
    })
    .await;
}

#[tokio::test]
async fn acquire_and_release_are_one_evalsha_each() {
    let server = Server::start();
    let sem = sem(&server, "calls", 2).build().await.unwrap();
    // Loads every script the pair uses.
    sem.acquire().await.unwrap().release().await.unwrap();
    server.cmd(&["CONFIG", "RESETSTAT"]);
    let permit = sem.acquire().await.unwrap();
    assert_eq!(server.evalsha_calls(), 1, "acquire");
    permit.release().await.unwrap();
    assert_eq!(server.evalsha_calls(), 2, "release");
    let info: String = redis::from_redis_value(server.cmd(&["INFO", "commandstats"])).unwrap();
    assert!(
        !info.contains("cmdstat_eval:"),
        "no plain EVAL expected:\n{info}"
    );
}

#[tokio::test]
async fn try_acquire_many_and_value() {
    let server = Server::start();
    let sem = sem(&server, "many", 4).build().await.unwrap();
    assert_eq!(sem.initial_value(), 4);
    let three = sem.acquire_many(3).await.unwrap();
    assert_eq!(three.permits(), 3);
    assert_eq!(three.slots(), &[0, 1, 2]);
    assert_eq!(sem.value().await.unwrap(), 1);
    assert!(
        sem.try_acquire_many(2).await.unwrap().is_none(),
        "only one is free"
    );
    let one = sem.try_acquire().await.unwrap().expect("one is free");
    assert!(sem.locked().await.unwrap());
    assert!(one.fencing_token() > three.fencing_token());
    assert_eq!(one.id().len(), 32);
    assert_ne!(one.id(), three.id());
    three.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 3);
    // The freed slots are reused lowest first.
    let again = sem.acquire().await.unwrap();
    assert_eq!(again.slots(), &[0]);
    drop((one, again));
    eventually("all back", || async { sem.value().await.unwrap() == 4 }).await;
}

#[tokio::test]
async fn acquire_timeout_returns_none_then_a_permit_once_freed() {
    let server = Server::start();
    let sem = sem(&server, "timeout", 1).build().await.unwrap();
    let held = sem.acquire().await.unwrap();
    let started = std::time::Instant::now();
    assert!(
        sem.acquire_timeout(Duration::from_millis(150))
            .await
            .unwrap()
            .is_none()
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(150),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1000),
        "returned late: {waited:?}"
    );
    assert!(sem.acquire_timeout(Duration::ZERO).await.unwrap().is_none());

    let waiter = {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire_timeout(Duration::from_secs(5)).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let freed_at = std::time::Instant::now();
    held.release().await.unwrap();
    let permit = waiter
        .await
        .unwrap()
        .unwrap()
        .expect("granted once released");
    assert!(
        freed_at.elapsed() < Duration::from_secs(1),
        "hand-off took {:?}",
        freed_at.elapsed()
    );
    permit.release().await.unwrap();
}

#[tokio::test]
async fn permit_count_is_stored_with_the_semaphore() {
    let server = Server::start();
    let _three = sem(&server, "config", 3).build().await.unwrap();
    match sem(&server, "config", 5).build().await {
        Err(Error::ConfigMismatch {
            stored: 3,
            requested: 5,
            ..
        }) => {}
        other => panic!("expected ConfigMismatch, got {other:?}"),
    }
    let err = sem(&server, "config", 2).build().await.unwrap_err();
    assert!(err.to_string().contains("3 permits"), "{err}");
    // Another name is another semaphore.
    sem(&server, "config-other", 5).build().await.unwrap();
}

#[tokio::test]
async fn bounded_is_stored_with_the_semaphore() {
    let server = Server::start();
    let _bounded = sem(&server, "fixed", 2).build().await.unwrap();
    // The new user's case: an unbounded handle's extra release made 3 permits of 2.
    let err = sem(&server, "fixed", 2)
        .bounded(false)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigMismatch {
                stored: 2,
                requested: 2,
                stored_bounded: true,
                requested_bounded: false,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("exists bounded") && text.contains("asked for unbounded"),
        "{text}"
    );
    assert!(text.contains(".bounded(true)"), "names the way out: {text}");

    let _unbounded = sem(&server, "growable", 2)
        .bounded(false)
        .build()
        .await
        .unwrap();
    let err = sem(&server, "growable", 3).build().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigMismatch {
                stored: 2,
                requested: 3,
                stored_bounded: false,
                requested_bounded: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("unbounded with 2 permits"),
        "{err}"
    );
    assert_eq!(
        server.cmd(&["HGET", "semaphore:{growable}:config", "bounded"]),
        redis::Value::BulkString(b"0".to_vec())
    );
}

#[tokio::test]
async fn open_adopts_the_stored_boundedness() {
    let server = Server::start();
    let _unbounded = sem(&server, "growable", 2)
        .bounded(false)
        .build()
        .await
        .unwrap();
    let opened = redis_semaphore::AsyncSemaphore::open("growable")
        .master(server.url())
        .build()
        .await
        .unwrap();
    assert!(!opened.bounded());
    // Nothing held: the release adds a permit, as the stored setting says.
    opened.release(1).await.unwrap();
    assert_eq!(opened.value().await.unwrap(), 3);

    let _bounded = sem(&server, "fixed", 2).build().await.unwrap();
    let opened = redis_semaphore::AsyncSemaphore::open("fixed")
        .master(server.url())
        .build()
        .await
        .unwrap();
    assert!(opened.bounded());
    assert!(matches!(
        opened.release(1).await,
        Err(Error::Bounded {
            held: 0,
            requested: 1
        })
    ));
}

#[tokio::test]
async fn a_config_stored_without_bounded_counts_as_bounded() {
    let server = Server::start();
    // As an earlier version wrote it.
    server.cmd(&[
        "HSET",
        "semaphore:{old}:config",
        "permits",
        "2",
        "limit",
        "2",
        "token",
        "5",
    ]);
    let sem_ = sem(&server, "old", 2).build().await.unwrap();
    assert!(sem_.bounded());
    assert!(matches!(
        sem(&server, "old", 2).bounded(false).build().await,
        Err(Error::ConfigMismatch {
            stored_bounded: true,
            requested_bounded: false,
            ..
        })
    ));
    let permit = sem_.acquire().await.unwrap();
    permit.release().await.unwrap();
}

#[tokio::test]
async fn release_n_on_a_bounded_semaphore() {
    let server = Server::start();
    let sem = sem(&server, "bounded", 3).build().await.unwrap();
    sem.acquire().await.unwrap().detach();
    sem.acquire_many(2).await.unwrap().detach();
    assert_eq!(sem.value().await.unwrap(), 0);
    match sem.release(4).await {
        Err(Error::Bounded {
            held: 3,
            requested: 4,
        }) => {}
        other => panic!("expected Bounded, got {other:?}"),
    }
    assert_eq!(
        sem.value().await.unwrap(),
        0,
        "a refused release releases nothing"
    );
    // Oldest first, splitting the 2-permit grant.
    sem.release(2).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 2);
    sem.release(1).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 3);
    assert!(matches!(
        sem.release(1).await,
        Err(Error::Bounded {
            held: 0,
            requested: 1
        })
    ));
    assert_eq!(sem.value().await.unwrap(), 3);
}

#[tokio::test]
async fn release_n_on_an_unbounded_semaphore_adds_permits() {
    let server = Server::start();
    let sem = sem(&server, "unbounded", 2)
        .bounded(false)
        .build()
        .await
        .unwrap();
    sem.acquire().await.unwrap().detach();
    sem.release(3).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 4, "2 permits plus 2 added");
    assert_eq!(sem.initial_value(), 2);
    let four = sem.acquire_many(2).await.unwrap();
    let more = sem.acquire_many(2).await.unwrap();
    assert!(sem.try_acquire().await.unwrap().is_none());
    drop((four, more));
}

#[tokio::test]
async fn detached_permits_are_renewed_by_the_handle() {
    let server = Server::start();
    let sem = sem(&server, "detached", 1)
        .lease(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    sem.acquire().await.unwrap().detach();
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        sem.value().await.unwrap(),
        0,
        "still held after three leases"
    );
    sem.release(1).await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 1);
}

#[tokio::test]
async fn dropping_the_last_handle_releases_its_detached_permits() {
    let server = Server::start();
    let sem = sem(&server, "orphans", 2).build().await.unwrap();
    sem.acquire_many(2).await.unwrap().detach();
    drop(sem);
    let check = self::sem(&server, "orphans", 2).build().await.unwrap();
    eventually("detached permits released", || async {
        check.value().await.unwrap() == 2
    })
    .await;
}

#[test]
fn handles_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    fn assert_send<T: Send + Sync + Unpin>() {}
    assert_send_sync::<AsyncSemaphore>();
    assert_send::<redis_semaphore::Permit>();
    assert_send_sync::<redis_semaphore::blocking::Semaphore>();
    assert_send::<redis_semaphore::blocking::Permit>();
}

#[tokio::test]
async fn a_thousand_permits_in_one_grant() {
    let server = Server::start();
    let sem = sem(&server, "wide", 10_000).build().await.unwrap();
    let one = sem.acquire().await.unwrap();
    let many = sem
        .acquire_many(redis_semaphore::MAX_ACQUIRE_MANY)
        .await
        .unwrap();
    assert_eq!(many.permits(), 1000);
    assert_eq!(sem.value().await.unwrap(), 8999);
    many.release().await.unwrap();
    // Freed slots below `next` come back as one grant too.
    let again = sem.acquire_many(1000).await.unwrap();
    assert_eq!(again.slots()[0], 1);
    again.release().await.unwrap();
    one.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 10_000);
}
