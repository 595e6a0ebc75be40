//! Several masters: each permit slot is a Redlock mutex held on a majority.
//!
//! Masters are real servers started by the harness; they are paused, killed and restarted
//! empty (after one lease, the delayed-restart rule) while holders contend, and an
//! independent observer on another server counts who is inside.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Error};
use testkit::{Observer, Server, eventually, masters, sem, sem_on};

const CONFIG: &str = "semaphore:{m}:config";
/// The hash of who holds what; its `token` is the last fencing token granted on the master
/// (the config's `token` is a floor kept a block ahead of it).
const HOLDS: &str = "semaphore:{m}:holds";

/// The master's token counter: the last token it granted, checked against the config's
/// floor, which must never fall behind it.
fn token_on(server: &Server) -> u64 {
    let last = server.int(&["HGET", HOLDS, "token"]) as u64;
    let floor = server.int(&["HGET", CONFIG, "token"]) as u64;
    assert!(floor >= last, "the config's floor {floor} is behind {last}");
    last
}
/// Slots on a master: held ones are scored by their lease expiry (ms), above 2^32.
const SLOTS: &str = "semaphore:{m}:slots";
const HELD: &str = "4294967296";

fn held_on(server: &Server) -> i64 {
    server.int(&["ZCOUNT", SLOTS, HELD, "+inf"])
}

#[tokio::test]
async fn masters_that_agree_grant_in_one_round_trip() {
    let servers = masters(3);
    let sem = sem_on(&servers, "m", 2).build().await.unwrap();
    // Loads the scripts everywhere, and brings the token counters (each master started
    // its own at its own clock) to one value.
    let first = sem.acquire().await.unwrap();
    let first_token = first.fencing_token();
    first.release().await.unwrap();
    for server in &servers {
        assert_eq!(
            token_on(server),
            first_token,
            "the first grant wrote its token back everywhere"
        );
        server.cmd(&["CONFIG", "RESETSTAT"]);
    }
    let permit = sem.acquire().await.unwrap();
    assert_eq!(permit.slots(), &[0]);
    assert_eq!(permit.fencing_token(), first_token + 1);
    for server in &servers {
        assert_eq!(server.evalsha_calls(), 1, "one acquire per master");
        assert_eq!(held_on(server), 1);
        assert_eq!(token_on(server), permit.fencing_token());
    }
    permit.release().await.unwrap();
    for server in &servers {
        assert_eq!(server.evalsha_calls(), 2, "one release per master");
        assert_eq!(held_on(server), 0);
    }
    assert_eq!(sem.value().await.unwrap(), 2);
}

#[tokio::test]
async fn a_slot_held_on_one_master_only_is_settled() {
    let servers = masters(3);
    // A permit on the third master alone: its slot 0 is taken there, nowhere else.
    let lone = sem(&servers[2], "m", 2).build().await.unwrap();
    let stray = lone.acquire().await.unwrap();
    let sem = sem_on(&servers, "m", 2).build().await.unwrap();
    assert_eq!(
        sem.value().await.unwrap(),
        2,
        "a minority does not hold a slot"
    );

    // Masters 1 and 2 grant slot 0, master 3 grants slot 1: slot 0 has the majority, and
    // master 3 gives slot 1 back before the acquire returns.
    let first = sem.acquire().await.unwrap();
    assert_eq!(first.slots(), &[0]);
    assert_eq!(held_on(&servers[2]), 1, "only the stray holds on master 3");
    // Now every master grants slot 1.
    let second = sem.acquire().await.unwrap();
    assert_eq!(second.slots(), &[1]);
    for server in &servers {
        assert!(server.int(&["ZSCORE", SLOTS, "1"]) > 4_294_967_296);
    }
    assert_eq!(sem.value().await.unwrap(), 0);
    assert!(sem.locked().await.unwrap());
    assert!(sem.try_acquire().await.unwrap().is_none());

    // Slot 0 stays held on master 3 by the stray: on a majority it is free.
    first.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 1);
    second.release().await.unwrap();
    stray.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 2);
}

#[tokio::test]
async fn the_highest_token_is_written_back_to_the_majority() {
    let servers = masters(3);
    let sem = sem_on(&servers, "m", 1).build().await.unwrap();
    sem.acquire().await.unwrap().release().await.unwrap();
    // Master 1 counts far ahead of the others (it granted while they were away).
    servers[0].cmd(&["HINCRBY", HOLDS, "token", "1000"]);
    let ahead = servers[0].int(&["HGET", HOLDS, "token"]) as u64;
    let permit = sem.acquire().await.unwrap();
    assert_eq!(
        permit.fencing_token(),
        ahead + 1,
        "the highest of the grant"
    );
    for server in &servers {
        assert_eq!(token_on(server), ahead + 1);
    }
    permit.release().await.unwrap();
    let next = sem.acquire().await.unwrap();
    assert_eq!(next.fencing_token(), ahead + 2);
    next.release().await.unwrap();
}

#[tokio::test]
async fn tokens_rise_also_after_a_master_was_down() {
    let mut servers = masters(3);
    let lease = Duration::from_millis(400);
    let sem = sem_on(&servers, "m", 1).lease(lease).build().await.unwrap();
    let mut last = 0;
    let grant = async |last: &mut u64| {
        let permit = sem.acquire().await.unwrap();
        assert!(
            permit.fencing_token() > *last,
            "token {} after {last}",
            permit.fencing_token()
        );
        *last = permit.fencing_token();
        permit.release().await.unwrap();
    };
    for _ in 0..3 {
        grant(&mut last).await;
    }
    servers[0].kill();
    for _ in 0..3 {
        grant(&mut last).await;
    }
    // The delayed-restart rule: back, empty, only after one lease.
    tokio::time::sleep(lease).await;
    servers[0].restart();
    for _ in 0..3 {
        grant(&mut last).await;
    }
    servers[1].kill();
    for _ in 0..3 {
        grant(&mut last).await;
    }
    assert!(last >= 12, "{last}");
}

#[tokio::test]
async fn a_permit_spreads_to_a_master_restarted_empty() {
    let mut servers = masters(3);
    let lease = Duration::from_millis(300);
    let sem = sem_on(&servers, "m", 5).lease(lease).build().await.unwrap();
    let held: Vec<_> = [
        sem.acquire().await.unwrap(),
        sem.acquire().await.unwrap(),
        sem.acquire().await.unwrap(),
    ]
    .into();
    servers[2].kill();
    tokio::time::sleep(lease).await;
    servers[2].restart();
    // Renewals take slots 0-2 on the empty master, out of order.
    eventually("the restarted master holds the three permits", || async {
        held_on(&servers[2]) == 3
    })
    .await;
    assert!(held.iter().all(|p| p.is_valid()));
    // That master now grants slot 3 like the others: one round trip, the same slot.
    let lone = testkit::sem(&servers[2], "m", 5).build().await.unwrap();
    assert_eq!(lone.value().await.unwrap(), 2);
    let fourth = sem.acquire().await.unwrap();
    assert_eq!(fourth.slots(), &[3]);
    assert_eq!(held_on(&servers[2]), 4);
    assert_eq!(lone.value().await.unwrap(), 1);
    fourth.release().await.unwrap();
    for permit in held {
        permit.release().await.unwrap();
    }
    assert_eq!(lone.value().await.unwrap(), 5);
    assert_eq!(sem.value().await.unwrap(), 5);
}

#[tokio::test]
async fn tokens_keep_rising_through_a_rolling_restart() {
    let mut servers = masters(3);
    let lease = Duration::from_millis(300);
    let sem = sem_on(&servers, "m", 1).lease(lease).build().await.unwrap();
    let mut last = 0;
    for (restarted, server) in servers.iter_mut().enumerate() {
        for _ in 0..3 {
            let permit = sem.acquire().await.unwrap();
            assert!(
                permit.fencing_token() > last,
                "after restarting {restarted}"
            );
            last = permit.fencing_token();
            permit.release().await.unwrap();
        }
        // Each master in turn, down for one lease, back empty: its token counter starts
        // again from its clock, above anything it counted before.
        server.kill();
        tokio::time::sleep(lease).await;
        server.restart();
    }
    let permit = sem.acquire().await.unwrap();
    assert!(permit.fencing_token() > last, "after the rolling restart");
    permit.release().await.unwrap();
}

#[tokio::test]
async fn a_paused_master_costs_at_most_one_request_timeout() {
    let servers = masters(3);
    let timeout = Duration::from_millis(100);
    let sem = sem_on(&servers, "m", 2)
        .lease(Duration::from_millis(900))
        .build()
        .await
        .unwrap();
    servers[2].pause();
    for _ in 0..5 {
        let started = Instant::now();
        let permit = sem.acquire().await.unwrap();
        let took = started.elapsed();
        assert!(
            took < timeout + Duration::from_millis(300),
            "acquire took {took:?} with one master paused"
        );
        permit.release().await.unwrap();
    }
    // Granted by masters 1 and 2; after SIGCONT the renewal spreads it to master 3.
    let permit = sem.acquire().await.unwrap();
    servers[2].resume();
    eventually("the resumed master holds the permit's slot", || async {
        held_on(&servers[2]) == 1
    })
    .await;
    assert!(permit.is_valid());
    permit.release().await.unwrap();
    for server in &servers {
        assert_eq!(held_on(server), 0);
    }
}

#[tokio::test]
async fn an_acquire_cancelled_while_a_master_hangs_leaves_nothing() {
    let servers = masters(3);
    let sem = sem_on(&servers, "m", 2).build().await.unwrap();
    servers[2].pause();
    // Masters 1 and 2 answer at once, master 3 not before the request timeout: the
    // acquire is dropped with a grant in hand.
    let cancelled = tokio::time::timeout(Duration::from_millis(30), sem.acquire()).await;
    assert!(cancelled.is_err(), "the acquire should still be waiting");
    servers[2].resume();
    eventually("every master is free again", || async {
        servers.iter().all(|s| held_on(s) == 0)
    })
    .await;
    assert_eq!(sem.value().await.unwrap(), 2);
}

#[tokio::test]
async fn two_masters_of_three_down_grant_nothing() {
    let mut servers = masters(3);
    let patient = sem_on(&servers, "m", 2).build().await.unwrap();
    let strict = sem_on(&servers, "m", 2)
        .raise_on_redis_errors(true)
        .build()
        .await
        .unwrap();
    servers[0].kill();
    servers[1].kill();

    let waited = patient
        .acquire_timeout(Duration::from_millis(300))
        .await
        .unwrap();
    assert!(waited.is_none(), "no majority, no permit");
    assert!(patient.try_acquire().await.unwrap().is_none());

    let started = Instant::now();
    let error = strict.acquire().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let Error::Quorum {
        needed,
        masters,
        failures,
    } = &error
    else {
        panic!("expected a quorum error, got {error}");
    };
    assert_eq!((*needed, *masters), (2, 3));
    let mut failed: Vec<String> = failures.iter().map(|f| f.master.clone()).collect();
    failed.sort();
    let mut down = vec![
        format!("127.0.0.1:{}", servers[0].port()),
        format!("127.0.0.1:{}", servers[1].port()),
    ];
    down.sort();
    assert_eq!(failed, down, "{error}");
    assert!(error.is_transient());
    // Nothing stays held on the master that answered.
    eventually("the live master is free", || async {
        held_on(&servers[2]) == 0
    })
    .await;
}

#[tokio::test]
async fn five_masters_survive_two_down() {
    let mut servers = masters(5);
    let sem = sem_on(&servers, "m", 1).build().await.unwrap();
    servers[1].kill();
    servers[3].kill();
    let permit = sem.acquire().await.unwrap();
    assert!(sem.try_acquire().await.unwrap().is_none(), "still 1 permit");
    assert_eq!(sem.value().await.unwrap(), 0);
    permit.release().await.unwrap();
    assert_eq!(sem.value().await.unwrap(), 1);
}

#[tokio::test]
async fn the_same_master_twice_is_refused() {
    let server = Server::start();
    let error = AsyncSemaphore::builder("m", 1)
        .masters([server.url(), server.url()])
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::InvalidArgument(why) if why.contains("twice")),
        "{error}"
    );
}

/// Tasks contend for `permits` on `servers`; `fault` runs meanwhile. Returns the highest
/// number of holders the observer saw and the number of grants.
async fn contend(
    servers: &mut Vec<Server>,
    permits: u32,
    lease: Duration,
    fault: impl AsyncFnOnce(&mut Vec<Server>),
) -> (u32, u64) {
    let observer = Server::start();
    let sem = sem_on(servers, "m", permits)
        .lease(lease)
        .build()
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let sem = sem.clone();
        let stop = Arc::clone(&stop);
        let url = observer.url();
        tasks.push(tokio::spawn(async move {
            let observer = Observer::connect(&url).await;
            let mut grants = 0u64;
            for _ in 0..2000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Some(permit) = sem.acquire_timeout(Duration::from_secs(5)).await.unwrap()
                else {
                    continue;
                };
                grants += 1;
                observer.enter().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                observer.exit().await;
                // A release may find its lease lost while a master was down: that is the
                // permit's business, the observer checks the count.
                let _ = permit.release().await;
            }
            grants
        }));
    }
    fault(servers).await;
    stop.store(true, Ordering::Relaxed);
    let mut grants = 0;
    for task in tasks {
        grants += task.await.unwrap();
    }
    let (max, inside) = Observer::connect(&observer.url()).await.seen().await;
    assert_eq!(inside, 0);
    (max, grants)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_restarted_empty_after_a_lease_admits_no_extra_holder() {
    let mut servers = masters(3);
    let lease = Duration::from_millis(500);
    let (max, grants) = contend(&mut servers, 2, lease, async |servers| {
        tokio::time::sleep(Duration::from_millis(300)).await;
        servers[1].kill();
        tokio::time::sleep(lease + Duration::from_millis(100)).await;
        servers[1].restart();
        tokio::time::sleep(Duration::from_millis(500)).await;
        servers[0].pause();
        tokio::time::sleep(Duration::from_millis(300)).await;
        servers[0].resume();
        tokio::time::sleep(Duration::from_millis(300)).await;
    })
    .await;
    assert!(max <= 2, "observer saw {max} holders of 2");
    assert_eq!(max, 2, "6 tasks should fill 2 permits");
    assert!(grants > 50, "only {grants} grants");
}

#[tokio::test]
async fn acquire_many_needs_each_slot_on_a_majority() {
    let servers = masters(3);
    // Slot 0 is taken on master 3 alone: it grants 1 and 2 where the others grant 0 and 1.
    let lone = testkit::sem(&servers[2], "m", 4).build().await.unwrap();
    let stray = lone.acquire().await.unwrap();
    let sem = sem_on(&servers, "m", 4).build().await.unwrap();
    let pair = sem.acquire_many(2).await.unwrap();
    assert_eq!(pair.slots(), &[0, 1], "0 on masters 1-2, 1 on all three");
    assert_eq!(pair.permits(), 2);
    // Master 3 gave back slot 2, which no majority held.
    assert_eq!(held_on(&servers[2]), 2);
    assert_eq!(sem.value().await.unwrap(), 2);
    assert!(sem.try_acquire_many(3).await.unwrap().is_none());
    let rest = sem.acquire_many(2).await.unwrap();
    assert_eq!(rest.slots(), &[2, 3]);
    assert_eq!(sem.value().await.unwrap(), 0);
    for permit in [pair, rest, stray] {
        permit.release().await.unwrap();
    }
    assert_eq!(sem.value().await.unwrap(), 4);
}

#[tokio::test]
async fn a_permit_is_lost_when_its_majority_is() {
    let mut servers = masters(3);
    let lease = Duration::from_millis(400);
    let sem = sem_on(&servers, "m", 1).lease(lease).build().await.unwrap();
    let permit = sem.acquire().await.unwrap();
    // One master down: the other two still renew it.
    servers[0].kill();
    tokio::time::sleep(lease).await;
    assert!(permit.is_valid(), "a majority still holds it");
    servers[1].kill();
    let killed = Instant::now();
    tokio::time::timeout(lease * 2, permit.lost())
        .await
        .expect("lost once renewals cannot reach a majority");
    assert!(killed.elapsed() <= lease + Duration::from_millis(100));
    assert!(!permit.is_valid());
    assert!(matches!(
        permit.release().await,
        Err(Error::PermitLost { .. })
    ));
}

#[tokio::test]
async fn a_permit_spread_into_keys_made_anew_does_not_lower_the_token_counter() {
    let servers = masters(3);
    let lease = Duration::from_millis(300);
    let sem = sem_on(&servers, "m", 5).lease(lease).build().await.unwrap();
    let old = sem.acquire().await.unwrap();
    let mut last = old.fencing_token();
    for _ in 0..5 {
        let permit = sem.acquire().await.unwrap();
        last = last.max(permit.fencing_token());
        permit.release().await.unwrap();
    }
    // On two masters in turn, the slots and holds vanish while the config stays (as when
    // every lease there lapsed and the keys expired): the old permit's renewal spreads
    // back into them with its old, lower token.
    for server in &servers[..2] {
        server.cmd(&["DEL", SLOTS, HOLDS]);
        eventually("the old permit spreads back", || async {
            held_on(server) == 1
        })
        .await;
    }
    assert!(old.is_valid());
    // A grant by those two alone must still be above every token given before.
    servers[2].pause();
    let permit = sem.acquire().await.unwrap();
    servers[2].resume();
    assert!(
        permit.fencing_token() > last,
        "token {} repeats one at or below {last}",
        permit.fencing_token()
    );
    for server in &servers[..2] {
        token_on(server);
    }
    permit.release().await.unwrap();
    old.release().await.unwrap();
}
