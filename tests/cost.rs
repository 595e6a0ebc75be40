//! What one call costs the server, counted exactly: the commands an uncontended acquire and
//! a release make (`INFO commandstats`, which counts the calls a script makes from Lua too).
//! Redis runs scripts one at a time, so every call is taken from every other client of the
//! server; a change that adds calls to the hot path fails here.

use std::collections::BTreeMap;

use testkit::{Server, sem};

/// Commands run since the last `CONFIG RESETSTAT`, by name, leaving out the test's own
/// `INFO` and `CONFIG`, and the `CLIENT SETINFO` that redis-rs sends on each of the test's
/// connections (Valkey and Redis 7.2+ count it).
fn commands(server: &Server) -> BTreeMap<String, u64> {
    let info: String = redis::from_redis_value(server.cmd(&["INFO", "commandstats"])).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(":calls=")?;
            let calls: u64 = rest.split(',').next()?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .filter(|(name, _)| {
            !(name.starts_with("info") || name.starts_with("config") || name.starts_with("client|"))
        })
        .collect()
}

fn reset(server: &Server) {
    server.cmd(&["CONFIG", "RESETSTAT"]);
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

#[tokio::test]
async fn an_uncontended_acquire_and_a_release_make_a_handful_of_calls() {
    let server = Server::start();
    let sem = sem(&server, "cost", 3).build().await.unwrap();
    // The first grant creates the keys and sets their TTL; count the steady state.
    sem.acquire().await.unwrap().release().await.unwrap();

    reset(&server);
    let permit = sem.acquire().await.unwrap();
    let acquire = commands(&server);
    reset(&server);
    permit.release().await.unwrap();
    let release = commands(&server);

    // One EVALSHA each, and from Lua: TIME, the earliest lease (none expired), the holds,
    // then the config, the lowest free slot, the lease and the holder with its token
    // (acquire), or the slot's new score and the holder's fields (release).
    assert_eq!(acquire.get("evalsha"), Some(&1), "{acquire:?}");
    let from_lua = |counts: &BTreeMap<String, u64>| total(counts) - 1;
    assert_eq!(
        from_lua(&acquire),
        7,
        "calls from Lua in an acquire: {acquire:?}"
    );
    assert_eq!(release.get("evalsha"), Some(&1), "{release:?}");
    assert_eq!(
        from_lua(&release),
        5,
        "calls from Lua in a release: {release:?}"
    );
    // A release reads the holds, not the config.
    assert_eq!(release.get("hmget"), Some(&1), "{release:?}");
    // Nobody waits: no queue read, no publish, no TTL moved, no type check; the config's
    // fencing counter is not written at each grant.
    for counts in [&acquire, &release] {
        for idle in [
            "zcard",
            "zrange",
            "publish",
            "pexpireat",
            "pexpire",
            "type",
            "hincrby",
        ] {
            assert!(!counts.contains_key(idle), "{idle} in {counts:?}");
        }
    }
}

#[tokio::test]
async fn a_ttl_moves_only_when_a_lease_would_outlive_it() {
    use std::time::Duration;
    let server = Server::start();
    let long = sem(&server, "ttl", 3).build().await.unwrap();
    let first = long.acquire().await.unwrap();
    reset(&server);
    // Granted within a second of the first: the keys already outlive the new lease.
    let second = long.acquire().await.unwrap();
    assert!(!commands(&server).contains_key("pexpireat"));
    drop((first, second));

    // A 300 ms lease renewed every 100 ms: the keys' TTL (a second past the lease) moves
    // once in the next 1.3 s, for both keys, not at each of the dozen renewals.
    let short = sem(&server, "ttl-short", 3)
        .lease(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let _held = short.acquire().await.unwrap();
    reset(&server);
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let late = commands(&server);
    assert!(late.get("evalsha").copied().unwrap_or(0) >= 8, "{late:?}");
    let moves = late.get("pexpireat").copied().unwrap_or(0);
    assert!(
        (2..=4).contains(&moves),
        "the TTL of the two keys moves about once a second: {late:?}"
    );
}
