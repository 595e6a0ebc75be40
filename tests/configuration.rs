//! What a handle is built with: names, URLs, permit counts, leases and their limits.
//! Whatever cannot work is refused by `build()` (or the call) before any request, with a
//! message that says what is wrong and what would do; odd but valid names work and stay
//! apart.

use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::checks::{fails_fast, invalid, key};
use testkit::{Server, masters, sem, sem_on};

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
async fn more_unparsable_urls_are_refused_before_any_request() {
    let server = Server::start();
    for url in [
        "",
        "not a url",
        "redis://",
        "redis://:@",
        "redis://user@",
        "redis://127.0.0.1:99999",
        "redis://127.0.0.1:6379/notadb",
        "127.0.0.1:6379",
    ] {
        let started = Instant::now();
        match AsyncSemaphore::builder("urls", 1).master(url).build().await {
            Err(Error::InvalidArgument(why)) => assert!(why.contains("master #1"), "{why}"),
            other => panic!(
                "{url:?}: expected InvalidArgument, got {:?}",
                other.map(|_| ())
            ),
        }
        assert!(started.elapsed() < Duration::from_millis(100), "{url:?}");
    }
    // The bad one among good ones is named by its place.
    match AsyncSemaphore::builder("urls", 1)
        .masters([server.url(), "nope".into(), Server::start().url()])
        .build()
        .await
    {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("master #2"), "{why}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
    let keys: Vec<String> = redis::from_redis_value(server.cmd(&["KEYS", "*"])).unwrap();
    assert!(keys.is_empty(), "{keys:?}");
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
async fn more_odd_names_work_and_stay_apart() {
    let server = Server::start();
    // The limit is in bytes, not characters: 341 x '€' (3 bytes) + 'a' is 1024 bytes.
    let widest = "€".repeat(341) + "a";
    assert_eq!(widest.len(), redis_semaphore::MAX_NAME_LEN);
    let names = [
        "x".to_string(),
        "x}:config".into(),
        "semaphore:{x}:config".into(),
        "a\0b".into(),
        "line\nbreak".into(),
        "*?[glob]".into(),
        "{".into(),
        "}".into(),
        widest,
    ];
    let mut held = Vec::new();
    for name in &names {
        let sem = sem(&server, name, 1).build().await.unwrap();
        held.push(sem.acquire().await.unwrap());
        assert!(sem.try_acquire().await.unwrap().is_none(), "{name:?}");
    }
    // Each name is its own semaphore: each of them granted its one permit.
    assert_eq!(held.len(), names.len());
    for permit in held {
        permit.release().await.unwrap();
    }
    let too_wide = "€".repeat(342);
    let error = sem(&server, &too_wide, 1).build().await.unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(why) if why.contains("1026 bytes")),
        "{error}"
    );
    let error = AsyncSemaphore::open("")
        .master(server.url())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::InvalidArgument(_)), "{error}");
}

#[tokio::test]
async fn another_permit_count_on_three_masters() {
    let servers = masters(3);
    let _three = sem_on(&servers, "count", 3).build().await.unwrap();
    let error = fails_fast("5 of 3", sem_on(&servers, "count", 5).build()).await;
    // One master says ConfigMismatch; several list it for each master.
    match &error {
        Error::ConfigMismatch {
            stored: 3,
            requested: 5,
            ..
        } => {}
        Error::Quorum { failures, .. } => {
            assert_eq!(failures.len(), 3, "{error}");
            for failure in failures {
                assert!(
                    matches!(
                        *failure.error,
                        Error::ConfigMismatch {
                            stored: 3,
                            requested: 5,
                            ..
                        }
                    ),
                    "{error}"
                );
            }
        }
        other => panic!("expected the stored count, got {other:?}"),
    }
    assert!(error.to_string().contains("3 permits"), "{error}");

    // Another count on one master of three: the majority decides, that master keeps its
    // count (nothing is overwritten).
    let _lone = sem(&servers[2], "count2", 4).build().await.unwrap();
    let two = sem_on(&servers, "count2", 2).build().await.unwrap();
    let pair = two.acquire_many(2).await.unwrap();
    assert!(two.try_acquire().await.unwrap().is_none(), "2 permits");
    pair.release().await.unwrap();
    assert_eq!(
        servers[2].int(&["HGET", &key("count2", "config"), "permits"]),
        4
    );
}
