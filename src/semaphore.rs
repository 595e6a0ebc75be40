//! [`AsyncSemaphore`]: the façade, every public method and its docs, and
//! [`Builder::build`], which makes one. The work is done below, in files named for what
//! they hold: `acquire/` (the state machine, its cancel guard, the waiter line),
//! `detached.rs` (`release(n)`), `core.rs` (what permits and background releases share),
//! `quorum/` (the masters deciding together), `admin.rs` (who holds the semaphore),
//! `builder.rs` (the builder's settings and checks, and connecting to the masters).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::acquire::{self, Line, Wait};
use crate::admin::{self, Holder};
use crate::builder::Builder;
use crate::core::Core;
use crate::detached::Detached;
use crate::error::Error;
use crate::health::MasterError;
use crate::permit::Permit;
use crate::quorum::Leave;
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

    /// Who holds the semaphore now, lowest slot first, with each master's view. Needs a
    /// majority of the masters to answer.
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// for holder in sem.holders().await? {
    ///     println!("{} holds {:?} (token {})", holder.id, holder.slots, holder.fencing_token);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    pub async fn holders(&self) -> Result<Vec<Holder>, Error> {
        admin::holders(&self.core.quorum).await
    }

    /// Changes the semaphore's permit count to `n`, for everyone: handles built with the
    /// old count get [`Error::ConfigMismatch`] at their next call, this one takes the new
    /// count. Lowering it does not take permits away: holders past the new count keep
    /// their permits until they release them, and only slots below it are granted.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for 0 or a count past `u32::MAX` with the permits added
    /// by unbounded releases;
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the change may or may not have been made on each master,
    /// and this handle keeps its old count until a call completes: call it again.
    pub async fn set_permits(&self, n: u32) -> Result<(), Error> {
        if n == 0 {
            return Err(Error::InvalidArgument(
                "a semaphore needs at least 1 permit".into(),
            ));
        }
        self.core.quorum.resize(n).await?;
        Ok(())
    }

    /// Releases the permit with id `id`, whoever holds it (an operator's fix for a holder
    /// that is stuck but still renewing). Returns the number of slots freed (0: no such
    /// permit). The holder finds its permit lost at its next renewal.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the release may or may not have been done: call it again
    /// (releasing a permit that is gone frees nothing).
    pub async fn release_holder(&self, id: &str) -> Result<u32, Error> {
        self.core.quorum.release(id, &Leave::Stay, &[]).await
    }

    /// Deletes the semaphore: its stored count, its token counter and every lease. Holders
    /// lose their permits at their next renewal; a handle's next call creates the
    /// semaphore again with its own count. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// [`Error::Redis`] / [`Error::Quorum`] when fewer than a majority of the masters
    /// answer within the request timeout; [`Error::WrongType`] when a key of the semaphore
    /// holds something else.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, some masters may have deleted the semaphore and others
    /// not: call it again.
    pub async fn delete(&self) -> Result<bool, Error> {
        self.core.quorum.delete().await
    }

    /// The latest failure of a master that has not answered since, or `None` when every
    /// master answered its latest request.
    ///
    /// This is how to tell "no permit" from "no server" where the API cannot: with
    /// [`raise_on_redis_errors(false)`](crate::Builder::raise_on_redis_errors) (the default, as
    /// in pottery-semaphore) a [`try_acquire`](Self::try_acquire) on an unreachable master
    /// returns `Ok(None)`, the same as when every permit is held, and a waiting acquire
    /// keeps trying (up to the [outage timeout](crate::Builder::outage_timeout)). Every request of
    /// the handle counts: acquires, renewals, background releases, [`value`](Self::value).
    /// A master's entry is cleared by its next answer. On several masters this is the
    /// most recent of [`master_errors`](Self::master_errors).
    ///
    /// ```no_run
    /// # async fn demo(sem: redis_semaphore::AsyncSemaphore) -> Result<(), redis_semaphore::Error> {
    /// match sem.try_acquire().await? {
    ///     Some(permit) => { /* work */ drop(permit) }
    ///     None => match sem.last_error() {
    ///         Some(down) => eprintln!("no answer for {:?}: {}", down.since.elapsed().unwrap_or_default(), down.error),
    ///         None => eprintln!("every permit is held"),
    ///     },
    /// }
    /// # Ok(()) }
    /// ```
    pub fn last_error(&self) -> Option<MasterError> {
        self.master_errors().into_iter().next()
    }

    /// Every master that failed and has not answered since, the latest failure first;
    /// empty when all of them answer. See [`last_error`](Self::last_error).
    pub fn master_errors(&self) -> Vec<MasterError> {
        self.core.quorum.master_errors()
    }
}

/// The one method of [`Builder`] that names the façade, here beside it so that the builder
/// (below it) does not import it.
impl Builder {
    /// Checks the configuration, connects to the masters and checks the semaphore stored
    /// there: its permit count ([`Error::ConfigMismatch`]) and its keys' types
    /// ([`Error::WrongType`]). A semaphore that does not exist yet is created, except by a
    /// builder from [`AsyncSemaphore::open`], which takes the stored count and returns
    /// [`Error::NotFound`] when there is none.
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidArgument`] at once, before any request: an empty or too long name,
    ///   zero permits, no master, a URL that does not parse, a master given twice, a lease
    ///   or request timeout out of range.
    /// - [`Error::ConfigMismatch`]: the semaphore exists with another permit count or
    ///   boundedness. [`Error::NotFound`]: a builder from `open` found no semaphore.
    /// - [`Error::WrongType`]: one of its keys holds something this library did not write
    ///   (nothing is changed).
    /// - [`Error::Redis`] (one master) or [`Error::Quorum`] (several) after the request
    ///   timeout when fewer than a majority of the masters answer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future leaves at most a created config behind (the
    /// semaphore, with the count and boundedness asked for), as a finished `build()` does.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), redis_semaphore::Error> {
    /// use std::time::Duration;
    ///
    /// let sem = redis_semaphore::AsyncSemaphore::builder("reports", 3)
    ///     .master("redis://127.0.0.1:6379")
    ///     .lease(Duration::from_secs(30))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<AsyncSemaphore, Error> {
        Ok(AsyncSemaphore::new(self.connect().await?))
    }
}

#[cfg(test)]
mod tests;
