//! The façade's acquires over scripted masters ([`FakeLink`]), which drive the acquire
//! state machine (`acquire/`) as a user does. As deadpool tests its cancellation, the future
//! is dropped at each kind of `.await` (a request in flight, a sleep after busy, after an
//! unanswered round, in the line behind another waiter), and what is given back is counted
//! exactly, after `flush()` waited for the background releases. Time is Tokio's paused
//! clock, so sleeps and timeouts are exact.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::core::Core;
use crate::error::Error;
use crate::link::Link;
use crate::link::fake::{FakeLink, Reply, Sent, busy, granted};
use crate::quorum::Quorum;
use crate::semaphore::AsyncSemaphore;

/// A semaphore of 2 permits on fake masters; `acquire(n)` answers the n-th acquire call
/// (from 0) of each master; a release frees 1, a renewal holds what it is asked.
fn semaphore(
    masters: usize,
    fair: bool,
    acquire: impl Fn(usize, usize) -> Reply + Send + Sync + Clone + 'static,
) -> (AsyncSemaphore, Vec<Arc<FakeLink>>) {
    let links: Vec<Arc<FakeLink>> = (0..masters)
        .map(|m| {
            let asked = AtomicUsize::new(0);
            let acquire = acquire.clone();
            FakeLink::new(&format!("m{m}:6379"), move |sent: &Sent| {
                match sent.script {
                    "acquire.lua" => acquire(m, asked.fetch_add(1, Ordering::SeqCst)),
                    "renew.lua" => {
                        Reply::Ints(sent.args[6..].iter().map(|s| s.parse().unwrap()).collect())
                    }
                    "release.lua" => Reply::Int(1),
                    other => panic!("unexpected {other}"),
                }
            })
        })
        .collect();
    let dyn_links = links
        .iter()
        .map(|l| Arc::clone(l) as Arc<dyn Link>)
        .collect();
    let config = Config {
        name: "fake".into(),
        lease: Duration::from_secs(10),
        raise_on_redis_errors: false,
        outage_timeout: Some(Duration::from_secs(30)),
        fair,
    };
    let core = Core::new(config, Quorum::new(dyn_links, "fake", 2, true));
    (AsyncSemaphore::new(core), links)
}

/// The release calls each master got: (id, line, leave).
fn releases(links: &[Arc<FakeLink>]) -> Vec<Vec<(String, String, String)>> {
    links
        .iter()
        .map(|l| {
            l.calls("release.lua")
                .into_iter()
                .map(|s| (s.args[1].clone(), s.args[2].clone(), s.args[3].clone()))
                .collect()
        })
        .collect()
}

fn acquires(links: &[Arc<FakeLink>]) -> Vec<usize> {
    links.iter().map(|l| l.calls("acquire.lua").len()).collect()
}

/// The permit id an acquire call asked for (ARGV[2]).
fn asked_id(link: &FakeLink, n: usize) -> String {
    link.calls("acquire.lua")[n].args[1].clone()
}

const SHORT: Duration = Duration::from_millis(100);

#[tokio::test(start_paused = true)]
async fn a_grant_is_a_permit_and_a_dropped_permit_one_release() {
    let (sem, links) = semaphore(1, true, |_, _| granted(5, &[1]));
    let permit = sem.acquire().await.unwrap();
    assert_eq!((permit.fencing_token(), permit.slots()), (5, &[1][..]));
    let id = permit.id().to_string();
    drop(permit);
    sem.flush().await;
    assert_eq!(releases(&links), [vec![(id, String::new(), "0".into())]]);
    assert_eq!(acquires(&links), [1]);
}

#[tokio::test(start_paused = true)]
async fn dropped_with_a_request_in_flight_releases_the_id_everywhere() {
    let (sem, links) = semaphore(3, false, |_, _| Reply::Hang);
    assert!(tokio::time::timeout(SHORT, sem.acquire()).await.is_err());
    sem.flush().await;
    let id = asked_id(&links[0], 0);
    for master in releases(&links) {
        assert_eq!(master, [(id.clone(), String::new(), "0".into())]);
    }
}

#[tokio::test(start_paused = true)]
async fn dropped_while_sleeping_after_a_clear_busy_gives_nothing_back() {
    let (sem, links) = semaphore(1, false, |_, _| busy(60_000));
    assert!(tokio::time::timeout(SHORT, sem.acquire()).await.is_err());
    sem.flush().await;
    assert_eq!(acquires(&links), [1], "one ask, then a sleep");
    assert_eq!(releases(&links), [vec![]]);
}

#[tokio::test(start_paused = true)]
async fn a_fair_waiter_that_gives_up_takes_its_line_off_the_queue() {
    let (sem, links) = semaphore(1, true, |_, _| busy(60_000));
    assert!(tokio::time::timeout(SHORT, sem.acquire()).await.is_err());
    sem.flush().await;
    let id = asked_id(&links[0], 0);
    let line = links[0].calls("acquire.lua")[0].args[6].clone();
    // Its last waiter gave up: the line leaves the queue ("1") with the registration.
    assert_eq!(releases(&links), [vec![(id, line, "1".into())]]);
}

#[tokio::test(start_paused = true)]
async fn a_head_that_gives_up_hands_the_line_to_the_waiter_behind() {
    let (sem, links) = semaphore(1, true, |_, _| busy(60_000));
    let spawn = |sem: &AsyncSemaphore| {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire().await })
    };
    let head = spawn(&sem);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let behind = spawn(&sem);
    tokio::time::sleep(Duration::from_millis(1)).await;
    // Only the head asked; the waiter behind it waits for the line's lock.
    assert_eq!(acquires(&links), [1]);
    head.abort();
    assert!(head.await.unwrap_err().is_cancelled());
    sem.flush().await;
    let line = links[0].calls("acquire.lua")[0].args[6].clone();
    // The head gave its id back and left the line queued ("0"): a waiter stands in it.
    assert_eq!(
        releases(&links),
        [vec![(asked_id(&links[0], 0), line.clone(), "0".into())]]
    );
    // The waiter behind is the head now: it asks, and giving up takes the line off ("1").
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(acquires(&links), [2]);
    behind.abort();
    assert!(behind.await.unwrap_err().is_cancelled());
    sem.flush().await;
    assert_eq!(
        releases(&links)[0][1],
        (asked_id(&links[0], 1), line, "1".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_gives_up_in_the_line_gives_nothing_back() {
    let (sem, links) = semaphore(1, true, |_, _| busy(60_000));
    let head = {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire().await })
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    // Behind the head, out of time before its turn: it never asked.
    assert!(tokio::time::timeout(SHORT, sem.acquire()).await.is_err());
    sem.flush().await;
    assert_eq!(acquires(&links), [1]);
    assert_eq!(releases(&links), [vec![]]);
    head.abort();
    let _ = head.await;
}

#[tokio::test(start_paused = true)]
async fn dropped_after_an_unanswered_round_releases_the_id() {
    // Master 2 is down, and masters 0 and 1 split: the round is busy but unanswered by one
    // master, which may grant later.
    let (sem, links) = semaphore(3, false, |m, _| match m {
        0 => granted(5, &[0]),
        1 => granted(5, &[1]),
        _ => Reply::Down,
    });
    assert!(tokio::time::timeout(SHORT, sem.acquire()).await.is_err());
    sem.flush().await;
    let asks = acquires(&links);
    assert!(asks[0] >= 1, "{asks:?}");
    let released = releases(&links);
    // Each round's split grants are given back where they were made (one release per
    // round on masters 0 and 1); the guard's release covers every master once more.
    assert_eq!(released[0].len(), asks[0] + 1, "{released:?}");
    assert_eq!(released[1].len(), asks[1] + 1, "{released:?}");
    assert_eq!(released[2].len(), 1, "{released:?}");
}

#[tokio::test(start_paused = true)]
async fn a_busy_try_neither_waits_nor_gives_anything_back() {
    let (sem, links) = semaphore(1, true, |_, _| busy(50));
    assert!(sem.try_acquire().await.unwrap().is_none());
    sem.flush().await;
    assert_eq!(acquires(&links), [1]);
    assert_eq!(releases(&links), [vec![]]);
    // A try respects the queue without joining it (queue mode 2).
    assert_eq!(links[0].calls("acquire.lua")[0].args[4], "2");
}

#[tokio::test(start_paused = true)]
async fn a_timed_acquire_asks_again_after_the_earliest_expiry() {
    // Busy with a lease ending in 30 ms, then granted.
    let (sem, links) = semaphore(
        1,
        false,
        |_, n| if n == 0 { busy(30) } else { granted(6, &[0]) },
    );
    let started = tokio::time::Instant::now();
    let permit = sem
        .acquire_timeout(Duration::from_secs(1))
        .await
        .unwrap()
        .expect("granted at the second ask");
    // The second ask came 31 ms after the first (the expiry, plus a millisecond).
    assert_eq!(started.elapsed(), Duration::from_millis(31));
    assert_eq!(acquires(&links), [2]);
    drop(permit);
}

#[tokio::test(start_paused = true)]
async fn an_outage_longer_than_the_outage_timeout_ends_the_wait() {
    let (sem, links) = semaphore(1, false, |_, _| Reply::Down);
    let started = tokio::time::Instant::now();
    match sem.acquire().await {
        Err(Error::Outage { lasted, .. }) => {
            assert!(lasted >= Duration::from_secs(30), "{lasted:?}");
        }
        other => panic!("expected an outage, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(31));
    sem.flush().await;
    // The guard gave back what the unanswered requests may have been granted.
    assert_eq!(releases(&links)[0].len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_head_gives_back_before_the_next_head_asks() {
    // The head's request hangs; the next head's first ask must come after the give-back.
    let (sem, links) = semaphore(
        1,
        false,
        |_, n| if n == 0 { Reply::Hang } else { busy(60_000) },
    );
    let spawn = |sem: &AsyncSemaphore| {
        let sem = sem.clone();
        tokio::spawn(async move { sem.acquire().await })
    };
    let head = spawn(&sem);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let behind = spawn(&sem);
    tokio::time::sleep(Duration::from_millis(1)).await;
    head.abort();
    let _ = head.await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    sem.flush().await;
    let order: Vec<(&str, String)> = links[0]
        .log()
        .iter()
        .map(|s| (s.script, s.args[1].clone()))
        .collect();
    let first = asked_id(&links[0], 0);
    assert_eq!(order[0], ("acquire.lua", first.clone()), "{order:?}");
    assert_eq!(order[1], ("release.lua", first), "{order:?}");
    assert_eq!(order[2].0, "acquire.lua", "{order:?}");
    behind.abort();
    let _ = behind.await;
}
