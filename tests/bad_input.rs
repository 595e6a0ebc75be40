//! Bad input: a clear error at once, never a panic or a hang, and nothing overwritten.

mod support;

use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Error};
use support::{Server, sem};

fn invalid<T: std::fmt::Debug>(result: Result<T, Error>, expect: &str) {
    match result {
        Err(Error::InvalidArgument(why)) => {
            assert!(why.contains(expect), "{why:?} lacks {expect:?}")
        }
        other => panic!("expected InvalidArgument({expect}), got {other:?}"),
    }
}

#[tokio::test]
async fn bad_configuration_is_refused_before_any_request() {
    let server = Server::start();
    invalid(
        AsyncSemaphore::builder("", 1)
            .master(server.url())
            .build()
            .await,
        "empty",
    );
    invalid(
        AsyncSemaphore::builder("x", 0)
            .master(server.url())
            .build()
            .await,
        "at least 1",
    );
    invalid(AsyncSemaphore::builder("x", 1).build().await, "no master");
    invalid(
        AsyncSemaphore::builder("x", 1)
            .master("redis://[::1")
            .build()
            .await,
        "master #1",
    );
    invalid(
        AsyncSemaphore::builder("x", 1)
            .master("http://127.0.0.1/")
            .build()
            .await,
        "master #1",
    );
    // Nothing was written for any of them.
    let keys: Vec<String> = redis::from_redis_value(server.cmd(&["KEYS", "*"])).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn impossible_counts_fail_at_once() {
    let server = Server::start();
    let sem = sem(&server, "counts", 2).build().await.unwrap();
    invalid(sem.acquire_many(3).await, "could never end");
    invalid(sem.acquire_many(0).await, "0 permits");
    invalid(sem.try_acquire_many(3).await, "could never end");
    invalid(
        sem.acquire_many_timeout(0, Duration::from_secs(1)).await,
        "0 permits",
    );
    invalid(sem.release(0).await, "0 permits");
}

#[tokio::test]
async fn an_unreachable_master_is_an_error_within_the_request_timeout() {
    // A port nobody listens on, and an address that never answers (a paused server).
    let refused = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let err = AsyncSemaphore::builder("x", 1)
        .master(format!("redis://127.0.0.1:{refused}"))
        .request_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Redis { master, .. } if master.contains(&refused.to_string())),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );

    let server = Server::start();
    server.pause();
    let started = Instant::now();
    let err = sem(&server, "x", 1)
        .request_timeout(Duration::from_millis(300))
        .build()
        .await
        .unwrap_err();
    server.resume();
    assert!(err.is_transient(), "{err:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "took {took:?}"
    );
}

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
async fn odd_names_work_and_stay_apart() {
    let server = Server::start();
    let long = "n".repeat(redis_semaphore::MAX_NAME_LEN);
    for name in [
        "a:b",
        "{braces}",
        "x}y{z",
        "ünïcødé ✓",
        " spaced ",
        long.as_str(),
    ] {
        let sem = sem(&server, name, 1).build().await.unwrap();
        let permit = sem.acquire().await.unwrap();
        assert!(sem.try_acquire().await.unwrap().is_none(), "{name}");
        permit.release().await.unwrap();
    }
    invalid(
        sem(&server, &"n".repeat(redis_semaphore::MAX_NAME_LEN + 1), 1)
            .build()
            .await,
        "bytes",
    );
}

#[tokio::test]
async fn limits_at_the_edges_of_the_types() {
    let server = Server::start();
    let edges = sem(&server, "edges", 2)
        .bounded(false)
        .build()
        .await
        .unwrap();
    // A timeout too large for the clock means no limit, not a panic.
    let permit = edges
        .acquire_timeout(Duration::MAX)
        .await
        .unwrap()
        .expect("free");
    permit.release().await.unwrap();
    // An unbounded release cannot push the count past what a u32 holds.
    invalid(edges.release(u32::MAX).await, "the most is 4294967295");
    assert_eq!(edges.value().await.unwrap(), 2, "nothing added");
    invalid(
        sem(&server, "edges-lease", 1)
            .lease(Duration::MAX)
            .build()
            .await,
        "too long",
    );
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

#[tokio::test]
async fn a_bad_url_is_echoed_with_the_accepted_forms() {
    for (url, shown) in [
        ("nonsense://x", "nonsense://x"),
        ("127.0.0.1:6379", "127.0.0.1:6379"),
        (
            "redis://127.0.0.1:6379/notadb",
            "redis://127.0.0.1:6379/notadb",
        ),
        ("http://u:hunter2@[::1/", "http://u:***@[::1/"),
    ] {
        let err = AsyncSemaphore::builder("urls", 1)
            .master(url)
            .build()
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("master #1"), "{text}");
        assert!(
            text.contains(&format!("{shown:?}")),
            "echoes {shown:?}: {text}"
        );
        for form in ["redis://", "rediss://", "redis+unix://", "unix://"] {
            assert!(text.contains(form), "lists {form}: {text}");
        }
        assert!(!text.contains("hunter2"), "shows no password: {text}");
        assert!(!text.contains(" - InvalidClientConfig"), "{text}");
    }
}

#[tokio::test]
async fn a_silent_server_is_an_error_that_names_the_timeout() {
    let server = Server::start();
    let sem = sem(&server, "silent", 1)
        .raise_on_redis_errors(true)
        .build()
        .await
        .unwrap();
    server.pause();
    let err = sem.try_acquire().await.unwrap_err();
    server.resume();
    let text = err.to_string();
    assert!(text.contains("request timeout (100ms"), "{text}");
    assert!(err.is_transient(), "{text}");
}

#[tokio::test]
async fn messages_count_permits_in_the_right_number() {
    let server = Server::start();
    let one = sem(&server, "one", 1).build().await.unwrap();
    let text = one.release(1).await.unwrap_err().to_string();
    assert!(text.contains("release of 1 permit,"), "{text}");
    let text = sem(&server, "one", 2)
        .build()
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("exists with 1 permit,"), "{text}");
    let text = one.release(2).await.unwrap_err().to_string();
    assert!(text.contains("release of 2 permits,"), "{text}");
}
