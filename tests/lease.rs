//! Leases: renewed while the guard lives, lost when they cannot be renewed in time, with
//! fencing tokens that show the order of grants.

mod support;

use std::time::{Duration, Instant};

use redis_semaphore::Error;
use support::{Server, sem};

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
    // A holder whose runtime dies with it: no renewal, no release, as if it crashed.
    let crashed = tokio::runtime::Runtime::new().unwrap();
    let abandoned = crashed.block_on(async {
        let sem = sem(&server, "abandon", 2)
            .lease(lease)
            .build()
            .await
            .unwrap();
        sem.acquire_many(2).await.unwrap()
    });
    let held_at = Instant::now();
    crashed.shutdown_background();
    std::mem::forget(abandoned);

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
