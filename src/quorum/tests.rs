//! The quorum over scripted masters ([`FakeLink`]): what each master is sent, exactly, for
//! each combination of answers. The rules themselves are checked in `decide.rs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::decide::Deadline;
use super::*;
use crate::link::fake::{FakeLink, Reply, granted};
use crate::lua::{Acquired, Queue};

const LEASE: Duration = Duration::from_secs(10);

/// A quorum of fake masters, each answering an acquire with its entry of `acquire` and
/// every renewal with the slots it was asked to hold (or `renew` when given).
fn quorum(acquire: Vec<Reply>, hold: Option<Reply>) -> (Quorum, Vec<Arc<FakeLink>>) {
    let links: Vec<Arc<FakeLink>> = acquire
        .into_iter()
        .enumerate()
        .map(|(i, reply)| {
            let hold = hold.clone();
            FakeLink::master(&format!("m{i}:6379"), move |sent| match sent.script {
                "acquire.lua" => Some(reply.clone()),
                "renew.lua" => hold.clone(),
                _ => None,
            })
        })
        .collect();
    let dyn_links = links
        .iter()
        .map(|l| Arc::clone(l) as Arc<dyn Link>)
        .collect();
    (Quorum::new(dyn_links, "q", 3, true), links)
}

fn ask(queue: Queue) -> Ask<'static> {
    Ask {
        id: "id1",
        k: 1,
        queue,
        line: "line1",
        more: false,
        arrival: 1,
        waits: true,
    }
}

fn later() -> Deadline {
    Deadline::of(Instant::now(), LEASE)
}

/// How many times each master was sent `script`.
fn counts(links: &[Arc<FakeLink>], script: &str) -> Vec<usize> {
    links.iter().map(|l| l.calls(script).len()).collect()
}

#[tokio::test]
async fn masters_that_agree_grant_in_one_round_trip() {
    let (quorum, links) = quorum(
        vec![granted(9, &[0]), granted(9, &[0]), granted(9, &[0])],
        None,
    );
    let round = quorum
        .acquire(&ask(Queue::Ignore), LEASE, later())
        .await
        .unwrap();
    assert_eq!(
        round.outcome,
        Acquired::Granted {
            token: 9,
            slots: vec![0]
        }
    );
    assert_eq!(round.granted_by, 3);
    assert!(!round.unanswered);
    assert_eq!(counts(&links, "acquire.lua"), [1, 1, 1]);
    assert_eq!(counts(&links, "renew.lua"), [0, 0, 0]);
    assert_eq!(counts(&links, "release.lua"), [0, 0, 0]);
}

#[tokio::test]
async fn the_highest_token_is_written_back_to_the_master_behind() {
    let (quorum, links) = quorum(
        vec![granted(7, &[0]), granted(9, &[0]), granted(9, &[0])],
        None,
    );
    let round = quorum
        .acquire(&ask(Queue::Ignore), LEASE, later())
        .await
        .unwrap();
    assert_eq!(
        round.outcome,
        Acquired::Granted {
            token: 9,
            slots: vec![0]
        }
    );
    assert_eq!(counts(&links, "renew.lua"), [1, 0, 0]);
    let hold = &links[0].calls("renew.lua")[0];
    // ARGV: permits, id, lease, token, claim, line, slots.
    assert_eq!(hold.args[1..], ["id1", "10000", "9", "1", "", "0"]);
    assert_eq!(counts(&links, "release.lua"), [0, 0, 0]);
}

#[tokio::test]
async fn split_grants_are_given_back_where_they_were_made() {
    let (quorum, links) = quorum(vec![granted(7, &[0]), granted(7, &[1]), Reply::Down], None);
    let round = quorum
        .acquire(&ask(Queue::Ignore), LEASE, later())
        .await
        .unwrap();
    assert_eq!(round.outcome, Acquired::Busy { wait_ms: None });
    assert!(round.unanswered);
    assert_eq!(counts(&links, "release.lua"), [1, 1, 0]);
    assert_eq!(links[0].calls("release.lua")[0].args[1], "id1");
}

#[tokio::test]
async fn too_few_answers_name_each_failure_and_give_back_the_grant() {
    let (quorum, links) = quorum(vec![granted(7, &[0]), Reply::Down, Reply::Down], None);
    match quorum.acquire(&ask(Queue::Ignore), LEASE, later()).await {
        Err(Error::Quorum {
            needed: 2,
            masters: 3,
            failures,
        }) => {
            let names: Vec<&str> = failures.iter().map(|f| f.master.as_str()).collect();
            assert_eq!(names, ["m1:6379", "m2:6379"]);
        }
        other => panic!("expected a quorum error, got {other:?}"),
    }
    assert_eq!(counts(&links, "release.lua"), [1, 0, 0]);
}

#[tokio::test]
async fn a_grant_complete_past_its_validity_is_given_back() {
    let (quorum, links) = quorum(
        vec![granted(9, &[0]), granted(9, &[0]), granted(9, &[0])],
        None,
    );
    let passed = Deadline(Instant::now());
    let round = quorum
        .acquire(&ask(Queue::Ignore), LEASE, passed)
        .await
        .unwrap();
    assert!(matches!(round.outcome, Acquired::Busy { .. }));
    assert_eq!(counts(&links, "release.lua"), [1, 1, 1]);
}

#[tokio::test]
async fn a_settle_that_fails_leaves_no_majority_and_gives_everything_back() {
    // Master 0 granted a lower token, master 2 is busy: the settle of master 0 is needed
    // for a majority, and it fails.
    let (quorum, links) = quorum(
        vec![
            granted(7, &[0]),
            granted(9, &[0]),
            crate::link::fake::busy(40),
        ],
        Some(Reply::Down),
    );
    let round = quorum
        .acquire(&ask(Queue::Ignore), LEASE, later())
        .await
        .unwrap();
    assert!(matches!(round.outcome, Acquired::Busy { .. }));
    assert_eq!(counts(&links, "renew.lua"), [1, 0, 0]);
    assert_eq!(counts(&links, "release.lua"), [1, 1, 0]);
}

#[tokio::test]
async fn a_queued_waiter_leaves_the_queue_of_a_master_that_said_busy() {
    let (quorum, links) = quorum(
        vec![
            granted(9, &[0]),
            granted(9, &[0]),
            crate::link::fake::busy(40),
        ],
        None,
    );
    let round = quorum
        .acquire(&ask(Queue::Join), LEASE, later())
        .await
        .unwrap();
    assert!(matches!(round.outcome, Acquired::Granted { .. }));
    assert_eq!(counts(&links, "renew.lua"), [0, 0, 1]);
    // The hold takes the line off that master's queue (ARGV[6]).
    assert_eq!(links[2].calls("renew.lua")[0].args[5], "line1");
    assert_eq!(round.granted_by, 3);
}

#[tokio::test]
async fn one_master_is_the_case_of_a_majority_of_one() {
    let (quorum, links) = quorum(vec![Reply::Down], None);
    match quorum.acquire(&ask(Queue::Ignore), LEASE, later()).await {
        // With one master its own error is the answer, not a quorum of one.
        Err(Error::Redis { master, .. }) => assert_eq!(master, "m0:6379"),
        other => panic!("expected the master's error, got {other:?}"),
    }
    assert_eq!(counts(&links, "release.lua"), [0]);
}

#[tokio::test]
async fn renewal_verdicts_follow_what_the_masters_hold() {
    let cases = [
        (
            vec![Reply::Ints(vec![0]), Reply::Ints(vec![0]), Reply::Down],
            Some(true),
        ),
        (
            vec![
                Reply::Ints(vec![0]),
                Reply::Ints(vec![]),
                Reply::Ints(vec![]),
            ],
            Some(false),
        ),
        (vec![Reply::Ints(vec![0]), Reply::Down, Reply::Down], None),
    ];
    for (holds, expected) in cases {
        let links: Vec<Arc<dyn Link>> = holds
            .into_iter()
            .enumerate()
            .map(|(i, reply)| {
                FakeLink::new(&format!("m{i}:6379"), move |_| reply.clone()) as Arc<dyn Link>
            })
            .collect();
        let quorum = Quorum::new(links, "q", 3, true);
        let renewed = quorum.renew("id1", &[0], 9, LEASE, || vec![0]).await;
        assert_eq!(renewed.ok(), expected);
    }
}

#[tokio::test]
async fn an_unreadable_reply_is_a_failure_of_that_master() {
    let link = FakeLink::new("odd:6379", |_| Reply::Ints(vec![1, 2]));
    let quorum = Quorum::new(vec![link as Arc<dyn Link>], "q", 3, true);
    // A release's reply is a count: a list cannot be read as one.
    assert!(matches!(
        quorum.release("id1", &Leave::Stay, &[]).await,
        Err(Error::Redis { .. })
    ));
    let errors = quorum.master_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].master, "odd:6379");
}
