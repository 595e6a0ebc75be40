//! Keys of the semaphore that hold something this library did not write: each is named in
//! a clear error at once (never a hang, never a panic), nothing of someone else's is
//! overwritten or deleted, and once the cause is gone nothing is left held after a lease.

use std::time::{Duration, Instant};

use redis_semaphore::Error;
use testkit::checks::{LEASE, all_free, fails_fast, key, string_at};
use testkit::{Server, masters, sem, sem_on};

#[tokio::test]
async fn a_key_of_another_type_is_an_error_and_left_alone() {
    let server = Server::start();
    for key in ["config", "slots", "holds", "queue"] {
        let name = format!("typed-{key}");
        let full = format!("semaphore:{{{name}}}:{key}");
        server.cmd(&["SET", &full, "precious"]);
        match sem(&server, &name, 2).build().await {
            Err(Error::WrongType { detail, .. }) => assert!(detail.contains(&full), "{detail}"),
            other => panic!("expected WrongType for {full}, got {other:?}"),
        }
        let value: String = redis::from_redis_value(server.cmd(&["GET", &full])).unwrap();
        assert_eq!(value, "precious");
    }
    // A hash we did not write is not taken over either.
    server.cmd(&["HSET", "semaphore:{foreign}:config", "owner", "someone"]);
    assert!(matches!(
        sem(&server, "foreign", 2).build().await,
        Err(Error::WrongType { .. })
    ));
    let owner: String =
        redis::from_redis_value(server.cmd(&["HGET", "semaphore:{foreign}:config", "owner"]))
            .unwrap();
    assert_eq!(owner, "someone");
}

#[tokio::test]
async fn a_key_that_turns_into_another_type_fails_the_acquire_not_the_process() {
    let server = Server::start();
    let sem = sem(&server, "turns", 1).build().await.unwrap();
    server.cmd(&["SET", "semaphore:{turns}:slots", "oops"]);
    assert!(matches!(sem.acquire().await, Err(Error::WrongType { .. })));
    assert!(matches!(sem.value().await, Err(Error::WrongType { .. })));
}

#[tokio::test]
async fn a_key_overwritten_later_stops_every_operation_and_is_left_alone() {
    let server = Server::start();
    for key in ["config", "slots", "holds", "queue"] {
        let name = format!("later-{key}");
        let full = format!("semaphore:{{{name}}}:{key}");
        let holder = sem(&server, &name, 1).build().await.unwrap();
        let sem = sem(&server, &name, 1).build().await.unwrap();
        // Make every key exist: a holder, and a waiter queued behind it.
        let permit = holder.acquire().await.unwrap();
        let waiting = {
            let sem = sem.clone();
            tokio::spawn(async move { sem.acquire_timeout(Duration::from_millis(200)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.cmd(&["DEL", &full]);
        server.cmd(&["SET", &full, "precious"]);
        let outcomes = [
            ("acquire", sem.try_acquire().await.map(|_| ())),
            ("value", sem.value().await.map(|_| ())),
            ("holders", sem.holders().await.map(|_| ())),
            ("delete", sem.delete().await.map(|_| ())),
            ("release", permit.release().await),
        ];
        for (what, outcome) in outcomes {
            // The queue keys are only read where a queue matters: what does not touch them
            // may succeed, but nothing may overwrite them.
            if let Err(error) = outcome {
                assert!(
                    matches!(error, Error::WrongType { .. }),
                    "{what} with {full} foreign: {error}"
                );
            } else {
                assert!(key == "queue", "{what} succeeded with {full} foreign");
            }
        }
        let _ = waiting.await.unwrap();
        let value: String = redis::from_redis_value(server.cmd(&["GET", &full])).unwrap();
        assert_eq!(value, "precious", "{full} was overwritten");
    }
}

/// A foreign value at a queue key: every call that fails says which key holds what, and a
/// call that fails has done nothing (a release reported failed has not released).
#[tokio::test]
async fn queue_keys_of_another_type_are_named_and_change_nothing() {
    let server = Server::start();
    {
        let part = "queue";
        for fair in [true, false] {
            let name = format!("typed-{part}-{fair}");
            let full = key(&name, part);
            server.cmd(&["SET", &full, "precious"]);
            let check = |what: &str, error: Error| match error {
                Error::WrongType { detail, .. } => {
                    assert!(detail.contains(&full), "{what} with {full}: {detail}")
                }
                other => panic!("{what} with {full}: expected WrongType, got {other:?}"),
            };
            let sem = match sem(&server, &name, 2).fair(fair).build().await {
                Ok(sem) => sem,
                Err(error) => {
                    check("build", error);
                    continue;
                }
            };
            let mut held = Vec::new();
            for _ in 0..3 {
                match sem.acquire_timeout(Duration::from_millis(200)).await {
                    Ok(Some(permit)) => held.push(permit),
                    Ok(None) => {}
                    Err(error) => check("acquire", error),
                }
            }
            for permit in held {
                let before = sem.value().await.unwrap();
                if let Err(error) = permit.release().await {
                    check("release", error);
                    assert_eq!(
                        sem.value().await.unwrap(),
                        before,
                        "a failed release released"
                    );
                }
            }
            assert_eq!(string_at(&server, &full).as_deref(), Some("precious"));
        }
    }
}

#[tokio::test]
async fn delete_leaves_a_foreign_queue_key_alone() {
    let server = Server::start();
    {
        let part = "queue";
        let name = format!("deleted-{part}");
        let sem = sem(&server, &name, 2).build().await.unwrap();
        let full = key(&name, part);
        server.cmd(&["SET", &full, "precious"]);
        let deleted = sem.delete().await;
        assert!(
            matches!(deleted, Err(Error::WrongType { .. })),
            "{deleted:?}"
        );
        assert_eq!(string_at(&server, &full).as_deref(), Some("precious"));
    }
}

/// A foreign queue key met after build: each call ends at once with a permit or
/// `WrongType`, never another error, a hang or a panic; the foreign value is kept; once it
/// is gone, nothing stays held past one lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_queue_key_never_hangs_or_leaks() {
    let server = Server::start();
    {
        let part = "queue";
        for fair in [true, false] {
            let name = format!("foreign-{part}-{fair}");
            let full = key(&name, part);
            server.cmd(&["SET", &full, "precious"]);
            let sem = match sem(&server, &name, 2).fair(fair).lease(LEASE).build().await {
                Ok(sem) => sem,
                // Refused at once, and left alone.
                Err(Error::WrongType { detail, .. }) => {
                    assert!(detail.contains(&full), "{detail}");
                    assert_eq!(string_at(&server, &full).as_deref(), Some("precious"));
                    server.cmd(&["DEL", &full]);
                    continue;
                }
                Err(other) => panic!("{full}: {other:?}"),
            };
            let mut held = Vec::new();
            for _ in 0..3 {
                let started = Instant::now();
                match sem.acquire_timeout(Duration::from_millis(200)).await {
                    Ok(Some(permit)) => held.push(permit),
                    Ok(None) => {}
                    Err(Error::WrongType { .. }) => {
                        assert!(started.elapsed() < Duration::from_millis(150));
                    }
                    Err(other) => panic!("{full}: {other:?}"),
                }
            }
            for permit in held {
                match permit.release().await {
                    Ok(()) | Err(Error::WrongType { .. }) => {}
                    Err(other) => panic!("{full}: release {other:?}"),
                }
            }
            assert_eq!(string_at(&server, &full).as_deref(), Some("precious"));
            server.cmd(&["DEL", &full]);
            all_free(&sem, 2).await;
        }
    }
}

#[tokio::test]
async fn a_key_of_another_type_on_some_of_three_masters() {
    let servers = masters(3);
    let leases = key("typed", "slots");
    // On one master: the other two are a majority, and the foreign value stays.
    servers[2].cmd(&["SET", &leases, "precious"]);
    let sem = sem_on(&servers, "typed", 2).build().await.unwrap();
    let permit = sem.acquire().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 1);
    permit.release().await.unwrap();
    assert_eq!(string_at(&servers[2], &leases).as_deref(), Some("precious"));

    // On two: no majority, an error that says why, at once.
    servers[1].cmd(&["SET", &key("typed2", "holds"), "precious"]);
    servers[2].cmd(&["SET", &key("typed2", "holds"), "precious"]);
    let error = fails_fast("two foreign keys", sem_on(&servers, "typed2", 2).build()).await;
    let text = error.to_string();
    assert!(text.contains(&key("typed2", "holds")), "{text}");
    for server in &servers[1..] {
        assert_eq!(
            string_at(server, &key("typed2", "holds")).as_deref(),
            Some("precious")
        );
    }
}
