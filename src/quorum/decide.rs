//! The rules that make several masters safe, as pure functions of what the masters
//! answered: no I/O, no clock but the ones passed in. [`super::Quorum`] sends the requests
//! and follows what these decide; the unit tests (`decide/tests.rs`) check the rules over
//! every combination of per-master replies, without a server.
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
    /// those to bring in line with the renew script (they granted other slots, a lower
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
mod tests;
