//! The operator's API: holders, open (adopting the stored count), set_permits,
//! release_holder and delete, on one master and on three.

use std::time::Duration;

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::{Server, masters, sem, sem_on};

#[tokio::test]
async fn holders_lists_ids_slots_tokens_and_lease_left() {
    let server = Server::start();
    let sem = sem(&server, "ops", 3)
        .lease(Duration::from_secs(5))
        .build()
        .await
        .unwrap();
    assert!(sem.holders().await.unwrap().is_empty());
    let one = sem.acquire().await.unwrap();
    let two = sem.acquire_many(2).await.unwrap();
    let holders = sem.holders().await.unwrap();
    assert_eq!(holders.len(), 2);
    assert_eq!(holders[0].id, one.id());
    assert_eq!(holders[0].slots, one.slots());
    assert_eq!(holders[0].fencing_token, one.fencing_token());
    assert_eq!(holders[1].id, two.id());
    assert_eq!(holders[1].slots, vec![1, 2]);
    assert_eq!(holders[1].fencing_token, two.fencing_token());
    let on = &holders[1].masters;
    assert_eq!(on.len(), 1);
    assert_eq!(on[0].master, format!("127.0.0.1:{}", server.port()));
    assert!(
        on[0].lease_left > Duration::from_secs(4) && on[0].lease_left <= Duration::from_secs(5)
    );
    one.release().await.unwrap();
    two.release().await.unwrap();
    assert!(sem.holders().await.unwrap().is_empty());
}

#[tokio::test]
async fn open_adopts_the_stored_count_or_finds_nothing() {
    let server = Server::start();
    let missing = AsyncSemaphore::open("ops")
        .master(server.url())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, Error::NotFound { name } if name == "ops"),
        "{missing}"
    );
    // Nothing was created by looking.
    assert_eq!(server.int(&["EXISTS", "semaphore:{ops}:config"]), 0);
    let made = sem(&server, "ops", 4).build().await.unwrap();
    let opened = AsyncSemaphore::open("ops")
        .master(server.url())
        .build()
        .await
        .unwrap();
    assert_eq!(opened.initial_value(), 4);
    let permit = opened.acquire_many(4).await.unwrap();
    assert_eq!(made.value().await.unwrap(), 0);
    permit.release().await.unwrap();
}

#[tokio::test]
async fn set_permits_changes_the_count_for_everyone() {
    let server = Server::start();
    let admin = sem(&server, "ops", 2).build().await.unwrap();
    let old = sem(&server, "ops", 2).build().await.unwrap();
    let held = [old.acquire().await.unwrap(), old.acquire().await.unwrap()];

    admin.set_permits(3).await.unwrap();
    assert_eq!(admin.initial_value(), 3);
    let third = admin.try_acquire().await.unwrap().expect("a third permit");
    let stale = old.try_acquire().await.unwrap_err();
    assert!(
        matches!(
            stale,
            Error::ConfigMismatch {
                stored: 3,
                requested: 2,
                ..
            }
        ),
        "{stale}"
    );
    assert!(stale.to_string().contains("set_permits"), "{stale}");

    // Lowering keeps the holders past the new count; only slots below it are granted.
    admin.set_permits(1).await.unwrap();
    assert_eq!(admin.value().await.unwrap(), 0);
    third.release().await.unwrap();
    let [a, b] = held;
    a.release().await.unwrap();
    assert_eq!(admin.value().await.unwrap(), 1);
    let only = admin.try_acquire().await.unwrap().expect("slot 0");
    assert_eq!(only.slots(), &[0]);
    assert!(admin.try_acquire().await.unwrap().is_none(), "1 permit now");
    only.release().await.unwrap();
    b.release().await.unwrap();
    assert!(admin.set_permits(0).await.is_err());
}

#[tokio::test]
async fn release_holder_frees_someone_elses_permit() {
    let server = Server::start();
    let lease = Duration::from_millis(300);
    let holder = sem(&server, "ops", 1).lease(lease).build().await.unwrap();
    let admin = sem(&server, "ops", 1).build().await.unwrap();
    let stuck = holder.acquire().await.unwrap();
    assert_eq!(admin.release_holder(stuck.id()).await.unwrap(), 1);
    assert_eq!(admin.release_holder(stuck.id()).await.unwrap(), 0, "gone");
    let next = admin.try_acquire().await.unwrap().expect("freed");
    tokio::time::timeout(lease * 2, stuck.lost())
        .await
        .expect("the holder finds out at its next renewal");
    next.release().await.unwrap();
}

#[tokio::test]
async fn delete_removes_every_key() {
    let server = Server::start();
    let sem = sem(&server, "ops", 2).build().await.unwrap();
    let permit = sem.acquire().await.unwrap();
    assert!(sem.delete().await.unwrap());
    assert_eq!(server.int(&["DBSIZE"]), 0);
    assert!(!sem.delete().await.unwrap(), "nothing left");
    let error = AsyncSemaphore::open("ops")
        .master(server.url())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }));
    drop(permit);
}

#[tokio::test]
async fn holders_on_three_masters_show_strays() {
    let servers = masters(3);
    let lone = testkit::sem(&servers[2], "ops", 2).build().await.unwrap();
    let stray = lone.acquire().await.unwrap();
    let sem = sem_on(&servers, "ops", 2).build().await.unwrap();
    let permit = sem.acquire().await.unwrap();
    let holders = sem.holders().await.unwrap();
    assert_eq!(holders.len(), 2);
    assert_eq!(holders[0].id, permit.id());
    assert_eq!(holders[0].slots, vec![0]);
    assert_eq!(holders[0].masters.len(), 2, "masters 1 and 2");
    assert_eq!(holders[1].id, stray.id());
    assert!(holders[1].slots.is_empty(), "held on one master of three");
    permit.release().await.unwrap();
    stray.release().await.unwrap();
}
