//! The semaphore's masters, and each operation as they decide it together.
//!
//! Every permit slot is a Redlock mutex: a permit holds a slot while a majority of the
//! masters (`M / 2 + 1`) hold that slot under the permit's id, within the permit's validity
//! time. Two holders of one slot would need two majorities, and two majorities of the same
//! masters always share one, which grants a slot to one id at a time: so at most `N`
//! holders, by the same argument as Redlock's. Counting per master (a majority quorum over
//! counters) has no such intersection, which is how other libraries admit three holders
//! to two permits on three masters.
//!
//! Every operation goes to all masters at once and waits for all of them, each bounded by
//! its own request timeout: a hung master costs one timeout, never a stalled caller. One
//! master is the case `M = 1`, quorum 1, through exactly the same code.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use redis::FromRedisValue;
use tokio::time::Instant;

use crate::error::{Error, MasterFailure};
pub(crate) use crate::lua::Queue;
use crate::lua::{
    self, AcquireArgs, Acquired, Caller, HoldArgs, Keys, ReleaseArgs, Scripted, Status, millis,
};
use crate::master::Master;
use crate::wake::Listener;

/// Everything needed to talk to one semaphore's masters.
#[derive(Debug)]
pub(crate) struct Quorum {
    masters: Vec<Master>,
    name: String,
    keys: Keys,
    /// The handle's permit count, sent with every call (0: adopt the stored one); changed
    /// only by `set_permits`.
    permits: AtomicU32,
    /// The handle's boundedness, sent with the count: a semaphore stores it too.
    bounded: AtomicBool,
}

/// One acquire attempt: who asks, for how many slots, and from which waiter line.
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

/// What an acquire attempt came to.
#[derive(Debug)]
pub(crate) struct Attempt {
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
}

/// What a release does with the waiter line an acquire stood in.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Leave<'a> {
    /// The line ("" for a permit's own release).
    pub(crate) line: &'a str,
    /// Take the line off the queue: its last waiter gave up.
    pub(crate) dequeue: bool,
}

/// One master's grant in an acquire round.
struct Grant {
    master: usize,
    token: u64,
    slots: Vec<u32>,
}

impl Quorum {
    pub(crate) fn new(masters: Vec<Master>, name: &str, permits: u32, bounded: bool) -> Self {
        Quorum {
            masters,
            name: name.to_string(),
            keys: Keys::new(name),
            permits: AtomicU32::new(permits),
            bounded: AtomicBool::new(bounded),
        }
    }

    pub(crate) fn permits(&self) -> u32 {
        self.permits.load(Ordering::Relaxed)
    }

    pub(crate) fn bounded(&self) -> bool {
        self.bounded.load(Ordering::Relaxed)
    }

    /// What every script is told of this handle's configuration.
    fn caller(&self) -> Caller {
        Caller {
            permits: self.permits(),
            bounded: self.bounded(),
        }
    }

    /// The same masters and semaphore, for a handle with the configuration stored there.
    pub(crate) fn adopting(&self, status: &Status) -> Self {
        Quorum::new(
            self.masters.clone(),
            &self.name,
            status.permits,
            status.bounded,
        )
    }

    /// Listens to the semaphore's wake-ups on every master that can be reached, each
    /// with its master's index.
    pub(crate) async fn listen(&self) -> Vec<(usize, Listener)> {
        let channel = self.keys.channel();
        join_all(self.masters.iter().map(|m| m.listen(&channel)))
            .await
            .into_iter()
            .enumerate()
            .filter_map(|(i, listener)| Some((i, listener?)))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.masters.len()
    }

    /// The longest a request to one of the masters may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.masters
            .iter()
            .map(Master::timeout)
            .max()
            .unwrap_or_default()
    }

    /// Masters that must agree: a majority.
    pub(crate) fn needed(&self) -> usize {
        self.masters.len() / 2 + 1
    }

    fn several(&self) -> bool {
        self.masters.len() > 1
    }

    /// Fills in what a master could not know: the handle's count, the semaphore's name.
    fn fix(&self, error: Error) -> Error {
        match error {
            Error::ConfigMismatch {
                stored,
                stored_bounded,
                ..
            } => Error::ConfigMismatch {
                stored,
                requested: self.permits(),
                stored_bounded,
                requested_bounded: self.bounded(),
            },
            Error::NotFound { .. } => Error::NotFound {
                name: self.name.clone(),
            },
            other => other,
        }
    }

    /// Runs `script` on the masters `which`, all at once; replies in the same order.
    async fn on<T: FromRedisValue>(
        &self,
        which: impl IntoIterator<Item = usize>,
        script: &Scripted,
        args: &[Vec<u8>],
    ) -> Vec<(usize, Result<T, Error>)> {
        join_all(which.into_iter().map(|i| async move {
            let reply = self.masters[i].run(script, &self.keys, args).await;
            (i, reply.map_err(|e| self.fix(e)))
        }))
        .await
    }

    async fn on_all<T: FromRedisValue>(
        &self,
        script: &Scripted,
        args: &[Vec<u8>],
    ) -> Vec<(usize, Result<T, Error>)> {
        self.on(0..self.masters.len(), script, args).await
    }

    /// Splits replies into answers and failures.
    fn sort_out<T>(&self, replies: Vec<(usize, Result<T, Error>)>) -> Answers<T> {
        let mut answers = Answers {
            ok: Vec::new(),
            failures: Vec::new(),
        };
        for (i, reply) in replies {
            match reply {
                Ok(value) => answers.ok.push((i, value)),
                Err(error) => answers.failures.push((i, error)),
            }
        }
        answers
    }

    /// The answers if a majority of the masters gave one, else the error: the master's
    /// own error with one master, each master's failure with several. A minority's
    /// failures, even ones that waiting cannot fix (a wrong key type there, a full
    /// server), do not stop the majority.
    fn majority<T>(&self, replies: Vec<(usize, Result<T, Error>)>) -> Result<Answers<T>, Error> {
        let answers = self.sort_out(replies);
        if answers.ok.len() >= self.needed() {
            Ok(answers)
        } else {
            Err(self.no_quorum(answers.failures))
        }
    }

    /// The error when too few masters answered.
    fn no_quorum(&self, mut failures: Vec<(usize, Error)>) -> Error {
        if !self.several() && failures.len() == 1 {
            return failures.remove(0).1;
        }
        Error::Quorum {
            needed: self.needed(),
            masters: self.masters.len(),
            failures: failures
                .into_iter()
                .map(|(i, error)| MasterFailure {
                    master: self.masters[i].name().to_string(),
                    error: Box::new(error),
                })
                .collect(),
        }
    }

    /// Asks every master for `k` slots under permit `id` and keeps `k` slots that each
    /// have a majority, if the grant is still valid at `deadline` (the attempt's start plus
    /// the lease's validity). The common case is one round trip: masters that saw the same
    /// history grant the same slots with the same token.
    ///
    /// When they differ, one more round trip settles it: masters that granted other slots
    /// free them and take the kept ones if free, and every master that granted a lower
    /// token has it raised to the permit's token (the highest of the grant), so the next
    /// grant of these slots, whose majority shares a master with this one, gets a higher
    /// token. Without a majority for `k` slots every grant is released and the caller
    /// tries again after a random delay (`Busy` without a hint).
    pub(crate) async fn acquire(
        &self,
        ask: &Ask<'_>,
        lease: Duration,
        deadline: Instant,
    ) -> Result<Attempt, Error> {
        let Ask { id, k, .. } = *ask;
        let args = AcquireArgs {
            caller: self.caller(),
            id,
            k,
            lease_ms: millis(lease),
            queue: ask.queue,
            waiter_ms: millis(crate::WAITER_LEASE),
            line: ask.line,
            more: ask.more,
            arrival: ask.arrival,
            again: arrival_stamp(),
            push: ask.queue == Queue::Join && !self.several(),
            waits: ask.waits || ask.queue == Queue::Join,
        }
        .args();
        let replies = self
            .on_all::<Vec<i64>>(&lua::ACQUIRE, &args)
            .await
            .into_iter()
            .map(|(i, reply)| {
                let parsed = reply.and_then(|r| {
                    Acquired::parse(&r).ok_or_else(|| self.unexpected(i, "acquire", &r))
                });
                (i, parsed)
            })
            .collect();
        let answers = self.sort_out(replies);
        let mut attempt = Attempt {
            outcome: Acquired::Busy { wait_ms: None },
            stamps: vec![None; self.masters.len()],
            unanswered: !answers.failures.is_empty(),
            granted_by: 0,
        };
        let mut grants = Vec::new();
        let mut busy = Vec::new();
        let mut wait_ms: Option<u64> = None;
        for (master, (answer, stamp)) in answers.ok {
            attempt.stamps[master] = Some(stamp);
            match answer {
                Acquired::Granted { token, slots } => grants.push(Grant {
                    master,
                    token,
                    slots,
                }),
                Acquired::Busy { wait_ms: w } => {
                    busy.push(master);
                    if let Some(w) = w {
                        wait_ms = Some(wait_ms.map_or(w, |v| v.min(w)));
                    }
                }
            }
        }
        if answers.failures.len() > self.masters.len() - self.needed() {
            self.release_on(grants.iter().map(|g| g.master), id).await;
            return Err(self.no_quorum(answers.failures));
        }

        let kept = self.majority_slots(grants.iter().map(|g| g.slots.as_slice()), k as usize);
        if kept.len() < k as usize {
            self.release_on(grants.iter().map(|g| g.master), id).await;
            attempt.outcome = Acquired::Busy { wait_ms };
            return Ok(attempt);
        }
        let token = grants
            .iter()
            .filter(|g| g.slots.iter().any(|s| kept.contains(s)))
            .map(|g| g.token)
            .max()
            .expect("a kept slot was granted");
        let (exact, differ): (Vec<&Grant>, Vec<&Grant>) = grants
            .iter()
            .partition(|g| g.slots == kept && g.token == token);
        let mut holding: Vec<Vec<u32>> = exact.iter().map(|g| g.slots.clone()).collect();
        // Masters to settle: those that granted something else or a lower token, and, for
        // a waiter in a fair queue, those that said busy: they still queue its line, which
        // would keep their next free slot for a waiter that is gone. They take the kept
        // slots if free (safe: a majority holds them) and drop the line.
        let mut settle: Vec<usize> = differ.iter().map(|g| g.master).collect();
        let line = if ask.queue == Queue::Join {
            settle.extend(&busy);
            ask.line
        } else {
            ""
        };
        if !settle.is_empty() {
            let settled = self
                .hold_on(settle.iter().copied(), id, &kept, token, lease, line)
                .await;
            holding.extend(settled.into_iter().filter_map(|(_, r)| r.ok()));
        }
        let kept_everywhere = kept
            .iter()
            .all(|s| holding.iter().filter(|h| h.contains(s)).count() >= self.needed());
        if !kept_everywhere || Instant::now() >= deadline {
            self.release_on(grants.iter().map(|g| g.master).chain(settle), id)
                .await;
            return Ok(attempt);
        }
        attempt.outcome = Acquired::Granted { token, slots: kept };
        attempt.granted_by = holding.len();
        Ok(attempt)
    }

    /// The lowest `k` slots held by at least a majority of `holdings`.
    fn majority_slots<'a>(&self, holdings: impl Iterator<Item = &'a [u32]>, k: usize) -> Vec<u32> {
        self.held_by_majority(holdings)
            .into_iter()
            .take(k)
            .collect()
    }

    /// Slots held by at least a majority of `holdings`, lowest first.
    fn held_by_majority<'a>(&self, holdings: impl Iterator<Item = &'a [u32]>) -> Vec<u32> {
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

    /// Releases whatever this acquire round granted (and may have settled) on `which`.
    async fn release_on(&self, which: impl Iterator<Item = usize>, id: &str) {
        let mut which: Vec<usize> = which.collect();
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

    /// Runs the hold script on masters `which`; each reply is the slots held afterwards.
    async fn hold_on(
        &self,
        which: impl IntoIterator<Item = usize>,
        id: &str,
        slots: &[u32],
        token: u64,
        lease: Duration,
        line: &str,
    ) -> Vec<(usize, Result<Vec<u32>, Error>)> {
        let args = HoldArgs {
            caller: self.caller(),
            id,
            lease_ms: millis(lease),
            token,
            claim: self.several(),
            line,
            slots,
        }
        .args();
        self.on::<Vec<i64>>(which, &lua::HOLD, &args)
            .await
            .into_iter()
            .map(|(i, reply)| {
                let parsed = reply
                    .and_then(|r| lua::slots_of(&r).ok_or_else(|| self.unexpected(i, "hold", &r)));
                (i, parsed)
            })
            .collect()
    }

    /// Renews the lease of permit `id` on every master. `Ok(true)`: each of its slots is
    /// held on a majority again. `Ok(false)`: the answers rule that out, the permit is lost.
    /// An error: too few masters answered to tell; try again before the deadline.
    ///
    /// On several masters the renewal also takes the permit's slots where they are free,
    /// so a permit granted on a bare majority spreads to every master and survives the
    /// loss of one more. That is safe while the permit holds a majority of each slot: no
    /// other id can, so no other permit needs the slot anywhere.
    pub(crate) async fn refresh(
        &self,
        id: &str,
        slots: &[u32],
        token: u64,
        lease: Duration,
        current: impl Fn() -> Vec<u32>,
    ) -> Result<bool, Error> {
        let replies = self
            .hold_on(0..self.masters.len(), id, slots, token, lease, "")
            .await;
        let answers = self.sort_out(replies);
        let unknown = answers.failures.len();
        let holders = |slot: &u32| answers.ok.iter().filter(|(_, h)| h.contains(slot)).count();
        // Judged on the slots the permit holds now: a partial release may have overtaken
        // this renewal on some master.
        let slots = current();
        if slots.iter().all(|s| holders(s) >= self.needed()) {
            return Ok(true);
        }
        if slots.iter().any(|s| holders(s) + unknown < self.needed()) {
            return Ok(false);
        }
        Err(self.no_quorum(answers.failures))
    }

    /// Frees `slots` of `id` (all of them when empty) on every master, takes back the
    /// id's registration with its waiter line, and takes the line off the queue if asked;
    /// returns the most that any master freed (0: no master knew the permit any more).
    pub(crate) async fn release(
        &self,
        id: &str,
        line: &Leave<'_>,
        slots: &[u32],
    ) -> Result<u32, Error> {
        let args = ReleaseArgs {
            caller: self.caller(),
            id,
            line: line.line,
            leave: line.dequeue,
            slots,
        }
        .args();
        let replies = self.on_all::<u32>(&lua::RELEASE, &args).await;
        let answers = self.majority(replies)?;
        Ok(answers.ok.iter().map(|(_, n)| *n).max().unwrap_or(0))
    }

    /// What the semaphore looks like. On several masters a slot counts as held when a
    /// majority holds it (only then can it keep someone else out), and the limit is the
    /// highest that a majority has reached.
    pub(crate) async fn status(&self) -> Result<Status, Error> {
        let args = lua::status_args(self.caller(), self.several());
        let replies = self
            .on_all::<Vec<i64>>(&lua::STATUS, &args)
            .await
            .into_iter()
            .map(|(i, reply)| {
                let parsed = reply.and_then(|r| {
                    Status::parse(&r).ok_or_else(|| self.unexpected(i, "status", &r))
                });
                (i, parsed)
            })
            .collect();
        let answers = self.majority(replies)?;
        let mut statuses: Vec<Status> = answers.ok.into_iter().map(|(_, s)| s).collect();
        if !self.several() {
            return Ok(statuses.remove(0));
        }
        let limit = self.reached_by_majority(statuses.iter().map(|s| s.limit));
        let permits = self.reached_by_majority(statuses.iter().map(|s| s.permits));
        let slots = self.held_by_majority(statuses.iter().map(|s| s.slots.as_slice()));
        let held = u32::try_from(slots.len()).unwrap_or(u32::MAX);
        // Slots held past a lowered limit keep nobody out of the slots below it.
        let held_below = slots.iter().filter(|&&s| s < limit).count();
        // Bounded, the default and the safe reading, unless a majority stores otherwise.
        let unbounded = statuses.iter().filter(|s| !s.bounded).count();
        Ok(Status {
            bounded: unbounded < self.needed(),
            available: limit.saturating_sub(u32::try_from(held_below).unwrap_or(u32::MAX)),
            limit,
            held,
            permits,
            slots,
        })
    }

    /// The highest value that at least a majority of `values` reach.
    fn reached_by_majority(&self, values: impl Iterator<Item = u32>) -> u32 {
        let mut values: Vec<u32> = values.collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        values.get(self.needed() - 1).copied().unwrap_or(0)
    }

    /// Every held slot on every master that answered: (master, slot, id, token, lease left).
    pub(crate) async fn holders(&self) -> Result<Vec<HeldSlot>, Error> {
        let replies = self
            .on_all::<Vec<redis::Value>>(&lua::HOLDERS, &lua::holders_args(self.caller()))
            .await
            .into_iter()
            .map(|(i, reply)| {
                let parsed = reply.and_then(|r| {
                    parse_holders(i, &r).ok_or_else(|| self.unexpected(i, "holders", &[]))
                });
                (i, parsed)
            })
            .collect();
        let answers = self.majority(replies)?;
        Ok(answers.ok.into_iter().flat_map(|(_, held)| held).collect())
    }

    /// The masters that failed and have not answered since, the latest failure first.
    pub(crate) fn master_errors(&self) -> Vec<crate::health::MasterError> {
        let mut errors: Vec<_> = self
            .masters
            .iter()
            .filter_map(|m| m.health().error())
            .collect();
        errors.sort_by_key(|e| std::cmp::Reverse(e.at));
        errors
    }

    /// The name of master `i`, as `host:port`.
    pub(crate) fn master_name(&self, i: usize) -> &str {
        self.masters[i].name()
    }

    /// Sets the stored permit count on every master, and this handle's.
    pub(crate) async fn resize(&self, n: u32) -> Result<u32, Error> {
        let replies = self
            .on_all::<u32>(&lua::RESIZE, &lua::count_args(self.caller(), n))
            .await;
        let answers = self.majority(replies)?;
        self.permits.store(n, Ordering::Relaxed);
        Ok(answers.ok.iter().map(|(_, l)| *l).max().unwrap_or(n))
    }

    /// Deletes the semaphore's keys on every master; true if a majority had it.
    pub(crate) async fn delete(&self) -> Result<bool, Error> {
        let replies = self.on_all::<u32>(&lua::DELETE, &[]).await;
        let answers = self.majority(replies)?;
        Ok(answers
            .ok
            .iter()
            .filter(|(_, existed)| *existed == 1)
            .count()
            >= self.needed())
    }

    /// Adds `n` permits (an unbounded semaphore released more than it held) on every
    /// master; returns the highest new limit.
    pub(crate) async fn grow(&self, n: u32) -> Result<u32, Error> {
        let replies = self
            .on_all::<u32>(&lua::GROW, &lua::count_args(self.caller(), n))
            .await;
        let answers = self.majority(replies)?;
        Ok(answers.ok.iter().map(|(_, l)| *l).max().unwrap_or(0))
    }

    fn unexpected(&self, master: usize, what: &str, reply: &[i64]) -> Error {
        let detail = format!("unexpected {what} reply {reply:?}");
        Error::Redis {
            master: self.masters[master].name().to_string(),
            source: (
                redis::ErrorKind::UnexpectedReturnType,
                "script reply",
                detail,
            )
                .into(),
        }
    }
}

/// Replies sorted out: the masters that answered, and those that failed.
struct Answers<T> {
    ok: Vec<(usize, T)>,
    failures: Vec<(usize, Error)>,
}

/// One slot held on one master, as the holders script lists it.
#[derive(Debug, Clone)]
pub(crate) struct HeldSlot {
    pub(crate) master: usize,
    pub(crate) slot: u32,
    pub(crate) id: String,
    pub(crate) token: u64,
    pub(crate) lease_left: Duration,
}

/// `{slot, id, token, ms_left, ...}` from master `master`.
fn parse_holders(master: usize, reply: &[redis::Value]) -> Option<Vec<HeldSlot>> {
    use redis::{FromRedisValue, Value};
    if !reply.len().is_multiple_of(4) {
        return None;
    }
    reply
        .chunks(4)
        .map(|entry| {
            let int = |v: &Value| i64::from_redis_value(v.clone()).ok();
            Some(HeldSlot {
                master,
                slot: u32::try_from(int(&entry[0])?).ok()?,
                id: String::from_redis_value(entry[1].clone()).ok()?,
                token: u64::try_from(int(&entry[2])?).ok()?,
                lease_left: Duration::from_millis(u64::try_from(int(&entry[3])?).ok()?),
            })
        })
        .collect()
}

/// The client's wall clock in microseconds: a waiter line's place in the queue. Only the
/// order of waiters depends on it, never safety.
pub(crate) fn arrival_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}
