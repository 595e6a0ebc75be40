//! Servers that refuse or do not answer: a password required or wrong (and fixed later),
//! EVALSHA revoked or the server full under a live handle, an unreachable address, a
//! server that accepts connections and says nothing. Each is a clear error within the
//! request timeout, never a hang; once the cause is gone the handle works again.

use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::checks::{LEASE, all_free, fails_fast, key};
use testkit::proxy::Proxy;
use testkit::{Server, sem};

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

    let error = fails_fast("a new semaphore", testkit::sem(&server, "new", 1).build()).await;
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
