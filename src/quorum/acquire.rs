//! The acquire round: one request to every master, and a settle when they granted
//! different slots or tokens (the rules are [`decide::plan_acquire`]'s).

use std::time::Duration;

use super::decide::{self, Deadline, MasterGrant, Plan, Replies};
use super::{Answers, Quorum};
use crate::error::Error;
use crate::lua::{self, AcquireArgs, Acquired, Answer, Queue, ReleaseArgs, millis};
use crate::pacing::{PLACE_LEASE, WAITER_LEASE};

/// One acquire request: who asks, for how many slots, and from which waiter line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask<'a> {
    pub(crate) id: &'a str,
    pub(crate) k: u32,
    pub(crate) queue: Queue,
    /// The handle's waiter line.
    pub(crate) line: &'a str,
    /// More waiters stand in that line behind this one.
    pub(crate) more: bool,
    /// The line's place in a fair queue: the client's clock (µs) when this acquire first
    /// asked, or the place a granted predecessor left to it.
    pub(crate) arrival: u64,
    /// The caller waits for a wake-up if not granted (not a try).
    pub(crate) waits: bool,
}

/// What one round of an acquire (a request to every master, and a settling round if they
/// differed) came to.
#[derive(Debug)]
pub(crate) struct Round {
    /// Granted, or busy (with the earliest expiry when known; without it, the masters
    /// disagreed and everything was given back).
    pub(crate) outcome: Acquired,
    /// Each master's script stamp (its time in microseconds), when it answered.
    pub(crate) stamps: Vec<Option<u64>>,
    /// Some master did not answer: it may still grant this id later, so whoever gives up
    /// on the id must release it there.
    pub(crate) unanswered: bool,
    /// Masters that hold the granted slots.
    pub(crate) granted_by: usize,
    /// Busy and queued: the fewest lines ahead of the caller's that a master counted.
    pub(crate) ahead: Option<u64>,
}

impl Quorum {
    /// Asks every master for `k` slots under permit `id` and keeps `k` slots that each
    /// have a majority, if the grant is still valid at `deadline` (see [`decide`] for the
    /// rules). The common case is one round trip: masters that saw the same history grant
    /// the same slots with the same token; when they differ, one more round trip settles
    /// it. Without a majority for `k` slots every grant is released and the caller tries
    /// again after a random delay (`Busy` without a hint).
    pub(crate) async fn acquire(
        &self,
        ask: &Ask<'_>,
        lease: Duration,
        deadline: Deadline,
    ) -> Result<Round, Error> {
        let Ask { id, k, .. } = *ask;
        let args = AcquireArgs {
            caller: self.caller(),
            id,
            k,
            lease_ms: millis(lease),
            queue: ask.queue,
            // A place in the queue is kept for minutes without asking; a waiter outside
            // it (an unfair handle's) keeps the semaphore's mark a second.
            waiter_ms: millis(if ask.queue == Queue::Join {
                PLACE_LEASE
            } else {
                WAITER_LEASE
            }),
            line: ask.line,
            more: ask.more,
            arrival: ask.arrival,
            again: arrival_stamp(),
            push: ask.queue == Queue::Join && !self.several(),
            waits: ask.waits || ask.queue == Queue::Join,
        }
        .args();
        let answers = Answers::sort(
            self.parsed(&lua::ACQUIRE, &args, |_, r| Answer::parse(&lua::ints(r)?))
                .await,
        );
        let mut round = Round {
            outcome: Acquired::Busy { wait_ms: None },
            stamps: vec![None; self.masters.len()],
            unanswered: !answers.failures.is_empty(),
            granted_by: 0,
            ahead: None,
        };
        let mut replies = Replies {
            failed: answers.failures.len(),
            ..Replies::default()
        };
        for (master, answer) in answers.ok {
            round.stamps[master] = Some(answer.stamp);
            if let Some(ahead) = answer.ahead {
                round.ahead = Some(round.ahead.map_or(ahead, |a| a.min(ahead)));
            }
            match answer.acquired {
                Acquired::Granted { token, slots } => replies.grants.push(MasterGrant {
                    master,
                    token,
                    slots,
                }),
                Acquired::Busy { wait_ms } => replies.busy.push((master, wait_ms)),
            }
        }
        let queued = ask.queue == Queue::Join;
        let (slots, token, exact, settle) =
            match decide::plan_acquire(self.majority(), &replies, k as usize, queued) {
                Plan::NoQuorum { release } => {
                    self.release_on(release, id).await;
                    return Err(self.no_quorum(answers.failures));
                }
                Plan::Busy { release, wait_ms } => {
                    self.release_on(release, id).await;
                    round.outcome = Acquired::Busy { wait_ms };
                    return Ok(round);
                }
                Plan::Keep {
                    slots,
                    token,
                    exact,
                    settle,
                } => (slots, token, exact, settle),
            };
        let mut holding: Vec<Vec<u32>> = exact.iter().map(|_| slots.clone()).collect();
        if !settle.is_empty() {
            let line = if queued { ask.line } else { "" };
            let settled = self
                .renew_on(settle.iter().copied(), id, &slots, token, lease, line)
                .await;
            holding.extend(settled.into_iter().filter_map(|(_, r)| r.ok()));
        }
        let held: Vec<&[u32]> = holding.iter().map(Vec::as_slice).collect();
        if !decide::kept_on_majority(self.majority(), &slots, &held)
            || !deadline.holds_at(tokio::time::Instant::now())
        {
            let granted = replies.grants.iter().map(|g| g.master);
            self.release_on(granted.chain(settle), id).await;
            return Ok(round);
        }
        round.outcome = Acquired::Granted { token, slots };
        round.granted_by = holding.len();
        Ok(round)
    }

    /// Releases whatever this acquire round granted (and may have settled) on `which`.
    async fn release_on(&self, which: impl IntoIterator<Item = usize>, id: &str) {
        let mut which: Vec<usize> = which.into_iter().collect();
        which.sort_unstable();
        which.dedup();
        if !which.is_empty() {
            let args = ReleaseArgs {
                caller: self.caller(),
                id,
                line: "",
                leave: false,
                slots: &[],
            }
            .args();
            self.on::<u32>(which, &lua::RELEASE, &args).await;
        }
    }
}

/// The client's wall clock in microseconds: a waiter line's place in the queue. Only the
/// order of waiters depends on it, never safety.
pub(crate) fn arrival_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
