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
use crate::quorum::Queue;
use crate::quorum::Quorum;
use crate::scripts::Acquired;
use crate::wait::{Backoff, wake_pause};
use crate::wake::Listener;

/// What renewals and background releases need: no handle-level state, so a running
/// renewal never keeps a dropped handle's detached permits alive.
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) quorum: Arc<Quorum>,
    pub(crate) lease: Duration,
    /// Wakes this process's waiters when one of its permits is released.
    pub(crate) released: Notify,
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
        let freed = self.quorum.release(&lease.id, slots).await?;
        if freed == 0 || !was_valid {
            return Err(Error::PermitLost {
                id: lease.id.clone(),
            });
        }
        Ok(())
    }

    /// Releases `slots` of `id` (all when empty) without waiting; a failure is left to the
    /// lease, which expires on its own.
    pub(crate) fn release_in_background(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        id: String,
        slots: Vec<u32>,
    ) {
        let core = Arc::clone(self);
        runtime.spawn(async move {
            let _ = core.quorum.release(&id, &slots).await;
            core.released.notify_waiters();
        });
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
    pub(crate) permits: u32,
    pub(crate) bounded: bool,
    pub(crate) raise_on_redis_errors: bool,
    pub(crate) fair: bool,
    detached: Mutex<VecDeque<Detached>>,
    /// The line of this handle's waiters: its holder is the one that asks the masters.
    turn: tokio::sync::Mutex<()>,
    /// Wake-up listeners on every master, made at the first wait.
    listeners: Mutex<Option<Arc<Vec<Listener>>>>,
    runtime: tokio::runtime::Handle,
}

impl Shared {
    /// This handle's wake-up listeners; kept once every master has one.
    async fn listeners(&self) -> Arc<Vec<Listener>> {
        if let Some(listeners) = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return listeners;
        }
        let listeners = Arc::new(self.core.quorum.listen().await);
        if listeners.len() == self.core.quorum.len() {
            *self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&listeners));
        }
        listeners
    }

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
            self.core
                .release_in_background(&self.runtime, permit.state.id.clone(), Vec::new());
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
            .field("permits", &self.shared.permits)
            .field("lease", &self.shared.core.lease)
            .field("bounded", &self.shared.bounded)
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
struct AcquireGuard<'a> {
    core: &'a Arc<Core>,
    id: &'a str,
    runtime: tokio::runtime::Handle,
    armed: bool,
}

impl Drop for AcquireGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.core
                .release_in_background(&self.runtime, self.id.to_string(), Vec::new());
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
            self.core
                .release_in_background(&self.runtime, state.id.clone(), slots);
        }
    }
}

/// A fresh permit id: 128 random bits in hex.
fn new_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl AsyncSemaphore {
    /// Starts building a semaphore called `name` with `permits` permits.
    pub fn builder(name: impl Into<String>, permits: u32) -> Builder {
        Builder::new(name.into(), permits)
    }

    pub(crate) fn from_parts(
        quorum: Quorum,
        name: String,
        permits: u32,
        lease: Duration,
        bounded: bool,
        raise_on_redis_errors: bool,
        fair: bool,
    ) -> Self {
        let core = Arc::new(Core {
            quorum: Arc::new(quorum),
            lease,
            released: Notify::new(),
        });
        let shared = Shared {
            core,
            name,
            permits,
            bounded,
            raise_on_redis_errors,
            fair,
            detached: Mutex::new(VecDeque::new()),
            turn: tokio::sync::Mutex::new(()),
            listeners: Mutex::new(None),
            runtime: tokio::runtime::Handle::current(),
        };
        AsyncSemaphore {
            shared: Arc::new(shared),
        }
    }

    /// Waits for one permit.
    ///
    /// Errors from the masters are retried until a permit is granted, unless the
    /// semaphore was built with [`raise_on_redis_errors(true)`](Builder::raise_on_redis_errors).
    /// Errors that waiting cannot fix (a wrong key type, a mismatched permit count, a
    /// missing ACL permission) are returned at once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped (say by `tokio::time::timeout`), whatever it
    /// may have been granted is released in the background.
    pub async fn acquire(&self) -> Result<Permit, Error> {
        self.acquire_many(1).await
    }

    /// Waits for `k` permits, held together under one guard.
    ///
    /// `k` must be between 1 and the semaphore's permit count, or this returns
    /// [`Error::InvalidArgument`] at once (a wait that could never end).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire).
    pub async fn acquire_many(&self, k: u32) -> Result<Permit, Error> {
        match self.acquire_inner(k, Wait::Forever).await? {
            Some(permit) => Ok(permit),
            None => unreachable!("an acquire without a time limit returns only with a permit"),
        }
    }

    /// Takes one permit if one is free now; never waits.
    ///
    /// Returns `Ok(None)` when every permit is held, and also when the master could not be
    /// reached, unless the semaphore was built with `raise_on_redis_errors(true)`.
    pub async fn try_acquire(&self) -> Result<Option<Permit>, Error> {
        self.try_acquire_many(1).await
    }

    /// Takes `k` permits if that many are free now; never waits.
    pub async fn try_acquire_many(&self, k: u32) -> Result<Option<Permit>, Error> {
        self.acquire_inner(k, Wait::No).await
    }

    /// Waits up to `timeout` for one permit; `Ok(None)` if none came in time.
    ///
    /// At least one attempt is made, even with a zero timeout.
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire).
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Permit>, Error> {
        self.acquire_many_timeout(1, timeout).await
    }

    /// Waits up to `timeout` for `k` permits; `Ok(None)` if they did not come in time.
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
        // Waiters of this handle line up here, first come first served, and only the head
        // asks the masters: a release wakes this process once, not each of its tasks. A
        // try does not line up; neither does an attempt whose time ran out in the line
        // (at least one attempt is made).
        let _turn = match wait {
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
        let id = new_id();
        let runtime = tokio::runtime::Handle::current();
        let mut guard = AcquireGuard {
            core,
            id: &id,
            runtime: runtime.clone(),
            armed: false,
        };
        let mut backoff = Backoff::new();
        let mut listeners: Option<Arc<Vec<Listener>>> = None;
        // Set once an attempt failed without a reply: it may still be granted later (a
        // request stuck on a dropped connection), so the guard stays armed from then on.
        let mut uncertain = false;
        loop {
            // Registered before the attempt, so a release between the reply and the sleep
            // still wakes us.
            let notified = core.released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut wakeups: Vec<_> = listeners
                .iter()
                .flat_map(|l| l.iter().map(Listener::receiver))
                .collect();

            let started = Instant::now();
            guard.armed = true;
            let deadline = started + crate::lease::validity(core.lease);
            let attempt = core
                .quorum
                .acquire(&id, k, core.lease, deadline, queue)
                .await;
            let pause = match attempt {
                Ok(Acquired::Granted { token, slots }) => {
                    guard.armed = false;
                    let shared = Arc::clone(shared);
                    let id = id.clone();
                    return Ok(Some(Permit::new(
                        shared, id, token, slots, started, runtime,
                    )));
                }
                Ok(Acquired::Busy { wait_ms }) => {
                    // A queued waiter leaves the queue if it gives up.
                    guard.armed = uncertain || queue == Queue::Join;
                    if listeners.is_none() && !matches!(wait, Wait::No) {
                        // First time busy: listen for wake-ups, then ask again at once, in
                        // case a release came before the subscription did.
                        listeners = Some(shared.listeners().await);
                        continue;
                    }
                    match wait_ms {
                        Some(ms) => wake_pause(Duration::from_millis(ms)),
                        // Masters that disagreed, or nothing held: a short random pause.
                        None => backoff.delay(None),
                    }
                }
                Err(error) if error.is_transient() && !shared.raise_on_redis_errors => {
                    uncertain = true;
                    backoff.delay(None)
                }
                Err(error) => return Err(error),
            };
            let wake = Instant::now() + pause;
            let wake = match wait {
                Wait::No => return Ok(None),
                Wait::Forever => wake,
                Wait::Until(until) if Instant::now() >= until => return Ok(None),
                Wait::Until(until) => wake.min(until),
            };
            tokio::select! {
                _ = &mut notified => {}
                _ = crate::wake::woken(&mut wakeups, &id) => {}
                _ = sleep_until(wake) => {}
            }
        }
    }

    fn check_count(&self, k: u32) -> Result<(), Error> {
        let n = self.shared.permits;
        if k == 0 {
            return Err(Error::InvalidArgument(
                "cannot acquire 0 permits; ask for at least 1".into(),
            ));
        }
        if k > n {
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
    /// Returns [`Error::PermitLost`] if a released permit's lease had already passed.
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
            if n > held && self.shared.bounded {
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

    /// Permits available now (free slots on the master; expired leases count as free).
    pub async fn value(&self) -> Result<u32, Error> {
        Ok(self.shared.core.quorum.status().await?.available)
    }

    /// The permit count the semaphore was built with.
    pub fn initial_value(&self) -> u32 {
        self.shared.permits
    }

    /// True when no permit is available now.
    pub async fn locked(&self) -> Result<bool, Error> {
        Ok(self.value().await? == 0)
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The lease of every permit this handle grants.
    pub fn lease(&self) -> Duration {
        self.shared.core.lease
    }
}
