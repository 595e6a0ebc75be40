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
//!
//! This module sends the requests and reads the replies; what they mean is decided by the
//! pure functions of [`decide`], which are unit-tested without a server. The masters are
//! reached through [`Link`], so the quorum itself runs in tests against scripted links too
//! (`tests` below).

pub(crate) mod decide;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use redis::FromRedisValue;

use crate::error::{Error, MasterFailure};
use crate::health::MasterError;
use crate::link::{Call, Link};
pub(crate) use crate::lua::Queue;
use crate::lua::{
    self, AcquireArgs, Acquired, Answer, Caller, Cursor, HeldPage, HoldArgs, Keys, ReleaseArgs,
    Scripted, Status, millis,
};
use crate::pacing::{PLACE_LEASE, WAITER_LEASE};
use crate::subscriber::Listener;
use crate::subscriber::message::process_of;
use decide::{Deadline, Majority, MasterGrant, Plan, Renewal, Replies};

/// Everything needed to talk to one semaphore's masters.
#[derive(Debug)]
pub(crate) struct Quorum {
    masters: Vec<Arc<dyn Link>>,
    keys: Keys,
    /// The handle's permit count, sent with every call (0: adopt the stored one); changed
    /// only by `set_permits`.
    permits: AtomicU32,
    /// The handle's boundedness, sent with the count: a semaphore stores it too.
    bounded: AtomicBool,
}

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

/// What a release does with the waiter line an acquire stood in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Leave {
    /// Nothing: a permit's own release.
    #[default]
    Stay,
    /// Take back the id's registration with this line (the line keeps its place: other
    /// waiters of the handle stand in it).
    Unregister(String),
    /// Take back the registration and take the line off the queue: its last waiter gave up.
    Dequeue(String),
}

impl Leave {
    /// The release script's `line` and `leave` arguments.
    fn args(&self) -> (&str, bool) {
        match self {
            Leave::Stay => ("", false),
            Leave::Unregister(line) => (line, false),
            Leave::Dequeue(line) => (line, true),
        }
    }
}

impl Quorum {
    pub(crate) fn new(
        masters: Vec<Arc<dyn Link>>,
        name: &str,
        permits: u32,
        bounded: bool,
    ) -> Self {
        Quorum {
            masters,
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
            self.keys.name(),
            status.permits,
            status.bounded,
        )
    }

    /// The same masters and semaphore on fresh connections made on the current runtime.
    pub(crate) async fn reconnected(&self) -> Result<Quorum, Error> {
        let mut fresh = Vec::with_capacity(self.masters.len());
        for master in &self.masters {
            fresh.push(master.reconnect().await?);
        }
        Ok(Quorum::new(
            fresh,
            self.keys.name(),
            self.permits(),
            self.bounded(),
        ))
    }

    /// Listens to the semaphore's wake-ups on every master that can be reached, each
    /// with its master's index.
    ///
    /// A line in a fair queue listens on its process's channel, where the scripts name it
    /// when its turn comes; other waiters (`line` None: an unfair handle's) on the
    /// semaphore's own, where a wake-up means anyone may try.
    pub(crate) async fn listen(&self, line: Option<&str>) -> Vec<(usize, Listener)> {
        let (channel, line) = match line.and_then(|l| Some((process_of(l)?, l))) {
            Some((process, line)) => (self.keys.process_channel(process), line),
            None => (self.keys.channel(), ""),
        };
        join_all(self.masters.iter().map(|m| m.listen(&channel, line)))
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
            .map(|m| m.timeout())
            .max()
            .unwrap_or_default()
    }

    fn majority(&self) -> Majority {
        Majority::of(self.masters.len())
    }

    /// Masters that must agree: a majority.
    pub(crate) fn needed(&self) -> usize {
        self.majority().needed()
    }

    fn several(&self) -> bool {
        self.masters.len() > 1
    }

    /// Runs `script` on the masters `which`, all at once; replies in the same order.
    async fn on<T: FromRedisValue>(
        &self,
        which: impl IntoIterator<Item = usize>,
        script: &Scripted,
        args: &[Vec<u8>],
    ) -> Vec<(usize, Result<T, Error>)> {
        let caller = self.caller();
        join_all(which.into_iter().map(|i| async move {
            let master = &self.masters[i];
            let call = Call {
                script,
                keys: &self.keys,
                args,
                caller,
            };
            let reply = master
                .run(call)
                .await
                .and_then(|value| T::from_redis_value(value).map_err(|e| self.failed(i, e.into())));
            (i, reply)
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

    /// Runs `script` on every master and parses each reply with `parse`.
    async fn parsed<T>(
        &self,
        script: &Scripted,
        args: &[Vec<u8>],
        parse: impl Fn(usize, &[redis::Value]) -> Option<T>,
    ) -> Vec<(usize, Result<T, Error>)> {
        self.on_all::<Vec<redis::Value>>(script, args)
            .await
            .into_iter()
            .map(|(i, reply)| {
                let parsed = reply
                    .and_then(|r| parse(i, &r).ok_or_else(|| self.unexpected(i, script.file, &r)));
                (i, parsed)
            })
            .collect()
    }

    /// The answers if a majority of the masters gave one, else the error: the master's
    /// own error with one master, each master's failure with several. A minority's
    /// failures, even ones that waiting cannot fix (a wrong key type there, a full
    /// server), do not stop the majority.
    fn agreed<T>(&self, replies: Vec<(usize, Result<T, Error>)>) -> Result<Vec<(usize, T)>, Error> {
        let answers = Answers::sort(replies);
        if answers.ok.len() >= self.majority().needed() {
            Ok(answers.ok)
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
            needed: self.majority().needed(),
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
            self.parsed(&lua::ACQUIRE, &args, |_, r| Answer::parse(&ints(r)?))
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
                .hold_on(settle.iter().copied(), id, &slots, token, lease, line)
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
                let parsed = reply.and_then(|r| {
                    lua::slots_of(&r).ok_or_else(|| self.unexpected(i, lua::HOLD.file, &r))
                });
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
        let answers = Answers::sort(replies);
        let holding: Vec<&[u32]> = answers.ok.iter().map(|(_, h)| h.as_slice()).collect();
        // Judged on the slots the permit holds now: a partial release may have overtaken
        // this renewal on some master.
        let verdict = decide::judge_renewal(
            self.majority(),
            &current(),
            &holding,
            answers.failures.len(),
        );
        match verdict {
            Renewal::Held => Ok(true),
            Renewal::Lost => Ok(false),
            Renewal::Unknown => Err(self.no_quorum(answers.failures)),
        }
    }

    /// Frees `slots` of `id` (all of them when empty; no permit at all when `id` is empty)
    /// on every master, and does what `leave` says with the acquire's waiter line; returns
    /// the most that any master freed (0: no master knew the permit any more).
    pub(crate) async fn release(
        &self,
        id: &str,
        leave: &Leave,
        slots: &[u32],
    ) -> Result<u32, Error> {
        let (line, leave) = leave.args();
        let args = ReleaseArgs {
            caller: self.caller(),
            id,
            line,
            leave,
            slots,
        }
        .args();
        let replies = self.on_all::<u32>(&lua::RELEASE, &args).await;
        Ok(self
            .agreed(replies)?
            .iter()
            .map(|(_, n)| *n)
            .max()
            .unwrap_or(0))
    }

    /// What the semaphore looks like ([`decide::merge_status`] on several masters, which
    /// needs every held slot: a master that holds more than a page of them is asked for
    /// the rest a page at a time).
    pub(crate) async fn status(&self) -> Result<Status, Error> {
        let args = lua::status_args(self.caller(), self.several());
        let replies = self
            .parsed(&lua::STATUS, &args, |_, r| Status::parse(&ints(r)?))
            .await;
        let replies = join_all(replies.into_iter().map(|(i, reply)| async move {
            let mut status = match reply {
                Ok(status) => status,
                Err(error) => return (i, Err(error)),
            };
            if let Some(after) = status.more.take() {
                match self.held_pages(i, Some(after), false).await {
                    Ok(rest) => status.slots.extend(rest.into_iter().map(|held| held.slot)),
                    Err(error) => return (i, Err(error)),
                }
            }
            (i, Ok(status))
        }))
        .await;
        let mut statuses: Vec<Status> = self.agreed(replies)?.into_iter().map(|(_, s)| s).collect();
        if !self.several() {
            return Ok(statuses.remove(0));
        }
        Ok(decide::merge_status(self.majority(), &statuses))
    }

    /// Every held slot on every master that answered.
    pub(crate) async fn holders(&self) -> Result<Vec<HeldSlot>, Error> {
        let replies = join_all(
            (0..self.masters.len())
                .map(|i| async move { (i, self.held_pages(i, None, true).await) }),
        )
        .await;
        Ok(self
            .agreed(replies)?
            .into_iter()
            .flat_map(|(_, held)| held)
            .collect())
    }

    /// The slots held on master `i` after `after` (None: all of them), a page per request
    /// (`holders.lua`), each slot once; with its holder when `detail`. A page is bounded
    /// (`lua::bound::PAGE`) because a script blocks the whole server while it runs. The
    /// pages are not one snapshot: a slot renewed between two pages may be listed twice
    /// (kept once here), and the requests stop after twice as many pages as the slots held
    /// at the first one make, however busy the semaphore.
    async fn held_pages(
        &self,
        i: usize,
        mut after: Option<Cursor>,
        detail: bool,
    ) -> Result<Vec<HeldSlot>, Error> {
        let width = if detail { 4 } else { 1 };
        let mut held = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut pages_left: Option<u64> = None;
        loop {
            let args = lua::holders_args(self.caller(), detail, after);
            let reply = self
                .on::<Vec<redis::Value>>([i], &lua::HOLDERS, &args)
                .await
                .remove(0)
                .1?;
            let page = HeldPage::parse(&reply, width)
                .ok_or_else(|| self.unexpected(i, lua::HOLDERS.file, &reply))?;
            for entry in page.entries {
                let slot = parse_held(i, entry)
                    .ok_or_else(|| self.unexpected(i, lua::HOLDERS.file, &reply))?;
                if seen.insert(slot.slot) {
                    held.push(slot);
                }
            }
            let left = pages_left.get_or_insert(2 * page.held / u64::from(lua::bound::PAGE) + 2);
            *left -= 1;
            match page.next {
                Some(next) if *left > 0 => after = Some(next),
                _ => return Ok(held),
            }
        }
    }

    /// The masters that failed and have not answered since, the latest failure first.
    pub(crate) fn master_errors(&self) -> Vec<MasterError> {
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
        let answers = self.agreed(replies)?;
        self.permits.store(n, Ordering::Relaxed);
        Ok(answers.iter().map(|(_, l)| *l).max().unwrap_or(n))
    }

    /// Deletes the semaphore's keys on every master; true if a majority had it.
    pub(crate) async fn delete(&self) -> Result<bool, Error> {
        let replies = self.on_all::<u32>(&lua::DELETE, &[]).await;
        let existed = self
            .agreed(replies)?
            .iter()
            .filter(|(_, e)| *e == 1)
            .count();
        Ok(existed >= self.majority().needed())
    }

    /// Adds `n` permits (an unbounded semaphore released more than it held) on every
    /// master; returns the highest new limit.
    pub(crate) async fn grow(&self, n: u32) -> Result<u32, Error> {
        let replies = self
            .on_all::<u32>(&lua::GROW, &lua::count_args(self.caller(), n))
            .await;
        Ok(self
            .agreed(replies)?
            .iter()
            .map(|(_, l)| *l)
            .max()
            .unwrap_or(0))
    }

    /// A reply that does not have the script's shape: a failure of that master (as a
    /// reply redis-rs cannot convert is), recorded in its health like any other.
    fn unexpected(&self, master: usize, script: &str, reply: &impl std::fmt::Debug) -> Error {
        let source = (
            redis::ErrorKind::UnexpectedReturnType,
            "script reply",
            format!("unexpected {script} reply {reply:?}"),
        );
        self.failed(master, source.into())
    }

    /// Master `i` answered something this client cannot read: an [`Error::Redis`] that
    /// counts in [`master_errors`](Self::master_errors) until the master answers again.
    fn failed(&self, i: usize, source: redis::RedisError) -> Error {
        let master = &self.masters[i];
        let error = Error::Redis {
            master: master.name().to_string(),
            source,
        };
        master.health().failed(master.name(), &error);
        error
    }
}

/// Replies sorted out: the masters that answered, and those that failed.
struct Answers<T> {
    ok: Vec<(usize, T)>,
    failures: Vec<(usize, Error)>,
}

impl<T> Answers<T> {
    fn sort(replies: Vec<(usize, Result<T, Error>)>) -> Self {
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
}

/// A reply of integers (`None` if one is not).
fn ints(reply: &[redis::Value]) -> Option<Vec<i64>> {
    reply
        .iter()
        .map(|v| i64::from_redis_value(v.clone()).ok())
        .collect()
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

/// One entry of a `holders.lua` page from master `master`: `{slot, id, token, ms_left}`,
/// or `{slot}` alone (then with no id, token 0 and no time left).
fn parse_held(master: usize, entry: &[redis::Value]) -> Option<HeldSlot> {
    let int = |v: &redis::Value| i64::from_redis_value(v.clone()).ok();
    let slot = u32::try_from(int(entry.first()?)?).ok()?;
    let (id, token, ms_left) = match entry {
        [_] => (String::new(), 0, 0),
        [_, id, token, ms_left] => (
            String::from_redis_value(id.clone()).ok()?,
            u64::try_from(int(token)?).ok()?,
            u64::try_from(int(ms_left)?).ok()?,
        ),
        _ => return None,
    };
    Some(HeldSlot {
        master,
        slot,
        id,
        token,
        lease_left: Duration::from_millis(ms_left),
    })
}

/// The client's wall clock in microseconds: a waiter line's place in the queue. Only the
/// order of waiters depends on it, never safety.
pub(crate) fn arrival_stamp() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests;
