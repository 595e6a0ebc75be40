//! Leases: renewed while the guard lives, lost when they cannot be renewed in time, with
//! fencing tokens that show the order of grants.

use std::time::{Duration, Instant};

use redis_semaphore::Error;
use testkit::{Server, sem};

#[tokio::test]
async fn a_held_permit_outlives_its_lease_by_renewal() {
    let server = Server::start();
    let sem = sem(&server, "renew", 1)
        .lease(Duration::from_millis(300))
        .build()
        .await
        .unwrap();
    let permit = sem.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(permit.is_valid(), "renewed four times over");
    assert!(
        sem.try_acquire().await.unwrap().is_none(),
        "still held on the master"
    );
    permit.release().await.unwrap();
    assert!(sem.try_acquire().await.unwrap().is_some());
}

#[tokio::test]
async fn a_paused_master_costs_the_permit_its_lease() {
    let server = Server::start();
    let lease = Duration::from_millis(400);
    let sem = sem(&server, "paused", 1)
        .lease(lease)
        .build()
        .await
        .unwrap();
    let permit = sem.acquire().await.unwrap();
    let token = permit.fencing_token();
    let lost = permit.lost();

    server.pause();
    let paused_at = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), lost)
        .await
        .expect("lost() resolves");
    let after = paused_at.elapsed();
    server.resume();
    assert!(
        after <= lease + Duration::from_millis(100),
        "loss seen after {after:?}"
    );
    assert!(!permit.is_valid());

    // Someone else takes the slot once the master answers again...
    let next = sem
        .acquire_timeout(Duration::from_secs(3))
        .await
        .unwrap()
        .expect("granted");
    assert!(
        next.fencing_token() > token,
        "tokens rise: {} then {}",
        token,
        next.fencing_token()
    );
    assert_eq!(
        next.slots(),
        permit.slots(),
        "the lost slot was granted again"
    );
    // ...and the old holder learns it lost.
    match permit.release().await {
        Err(Error::PermitLost { id }) => assert_eq!(id.len(), 32),
        other => panic!("expected PermitLost, got {other:?}"),
    }
    next.release().await.unwrap();
}

#[test]
fn an_abandoned_lease_expires_and_wakes_the_waiter() {
    let server = Server::start();
    let lease = Duration::from_millis(500);
    abandon(&server, "abandon", 2, 2, lease);
    let held_at = Instant::now();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let sem = sem(&server, "abandon", 2)
            .lease(lease)
            .build()
            .await
            .unwrap();
        let permit = sem.acquire().await.unwrap();
        let waited = held_at.elapsed();
        assert!(
            waited >= lease - Duration::from_millis(50),
            "granted before the lease passed: {waited:?}"
        );
        // Woken by the expiry the busy reply reported, not by a slow poll.
        assert!(
            waited <= lease + Duration::from_millis(250),
            "woken late: {waited:?}"
        );
        permit.release().await.unwrap();
    });
}

/// Acquires a permit on a runtime that then dies: no renewal, no release, as if its
/// process crashed.
fn abandon(server: &Server, name: &str, permits: u32, k: u32, lease: Duration) {
    let crashed = tokio::runtime::Runtime::new().unwrap();
    let permit = crashed.block_on(async {
        let sem = sem(server, name, permits)
            .lease(lease)
            .build()
            .await
            .unwrap();
        sem.acquire_many(k).await.unwrap()
    });
    crashed.shutdown_background();
    std::mem::forget(permit);
}

#[test]
fn an_idle_semaphore_leaves_only_its_config() {
    let server = Server::start();
    abandon(&server, "idle", 2, 1, Duration::from_millis(300));
    abandon(&server, "idle", 2, 1, Duration::from_millis(900));
    std::thread::sleep(Duration::from_millis(400));
    let ttl = |key: &str| -> i64 { redis::from_redis_value(server.cmd(&["PTTL", key])).unwrap() };
    // The first lease is reclaimed by a status read; the keys still expire with the last.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let value = runtime.block_on(async {
        sem(&server, "idle", 2)
            .build()
            .await
            .unwrap()
            .value()
            .await
            .unwrap()
    });
    assert_eq!(value, 1);
    for key in ["slots", "holds"] {
        let t = ttl(&format!("semaphore:{{idle}}:{key}"));
        assert!(t > 0, "{key} has no TTL ({t})");
    }
    assert_eq!(ttl("semaphore:{idle}:config"), -1, "the config persists");
    // After the last lease, only the config is left.
    std::thread::sleep(Duration::from_millis(1700));
    let keys: Vec<String> = redis::from_redis_value(server.cmd(&["KEYS", "*"])).unwrap();
    assert_eq!(keys, vec!["semaphore:{idle}:config".to_string()]);
}
