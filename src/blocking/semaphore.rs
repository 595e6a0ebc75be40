//! [`Semaphore`] and its [`Builder`]: the async semaphore and builder, wrapped, each call
//! run on the private runtime's thread.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::permit::Permit;
use super::runtime::{Runtime, assert_not_async};
use crate::address::IntoMaster;
use crate::admin::Holder;
use crate::builder;
use crate::error::Error;
use crate::health::MasterError;
use crate::permit::Permit as AsyncPermit;
use crate::semaphore::AsyncSemaphore;

/// Builds a blocking [`Semaphore`]; the same setters as [`crate::Builder`].
#[must_use = "a builder does nothing until `.build()`"]
#[derive(Debug, Clone)]
pub struct Builder {
    inner: builder::Builder,
}

impl Builder {
    /// Where every setter is forwarded: the async builder's own setter, on the builder
    /// this one wraps (as `reqwest::blocking::ClientBuilder` does).
    fn with_inner(self, set: impl FnOnce(builder::Builder) -> builder::Builder) -> Self {
        Builder {
            inner: set(self.inner),
        }
    }

    /// See [`crate::Builder::master`].
    pub fn master(self, master: impl IntoMaster) -> Self {
        self.with_inner(|inner| inner.master(master))
    }

    /// See [`crate::Builder::masters`].
    pub fn masters<M: IntoMaster>(self, masters: impl IntoIterator<Item = M>) -> Self {
        self.with_inner(|inner| inner.masters(masters))
    }

    /// See [`crate::Builder::cluster`].
    #[cfg(feature = "cluster")]
    pub fn cluster<N: redis::IntoConnectionInfo>(self, nodes: impl IntoIterator<Item = N>) -> Self {
        self.with_inner(|inner| inner.cluster(nodes))
    }

    /// See [`crate::Builder::sentinel`].
    pub fn sentinel<S: redis::IntoConnectionInfo>(
        self,
        sentinels: impl IntoIterator<Item = S>,
        service: impl Into<String>,
    ) -> Self {
        self.with_inner(|inner| inner.sentinel(sentinels, service))
    }

    /// See [`crate::Builder::sentinel_with`].
    pub fn sentinel_with<S: redis::IntoConnectionInfo>(
        self,
        sentinels: impl IntoIterator<Item = S>,
        service: impl Into<String>,
        nodes: redis::sentinel::SentinelNodeConnectionInfo,
    ) -> Self {
        self.with_inner(|inner| inner.sentinel_with(sentinels, service, nodes))
    }

    /// See [`crate::Builder::replicas`].
    pub fn replicas(self, n: u32, timeout: Duration) -> Self {
        self.with_inner(|inner| inner.replicas(n, timeout))
    }

    /// See [`crate::Builder::lease`].
    pub fn lease(self, lease: Duration) -> Self {
        self.with_inner(|inner| inner.lease(lease))
    }

    /// See [`crate::Builder::bounded`].
    pub fn bounded(self, bounded: bool) -> Self {
        self.with_inner(|inner| inner.bounded(bounded))
    }

    /// See [`crate::Builder::raise_on_redis_errors`].
    pub fn raise_on_redis_errors(self, raise: bool) -> Self {
        self.with_inner(|inner| inner.raise_on_redis_errors(raise))
    }

    /// See [`crate::Builder::fair`].
    pub fn fair(self, fair: bool) -> Self {
        self.with_inner(|inner| inner.fair(fair))
    }

    /// See [`crate::Builder::outage_timeout`].
    pub fn outage_timeout(self, timeout: impl Into<Option<Duration>>) -> Self {
        self.with_inner(|inner| inner.outage_timeout(timeout))
    }

    /// See [`crate::Builder::request_timeout`].
    pub fn request_timeout(self, timeout: Duration) -> Self {
        self.with_inner(|inner| inner.request_timeout(timeout))
    }

    /// Starts the runtime thread, then does what [`crate::Builder::build`] does.
    ///
    /// # Errors
    ///
    /// As for [`crate::Builder::build`]; [`Error::InvalidArgument`] also if the runtime
    /// thread cannot be started.
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn build(self) -> Result<Semaphore, Error> {
        assert_not_async("Builder::build");
        let settle = self.inner.effective_request_timeout() + Duration::from_secs(1);
        let runtime = Runtime::start(settle)?;
        let inner = runtime.run(self.inner.build())?;
        Ok(Semaphore { inner, runtime })
    }
}

/// A distributed counting semaphore for synchronous code: the blocking twin of
/// [`AsyncSemaphore`](crate::AsyncSemaphore), with the same methods, defaults, limits and
/// errors. Cheap to clone; every clone shares the runtime thread.
///
/// ```no_run
/// use std::time::Duration;
/// use redis_semaphore::blocking::Semaphore;
///
/// let sem = Semaphore::builder("reports", 3)
///     .master("redis://127.0.0.1:6379")
///     .build()?;
/// let permit = sem.acquire()?;
/// // ... at most 3 holders, on any machine, run this at once ...
/// permit.release()?;
///
/// match sem.acquire_timeout(Duration::from_secs(2))? {
///     Some(permit) => drop(permit), // released when drop returns
///     None => eprintln!("no permit within 2 s"),
/// }
/// # Ok::<(), redis_semaphore::Error>(())
/// ```
///
/// # Panics
///
/// Every blocking method panics if called from inside an async runtime (see the
/// [module docs](crate::blocking)).
#[derive(Clone)]
pub struct Semaphore {
    inner: AsyncSemaphore,
    runtime: Arc<Runtime>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Semaphore")
            .field(&self.inner)
            .finish()
    }
}

impl Semaphore {
    /// Starts building a semaphore called `name` with `permits` permits.
    pub fn builder(name: impl Into<String>, permits: u32) -> Builder {
        Builder {
            inner: AsyncSemaphore::builder(name, permits),
        }
    }

    /// Starts building a handle on an existing semaphore, with its stored permit count.
    /// See [`crate::AsyncSemaphore::open`].
    pub fn open(name: impl Into<String>) -> Builder {
        Builder {
            inner: AsyncSemaphore::open(name),
        }
    }

    fn run<T, F>(&self, what: &str, work: impl FnOnce(AsyncSemaphore) -> F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        assert_not_async(what);
        self.runtime.run(work(self.inner.clone()))
    }

    fn wrap(&self, permit: AsyncPermit) -> Permit {
        Permit::new(permit, Arc::clone(&self.runtime))
    }

    /// Blocks until one permit is granted. See [`crate::AsyncSemaphore::acquire`].
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::acquire`]: [`Error::Outage`] after the outage
    /// timeout (30 s by default) without an answer from the masters.
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    #[track_caller]
    pub fn acquire(&self) -> Result<Permit, Error> {
        self.run("Semaphore::acquire", |s| async move { s.acquire().await })
            .map(|p| self.wrap(p))
    }

    /// Blocks until `k` permits are granted together.
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::acquire_many`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    #[track_caller]
    pub fn acquire_many(&self, k: u32) -> Result<Permit, Error> {
        self.run("Semaphore::acquire_many", |s| async move {
            s.acquire_many(k).await
        })
        .map(|p| self.wrap(p))
    }

    /// Takes one permit if one is free now; never waits.
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::try_acquire`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    #[track_caller]
    pub fn try_acquire(&self) -> Result<Option<Permit>, Error> {
        self.run("Semaphore::try_acquire", |s| async move {
            s.try_acquire().await
        })
        .map(|p| p.map(|p| self.wrap(p)))
    }

    /// Takes `k` permits if that many are free now; never waits.
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::try_acquire_many`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    #[track_caller]
    pub fn try_acquire_many(&self, k: u32) -> Result<Option<Permit>, Error> {
        self.run("Semaphore::try_acquire_many", |s| async move {
            s.try_acquire_many(k).await
        })
        .map(|p| p.map(|p| self.wrap(p)))
    }

    /// Blocks up to `timeout` for one permit; `Ok(None)` if none came in time.
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::acquire_timeout`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    #[track_caller]
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Option<Permit>, Error> {
        self.run("Semaphore::acquire_timeout", |s| async move {
            s.acquire_timeout(timeout).await
        })
        .map(|p| p.map(|p| self.wrap(p)))
    }

    /// Blocks up to `timeout` for `k` permits; `Ok(None)` if they did not come in time.
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::acquire_many_timeout`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[must_use = "the permit is released as soon as it is dropped; hold it (`let permit = ...?`) for as long as you need the resource"]
    #[track_caller]
    pub fn acquire_many_timeout(&self, k: u32, timeout: Duration) -> Result<Option<Permit>, Error> {
        self.run("Semaphore::acquire_many_timeout", |s| async move {
            s.acquire_many_timeout(k, timeout).await
        })
        .map(|p| p.map(|p| self.wrap(p)))
    }

    /// Releases `n` detached permits. See [`crate::AsyncSemaphore::release`].
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::release`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn release(&self, n: u32) -> Result<(), Error> {
        self.run("Semaphore::release", |s| async move { s.release(n).await })
    }

    /// Blocks until the releases this handle started in the background are done (those of
    /// blocking permits dropped inside an async runtime, where their drop cannot wait).
    /// See [`crate::AsyncSemaphore::flush`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn flush(&self) {
        let _ = self.run("Semaphore::flush", |s| async move {
            s.flush().await;
            Ok(())
        });
    }

    /// Permits available now.
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::value`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn value(&self) -> Result<u32, Error> {
        self.run("Semaphore::value", |s| async move { s.value().await })
    }

    /// True when no permit is available now.
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::locked`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn locked(&self) -> Result<bool, Error> {
        self.run("Semaphore::locked", |s| async move { s.locked().await })
    }

    /// Who holds the semaphore now. See [`crate::AsyncSemaphore::holders`].
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::holders`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn holders(&self) -> Result<Vec<Holder>, Error> {
        self.run("Semaphore::holders", |s| async move { s.holders().await })
    }

    /// Changes the permit count. See [`crate::AsyncSemaphore::set_permits`].
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::set_permits`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn set_permits(&self, n: u32) -> Result<(), Error> {
        self.run("Semaphore::set_permits", |s| async move {
            s.set_permits(n).await
        })
    }

    /// Releases someone else's permit. See [`crate::AsyncSemaphore::release_holder`].
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::release_holder`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn release_holder(&self, id: &str) -> Result<u32, Error> {
        let id = id.to_string();
        self.run("Semaphore::release_holder", |s| async move {
            s.release_holder(&id).await
        })
    }

    /// Deletes the semaphore. See [`crate::AsyncSemaphore::delete`].
    ///
    /// # Errors
    ///
    /// As for [`crate::AsyncSemaphore::delete`].
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn delete(&self) -> Result<bool, Error> {
        self.run("Semaphore::delete", |s| async move { s.delete().await })
    }

    /// The semaphore's permit count. See [`crate::AsyncSemaphore::initial_value`].
    pub fn initial_value(&self) -> u32 {
        self.inner.initial_value()
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// The lease of every permit this handle grants.
    pub fn lease(&self) -> Duration {
        self.inner.lease()
    }

    /// The latest failure of a master that has not answered since. See
    /// [`crate::AsyncSemaphore::last_error`].
    pub fn last_error(&self) -> Option<MasterError> {
        self.inner.last_error()
    }

    /// Every master that failed and has not answered since. See
    /// [`crate::AsyncSemaphore::master_errors`].
    pub fn master_errors(&self) -> Vec<MasterError> {
        self.inner.master_errors()
    }

    /// Whether the semaphore is bounded. See [`crate::AsyncSemaphore::bounded`].
    pub fn bounded(&self) -> bool {
        self.inner.bounded()
    }
}
