//! `AsyncSemaphore`: the façade and its docs.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};

use crate::builder::Builder;
use crate::error::Error;
use crate::lease::LeaseState;
use crate::permit::Permit;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::future::select_all;
use tokio::sync::broadcast;

use crate::lua::Acquired;
use crate::quorum::Quorum;
use crate::quorum::{Ask, Leave, Queue};
use crate::shutdown::{Release, Releases};
use crate::trace;
use crate::wait::{Backoff, WAKE_CAP, wake_pause};
use crate::wake::Listener;
use crate::wake::{Named, Wake};

/// What renewals and background releases need: no handle-level state, so a running
/// renewal never keeps a dropped handle's detached permits alive.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) quorum: Arc<Quorum>,
    pub(crate) lease: Duration,
    /// Wakes this process's waiters when one of its permits is released.
    pub(crate) released: Notify,
    /// The background releases still running, and how to finish them if their runtime
    /// shuts down first.
    pub(crate) releases: Releases,
}

impl Core {
    /// Releases `slots` of a lease (all of them when empty) and waits for the master.
    /// [`Error::PermitLost`] when the lease had passed first: the slots are free either
    /// way, but what they protected may have been used by another holder.
    pub(crate) async fn release_lease(
        &self,
        lease: &LeaseState,
        slots: &[u32],
    ) -> Result<(), Error> {
        let was_valid = lease.is_valid();
        let freed = self
            .quorum
            .release(&lease.id, &Leave::default(), slots)
            .await;
        trace::released(&lease.id, &freed);
        // A lease already lost is the answer, whether or not the masters could be reached.
        if !was_valid || freed? == 0 {
            return Err(Error::PermitLost {
                id: lease.id.clone(),
            });
        }
        Ok(())
    }

    /// Releases `slots` of `id` (all when empty) without waiting, takes back its
    /// registration with waiter `line` (when not empty), and takes the line off the queue
    /// if `dequeue`; a failure is left to the leases, which expire on their own. If the
    /// runtime shuts down before the release is done, the release is done at that moment
    /// instead, on a thread of its own (see [`crate::shutdown`]).
    pub(crate) fn release_in_background(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        id: String,
        line: (String, bool),
        slots: Vec<u32>,
    ) {
        let release = Release::new(Arc::clone(self), id, line, slots);
        runtime.spawn(release.run());
    }
}

/// A permit handed back to its handle with [`Permit::detach`]; still renewed.
#[derive(Debug)]
pub(crate) struct Detached {
    pub(crate) state: Arc<LeaseState>,
    pub(crate) renewal: AbortHandle,
}

/// Shared by every clone of one handle and by its permits.
pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    pub(crate) name: String,
    pub(crate) raise_on_redis_errors: bool,
    /// How long a waiting acquire rides out masters that do not answer.
    outage_timeout: Option<Duration>,
    pub(crate) fair: bool,
    detached: Mutex<VecDeque<Detached>>,
    /// The line of this handle's waiters: the holder of the lock is its head, the one that
    /// asks the masters.
    turn: tokio::sync::Mutex<Line>,
    /// This handle's waiter line in a fair semaphore's queue: random, like a permit id.
    line: String,
    /// Waiters of this handle now (the head included).
    waiting: AtomicUsize,
    /// A granted head left the line's place in the queue to the next waiter, who then
    /// waits for its turn to be published instead of asking at once.
    line_queued: AtomicBool,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    pub(crate) fn push_detached(&self, detached: Detached) {
        self.detached
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(detached);
    }
}

impl Drop for Shared {
    /// The last handle is gone: nobody can release its detached permits any more, so
    /// release them now rather than leave them renewed forever.
    fn drop(&mut self) {
        let detached = std::mem::take(
            self.detached
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for permit in detached {
            permit.renewal.abort();
            self.core.release_in_background(
                &self.runtime,
                permit.state.id.clone(),
                (String::new(), false),
                Vec::new(),
            );
        }
    }
}

/// A distributed counting semaphore on Redis or Valkey: at most `N` permits are held at
/// once, across tasks, threads, processes and machines.
///
/// Every permit is a lease on the master's own clock, renewed in the background while its
/// [`Permit`] guard lives; a holder that crashes gives its permits back within one lease.
/// Build one with [`AsyncSemaphore::builder`]. The handle is cheap to clone and can be
/// shared by any number of tasks.
///
/// ```no_run
/// use redis_semaphore::AsyncSemaphore;
///
/// # #[tokio::main] async fn main() -> Result<(), redis_semaphore::Error> {
/// let sem = AsyncSemaphore::builder("reports", 3)
///     .master("redis://127.0.0.1:6379")
///     .build()
///     .await?;
/// let permit = sem.acquire().await?;
/// // ... at most 3 holders run this at once ...
/// permit.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncSemaphore {
    shared: Arc<Shared>,
}

impl fmt::Debug for AsyncSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSemaphore")
            .field("name", &self.shared.name)
            .field("permits", &self.initial_value())
            .field("lease", &self.shared.core.lease)
            .field("bounded", &self.bounded())
            .finish_non_exhaustive()
    }
}

/// How long an acquire may wait.
#[derive(Debug, Clone, Copy)]
enum Wait {
    No,
    Until(Instant),
    Forever,
}

/// Releases in the background whatever an acquire may have been granted, when its future
/// is dropped (or fails) while a request was in flight: the id existed before the request,
/// so the release finds the grant even if its reply never arrived.
///
/// A local guard in the `async fn` rather than a hand-written future with pin-project's
/// `PinnedDrop`: dropping the future drops its live locals, so the guard runs at exactly
/// the same moments, and the acquire stays ordinary async code.
///
/// A waiter of a fair semaphore that gives up (cancelled, or out of time) also hands its
/// line's place in the queue on: to the next waiter of the line if there is one (who asks
/// at once), or back to the queue if it was the last.
struct AcquireGuard<'a> {
    shared: &'a Arc<Shared>,
    id: &'a str,
    runtime: tokio::runtime::Handle,
    armed: bool,
    queued: bool,
}

impl Drop for AcquireGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut line = (String::new(), false);
        if self.queued {
            self.shared.line_queued.store(false, Ordering::Relaxed);
            line.0.clone_from(&self.shared.line);
            // Counts this waiter too: it leaves after the guard.
            line.1 = self.shared.waiting.load(Ordering::Relaxed) <= 1;
        }
        self.shared.core.release_in_background(
            &self.runtime,
            self.id.to_string(),
            line,
            Vec::new(),
        );
    }
}

/// Counts a waiter of the handle while it lives. The last waiter to leave takes the line
/// off the queue if a granted head had put it back there for a waiter that then gave up
/// (a dropped future) before its turn: an empty line must not keep its place.
struct Waiting<'a>(&'a Arc<Shared>);

impl<'a> Waiting<'a> {
    fn enter(shared: &'a Arc<Shared>) -> Self {
        shared.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(shared)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let shared = self.0;
        if shared.waiting.fetch_sub(1, Ordering::Relaxed) == 1
            && shared.line_queued.swap(false, Ordering::Relaxed)
        {
            shared.core.release_in_background(
                &shared.runtime,
                String::new(),
                (shared.line.clone(), true),
                Vec::new(),
            );
        }
    }
}

/// The line of a handle's waiters, held by the one at its head.
#[derive(Debug, Default)]
pub(crate) struct Line {
    /// Wake-up listeners on every master, made at the first wait.
    listeners: Option<Vec<Listener>>,
    /// Their receivers, with their master: kept from head to head, so a wake-up published
    /// between two heads is not lost.
    wakeups: Vec<(usize, broadcast::Receiver<Wake>)>,
    /// Per master, the stamp of the line's last answered request: wake-ups stamped before
    /// it are stale (that request already saw what they announce).
    seen: Vec<u64>,
    /// The outage the line's heads are riding out: when its first unanswered attempt was
    /// made, and when the latest. The next head inherits it, so that the waiters of a
    /// handle give up together, not one outage timeout after another.
    outage: Option<(Instant, Instant)>,
}

impl Line {
    /// Listening on every master, through subscribers that are still running (one
    /// started on a runtime that has shut down since is not).
    fn listening(&self) -> bool {
        self.listeners
            .as_ref()
            .is_some_and(|listeners| listeners.iter().all(Listener::is_alive))
    }

    /// Listens for wake-ups on every master (confirmed by each before this returns);
    /// kept once every master has answered.
    async fn listen(&mut self, quorum: &Quorum) {
        let listeners = quorum.listen().await;
        self.wakeups = listeners
            .iter()
            .map(|(master, listener)| (*master, listener.receiver()))
            .collect();
        if listeners.len() == quorum.len() {
            self.listeners = Some(listeners.into_iter().map(|(_, l)| l).collect());
        }
    }

    /// Records the stamps of an answered request.
    fn saw(&mut self, stamps: &[Option<u64>]) {
        self.seen.resize(stamps.len(), 0);
        for (seen, stamp) in self.seen.iter_mut().zip(stamps) {
            if let Some(stamp) = stamp {
                *seen = (*seen).max(*stamp);
            }
        }
    }

    fn named(&self, master: usize, wake: &str, line: &str) -> Named {
        crate::wake::for_line(wake, line, self.seen.get(master).copied().unwrap_or(0))
    }

    /// Whether a fresh wake-up for `line` (or for anyone) arrived since it was last
    /// looked at. (A grant in it was for an earlier waiter of the line: ask.)
    fn woken_meanwhile(&mut self, line: &str) -> bool {
        let mut woken = false;
        for i in 0..self.wakeups.len() {
            loop {
                let master = self.wakeups[i].0;
                match self.wakeups[i].1.try_recv() {
                    Ok(wake) => woken |= self.named(master, &wake, line) != Named::Not,
                    Err(broadcast::error::TryRecvError::Lagged(_)) => woken = true,
                    Err(_) => break,
                }
            }
        }
        woken
    }

    /// Waits for a fresh wake-up for `line` (or for anyone), and says what it brought;
    /// never returns when nothing listens.
    async fn woken(&mut self, line: &str) -> Named {
        if self.wakeups.is_empty() {
            return std::future::pending().await;
        }
        loop {
            let (received, index, _) = select_all(
                self.wakeups
                    .iter_mut()
                    .map(|(_, receiver)| Box::pin(receiver.recv())),
            )
            .await;
            let master = self.wakeups[index].0;
            match received {
                Ok(wake) => match self.named(master, &wake, line) {
                    // Stale, or kept for other lines.
                    Named::Not => {}
                    named => return named,
                },
                // Fell behind: something was freed, try.
                Err(broadcast::error::RecvError::Lagged(_)) => return Named::Ask,
                // The subscriber is gone: the caller's timer will do.
                Err(broadcast::error::RecvError::Closed) => {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// Detached permits taken off the handle by `release(n)` and not yet released.
struct PendingReleases<'a> {
    core: &'a Arc<Core>,
    runtime: tokio::runtime::Handle,
    left: VecDeque<(Arc<LeaseState>, Vec<u32>)>,
}

impl Drop for PendingReleases<'_> {
    fn drop(&mut self) {
        for (state, slots) in self.left.drain(..) {
            self.core.release_in_background(
                &self.runtime,
                state.id.clone(),
                (String::new(), false),
                slots,
            );
        }
    }
}

/// A fresh permit id: 128 random bits in hex.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl AsyncSemaphore {
    /// Starts building a semaphore called `name` with `permits` permits; see [`Builder`]
    /// for the settings and their defaults. Nothing is checked or sent until
    /// [`build`](Builder::build).
    ///
    /// The name is 1 to [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes (any bytes: it is
    /// the hash tag of the semaphore's keys, `semaphore:{name}:*`), and `permits` at least 1.
    pub fn builder(name: impl Into<String>, permits: u32) -> Builder {
        Builder::new(name.into(), permits)
    }

    /// Starts building a handle on an existing semaphore called `name`, with the permit
    /// count stored with it: for tools and operators that do not know the count.
    /// [`build`](Builder::build) returns [`Error::NotFound`] if there is no such semaphore.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), redis_semaphore::Error> {
    /// let sem = redis_semaphore::AsyncSemaphore::open("reports")
    ///     .master("redis://127.0.0.1:6379")
    ///     .build()
    ///     .await?;
    /// for holder in sem.holders().await? {
    ///     println!("{} holds slots {:?}", holder.id, holder.slots);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn open(name: impl Into<String>) -> Builder {
        Builder::adopting(name.into())
    }

    pub(crate) fn from_parts(
        quorum: Quorum,
        releases: Releases,
        name: String,
        lease: Duration,
        raise_on_redis_errors: bool,
        outage_timeout: Option<Duration>,
        fair: bool,
    ) -> Self {
        let core = Arc::new(Core {
            quorum: Arc::new(quorum),
            lease,
            released: Notify::new(),
            releases,
        });
        let shared = Shared {
            core,
            name,
            raise_on_redis_errors,
            outage_timeout,
            fair,
            detached: Mutex::new(VecDeque::new()),
            turn: tokio::sync::Mutex::new(Line::default()),
            line: new_id(),
            waiting: AtomicUsize::new(0),
            line_queued: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::current(),
        };
        AsyncSemaphore {
            shared: Arc::new(shared),
        }
    }

    /// Waits for one permit.
    ///
    /// Waiters are served first come, first served across processes (see
    /// [`Builder::fair`]). Masters that do not answer are retried, for at most the
    /// [outage timeout](Builder::outage_timeout) (30 s by default) in a row.
    ///
    /// ```no_run
    /// # async fn work() {}
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// let permit = sem.acquire().await?;
    /// work().await;
    /// permit.release().await?; // or drop it
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::Outage`] when the masters did not answer for the outage timeout, or at
    ///   once the master's [`Error::Redis`] ([`Error::Quorum`] on several) if the semaphore
    ///   was built with [`raise_on_redis_errors(true)`](Builder::raise_on_redis_errors).
    /// - At once, errors that waiting cannot fix: [`Error::ConfigMismatch`] (the
    ///   semaphore's count or boundedness was changed), [`Error::WrongType`], and an
    ///   [`Error::Redis`] such as a wrong password or a missing ACL permission.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped (say by `tokio::time::timeout`), whatever it
    /// may have been granted is released in the background.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn acquire(&self) -> Result<Permit, Error> {
        self.acquire_many(1).await
    }

    /// Waits for `k` permits, held together under one guard (all `k` or none, never a
    /// part of them while waiting for the rest).
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// let two = sem.acquire_many(2).await?;
    /// assert_eq!(two.permits(), 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] at once when `k` is 0, or more than the permit count of a
    /// bounded semaphore (a wait that could never end); otherwise as for
    /// [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire).
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn acquire_many(&self, k: u32) -> Result<Permit, Error> {
        match self.acquire_inner(k, Wait::Forever).await? {
            Some(permit) => Ok(permit),
            None => unreachable!("an acquire without a time limit returns only with a permit"),
        }
    }

    /// Takes one permit if one is free now; never waits (one request, at most one request
    /// timeout). On a fair semaphore it does not jump the queue: a permit kept for a
    /// waiter is not free.
    ///
    /// Returns `Ok(None)` when every permit is held, and also when the master could not be
    /// reached, unless the semaphore was built with
    /// [`raise_on_redis_errors(true)`](Builder::raise_on_redis_errors), as in
    /// pottery-semaphore; [`last_error`](Self::last_error) then says which master failed
    /// and how.
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// match sem.try_acquire().await? {
    ///     Some(permit) => drop(permit), // ... work, then release ...
    ///     None if sem.last_error().is_some() => eprintln!("the master is unreachable"),
    ///     None => eprintln!("every permit is held"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`acquire`](Self::acquire), except that master errors are `Ok(None)` unless
    /// raised; never [`Error::Outage`].
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire): a grant the dropped future may have been given is
    /// released in the background.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn try_acquire(&self) -> Result<Option<Permit>, Error> {
        self.try_acquire_many(1).await
    }

    /// Takes `k` permits if that many are free now; never waits. See
    /// [`try_acquire`](Self::try_acquire).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] at once when `k` is 0, or more than the permit count of a
    /// bounded semaphore;
    /// otherwise as for [`try_acquire`](Self::try_acquire).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire).
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn try_acquire_many(&self, k: u32) -> Result<Option<Permit>, Error> {
        self.acquire_inner(k, Wait::No).await
    }

    /// Waits up to `timeout` for one permit; `Ok(None)` if none came in time.
    ///
    /// At least one attempt is made, even with a zero timeout. A timeout too large to
    /// represent waits without a limit.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// match sem.acquire_timeout(Duration::from_secs(2)).await? {
    ///     Some(permit) => permit.release().await?,
    ///     None => eprintln!("no permit within 2 s"),
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As for [`acquire`](Self::acquire): an outage longer than the outage timeout is
    /// [`Error::Outage`] even when `timeout` is longer.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire).
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Permit>, Error> {
        self.acquire_many_timeout(1, timeout).await
    }

    /// Waits up to `timeout` for `k` permits; `Ok(None)` if they did not come in time.
    /// See [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Errors
    ///
    /// As for [`acquire_many`](Self::acquire_many) and
    /// [`acquire_timeout`](Self::acquire_timeout).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire).
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn acquire_many_timeout(
        &self,
        k: u32,
        timeout: Duration,
    ) -> Result<Option<Permit>, Error> {
        // A timeout too large to represent is no limit at all.
        let wait = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        self.acquire_inner(k, wait).await
    }

    async fn acquire_inner(&self, k: u32, mut wait: Wait) -> Result<Option<Permit>, Error> {
        self.check_count(k)?;
        let shared = &self.shared;
        let core = &shared.core;
        let _waiting = Waiting::enter(shared);
        // Waiters of this handle line up here, first come first served, and only the head
        // asks the masters: a release wakes this process once, not each of its tasks. A
        // try does not line up; neither does an attempt whose time ran out in the line
        // (at least one attempt is made).
        let mut turn = match wait {
            Wait::No => None,
            Wait::Forever => Some(shared.turn.lock().await),
            Wait::Until(until) => match tokio::time::timeout_at(until, shared.turn.lock()).await {
                Ok(turn) => Some(turn),
                Err(_) => {
                    wait = Wait::No;
                    None
                }
            },
        };
        let queue = match (shared.fair, wait) {
            (false, _) => Queue::Ignore,
            (true, Wait::No) => Queue::Respect,
            (true, _) => Queue::Join,
        };
        // A granted head put the line back in the queue for us: wait for its turn to be
        // published, unless it already was.
        let mut ask_now = true;
        if let Some(line) = turn.as_deref_mut()
            && queue == Queue::Join
            && shared.line_queued.swap(false, Ordering::Relaxed)
            && line.listening()
        {
            ask_now = line.woken_meanwhile(&shared.line);
        }
        let id = new_id();
        let runtime = tokio::runtime::Handle::current();
        let mut guard = AcquireGuard {
            shared,
            id: &id,
            runtime: runtime.clone(),
            // A waiter that inherited the line's place hands it on if it gives up.
            armed: !ask_now,
            queued: !ask_now,
        };
        let mut trace = trace::Acquire::start(&shared.name, k);
        // This acquire's place in a fair queue, the same in every retry and on every master.
        let arrival = crate::quorum::arrival_stamp();
        let mut backoff = Backoff::new();
        // The outage this acquire is riding out, inherited from the line if its previous
        // head saw one that lasts still (it failed a moment ago; else it is stale).
        let mut outage = turn
            .as_deref()
            .and_then(|line| line.outage)
            .filter(|(_, last)| {
                last.elapsed() < core.quorum.request_timeout() + Duration::from_secs(1)
            });
        if let Some(line) = turn.as_deref_mut() {
            line.outage = outage;
        }
        // When the last request was sent: a grant pushed with a wake-up was made after it,
        // so the lease cannot have started earlier.
        let mut last_ask = Instant::now();
        // A pushed grant lasts at most a waiter lease until its first renewal, so that one
        // pushed to a waiter that cannot hear of it (cut off, or dead since it last asked)
        // keeps the slot from others only that long.
        let first_lease = core.lease.min(crate::WAITER_LEASE);
        // Set once an attempt went unanswered by some master: it may still be granted
        // there later (a request stuck on a paused master), so the guard stays armed.
        let mut uncertain = false;
        loop {
            // Registered before the attempt, so a release between the reply and the sleep
            // still wakes us.
            let notified = core.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let pause = if !ask_now {
                WAKE_CAP
            } else {
                let started = Instant::now();
                guard.armed = true;
                // A waiter in a fair queue may be registered by this ask even if its reply
                // never comes: giving up must take the registration back.
                guard.queued |= queue == Queue::Join;
                let deadline = started + crate::lease::validity(core.lease);
                // On several masters a line is not put back in the queue by a grant (the
                // masters that did not grant would keep it at its old place): the next
                // waiter joins by asking.
                let more = shared.waiting.load(Ordering::Relaxed) > 1 && core.quorum.len() == 1;
                let ask = Ask {
                    id: &id,
                    k,
                    queue,
                    line: &shared.line,
                    more,
                    arrival,
                    waits: !matches!(wait, Wait::No),
                };
                trace.attempt();
                match core.quorum.acquire(&ask, core.lease, deadline).await {
                    Ok(attempt) => {
                        outage = None;
                        if let Some(line) = turn.as_deref_mut() {
                            line.outage = None;
                        }
                        // Only an answered ask bounds when a pushed grant can have started.
                        last_ask = started;
                        uncertain |= attempt.unanswered;
                        if let Some(line) = turn.as_deref_mut() {
                            line.saw(&attempt.stamps);
                        }
                        match attempt.outcome {
                            Acquired::Granted { token, slots } => {
                                guard.armed = false;
                                trace.granted(&id, token, &slots, attempt.granted_by);
                                if queue == Queue::Join && more {
                                    shared.line_queued.store(true, Ordering::Relaxed);
                                }
                                let shared = Arc::clone(shared);
                                let id = id.clone();
                                let lease = core.lease;
                                return Ok(Some(Permit::new(
                                    shared, id, token, slots, started, lease, runtime,
                                )));
                            }
                            Acquired::Busy { wait_ms } => {
                                // A queued waiter hands its place on if it gives up.
                                guard.queued = queue == Queue::Join;
                                guard.armed = uncertain || guard.queued;
                                if let Some(line) = turn.as_deref_mut()
                                    && !line.listening()
                                {
                                    // Busy before anyone listened: listen for wake-ups, then
                                    // ask again at once, in case a release came before the
                                    // subscription did.
                                    line.listen(&core.quorum).await;
                                    if line.listening() {
                                        continue;
                                    }
                                }
                                match wait_ms {
                                    Some(ms) => wake_pause(Duration::from_millis(ms)),
                                    // Masters that disagreed, or nothing held: a short
                                    // random pause.
                                    None => backoff.delay(None),
                                }
                            }
                        }
                    }
                    Err(error) if error.is_transient() && !shared.raise_on_redis_errors => {
                        uncertain = true;
                        guard.armed = true;
                        let since = outage.map_or(started, |(since, _)| since);
                        outage = Some((since, Instant::now()));
                        if let Some(line) = turn.as_deref_mut() {
                            line.outage = outage;
                        }
                        if let Some(bound) = shared.outage_timeout
                            && !matches!(wait, Wait::No)
                            && since.elapsed() >= bound
                        {
                            trace.outage(since.elapsed(), &error);
                            return Err(Error::Outage {
                                lasted: since.elapsed(),
                                error: Box::new(error),
                            });
                        }
                        backoff.delay(None)
                    }
                    Err(error) => return Err(error),
                }
            };
            ask_now = true;
            let wake = Instant::now() + pause;
            let wake = match wait {
                Wait::Forever => wake,
                Wait::Until(until) if Instant::now() < until => wake.min(until),
                Wait::No | Wait::Until(_) => {
                    trace.gave_up();
                    return Ok(None);
                }
            };
            let woken = async {
                match turn.as_deref_mut() {
                    Some(line) => line.woken(&shared.line).await,
                    None => std::future::pending().await,
                }
            };
            let pushed = tokio::select! {
                // A fair waiter waits for its turn: the wake-up names its line.
                _ = &mut notified, if !shared.fair => None,
                named = woken => match named {
                    // Taken only with most of its first lease left by the client's
                    // conservative count; otherwise the next ask gets it back, renewed.
                    Named::Granted { id: granted, token, slots }
                        if granted == id
                            && Instant::now() + first_lease / 2
                                < last_ask + crate::lease::validity(first_lease) =>
                    {
                        Some((token, slots))
                    }
                    _ => None,
                },
                _ = sleep_until(wake) => None,
            };
            if let Some((token, slots)) = pushed {
                // Granted by the release that freed the slots: no need to ask.
                guard.armed = false;
                trace.granted(&id, token, &slots, 1);
                let shared = Arc::clone(shared);
                let id = id.clone();
                return Ok(Some(Permit::new(
                    shared,
                    id,
                    token,
                    slots,
                    last_ask,
                    first_lease,
                    runtime,
                )));
            }
        }
    }

    fn check_count(&self, k: u32) -> Result<(), Error> {
        let n = self.initial_value();
        if k == 0 {
            return Err(Error::InvalidArgument(
                "cannot acquire 0 permits; ask for at least 1".into(),
            ));
        }
        // On an unbounded semaphore releases can add permits, so more than the count (or
        // any number, from zero permits) is a wait that can end.
        if k > n && self.bounded() {
            return Err(Error::InvalidArgument(format!(
                "cannot acquire {k} permits of a semaphore of {n}: the wait could never end"
            )));
        }
        Ok(())
    }

    /// Releases `n` permits that this handle holds as detached permits
    /// ([`Permit::detach`]), oldest first, like pottery-semaphore's `release(n)`.
    ///
    /// Releasing more than the handle holds is [`Error::Bounded`] on a bounded semaphore
    /// (the default), and then nothing is released. On an unbounded one
    /// ([`Builder::bounded(false)`](Builder::bounded)) the excess adds permits to the
    /// semaphore, so [`value`](Self::value) can exceed [`initial_value`](Self::initial_value).
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// sem.acquire().await?.detach(); // the handle holds it now, renewed
    /// // ... later, anywhere the handle is ...
    /// sem.release(1).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`] for `n == 0`; [`Error::Bounded`] as above (nothing is
    ///   released).
    /// - [`Error::PermitLost`] if a released permit's lease had already passed (the others
    ///   are released all the same).
    /// - [`Error::Redis`] / [`Error::Quorum`] when the masters cannot be reached; the
    ///   permits taken off the handle are then released in the background (their leases
    ///   end on their own if that fails too).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that nothing leaks: the permits are taken off the handle first, and
    /// those not released yet when the future is dropped are released in the background.
    /// An unbounded excess not yet added to the semaphore when it is dropped is not added.
    pub async fn release(&self, n: u32) -> Result<(), Error> {
        if n == 0 {
            return Err(Error::InvalidArgument("cannot release 0 permits".into()));
        }
        let (taken, excess) = {
            let mut detached = self
                .shared
                .detached
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let held: usize = detached.iter().map(|d| d.state.slots().len()).sum();
            let held = u32::try_from(held).unwrap_or(u32::MAX);
            if n > held && self.bounded() {
                return Err(Error::Bounded { held, requested: n });
            }
            let mut wanted = n.min(held) as usize;
            let mut taken = Vec::new();
            while wanted > 0 {
                let Some(front) = detached.front_mut() else {
                    break;
                };
                let has = front.state.slots().len();
                if has <= wanted {
                    wanted -= has;
                    let whole = detached.pop_front().expect("front exists");
                    whole.renewal.abort();
                    taken.push((whole.state, Vec::new()));
                } else {
                    let part = front.state.take_slots(wanted);
                    wanted = 0;
                    taken.push((Arc::clone(&front.state), part));
                }
            }
            (taken, n.saturating_sub(held))
        };
        let core = &self.shared.core;
        // Whatever is not released yet when this future errs or is dropped is released in
        // the background: these permits left the handle and nobody else will.
        let mut pending = PendingReleases {
            core,
            runtime: tokio::runtime::Handle::current(),
            left: taken.into(),
        };
        let mut lost = None;
        while let Some((state, slots)) = pending.left.front() {
            match core.release_lease(state, slots).await {
                Ok(()) => {}
                Err(error @ Error::PermitLost { .. }) => {
                    lost.get_or_insert(error);
                }
                Err(error) => return Err(error),
            }
            pending.left.pop_front();
        }
        core.released.notify_waiters();
        if excess > 0 {
            core.quorum.grow(excess).await?;
        }
        lost.map_or(Ok(()), Err)
    }

    /// Waits until the releases this handle started in the background are done: those of
    /// dropped permits, of acquires that were cancelled or ran out of time, and of waiters
    /// that gave up their place in the queue. Await it before `main` returns, so that the
    /// next process finds the permits free at once:
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), redis_semaphore::Error> {
    /// let sem = redis_semaphore::AsyncSemaphore::builder("reports", 3)
    ///     .master("redis://127.0.0.1:6379")
    ///     .build()
    ///     .await?;
    /// let permit = sem.acquire().await?;
    /// // ... work ...
    /// drop(permit);
    /// sem.flush().await; // released on the masters when this returns
    /// # Ok(()) }
    /// ```
    ///
    /// Without it, a background release that the runtime's shutdown cuts short is still
    /// done: at that moment, on a thread of its own, holding up the shutdown (and so the
    /// exit) for at most about one request timeout.
    ///
    /// It covers every clone of this handle and their permits, releases started while it
    /// waits included. Each release takes at most about one request timeout (a master that
    /// does not answer in time counts as failed); a failed release is not retried, and its
    /// lease ends on its own. Detached permits ([`Permit::detach`]) are not released by it:
    /// the handle still holds them.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops the wait; the releases go on.
    pub async fn flush(&self) {
        self.shared.core.releases.flush().await;
    }

    /// Permits available now (free slots on the master; expired leases count as free),
    /// like pottery-semaphore's `value`. On an unbounded semaphore it can exceed
    /// [`initial_value`](Self::initial_value). A snapshot: another process may take or
    /// free permits right after.
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// println!("{} of {} permits free", sem.value().await?, sem.initial_value());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::ConfigMismatch`] and
    /// [`Error::WrongType`] as for [`acquire`](Self::acquire). Unlike an acquire, it
    /// never retries.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads (its script may reclaim expired leases, as any does).
    pub async fn value(&self) -> Result<u32, Error> {
        Ok(self.shared.core.quorum.status().await?.available)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The semaphore's permit count: the one it was built with (or found, for a handle
    /// from [`open`](Self::open)), or the one this handle set with
    /// [`set_permits`](Self::set_permits).
    pub fn initial_value(&self) -> u32 {
        self.shared.core.quorum.permits()
    }

    /// True when no permit is available now: [`value`](Self::value) is 0.
    ///
    /// # Errors
    ///
    /// As for [`value`](Self::value).
    ///
    /// # Cancel safety
    ///
    /// As for [`value`](Self::value).
    pub async fn locked(&self) -> Result<bool, Error> {
        Ok(self.value().await? == 0)
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The lease of every permit this handle grants ([`Builder::lease`], 10 s by default).
    pub fn lease(&self) -> Duration {
        self.shared.core.lease
    }

    /// The latest failure of a master that has not answered since, or `None` when every
    /// master answered its latest request.
    ///
    /// This is how to tell "no permit" from "no server" where the API cannot: with
    /// [`raise_on_redis_errors(false)`](Builder::raise_on_redis_errors) (the default, as
    /// in pottery-semaphore) a [`try_acquire`](Self::try_acquire) on an unreachable master
    /// returns `Ok(None)`, the same as when every permit is held, and a waiting acquire
    /// keeps trying (up to the [outage timeout](Builder::outage_timeout)). Every request of
    /// the handle counts: acquires, renewals, background releases, [`value`](Self::value).
    /// A master's entry is cleared by its next answer. On several masters this is the
    /// most recent of [`master_errors`](Self::master_errors).
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// match sem.try_acquire().await? {
    ///     Some(permit) => { /* work */ drop(permit) }
    ///     None => match sem.last_error() {
    ///         Some(down) => eprintln!("{} unreachable since {:?}: {}", down.master, down.since, down.error),
    ///         None => eprintln!("every permit is held"),
    ///     },
    /// }
    /// # Ok(()) }
    /// ```
    pub fn last_error(&self) -> Option<crate::MasterError> {
        self.master_errors().into_iter().next()
    }

    /// Every master that failed and has not answered since, the latest failure first;
    /// empty when all of them answer. See [`last_error`](Self::last_error).
    pub fn master_errors(&self) -> Vec<crate::MasterError> {
        self.shared.core.quorum.master_errors()
    }

    /// Whether the semaphore is bounded: [`release(n)`](Self::release) of more permits
    /// than the handle holds is then [`Error::Bounded`]. It is stored with the semaphore
    /// when the semaphore is created, so it is the same for every handle: the one this
    /// handle was built with ([`Builder::bounded`]), or the stored one for a handle from
    /// [`open`](Self::open).
    pub fn bounded(&self) -> bool {
        self.shared.core.quorum.bounded()
    }
}
