//! [`AsyncSemaphore`]: the façade, its public methods and their docs. The work is done in
//! files named for what they hold: `acquire/` (the state machine, its cancel guard, the
//! waiter line), `detached.rs` (`release(n)`), `core.rs` (what permits and background
//! releases share), `quorum/` (the masters deciding together); `builder.rs` has the
//! constructors, `admin.rs` the operators' methods and the masters' failures.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::acquire::{self, Line, Wait};
use crate::core::Core;
use crate::detached::Detached;
use crate::error::Error;
use crate::permit::Permit;
use crate::subscriber::message;

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
    core: Arc<Core>,
    /// The permits this handle holds for itself ([`Permit::detach`]).
    home: Arc<Detached>,
    /// The handle's waiters.
    line: Arc<Line>,
}

impl fmt::Debug for AsyncSemaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSemaphore")
            .field("name", &self.name())
            .field("permits", &self.initial_value())
            .field("lease", &self.lease())
            .field("bounded", &self.bounded())
            .finish_non_exhaustive()
    }
}

impl AsyncSemaphore {
    /// A handle on `core`: its own detached permits and waiter line.
    pub(crate) fn new(core: Core) -> Self {
        let core = Arc::new(core);
        AsyncSemaphore {
            home: Arc::new(Detached::new(Arc::clone(&core))),
            line: Arc::new(Line::new(message::line_id())),
            core,
        }
    }

    /// Waits for one permit.
    ///
    /// Waiters are served first come, first served across processes (see
    /// [`Builder::fair`](crate::Builder::fair)). Masters that do not answer are retried,
    /// for at most the [outage timeout](crate::Builder::outage_timeout) (30 s by default).
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
    ///   was built with [`raise_on_redis_errors(true)`][raise].
    /// - At once, errors that waiting cannot fix: [`Error::ConfigMismatch`] (the
    ///   semaphore's count or boundedness was changed), [`Error::WrongType`], and an
    ///   [`Error::Redis`] such as a wrong password or a missing ACL permission.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped (say by `tokio::time::timeout`), whatever it
    /// may have been granted is released in the background.
    ///
    /// [raise]: crate::Builder::raise_on_redis_errors
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
    /// [`Error::InvalidArgument`] at once when `k` is 0, more than
    /// [`MAX_ACQUIRE_MANY`](crate::MAX_ACQUIRE_MANY) (1,000: count in bigger units
    /// instead), or more than the permit count of a bounded semaphore (a wait that could
    /// never end); otherwise as for [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    ///
    /// As for [`acquire`](Self::acquire).
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn acquire_many(&self, k: u32) -> Result<Permit, Error> {
        let permit = self.acquire_inner(k, Wait::Forever).await?;
        Ok(permit.expect("an acquire without a time limit returns only with a permit"))
    }

    /// Takes one permit if one is free now; never waits (one request, at most one request
    /// timeout). On a fair semaphore it does not jump the queue: a permit kept for a
    /// waiter is not free.
    ///
    /// `Ok(None)` when every permit is held, and also (as in pottery-semaphore) when the
    /// master could not be reached, unless built with
    /// [`raise_on_redis_errors(true)`](crate::Builder::raise_on_redis_errors);
    /// [`last_error`](Self::last_error) then says which master failed and how.
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

    /// Takes `k` permits if that many are free now; never waits. Errors and cancel safety
    /// as for [`try_acquire`](Self::try_acquire), and [`Error::InvalidArgument`] at once
    /// when `k` is 0, more than [`MAX_ACQUIRE_MANY`](crate::MAX_ACQUIRE_MANY), or more
    /// than the permit count of a bounded semaphore.
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
    /// Errors and cancel safety as for [`acquire_many`](Self::acquire_many) (`k` is at
    /// most [`MAX_ACQUIRE_MANY`](crate::MAX_ACQUIRE_MANY)) and
    /// [`acquire_timeout`](Self::acquire_timeout).
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    pub async fn acquire_many_timeout(
        &self,
        k: u32,
        timeout: Duration,
    ) -> Result<Option<Permit>, Error> {
        self.acquire_inner(k, Wait::within(timeout)).await
    }

    async fn acquire_inner(&self, k: u32, wait: Wait) -> Result<Option<Permit>, Error> {
        acquire::acquire(&self.core, &self.home, &self.line, k, wait).await
    }

    /// Releases `n` permits that this handle holds as detached permits
    /// ([`Permit::detach`]), oldest first, like pottery-semaphore's `release(n)`.
    ///
    /// Releasing more than the handle holds is [`Error::Bounded`] on a bounded semaphore
    /// (the default), and then nothing is released. On an unbounded one
    /// ([`Builder::bounded(false)`](crate::Builder::bounded)) the excess adds permits, so
    /// [`value`](Self::value) can exceed [`initial_value`](Self::initial_value).
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
        self.home.release(n).await
    }

    /// Waits until the releases this handle started in the background are done: those of
    /// dropped permits, of acquires that were cancelled or ran out of time, and of waiters
    /// that gave up their place in the queue. Await it before `main` returns, so that the
    /// next process finds the permits free at once:
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// let permit = sem.acquire().await?;
    /// drop(permit); // released in the background...
    /// sem.flush().await; // ...and on the masters when this returns
    /// # Ok(()) }
    /// ```
    ///
    /// Without it, a background release that the runtime's shutdown cuts short is still
    /// done then, on a thread of its own, holding up the exit for at most about one
    /// request timeout. It covers every clone of this handle and their permits, releases
    /// started while it waits included; each takes at most about one request timeout, and a
    /// failed one is left to its lease. Detached permits ([`Permit::detach`]) are not
    /// released by it: the handle still holds them.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future only stops the wait; the releases go on.
    pub async fn flush(&self) {
        self.core.releases.flush().await;
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
        Ok(self.core.quorum.status().await?.available)
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The semaphore's permit count: the one it was built with (or found, for a handle
    /// from [`open`](Self::open)), or the one this handle set with
    /// [`set_permits`](Self::set_permits).
    pub fn initial_value(&self) -> u32 {
        self.core.quorum.permits()
    }

    /// True when no permit is available now: [`value`](Self::value) is 0. Errors and cancel
    /// safety as for `value`.
    pub async fn locked(&self) -> Result<bool, Error> {
        Ok(self.value().await? == 0)
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.core.config.name
    }

    /// The lease of every permit this handle grants
    /// ([`Builder::lease`](crate::Builder::lease), 10 s by default).
    pub fn lease(&self) -> Duration {
        self.core.config.lease
    }

    /// Whether the semaphore is bounded: [`release(n)`](Self::release) of more permits
    /// than the handle holds is then [`Error::Bounded`]. Stored when the semaphore is
    /// created, so the same for every handle: the one this handle was built with
    /// ([`Builder::bounded`](crate::Builder::bounded)), or the stored one for a handle
    /// from [`open`](Self::open).
    pub fn bounded(&self) -> bool {
        self.core.quorum.bounded()
    }
}
