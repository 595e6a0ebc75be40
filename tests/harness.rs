//! Proves the test server harness works against the real server binary
//! (`REDIS_SERVER_BIN`, default `redis-server`).

use std::time::{Duration, Instant};

use testkit::{Server, server_binary};

fn get(server: &Server, key: &str) -> Option<String> {
    redis::from_redis_value(server.cmd(&["GET", key])).expect("GET returns a string or nil")
}

#[test]
fn harness_lifecycle() {
    let mut server = Server::start();
    let port = server.port();
    assert_eq!(server.url(), format!("redis://127.0.0.1:{port}"));
    assert!(server.is_running());
    eprintln!(
        "harness: {} pid {} on port {port}",
        server_binary(),
        server.pid()
    );

    // Basic commands.
    assert_eq!(server.cmd(&["SET", "k", "v"]), redis::Value::Okay);
    assert_eq!(get(&server, "k").as_deref(), Some("v"));

    // A connection opened before the pause.
    let mut con = server.client().get_connection().expect("connect");
    con.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("set read timeout");

    // Paused: a read times out.
    server.pause();
    assert!(server.is_running(), "a paused server is still running");
    let t = Instant::now();
    let err = redis::cmd("GET")
        .arg("k")
        .query::<Option<String>>(&mut con)
        .expect_err("a paused server must not answer");
    assert!(err.is_timeout(), "expected a timeout, got {err:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "timed out too early"
    );

    // Resumed: works again (a fresh connection; the old one has a stale reply queued).
    server.resume();
    assert_eq!(get(&server, "k").as_deref(), Some("v"));

    // Killed: connection refused; kill is idempotent.
    server.kill();
    server.kill();
    assert!(!server.is_running());
    let err = match server
        .client()
        .get_connection_with_timeout(Duration::from_millis(500))
    {
        Ok(_) => panic!("a killed server must refuse connections"),
        Err(e) => e,
    };
    assert!(err.is_connection_refusal(), "expected refusal, got {err:?}");

    // Restarted: same port, empty data.
    server.restart();
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_eq!(get(&server, "k"), None);
    assert_eq!(server.cmd(&["DBSIZE"]), redis::Value::Int(0));
}

#[test]
fn restart_while_paused_and_extra_args() {
    let mut server = Server::start_with(&["--maxmemory", "64mb"]);
    let v: Vec<String> =
        redis::from_redis_value(server.cmd(&["CONFIG", "GET", "maxmemory"])).expect("config");
    assert_eq!(v, vec!["maxmemory".to_string(), "67108864".to_string()]);

    server.cmd(&["SET", "k", "v"]);
    server.pause();
    let port = server.port();
    server.restart();
    assert_eq!(server.port(), port);
    assert_eq!(get(&server, "k"), None);
    // Extra args survive a restart.
    let v: Vec<String> =
        redis::from_redis_value(server.cmd(&["CONFIG", "GET", "maxmemory"])).expect("config");
    assert_eq!(v[1], "67108864");
}

#[test]
fn servers_are_independent_and_cleaned_up() {
    let a = Server::start();
    let b = Server::start();
    assert_ne!(a.port(), b.port());
    a.cmd(&["SET", "only-in-a", "1"]);
    assert_eq!(get(&b, "only-in-a"), None);
    let dir: Vec<String> =
        redis::from_redis_value(a.cmd(&["CONFIG", "GET", "dir"])).expect("config");
    let dir = std::path::PathBuf::from(&dir[1]);
    assert!(dir.is_dir());
    drop(a);
    assert!(!dir.exists(), "temp dir {} removed on drop", dir.display());
}

#[test]
fn missing_binary_panics_with_install_hint() {
    let panic = std::panic::catch_unwind(|| {
        Server::start_bin("/nonexistent/redis-server-bogus".to_string(), &[]);
    })
    .expect_err("a missing binary must fail, not skip");
    let text = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(text.contains("not found"), "{text}");
    assert!(text.contains("scripts/install-servers.sh"), "{text}");
}
