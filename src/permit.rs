//! The permit guard: renewal, loss, release and drop.
//!
//! A permit holds what it needs and nothing of its handle: an `Arc` to the [`Core`] (the
//! masters, the lease, the background releases) and one to its handle's [`Detached`] list,
//! its way home for [`Permit::detach`]. deadpool's objects reach back into their pool
//! through a `Weak` and give up when it is gone; a permit must be releasable after every
//! handle is dropped, so its references are strong, and the list releases whatever it
//! still holds when the last handle and the last permit are gone.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::background::GiveBack;
use crate::core::Core;
use crate::detached::Detached;
use crate::error::Error;
use crate::lease::{self, LeaseState};
use crate::quorum::decide::validity;

/// What a permit is made from: a grant of the masters.
#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) id: String,
    pub(crate) token: u64,
    pub(crate) slots: Vec<u32>,
    /// When the granting request was sent: the lease cannot have started earlier.
    pub(crate) sent: Instant,
    /// The grant's own lease: the handle's, or a waiter lease for a grant pushed to a
    /// waiter (until its first renewal).
    pub(crate) lease: Duration,
}

/// One or more permits of a semaphore, held under one lease.
///
/// The lease is renewed in the background every `lease / 3` while the permit lives.
/// Dropping the permit stops the renewal and releases it in the background on the runtime
/// it was acquired on; [`release`](Permit::release) is the awaited form, which reports a
/// lost lease, and [`AsyncSemaphore::flush`](crate::AsyncSemaphore::flush) waits for the
/// background releases of a handle.
///
/// A permit dropped just before its runtime shuts down (the end of `#[tokio::main]`) is
/// still released: the shutdown does the release on a thread of its own and waits for it,
/// at most about one request timeout, so the next process finds the permit free at once.
/// One dropped after its runtime is gone is released the same way. Renewals run on that
/// runtime, so a permit kept past its runtime's shutdown (or leaked with `mem::forget`) is
/// no longer renewed: its lease ends on its own, within one lease. Await
/// [`AsyncSemaphore::flush`](crate::AsyncSemaphore::flush) before the end of `main` to
/// have the background releases done at a point of your choosing.
///
/// If the lease cannot be renewed in time (the master is unreachable, or this process was
/// paused longer than the lease), the permit is *lost*: [`lost`](Permit::lost) resolves,
/// [`is_valid`](Permit::is_valid) turns false, and another holder may already have its
/// slot. Protect the resource itself with the [fencing token](Permit::fencing_token).
#[must_use = "dropping the permit releases it at once; hold it (`let _permit = ...`, not `let _ = ...`) for as long as you need the resource"]
pub struct Permit {
    core: Arc<Core>,
    /// Where [`detach`](Permit::detach) hands the permit back to.
    home: Arc<Detached>,
    state: Arc<LeaseState>,
    slots: Vec<u32>,
    token: u64,
    renewal: AbortHandle,
    runtime: tokio::runtime::Handle,
    settled: bool,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("semaphore", &self.core.config.name)
            .field("id", &self.state.id)
            .field("slots", &self.slots)
            .field("fencing_token", &self.token)
            .field("valid", &self.is_valid())
            .finish()
    }
}

impl Permit {
    /// Wraps a fresh grant and starts renewing it on `runtime` (the one it was acquired
    /// on, where its background release runs too).
    pub(crate) fn new(
        core: Arc<Core>,
        home: Arc<Detached>,
        grant: Grant,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        let Grant {
            id,
            token,
            slots,
            sent,
            lease: first,
        } = grant;
        let lease = core.config.lease;
        let state = Arc::new(LeaseState::new(
            id,
            token,
            slots.clone(),
            sent + validity(first),
        ));
        let renewal = lease::spawn_renewal(
            &runtime,
            Arc::clone(&core.quorum),
            lease,
            first,
            Arc::clone(&state),
            sent,
        );
        Permit {
            core,
            home,
            state,
            slots,
            token,
            renewal,
            runtime,
            settled: false,
        }
    }

    /// Releases the permit and waits for the master to confirm.
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// let permit = sem.acquire().await?;
    /// // ... work ...
    /// match permit.release().await {
    ///     Err(redis_semaphore::Error::PermitLost { .. }) => eprintln!("another holder may have overlapped"),
    ///     other => other?,
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PermitLost`] if the lease had passed first: the permit is gone either way,
    /// but whatever it protected may have been used by another holder.
    /// [`Error::Redis`] / [`Error::Quorum`] when the masters cannot be reached: the lease
    /// then ends on its own, within one lease.
    ///
    /// # Cancel safety
    ///
    /// If the returned future is dropped before it completes, the release may or may not
    /// have reached the master; if it did not, the lease expires on its own.
    pub async fn release(mut self) -> Result<(), Error> {
        self.settled = true;
        self.renewal.abort();
        let released = self.core.release_lease(&self.state, &[]).await;
        self.core.releases.freed();
        released
    }

    /// Resolves when the lease is lost (it could not be renewed before it passed).
    ///
    /// The future does not borrow the permit, so it can be raced against the work the
    /// permit protects:
    ///
    /// ```no_run
    /// # async fn work() {}
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// let permit = sem.acquire().await?;
    /// tokio::select! {
    ///     _ = permit.lost() => eprintln!("lease lost: stopping"),
    ///     _ = work() => permit.release().await?,
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// It also resolves once the permit has been released or dropped, since nothing can
    /// be lost after that.
    pub fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        self.state.lost()
    }

    /// True while the lease is known to be held: not lost, and its local deadline (the
    /// lease minus a drift allowance, on this process's monotonic clock) not passed.
    pub fn is_valid(&self) -> bool {
        self.state.is_valid()
    }

    /// The fencing token of this grant. It rises with every grant of the semaphore, so a
    /// resource that remembers the highest token it has seen can refuse a holder whose
    /// lease passed to someone else.
    pub fn fencing_token(&self) -> u64 {
        self.token
    }

    /// The permit slots this permit holds, lowest first (one per permit).
    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// How many permits this guard holds: 1 from `acquire`, `k` from `acquire_many(k)`.
    pub fn permits(&self) -> u32 {
        u32::try_from(self.slots.len()).unwrap_or(u32::MAX)
    }

    /// The permit's id: 128 random bits in hex, made before the first request.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Hands the permit back to its semaphore handle, which keeps renewing it until
    /// [`AsyncSemaphore::release`](crate::AsyncSemaphore::release) releases it (oldest
    /// detached permits first). This is the pottery-semaphore style of pairing `acquire`
    /// and `release` by hand.
    pub fn detach(mut self) {
        self.settled = true;
        self.home
            .push(Arc::clone(&self.state), self.renewal.clone());
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        self.renewal.abort();
        self.core
            .release_in_background(&self.runtime, GiveBack::permit(&self.state.id));
    }
}
