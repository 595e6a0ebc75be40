//! The rules of [`super`] over a matrix of per-master replies: every combination of the
//! answers a master can give (granted, busy, failed) on one, three and five masters.

use super::*;

/// One master's answer to an acquire, in the matrix.
#[derive(Debug, Clone)]
enum Answer {
    Granted(u64, Vec<u32>),
    Busy(Option<u64>),
    Failed,
}

fn replies(answers: &[Answer]) -> Replies {
    let mut replies = Replies::default();
    for (master, answer) in answers.iter().enumerate() {
        match answer {
            Answer::Granted(token, slots) => replies.grants.push(MasterGrant {
                master,
                token: *token,
                slots: slots.clone(),
            }),
            Answer::Busy(wait) => replies.busy.push((master, *wait)),
            Answer::Failed => replies.failed += 1,
        }
    }
    replies
}

/// Every answer a master can give in the matrix: slot 0 or 1 or both, two tokens,
/// busy with and without a hint, a failure (an error or no reply: the quorum sees the
/// same).
fn answers() -> Vec<Answer> {
    vec![
        Answer::Granted(7, vec![0]),
        Answer::Granted(9, vec![0]),
        Answer::Granted(7, vec![1]),
        Answer::Granted(8, vec![0, 1]),
        Answer::Busy(Some(40)),
        Answer::Busy(None),
        Answer::Failed,
    ]
}

/// Every combination of `answers()` over `m` masters.
fn matrix(m: usize) -> Vec<Vec<Answer>> {
    let mut all = vec![Vec::new()];
    for _ in 0..m {
        all = all
            .into_iter()
            .flat_map(|prefix| {
                answers().into_iter().map(move |a| {
                    let mut next = prefix.clone();
                    next.push(a);
                    next
                })
            })
            .collect();
    }
    all
}

#[test]
fn majorities() {
    assert_eq!(Majority::of(1).needed(), 1);
    assert_eq!(Majority::of(2).needed(), 2);
    assert_eq!(Majority::of(3).needed(), 2);
    assert_eq!(Majority::of(4).needed(), 3);
    assert_eq!(Majority::of(5).needed(), 3);
    assert!(!Majority::of(3).lost_to(1));
    assert!(Majority::of(3).lost_to(2));
    assert!(Majority::of(1).lost_to(1));
    assert!(!Majority::of(5).lost_to(2));
    assert_eq!(Majority::of(3).held([&[0, 1][..], &[1], &[2]]), vec![1]);
    assert_eq!(Majority::of(3).reached([5, 3, 4]), 4);
    assert_eq!(Majority::of(3).reached([5]), 0);
}

#[test]
fn validity_leaves_room_for_drift() {
    assert_eq!(
        validity(Duration::from_secs(10)),
        Duration::from_millis(9898)
    );
    assert_eq!(validity(Duration::from_millis(1)), Duration::ZERO);
    let sent = Instant::now();
    let deadline = Deadline::of(sent, Duration::from_secs(10));
    assert!(deadline.holds_at(sent + Duration::from_millis(9897)));
    assert!(!deadline.holds_at(sent + Duration::from_millis(9898)));
}

/// The safety rules, over every combination of answers from 1, 3 and 5 masters, for
/// one and two slots, queued or not.
#[test]
fn acquire_plans_over_the_reply_matrix() {
    let mut kept_plans = 0;
    for m in [1, 3, 5] {
        let majority = Majority::of(m);
        let combinations = if m == 5 {
            // 7^5 = 16,807 combinations: every one, still well under a second.
            matrix(5)
        } else {
            matrix(m)
        };
        for answers in combinations {
            let replies = replies(&answers);
            let granted: Vec<usize> = replies.grants.iter().map(|g| g.master).collect();
            for k in [1, 2] {
                for queued in [false, true] {
                    let plan = plan_acquire(majority, &replies, k, queued);
                    let case = format!("{answers:?} k={k} queued={queued}");
                    match plan {
                        Plan::NoQuorum { release } => {
                            assert!(majority.lost_to(replies.failed), "{case}");
                            assert_eq!(release, granted, "{case}: gives back every grant");
                        }
                        Plan::Busy { release, wait_ms } => {
                            assert!(!majority.lost_to(replies.failed), "{case}");
                            assert_eq!(release, granted, "{case}: gives back every grant");
                            let votes =
                                majority.held(replies.grants.iter().map(|g| g.slots.as_slice()));
                            assert!(votes.len() < k, "{case}: busy with {votes:?} held");
                            let hint = replies.busy.iter().filter_map(|(_, w)| *w).min();
                            assert_eq!(wait_ms, hint, "{case}");
                        }
                        Plan::Keep {
                            slots,
                            token,
                            exact,
                            settle,
                        } => {
                            kept_plans += 1;
                            assert_eq!(slots.len(), k, "{case}");
                            // Each kept slot is granted on a majority to this id.
                            for slot in &slots {
                                let on = replies
                                    .grants
                                    .iter()
                                    .filter(|g| g.slots.contains(slot))
                                    .count();
                                assert!(on >= majority.needed(), "{case}: slot {slot}");
                            }
                            // The lowest such slots.
                            let lowest: Vec<u32> = majority
                                .held(replies.grants.iter().map(|g| g.slots.as_slice()))
                                .into_iter()
                                .take(k)
                                .collect();
                            assert_eq!(slots, lowest, "{case}");
                            // The token is the highest of the grants holding a kept slot.
                            let highest = replies
                                .grants
                                .iter()
                                .filter(|g| g.slots.iter().any(|s| slots.contains(s)))
                                .map(|g| g.token)
                                .max();
                            assert_eq!(Some(token), highest, "{case}");
                            // Every grant is exact or settled, never both, never lost.
                            for g in &replies.grants {
                                let is_exact = g.slots == slots && g.token == token;
                                assert_eq!(exact.contains(&g.master), is_exact, "{case}");
                                assert_eq!(settle.contains(&g.master), !is_exact, "{case}");
                            }
                            // A queued waiter's line leaves the busy masters' queues.
                            for (m, _) in &replies.busy {
                                assert_eq!(settle.contains(m), queued, "{case}");
                            }
                            // Failed masters are never sent a settle (they are released
                            // by the caller's guard if need be).
                            assert_eq!(
                                exact.len() + settle.len(),
                                replies.grants.len() + if queued { replies.busy.len() } else { 0 },
                                "{case}"
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(kept_plans > 1000, "the matrix reaches grants: {kept_plans}");
}

#[test]
fn masters_that_agree_need_no_settling() {
    let replies = replies(&[
        Answer::Granted(9, vec![0]),
        Answer::Granted(9, vec![0]),
        Answer::Granted(9, vec![0]),
    ]);
    assert_eq!(
        plan_acquire(Majority::of(3), &replies, 1, true),
        Plan::Keep {
            slots: vec![0],
            token: 9,
            exact: vec![0, 1, 2],
            settle: vec![],
        }
    );
}

#[test]
fn a_lower_token_or_another_slot_is_settled() {
    let replies = replies(&[
        Answer::Granted(7, vec![0]),
        Answer::Granted(9, vec![0]),
        Answer::Granted(7, vec![1]),
    ]);
    assert_eq!(
        plan_acquire(Majority::of(3), &replies, 1, false),
        Plan::Keep {
            slots: vec![0],
            token: 9,
            exact: vec![1],
            settle: vec![0, 2],
        }
    );
}

#[test]
fn split_grants_are_given_back() {
    // 0 on one master, 1 on another, the third failed: no slot has a majority.
    let replies = replies(&[
        Answer::Granted(7, vec![0]),
        Answer::Granted(7, vec![1]),
        Answer::Failed,
    ]);
    assert_eq!(
        plan_acquire(Majority::of(3), &replies, 1, false),
        Plan::Busy {
            release: vec![0, 1],
            wait_ms: None,
        }
    );
    // Two failures of three: no quorum, even with a grant in hand.
    let replies = self::replies(&[Answer::Granted(7, vec![0]), Answer::Failed, Answer::Failed]);
    assert_eq!(
        plan_acquire(Majority::of(3), &replies, 1, false),
        Plan::NoQuorum { release: vec![0] }
    );
}

#[test]
fn settled_grants_count_only_where_held_afterwards() {
    let m = Majority::of(3);
    assert!(kept_on_majority(m, &[0], &[&[0], &[0]]));
    assert!(!kept_on_majority(m, &[0], &[&[0], &[1]]));
    assert!(!kept_on_majority(m, &[0, 1], &[&[0, 1], &[0]]));
    assert!(kept_on_majority(Majority::of(1), &[3], &[&[3]]));
}

/// Renewal verdicts over every holding of one slot by 3 and 5 masters, each master
/// holding it, not holding it, or not answering.
#[test]
fn renewal_verdicts() {
    for m in [1usize, 3, 5] {
        let majority = Majority::of(m);
        for code in 0..3usize.pow(m as u32) {
            let (mut holding, mut unanswered, mut held) = (Vec::new(), 0, 0);
            let mut c = code;
            for _ in 0..m {
                match c % 3 {
                    0 => {
                        holding.push(&[5u32][..]);
                        held += 1;
                    }
                    1 => holding.push(&[][..]),
                    _ => unanswered += 1,
                }
                c /= 3;
            }
            let verdict = judge_renewal(majority, &[5], &holding, unanswered);
            let expected = if held >= majority.needed() {
                Renewal::Held
            } else if held + unanswered < majority.needed() {
                Renewal::Lost
            } else {
                Renewal::Unknown
            };
            assert_eq!(
                verdict, expected,
                "m={m} held={held} unanswered={unanswered}"
            );
        }
    }
    // Judged on the slots held now: one released meanwhile does not count.
    assert_eq!(
        judge_renewal(Majority::of(3), &[1], &[&[1], &[1], &[]], 0),
        Renewal::Held
    );
}

#[test]
fn status_counts_what_a_majority_holds() {
    let status = |limit, permits, bounded, slots: Vec<u32>| Status {
        available: 0,
        limit,
        held: u32::try_from(slots.len()).unwrap(),
        permits,
        bounded,
        slots,
        more: None,
    };
    let merged = merge_status(
        Majority::of(3),
        &[
            status(3, 3, true, vec![0, 1]),
            status(3, 3, true, vec![0]),
            status(4, 3, false, vec![2]),
        ],
    );
    // Slot 0 on two masters counts; 1 and 2 (strays on one) do not.
    assert_eq!(merged.slots, vec![0]);
    assert_eq!(merged.held, 1);
    assert_eq!(merged.limit, 3);
    assert_eq!(merged.available, 2);
    assert!(merged.bounded);
    // A slot held past a lowered limit keeps nobody out.
    let merged = merge_status(
        Majority::of(3),
        &[status(1, 1, true, vec![2]), status(1, 1, true, vec![2])],
    );
    assert_eq!((merged.held, merged.available), (1, 1));
}
