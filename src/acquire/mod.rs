//! The acquire state machine: one [`Attempt`] per call of `acquire`, `try_acquire` and
//! their timed and `_many` forms.
//!
//! # Implementation
//!
//! An attempt asks the masters, and while the answer is busy it sleeps until something
//! may have changed, then asks again:
//!
//! 1. **Line up.** Waiters of one handle stand in its [`Line`]; only the head (the holder
//!    of the line's lock) asks and listens. A try does not line up, and neither does a
//!    timed acquire whose time ran out in the line (it still makes one request).
//! 2. **Ask** ([`Quorum::acquire`]): the masters grant `k` slots under the attempt's id, or
//!    answer busy with the earliest lease expiry they saw. The id is made before the
//!    first request, so a release by id finds a grant whose reply never came.
//! 3. **Sleep** until the first of: a wake-up naming the line (or anyone), a release by
//!    this process (unfair semaphores), the caller's deadline, or a timer that depends on
//!    where the line stands: far back in a fair queue, about [`PLACE_RENEW`] (only to keep
//!    its place: the scripts wake it when its turn comes); among the first [`NEAR`] lines,
//!    the earliest expiry or a [`WAITER_LEASE`], whichever comes
//!    first; outside the queue, the earliest expiry or [`WAKE_CAP`]. A wake-up can carry a
//!    grant pushed to the line's registered id (one master, fair): the attempt then holds
//!    the permit without asking again.
//! 4. **Give up** on the deadline, or on an outage longer than the outage timeout.
//!
//! What must be undone if the future is dropped at any `.await` is one [`Stake`], read by
//! the [`CancelGuard`]'s `Drop`.
//!
//! A granted head of a fair line with more waiters behind it leaves the line's place in
//! the queue to the next one ([`Line::keep_place`]), who waits for the turn to be
//! published instead of asking at once, so the line keeps its place among the others.
//!
//! [`Quorum::acquire`]: crate::quorum::Quorum::acquire

mod guard;
mod line;
mod listeners;

pub(crate) use line::Line;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::MutexGuard;
use tokio::time::{Instant, sleep_until};

use crate::core::Core;
use crate::detached::Detached;
use crate::error::Error;
use crate::lua::{Acquired, MAX_ACQUIRE_MANY, Queue};
#[cfg(doc)]
use crate::pacing::PLACE_RENEW;
use crate::pacing::{Backoff, NEAR, WAITER_LEASE, WAKE_CAP, near_pause, renew_pause, wake_pause};
use crate::permit::{Grant, Permit};
use crate::quorum::decide::{Deadline, validity};
use crate::quorum::{Ask, arrival_stamp};
use crate::subscriber::message::Named;
use crate::trace;
use guard::{CancelGuard, Stake};
use line::Waiting;
use listeners::Listeners;

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    No,
    Until(Instant),
    Forever,
}

impl Wait {
    /// Up to `timeout` from now; a timeout too large to represent is no limit at all.
    pub(crate) fn within(timeout: Duration) -> Wait {
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }
}

/// A fresh permit id: 128 random bits in hex.
pub(crate) fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// Acquires `k` permits of the handle made of `core`, `home` and `line`: `Ok(None)` when
/// `wait` ran out first.
pub(crate) async fn acquire(
    core: &Arc<Core>,
    home: &Arc<Detached>,
    line: &Line,
    k: u32,
    wait: Wait,
) -> Result<Option<Permit>, Error> {
    let n = core.quorum.permits();
    if k == 0 {
        return Err(Error::InvalidArgument(
            "cannot acquire 0 permits; ask for at least 1".into(),
        ));
    }
    if k > MAX_ACQUIRE_MANY {
        return Err(Error::InvalidArgument(format!(
            "cannot acquire {k} permits in one call: the most is {MAX_ACQUIRE_MANY} \
             (redis_semaphore::MAX_ACQUIRE_MANY); count in bigger units instead"
        )));
    }
    // On an unbounded semaphore releases can add permits, so more than the count (or any
    // number, from zero permits) is a wait that can end.
    if k > n && core.quorum.bounded() {
        return Err(Error::InvalidArgument(format!(
            "cannot acquire {k} permits of a semaphore of {n}: the wait could never end"
        )));
    }
    let _waiting = Waiting::enter(core, line);
    let (head, wait) = match wait {
        Wait::No => (None, Wait::No),
        Wait::Forever => (Some(line.head.lock().await), wait),
        Wait::Until(until) => match tokio::time::timeout_at(until, line.head.lock()).await {
            Ok(head) => (Some(head), wait),
            Err(_) => (None, Wait::No),
        },
    };
    let id = new_id();
    let mut attempt = Attempt::new(core, line, head, &id, k, wait);
    let grant = attempt.run().await?;
    Ok(grant.map(|grant| {
        Permit::new(
            Arc::clone(core),
            Arc::clone(home),
            grant,
            tokio::runtime::Handle::current(),
        )
    }))
}

/// What one step of the attempt leads to.
enum Step {
    Granted(Grant),
    /// Ask again at once (the line just started listening).
    Again,
    /// Sleep this long at most before asking again.
    Pause(Duration),
}

/// One acquire, from its first request to a grant or giving up.
struct Attempt<'a> {
    core: &'a Arc<Core>,
    line: &'a Line,
    /// Declared before `head` on purpose: fields drop in order, so a dropped attempt's
    /// give-back is under way before the line's lock passes to the next waiter, whose
    /// first ask then finds the slots free (as when the guard was a local after the lock).
    guard: CancelGuard<'a>,
    /// The line's lock while this attempt is its head (none for a try).
    head: Option<MutexGuard<'a, Listeners>>,
    id: &'a str,
    k: u32,
    wait: Wait,
    queue: Queue,
    /// Ask at the next step, rather than wait for the turn first.
    ask_now: bool,
    /// This acquire's place in a fair queue, the same in every retry and on every master.
    arrival: u64,
    backoff: Backoff,
    /// When the last answered request was sent: a grant pushed with a wake-up was made
    /// after it, so its lease cannot have started earlier.
    last_ask: Instant,
    /// A pushed grant lasts at most a waiter lease until its first renewal, so that one
    /// pushed to a waiter that cannot hear of it (cut off, or dead since it last asked)
    /// keeps the slot from others only that long.
    first_lease: Duration,
    /// Some request went unanswered by a master: it may still grant there later.
    uncertain: bool,
    /// The outage this attempt is riding out: since when, and its latest failure.
    outage: Option<(Instant, Instant)>,
    trace: trace::Acquire,
}

impl<'a> Attempt<'a> {
    fn new(
        core: &'a Arc<Core>,
        line: &'a Line,
        mut head: Option<MutexGuard<'a, Listeners>>,
        id: &'a str,
        k: u32,
        wait: Wait,
    ) -> Self {
        let config = &core.config;
        let queue = match (config.fair, wait) {
            (false, _) => Queue::Ignore,
            (true, Wait::No) => Queue::Respect,
            (true, _) => Queue::Join,
        };
        // A granted head put the line back in the queue for us: wait for its turn to be
        // published, unless it already was.
        let mut ask_now = true;
        if let Some(listeners) = head.as_deref_mut()
            && queue == Queue::Join
            && line.take_place()
            && listeners.listening()
        {
            ask_now = listeners.woken_meanwhile(&line.id);
        }
        // The outage the line's previous head saw, if it lasts still (it failed a moment
        // ago; else it is stale).
        let recent = core.quorum.request_timeout() + Duration::from_secs(1);
        let outage = head
            .as_deref()
            .and_then(|w| w.outage)
            .filter(|(_, last)| last.elapsed() < recent);
        // A waiter that inherited the line's place hands it on if it gives up.
        let stake = if ask_now {
            Stake::Nothing
        } else {
            Stake::Place
        };
        let mut attempt = Attempt {
            core,
            line,
            guard: CancelGuard::new(core, line, id, stake),
            head,
            id,
            k,
            wait,
            queue,
            ask_now,
            arrival: arrival_stamp(),
            backoff: Backoff::new(),
            last_ask: Instant::now(),
            first_lease: config.lease.min(WAITER_LEASE),
            uncertain: false,
            outage: None,
            trace: trace::Acquire::start(&config.name, k),
        };
        attempt.set_outage(outage);
        attempt
    }

    async fn run(&mut self) -> Result<Option<Grant>, Error> {
        let releases = Arc::clone(&self.core.releases);
        loop {
            // Registered before the request, so a release between the reply and the sleep
            // still wakes us.
            let freed = releases.on_freed();
            tokio::pin!(freed);
            freed.as_mut().enable();

            let pause = if self.ask_now {
                match self.ask().await? {
                    Step::Granted(grant) => return Ok(Some(grant)),
                    Step::Again => continue,
                    Step::Pause(pause) => pause,
                }
            } else {
                WAKE_CAP
            };
            self.ask_now = true;
            let now = Instant::now();
            let wake = match self.wait {
                Wait::Forever => now + pause,
                Wait::Until(until) if now < until => (now + pause).min(until),
                Wait::No | Wait::Until(_) => {
                    self.trace.gave_up();
                    return Ok(None);
                }
            };
            let fair = self.core.config.fair;
            let named = tokio::select! {
                // A fair waiter waits for its turn: the wake-up names its line.
                _ = &mut freed, if !fair => None,
                named = woken(self.head.as_deref_mut(), &self.line.id) => Some(named),
                _ = sleep_until(wake) => None,
            };
            if let Some(grant) = named.and_then(|(named, started)| self.pushed(named, started)) {
                // Granted by the release that freed the slots: no need to ask.
                self.guard.stake = Stake::Nothing;
                self.trace.granted(self.id, grant.token, &grant.slots, 1);
                return Ok(Some(grant));
            }
        }
    }

    /// One request to the masters, and what it leads to.
    async fn ask(&mut self) -> Result<Step, Error> {
        let core = self.core;
        let lease = core.config.lease;
        let joins = self.queue == Queue::Join;
        let sent = Instant::now();
        // A waiter in a fair queue may be registered by this ask even if its reply never
        // comes: giving up must take the registration back.
        self.guard.stake = self.guard.stake.asking(joins);
        // On several masters a line is not put back in the queue by a grant (the masters
        // that did not grant would keep it at its old place): the next waiter joins by
        // asking.
        let more = self.line.waiting() > 1 && core.quorum.len() == 1;
        let ask = Ask {
            id: self.id,
            k: self.k,
            queue: self.queue,
            line: &self.line.id,
            more,
            arrival: self.arrival,
            waits: !matches!(self.wait, Wait::No),
        };
        self.trace.attempt();
        let round = match core
            .quorum
            .acquire(&ask, lease, Deadline::of(sent, lease))
            .await
        {
            Ok(round) => round,
            Err(error) if error.is_transient() && !core.config.raise_on_redis_errors => {
                return self.unanswered(sent, error);
            }
            Err(error) => return Err(error),
        };
        self.set_outage(None);
        // Only an answered ask bounds when a pushed grant can have started.
        self.last_ask = sent;
        self.uncertain |= round.unanswered;
        if let Some(listeners) = self.head.as_deref_mut() {
            listeners.saw(&round.stamps, sent);
        }
        match round.outcome {
            Acquired::Granted { token, slots } => {
                self.guard.stake = Stake::Nothing;
                self.trace.granted(self.id, token, &slots, round.granted_by);
                if joins && more {
                    self.line.keep_place();
                }
                Ok(Step::Granted(Grant {
                    id: self.id.to_string(),
                    token,
                    slots,
                    sent,
                    lease,
                }))
            }
            Acquired::Busy { wait_ms } => {
                self.guard.stake = Stake::busy(joins, self.uncertain);
                if let Some(listeners) = self.head.as_deref_mut()
                    && !listeners.listening()
                {
                    // Busy before anyone listened: listen for wake-ups, then ask again at
                    // once, in case a release came before the subscription did.
                    let line = core.config.fair.then_some(self.line.id.as_str());
                    listeners.listen(&core.quorum, line).await;
                    if listeners.listening() {
                        return Ok(Step::Again);
                    }
                }
                let listening = self.head.as_deref().is_some_and(Listeners::listening);
                let hint = wait_ms.map(Duration::from_millis);
                Ok(Step::Pause(match (round.ahead, hint) {
                    // Far back in a fair queue: the scripts wake the line when its turn
                    // comes; it asks only to keep its place.
                    (Some(ahead), _) if ahead >= NEAR && listening => renew_pause(),
                    // Near the head: when the earliest lease expires (its holder may have
                    // died: nothing but a script frees it).
                    (Some(_), Some(hint)) if listening => near_pause(hint),
                    (_, Some(hint)) => wake_pause(hint),
                    // Masters that disagreed, or nothing held: a short random pause.
                    (_, None) => self.backoff.delay(None),
                }))
            }
        }
    }

    /// Too few masters answered: ride it out, up to the outage timeout.
    fn unanswered(&mut self, sent: Instant, error: Error) -> Result<Step, Error> {
        self.uncertain = true;
        self.guard.stake = self.guard.stake.unanswered();
        let since = self.outage.map_or(sent, |(since, _)| since);
        self.set_outage(Some((since, Instant::now())));
        if let Some(bound) = self.core.config.outage_timeout
            && !matches!(self.wait, Wait::No)
            && since.elapsed() >= bound
        {
            self.trace.outage(since.elapsed(), &error);
            return Err(Error::Outage {
                lasted: since.elapsed(),
                error: Box::new(error),
            });
        }
        Ok(Step::Pause(self.backoff.delay(None)))
    }

    /// Records the outage on the line too: the next head inherits it, so that the waiters
    /// of a handle give up together, not one outage timeout after another.
    fn set_outage(&mut self, outage: Option<(Instant, Instant)>) {
        self.outage = outage;
        if let Some(listeners) = self.head.as_deref_mut() {
            listeners.outage = outage;
        }
    }

    /// The grant a wake-up pushed to this attempt's id, if it is one and can be counted
    /// on: taken only with most of its first lease left by the client's conservative
    /// count, from the earliest it can have started (`started`, from the wake-up's stamp;
    /// at the latest this attempt's last answered ask, which registered it); otherwise the
    /// next ask gets it back, renewed.
    fn pushed(&self, named: Named, started: Option<Instant>) -> Option<Grant> {
        let Named::Granted {
            id, token, slots, ..
        } = named
        else {
            return None;
        };
        let sent = started.map_or(self.last_ask, |s| s.max(self.last_ask));
        (id == self.id && Instant::now() + self.first_lease / 2 < sent + validity(self.first_lease))
            .then_some(Grant {
                id,
                token,
                slots,
                sent,
                lease: self.first_lease,
            })
    }
}

/// A fresh wake-up for `line` on the head's listeners; never resolves for a try.
async fn woken(head: Option<&mut Listeners>, line: &str) -> (Named, Option<Instant>) {
    match head {
        Some(listeners) => listeners.woken(line).await,
        None => std::future::pending().await,
    }
}
