//! The synchronous twin of [`AsyncSemaphore`](crate::AsyncSemaphore), for code without an
//! async runtime.
//!
//! [`Semaphore`] owns a private current-thread Tokio runtime on a thread of its own, named
//! `redis-semaphore-runtime`; each call hands its work to that thread and blocks until the
//! reply comes back. Renewals run there too, so a blocking [`Permit`] keeps its lease while
//! the calling thread is busy. Everything handed out keeps the runtime alive; it stops
//! when the semaphore and all its permits are dropped.
//!
//! # Panics
//!
//! Every blocking call panics if made from inside an async runtime (it would block a
//! runtime thread); use [`AsyncSemaphore`](crate::AsyncSemaphore) there. This is the rule
//! of Tokio's own `blocking_*` methods and of `reqwest::blocking`.
//!
//! ```no_run
//! use redis_semaphore::blocking::Semaphore;
//!
//! let sem = Semaphore::builder("reports", 3).master("redis://127.0.0.1:6379").build()?;
//! let permit = sem.acquire()?;
//! // ... at most 3 holders run this at once ...
//! drop(permit); // returns once the release is done
//! # Ok::<(), redis_semaphore::Error>(())
//! ```

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::address::IntoMaster;
use crate::error::Error;

/// The private runtime and its thread. Dropping the last reference stops and joins it.
struct Runtime {
    handle: tokio::runtime::Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Runtime {
    /// Starts the thread. When it stops, it waits up to `settle` for the background
    /// releases still running.
    fn start(settle: Duration) -> Result<Arc<Self>, Error> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("redis-semaphore-runtime".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stop_rx.await;
                    // The last handle's drop spawned releases of its detached permits: let
                    // them reach the master (bounded) before the runtime goes away.
                    let metrics = tokio::runtime::Handle::current().metrics();
                    let until_idle = async {
                        while metrics.num_alive_tasks() > 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    };
                    let _ = tokio::time::timeout(settle, until_idle).await;
                });
            })
            .map_err(|e| Error::InvalidArgument(format!("cannot start the runtime thread: {e}")))?;
        let handle = match ready_rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(why)) => {
                return Err(Error::InvalidArgument(format!(
                    "cannot start a runtime: {why}"
                )));
            }
            Err(_) => return Err(Error::RuntimeStopped),
        };
        Ok(Arc::new(Runtime {
            handle,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Runs `work` on the runtime thread and blocks until it is done.
    fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.blocking_recv().unwrap_or(Err(Error::RuntimeStopped))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(stop) = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = stop.send(());
        }
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            // The last reference can be dropped on the runtime thread itself (by a task it
            // was running), where joining would wait forever, or on an async runtime's
            // thread, which must not block: the thread then finishes on its own.
            let on_own_thread = thread.thread().id() == std::thread::current().id();
            if !on_own_thread && tokio::runtime::Handle::try_current().is_err() {
                let _ = thread.join();
            }
        }
    }
}

/// Panics when called from inside an async runtime, where blocking would stall it.
#[track_caller]
fn assert_not_async(what: &str) {
    if tokio::runtime::Handle::try_current().is_ok() {
        panic!(
            "redis_semaphore::blocking::{what} called from inside an async runtime; \
             use redis_semaphore::AsyncSemaphore there"
        );
    }
}

/// Builds a blocking [`Semaphore`]; the same setters as [`crate::Builder`].
#[must_use = "a builder does nothing until `.build()`"]
#[derive(Debug, Clone)]
pub struct Builder {
    inner: crate::Builder,
}

impl Builder {
    /// See [`crate::Builder::master`].
    pub fn master(self, master: impl IntoMaster) -> Self {
        Builder {
            inner: self.inner.master(master),
        }
    }

    /// See [`crate::Builder::masters`].
    pub fn masters<M: IntoMaster>(self, masters: impl IntoIterator<Item = M>) -> Self {
        Builder {
            inner: self.inner.masters(masters),
        }
    }

    /// See [`crate::Builder::cluster`].
    #[cfg(feature = "cluster")]
    pub fn cluster<N: redis::IntoConnectionInfo>(self, nodes: impl IntoIterator<Item = N>) -> Self {
        Builder {
            inner: self.inner.cluster(nodes),
        }
    }

    /// See [`crate::Builder::sentinel`].
    pub fn sentinel<S: redis::IntoConnectionInfo>(
        self,
        sentinels: impl IntoIterator<Item = S>,
        service: impl Into<String>,
    ) -> Self {
        Builder {
            inner: self.inner.sentinel(sentinels, service),
        }
    }

    /// See [`crate::Builder::sentinel_with`].
    pub fn sentinel_with<S: redis::IntoConnectionInfo>(
        self,
        sentinels: impl IntoIterator<Item = S>,
        service: impl Into<String>,
        nodes: redis::sentinel::SentinelNodeConnectionInfo,
    ) -> Self {
        Builder {
            inner: self.inner.sentinel_with(sentinels, service, nodes),
        }
    }

    /// See [`crate::Builder::replicas`].
    pub fn replicas(self, n: u32, timeout: Duration) -> Self {
        Builder {
            inner: self.inner.replicas(n, timeout),
        }
    }

    /// See [`crate::Builder::lease`].
    pub fn lease(self, lease: Duration) -> Self {
        Builder {
            inner: self.inner.lease(lease),
        }
    }

    /// See [`crate::Builder::bounded`].
    pub fn bounded(self, bounded: bool) -> Self {
        Builder {
            inner: self.inner.bounded(bounded),
        }
    }

    /// See [`crate::Builder::raise_on_redis_errors`].
    pub fn raise_on_redis_errors(self, raise: bool) -> Self {
        Builder {
            inner: self.inner.raise_on_redis_errors(raise),
        }
    }

    /// See [`crate::Builder::fair`].
    pub fn fair(self, fair: bool) -> Self {
        Builder {
            inner: self.inner.fair(fair),
        }
    }

    /// See [`crate::Builder::outage_timeout`].
    pub fn outage_timeout(self, timeout: impl Into<Option<Duration>>) -> Self {
        Builder {
            inner: self.inner.outage_timeout(timeout),
        }
    }

    /// See [`crate::Builder::request_timeout`].
    pub fn request_timeout(self, timeout: Duration) -> Self {
        Builder {
            inner: self.inner.request_timeout(timeout),
        }
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
/// [module docs](self)).
#[derive(Clone)]
pub struct Semaphore {
    inner: crate::AsyncSemaphore,
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
            inner: crate::AsyncSemaphore::builder(name, permits),
        }
    }

    /// Starts building a handle on an existing semaphore, with its stored permit count.
    /// See [`crate::AsyncSemaphore::open`].
    pub fn open(name: impl Into<String>) -> Builder {
        Builder {
            inner: crate::AsyncSemaphore::open(name),
        }
    }

    fn run<T, F>(
        &self,
        what: &str,
        work: impl FnOnce(crate::AsyncSemaphore) -> F,
    ) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        assert_not_async(what);
        self.runtime.run(work(self.inner.clone()))
    }

    fn wrap(&self, permit: crate::Permit) -> Permit {
        Permit {
            inner: Some(permit),
            runtime: Arc::clone(&self.runtime),
        }
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
    pub fn holders(&self) -> Result<Vec<crate::Holder>, Error> {
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
    pub fn last_error(&self) -> Option<crate::MasterError> {
        self.inner.last_error()
    }

    /// Every master that failed and has not answered since. See
    /// [`crate::AsyncSemaphore::master_errors`].
    pub fn master_errors(&self) -> Vec<crate::MasterError> {
        self.inner.master_errors()
    }

    /// Whether the semaphore is bounded. See [`crate::AsyncSemaphore::bounded`].
    pub fn bounded(&self) -> bool {
        self.inner.bounded()
    }
}

/// A blocking permit: the twin of [`crate::Permit`]. Dropping it releases it and returns
/// once the master has answered (or the request timed out). Dropped inside an async
/// runtime, where it must not block, it releases in the background instead.
///
/// [`wait_lost`](Permit::wait_lost) is the blocking form of [`crate::Permit::lost`], with a
/// time limit since a permit that is never lost would block forever.
#[must_use = "dropping the permit releases it at once; hold it (`let _permit = ...`, not `let _ = ...`) for as long as you need the resource"]
pub struct Permit {
    inner: Option<crate::Permit>,
    runtime: Arc<Runtime>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Permit")
            .field(&self.inner)
            .finish()
    }
}

impl Permit {
    fn permit(&self) -> &crate::Permit {
        self.inner
            .as_ref()
            .expect("a blocking permit holds its permit until dropped")
    }

    /// Releases the permit and waits for the master.
    ///
    /// # Errors
    ///
    /// As for [`crate::Permit::release`]: [`Error::PermitLost`] if the lease had passed
    /// first.
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn release(mut self) -> Result<(), Error> {
        assert_not_async("Permit::release");
        let permit = self
            .inner
            .take()
            .expect("a blocking permit holds its permit until dropped");
        self.runtime.run(permit.release())
    }

    /// Blocks up to `timeout` for the lease to be lost; true if it was (or if the runtime
    /// thread is gone).
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        assert_not_async("Permit::wait_lost");
        let lost = self.permit().lost();
        self.runtime
            .run(async move { Ok(tokio::time::timeout(timeout, lost).await.is_ok()) })
            .unwrap_or(true)
    }

    /// True while the lease is known to be held. See [`crate::Permit::is_valid`].
    pub fn is_valid(&self) -> bool {
        self.permit().is_valid()
    }

    /// See [`crate::Permit::fencing_token`].
    pub fn fencing_token(&self) -> u64 {
        self.permit().fencing_token()
    }

    /// See [`crate::Permit::slots`].
    pub fn slots(&self) -> &[u32] {
        self.permit().slots()
    }

    /// See [`crate::Permit::permits`].
    pub fn permits(&self) -> u32 {
        self.permit().permits()
    }

    /// See [`crate::Permit::id`].
    pub fn id(&self) -> &str {
        self.permit().id()
    }

    /// Hands the permit back to its semaphore handle. See [`crate::Permit::detach`].
    pub fn detach(mut self) {
        if let Some(permit) = self.inner.take() {
            permit.detach();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(permit) = self.inner.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Cannot block here: the async permit's own drop releases it in the background.
            drop(permit);
            return;
        }
        let _ = self.runtime.run(async move {
            let _ = permit.release().await;
            Ok(())
        });
    }
}
