//! The rules that make several masters safe, as pure functions of what the masters
//! answered: no I/O, no clock but the ones passed in. [`super::Quorum`] sends the requests
//! and follows what these decide; the unit tests below check the rules over every
//! combination of per-master replies, without a server.
//!
//! # The rules
//!
//! - A slot is held when a **majority** (`M / 2 + 1`) of the masters hold it for the same
//!   id ([`Majority`]). Two majorities of the same masters share a master, and a master
//!   grants a slot to one id at a time, so a slot has one holder at a time.
//! - An acquire keeps the **lowest `k` slots** that each have a majority among the grants
//!   ([`plan_acquire`]); without `k` of them it gives every grant back and reports busy.
//!   With more failures than the masters that may fail (`M - majority`), it gives back
//!   what was granted and reports no quorum.
//! - The permit's **fencing token** is the highest token among the grants that hold a kept
//!   slot. Every master that granted other slots, or a lower token, is **settled**: it
//!   frees the other slots, takes the kept ones if free, and raises its token counter to
//!   the permit's token, so the next grant of these slots (whose majority shares a master
//!   with this one) gets a higher token.
//! - A grant counts only if it is held on a majority after settling **and** the attempt is
//!   still within its **validity**: the lease, less a drift allowance, counted from when
//!   the request was sent ([`validity`], [`Deadline`]).
//! - A renewal keeps the permit while each of its slots is held on a majority; it is lost
//!   once the answers rule that out even if every master that failed to answer held it
//!   ([`judge_renewal`]).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::lua::Status;

/// How long a lease can be counted on by the client: the lease less a drift allowance
/// between the client's and the master's clocks (1% + 2 ms), as in Redlock.
pub(crate) fn validity(lease: Duration) -> Duration {
    lease.saturating_sub(lease / 100 + Duration::from_millis(2))
}

/// Until when an attempt's grant can be counted on: its request's start plus the lease's
/// [`validity`]. The lease cannot have started before the request was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(pub(crate) Instant);

impl Deadline {
    pub(crate) fn of(sent: Instant, lease: Duration) -> Self {
        Deadline(sent + validity(lease))
    }

    /// Whether a grant complete at `now` is still within its validity.
    pub(crate) fn holds_at(self, now: Instant) -> bool {
        now < self.0
    }
}

/// The majority of `M` masters, and what it decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Majority {
    masters: usize,
}

impl Majority {
    pub(crate) fn of(masters: usize) -> Self {
        Majority { masters }
    }

    /// Masters that must agree: `M / 2 + 1`.
    pub(crate) fn needed(self) -> usize {
        self.masters / 2 + 1
    }

    /// Whether `failed` masters leave too few to agree.
    pub(crate) fn lost_to(self, failed: usize) -> bool {
        failed > self.masters - self.needed()
    }

    /// Slots held by at least a majority of `holdings` (one per master), lowest first.
    pub(crate) fn held<'a>(self, holdings: impl IntoIterator<Item = &'a [u32]>) -> Vec<u32> {
        let mut votes: BTreeMap<u32, usize> = BTreeMap::new();
        for slots in holdings {
            for &slot in slots {
                *votes.entry(slot).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .filter(|&(_, n)| n >= self.needed())
            .map(|(slot, _)| slot)
            .collect()
    }

    /// The highest value that at least a majority of `values` reach (0 if too few).
    pub(crate) fn reached(self, values: impl IntoIterator<Item = u32>) -> u32 {
        let mut values: Vec<u32> = values.into_iter().collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        values.get(self.needed() - 1).copied().unwrap_or(0)
    }
}

/// One master's grant in an acquire round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MasterGrant {
    pub(crate) master: usize,
    pub(crate) token: u64,
    pub(crate) slots: Vec<u32>,
}

/// What the masters answered to one acquire request, sorted out.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replies {
    pub(crate) grants: Vec<MasterGrant>,
    /// Masters that answered busy, with the earliest expiry each saw (ms), when known.
    pub(crate) busy: Vec<(usize, Option<u64>)>,
    /// How many masters failed or did not answer in time.
    pub(crate) failed: usize,
}

/// What an acquire does after its first round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Too few masters answered: give back what was granted (`release`) and report it.
    NoQuorum { release: Vec<usize> },
    /// No `k` slots with a majority: give back what was granted and wait, for the earliest
    /// expiry a master saw (None: the masters disagreed, or nothing is held).
    Busy {
        release: Vec<usize>,
        wait_ms: Option<u64>,
    },
    /// Keep `slots` under `token`. `exact`: the masters that granted exactly that; `settle`:
    /// those to bring in line with the hold script (they granted other slots, a lower
    /// token, or, for a queued waiter, said busy and still queue its line).
    Keep {
        slots: Vec<u32>,
        token: u64,
        exact: Vec<usize>,
        settle: Vec<usize>,
    },
}

/// Decides an acquire of `k` slots from the first round's `replies`. `queued`: the waiter
/// stands in a fair queue, so masters that said busy must be settled too (they would keep
/// their next free slot for a line that is gone).
pub(crate) fn plan_acquire(majority: Majority, replies: &Replies, k: usize, queued: bool) -> Plan {
    let granted: Vec<usize> = replies.grants.iter().map(|g| g.master).collect();
    if majority.lost_to(replies.failed) {
        return Plan::NoQuorum { release: granted };
    }
    let slots: Vec<u32> = majority
        .held(replies.grants.iter().map(|g| g.slots.as_slice()))
        .into_iter()
        .take(k)
        .collect();
    if slots.len() < k || k == 0 {
        let wait_ms = replies.busy.iter().filter_map(|(_, w)| *w).min();
        return Plan::Busy {
            release: granted,
            wait_ms,
        };
    }
    let token = replies
        .grants
        .iter()
        .filter(|g| g.slots.iter().any(|s| slots.contains(s)))
        .map(|g| g.token)
        .max()
        .expect("a kept slot was granted by a majority");
    let (exact, differ): (Vec<&MasterGrant>, Vec<&MasterGrant>) = replies
        .grants
        .iter()
        .partition(|g| g.slots == slots && g.token == token);
    let mut settle: Vec<usize> = differ.iter().map(|g| g.master).collect();
    if queued {
        settle.extend(replies.busy.iter().map(|(m, _)| *m));
    }
    Plan::Keep {
        slots,
        token,
        exact: exact.iter().map(|g| g.master).collect(),
        settle,
    }
}

/// Whether every kept slot is held on a majority once settled: `holding` lists what each
/// master holds for the permit afterwards (the exact grants, and the settled masters'
/// replies; a settle that failed counts for nothing).
pub(crate) fn kept_on_majority(majority: Majority, kept: &[u32], holding: &[&[u32]]) -> bool {
    kept.iter()
        .all(|s| holding.iter().filter(|h| h.contains(s)).count() >= majority.needed())
}

/// What a renewal's answers say of the permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// Each slot is held on a majority again: the lease is extended.
    Held,
    /// Some slot cannot be on a majority, even counting every master that did not answer:
    /// the permit is lost.
    Lost,
    /// Too few answers to tell: try again before the deadline.
    Unknown,
}

/// Judges a renewal of `slots` (those the permit holds now: a partial release may have
/// overtaken the renewal) from what each answering master holds afterwards, with
/// `unanswered` masters that failed.
pub(crate) fn judge_renewal(
    majority: Majority,
    slots: &[u32],
    holding: &[&[u32]],
    unanswered: usize,
) -> Renewal {
    let holders = |slot: &u32| holding.iter().filter(|h| h.contains(slot)).count();
    if slots.iter().all(|s| holders(s) >= majority.needed()) {
        Renewal::Held
    } else if slots
        .iter()
        .any(|s| holders(s) + unanswered < majority.needed())
    {
        Renewal::Lost
    } else {
        Renewal::Unknown
    }
}

/// The semaphore as several masters show it: a slot counts as held when a majority holds
/// it (only then can it keep someone out), the limit and the count are the highest that a
/// majority has reached, and it is bounded (the safe reading) unless a majority stores it
/// unbounded.
pub(crate) fn merge_status(majority: Majority, statuses: &[Status]) -> Status {
    let limit = majority.reached(statuses.iter().map(|s| s.limit));
    let permits = majority.reached(statuses.iter().map(|s| s.permits));
    let slots = majority.held(statuses.iter().map(|s| s.slots.as_slice()));
    let held = u32::try_from(slots.len()).unwrap_or(u32::MAX);
    // Slots held past a lowered limit keep nobody out of the slots below it.
    let held_below = slots.iter().filter(|&&s| s < limit).count();
    let unbounded = statuses.iter().filter(|s| !s.bounded).count();
    Status {
        bounded: unbounded < majority.needed(),
        available: limit.saturating_sub(u32::try_from(held_below).unwrap_or(u32::MAX)),
        limit,
        held,
        permits,
        slots,
        more: None,
    }
}

#[cfg(test)]
mod tests {
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
                                let votes = majority
                                    .held(replies.grants.iter().map(|g| g.slots.as_slice()));
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
                                    replies.grants.len()
                                        + if queued { replies.busy.len() } else { 0 },
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
}
