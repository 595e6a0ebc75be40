//! More bad input, beside tests/bad_input.rs, tests/errors.rs and tests/acl.rs: the queue
//! keys of another type, keys of another type or another permit count on some of several
//! masters, more unparsable URLs and odd names, a password-protected server, EVALSHA
//! revoked or the server full under a live handle. Each is a clear error at once (never a
//! hang, never a panic), nothing of someone else's is overwritten, and once the cause is
//! gone nothing is left held after one lease.

mod support;

use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Error};
use support::proxy::Proxy;
use support::{Server, masters, sem, sem_on};

const LEASE: Duration = Duration::from_millis(600);

fn key(name: &str, part: &str) -> String {
    format!("semaphore:{{{name}}}:{part}")
}

fn string_at(server: &Server, key: &str) -> Option<String> {
    redis::from_redis_value(server.cmd(&["GET", key])).unwrap()
}

/// Everything is free within one lease and `permits` permits can be taken at once.
async fn all_free(sem: &AsyncSemaphore, permits: u32) {
    let started = Instant::now();
    loop {
        let value = sem.value().await;
        let holders = sem.holders().await;
        if matches!(value, Ok(v) if v == permits) && matches!(&holders, Ok(h) if h.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < LEASE + Duration::from_millis(400),
            "still held: value {value:?}, holders {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let all = sem
        .try_acquire_many(permits)
        .await
        .unwrap()
        .expect("every permit");
    all.release().await.unwrap();
}

/// The error of a call that must fail at once (well within a second).
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, Error>>,
) -> Error {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after 3 s"));
    let took = started.elapsed();
    let error = result.expect_err(what);
    assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
    assert!(!error.is_transient(), "{what}: waiting cannot fix {error}");
    error
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_protected_server() {
    let server = Server::start();
    // Set last: the harness's own commands do not authenticate.
    server.cmd(&["CONFIG", "SET", "requirepass", "s3cret-pw"]);
    let port = server.port();
    let build = |url: String| {
        AsyncSemaphore::builder("auth", 1)
            .master(url)
            .lease(LEASE)
            .request_timeout(Duration::from_millis(100))
            .build()
    };
    for (url, what) in [
        (format!("redis://127.0.0.1:{port}"), "no password"),
        (
            format!("redis://:wrong-pw@127.0.0.1:{port}"),
            "wrong password",
        ),
    ] {
        let error = fails_fast(what, build(url)).await;
        let text = error.to_string();
        assert!(text.to_lowercase().contains("auth"), "{what}: {text}");
        assert!(text.contains(&port.to_string()), "names the master: {text}");
        assert!(
            !text.contains("pw"),
            "{what}: the error shows the password: {text}"
        );
    }
    let sem = build(format!("redis://:s3cret-pw@127.0.0.1:{port}"))
        .await
        .unwrap();
    sem.acquire().await.unwrap().release().await.unwrap();
}

/// The password changes under a live handle, whose connection drops: its calls fail at
/// once, its held permit is lost within its lease; once the password is back, it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_recovers_once_its_password_works_again() {
    let server = Server::start();
    server.cmd(&["CONFIG", "SET", "requirepass", "s3cret-pw"]);
    let port = server.port();
    let proxy = Proxy::to_port(port);
    let sem = AsyncSemaphore::builder("auth", 1)
        .master(format!("redis://:s3cret-pw@127.0.0.1:{}", proxy.port()))
        .lease(LEASE)
        .request_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let permit = sem.acquire().await.unwrap();
    let mut admin = redis::Client::open(format!("redis://:s3cret-pw@127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    let set_password = |admin: &mut redis::Connection, password: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("requirepass")
            .arg(password)
            .exec(admin)
            .unwrap();
    };
    set_password(&mut admin, "changed-pw");
    proxy.drop_connections();
    // The first call may meet the dropped connection; after it, the new one is refused.
    let _ = sem.value().await;
    fails_fast(
        "after a password change",
        sem.acquire_timeout(Duration::from_secs(2)),
    )
    .await;
    tokio::time::timeout(LEASE + Duration::from_millis(200), permit.lost())
        .await
        .expect("lost within one lease");
    assert!(matches!(
        permit.release().await,
        Err(Error::PermitLost { .. })
    ));
    set_password(&mut admin, "s3cret-pw");
    all_free(&sem, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evalsha_revoked_under_a_live_handle() {
    let server = Server::start();
    let mut rule = vec!["ACL", "SETUSER", "sem", "on", ">pw"];
    rule.extend(redis_semaphore::ACL_RULE.split_whitespace());
    server.cmd(&rule);
    let sem = AsyncSemaphore::builder("revoked", 2)
        .master(format!("redis://sem:pw@127.0.0.1:{}", server.port()))
        .lease(LEASE)
        .request_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap();
    let permit = sem.acquire().await.unwrap();
    server.cmd(&["ACL", "SETUSER", "sem", "-evalsha"]);
    let error = fails_fast("acquire", sem.acquire()).await;
    assert!(
        error.to_string().to_lowercase().contains("evalsha"),
        "{error}"
    );
    fails_fast("value", sem.value()).await;
    tokio::time::timeout(LEASE + Duration::from_millis(200), permit.lost())
        .await
        .expect("lost within one lease");
    assert!(matches!(
        permit.release().await,
        Err(Error::PermitLost { .. })
    ));
    server.cmd(&["ACL", "SETUSER", "sem", "+evalsha"]);
    all_free(&sem, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_server() {
    let server = Server::start_with(&["--maxmemory-policy", "noeviction"]);
    let sem = sem(&server, "full", 3).lease(LEASE).build().await.unwrap();
    let held = sem.acquire().await.unwrap();
    // Any write that needs memory is refused from now on.
    server.cmd(&["CONFIG", "SET", "maxmemory", "1"]);

    let error = fails_fast("a new semaphore", support::sem(&server, "new", 1).build()).await;
    assert!(error.to_string().contains("OOM"), "{error}");
    assert_eq!(server.int(&["EXISTS", &key("new", "config")]), 0);

    let error = fails_fast("acquire", sem.acquire()).await;
    assert!(error.to_string().contains("OOM"), "{error}");
    fails_fast("try_acquire", sem.try_acquire()).await;
    // Reads still work; the held permit cannot be renewed, and is lost within its lease.
    assert_eq!(sem.value().await.unwrap(), 2);
    tokio::time::timeout(LEASE + Duration::from_millis(200), held.lost())
        .await
        .expect("lost within one lease");
    assert!(matches!(
        held.release().await,
        Err(Error::PermitLost { .. })
    ));

    server.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    all_free(&sem, 3).await;
}
