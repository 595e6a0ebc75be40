//! `redis_semaphore_rs._native`: the pyo3 layer under the Python package.
//!
//! It is deliberately thin. Every operation of the library's [`AsyncSemaphore`] and
//! [`Permit`] is started as a task on one Tokio runtime that the extension owns, and
//! returns a `Pending`: synchronous Python code waits on it with `Pending::wait`
//! (the GIL released, woken every few milliseconds to let `KeyboardInterrupt` through,
//! which cancels the task), and asyncio code passes a callback that the task calls with
//! its outcome (the Python layer hands it to its event loop with `call_soon_threadsafe`).
//! Cancelling the task drops the library's future, which is cancel safe: whatever an
//! acquire may have been granted is released in the background.
//!
//! Errors cross as `NativeError(kind, message, details)`; the Python layer turns them into
//! its public exceptions (`SemaphoreError`, `BoundedSemaphoreError`, ...), so their
//! hierarchy lives in one place, in Python.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use pyo3::IntoPyObjectExt;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use redis_semaphore::{AsyncSemaphore, Error, Holder, Permit};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

create_exception!(
    _native,
    NativeError,
    PyException,
    "An error of the Rust library: args are (kind, message, details)."
);

/// How often a synchronous wait wakes to look for signals (Ctrl-C).
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// The runtime of this process, made on first use. A child made by `fork()` inherits the
/// parent's runtime without its threads: it gets a runtime of its own (the parent's is
/// leaked there, never dropped, since dropping it would wait for threads that do not exist).
fn runtime() -> Arc<Runtime> {
    static RUNTIME: Mutex<Option<(u32, Arc<Runtime>)>> = Mutex::new(None);
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    let pid = std::process::id();
    match &*slot {
        Some((owner, runtime)) if *owner == pid => Arc::clone(runtime),
        _ => {
            let runtime = Arc::new(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("redis-semaphore-py")
                    .enable_all()
                    .build()
                    .expect("the Tokio runtime of redis_semaphore_rs starts"),
            );
            if let Some((_, inherited)) = slot.replace((pid, Arc::clone(&runtime))) {
                std::mem::forget(inherited);
            }
            runtime
        }
    }
}

/// A Python value made under the GIL from a task's result.
type Make = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// `True` or `False`, as Python writes them.
fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// The error as the Python layer receives it.
fn native_error(py: Python<'_>, error: Error) -> PyErr {
    if let Error::InvalidArgument(why) = &error {
        return PyValueError::new_err(why.clone());
    }
    let details = PyDict::new(py);
    let kind = match &error {
        Error::Bounded { held, requested } => {
            let _ = details.set_item("held", held);
            let _ = details.set_item("requested", requested);
            "bounded"
        }
        Error::PermitLost { id } => {
            let _ = details.set_item("id", id);
            "permit_lost"
        }
        Error::ConfigMismatch {
            stored,
            requested,
            stored_bounded,
            requested_bounded,
            ..
        } => {
            let _ = details.set_item("stored", stored);
            let _ = details.set_item("requested", requested);
            let _ = details.set_item("stored_bounded", stored_bounded);
            let _ = details.set_item("requested_bounded", requested_bounded);
            "config_mismatch"
        }
        Error::NotFound { .. } => "not_found",
        Error::Outage { .. } => "outage",
        Error::Redis { .. } => "redis",
        Error::Quorum { .. } => "quorum",
        Error::WrongType { .. } => "wrong_type",
        _ => "other",
    };
    let message = match &error {
        // The Rust text names Rust functions (`AsyncSemaphore::open`, `set_permits`) that
        // this package does not have: say what a Python caller can do.
        Error::ConfigMismatch {
            stored,
            requested,
            stored_bounded,
            requested_bounded,
            ..
        } => format!(
            "the semaphore exists with {stored} permits (bounded={}), this handle asked for \
             {requested} (bounded={}); pass value={stored}, bounded={} to use it as it is, or \
             change the stored count for every handle with `redsem set-permits <key> \
             {requested}`",
            py_bool(*stored_bounded),
            py_bool(*requested_bounded),
            py_bool(*stored_bounded),
        ),
        _ => error.to_string(),
    };
    NativeError::new_err((kind, message, details.unbind()))
}

/// An operation running on the runtime. Wait for it with [`wait`](Pending::wait), or give
/// the operation a callback when starting it; [`cancel`](Pending::cancel) drops it.
#[pyclass(module = "redis_semaphore_rs._native", frozen)]
struct Pending {
    outcome: Mutex<Option<mpsc::Receiver<Result<Make, Error>>>>,
    abort: AbortHandle,
}

#[pymethods]
impl Pending {
    /// Waits for the outcome with the GIL released; a signal handler's exception (say
    /// `KeyboardInterrupt`) cancels the operation and is raised.
    fn wait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let Some(mut outcome) = self
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Err(PyRuntimeError::new_err(
                "this operation reports to a callback, or was waited for already",
            ));
        };
        loop {
            // The receiver goes to the GIL-free closure and back (it is not `Sync`).
            let (received, back) = py.detach(move || {
                let received = outcome.recv_timeout(SIGNAL_SLICE);
                (received, outcome)
            });
            outcome = back;
            match received {
                Ok(Ok(make)) => return make(py),
                Ok(Err(error)) => return Err(native_error(py, error)),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(interrupted) = py.check_signals() {
                        self.abort.abort();
                        return Err(interrupted);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err("the operation was cancelled"));
                }
            }
        }
    }

    /// Drops the operation (cancel safe: an acquire's grant is released in the background).
    fn cancel(&self) {
        self.abort.abort();
    }
}

/// Starts `future` on the runtime. Its outcome goes to `callback(ok, value)` (called on a
/// runtime thread, with the GIL) if one is given, else to [`Pending::wait`].
fn spawn<T, F>(
    callback: Option<Py<PyAny>>,
    future: F,
    make: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
) -> Pending
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let task = runtime().spawn(async move {
        let outcome = future.await;
        match callback {
            None => {
                let made =
                    outcome.map(|value| Box::new(move |py: Python<'_>| make(py, value)) as Make);
                // A receiver dropped meanwhile drops the value (a permit is then released).
                let _ = tx.send(made);
            }
            Some(callback) => Python::attach(|py| {
                let (ok, value) = match outcome
                    .map_err(|e| native_error(py, e))
                    .and_then(|v| make(py, v))
                {
                    Ok(value) => (true, value),
                    Err(error) => (false, error.into_value(py).into_any()),
                };
                if let Err(error) = callback.call1(py, (ok, value)) {
                    error.write_unraisable(py, None);
                }
            }),
        }
    });
    Pending {
        outcome: Mutex::new(Some(rx)),
        abort: task.abort_handle(),
    }
}

fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}

/// Seconds as a Duration; `None` or infinity is no limit.
fn seconds(what: &str, secs: Option<f64>) -> PyResult<Option<Duration>> {
    match secs {
        None => Ok(None),
        Some(s) if s.is_infinite() && s > 0.0 => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "{what} must be a non-negative number of seconds, got {s}"
            ))
        }),
    }
}

/// A handle on one semaphore: the library's [`AsyncSemaphore`].
#[pyclass(module = "redis_semaphore_rs._native", frozen, weakref)]
struct NativeSemaphore {
    sem: AsyncSemaphore,
}

/// Starts building a handle; see the Python `Semaphore` for the parameters.
#[pyfunction]
#[pyo3(signature = (name, permits, masters, *, bounded, raise_on_redis_errors, lease, fair, request_timeout, outage_timeout, open, callback=None))]
#[allow(clippy::too_many_arguments)]
fn build(
    name: String,
    permits: u32,
    masters: Vec<String>,
    bounded: bool,
    raise_on_redis_errors: bool,
    lease: f64,
    fair: bool,
    request_timeout: Option<f64>,
    outage_timeout: Option<f64>,
    open: bool,
    callback: Option<Py<PyAny>>,
) -> PyResult<Pending> {
    let mut builder = if open {
        AsyncSemaphore::open(name)
    } else {
        AsyncSemaphore::builder(name, permits)
    };
    builder = builder
        .masters(masters)
        .bounded(bounded)
        .raise_on_redis_errors(raise_on_redis_errors)
        .fair(fair)
        .outage_timeout(seconds("outage_timeout", outage_timeout)?);
    let lease = seconds("lease", Some(lease))?
        .ok_or_else(|| PyValueError::new_err("lease must be a finite number of seconds"))?;
    builder = builder.lease(lease);
    if let Some(timeout) = seconds("request_timeout", request_timeout)? {
        builder = builder.request_timeout(timeout);
    }
    Ok(spawn(callback, builder.build(), |py, sem| {
        NativeSemaphore { sem }.into_py_any(py)
    }))
}

fn permit_object(py: Python<'_>, permit: Option<Permit>) -> PyResult<Py<PyAny>> {
    match permit {
        None => Ok(py.None()),
        Some(permit) => NativePermit {
            id: permit.id().to_string(),
            token: permit.fencing_token(),
            slots: permit.slots().to_vec(),
            inner: Arc::new(Mutex::new(Some(permit))),
        }
        .into_py_any(py),
    }
}

#[pymethods]
impl NativeSemaphore {
    /// Acquires `k` permits: waits without a limit (`wait` and no `timeout`), up to
    /// `timeout` seconds, or not at all (`wait=False`). The outcome is a `NativePermit`, or
    /// `None` when none came in time.
    #[pyo3(signature = (k, *, wait, timeout=None, callback=None))]
    fn acquire(
        &self,
        k: u32,
        wait: bool,
        timeout: Option<f64>,
        callback: Option<Py<PyAny>>,
    ) -> PyResult<Pending> {
        let sem = self.sem.clone();
        let limit = seconds("timeout", timeout)?;
        Ok(spawn(
            callback,
            async move {
                match (wait, limit) {
                    (false, _) => sem.try_acquire_many(k).await,
                    (true, None) => sem.acquire_many(k).await.map(Some),
                    (true, Some(limit)) => sem.acquire_many_timeout(k, limit).await,
                }
            },
            permit_object,
        ))
    }

    /// Releases `n` permits held by this handle (detached ones), like pottery's `release(n)`.
    #[pyo3(signature = (n, *, callback=None))]
    fn release(&self, n: u32, callback: Option<Py<PyAny>>) -> Pending {
        let sem = self.sem.clone();
        spawn(callback, async move { sem.release(n).await }, none)
    }

    /// Permits available now.
    #[pyo3(signature = (*, callback=None))]
    fn value(&self, callback: Option<Py<PyAny>>) -> Pending {
        let sem = self.sem.clone();
        spawn(callback, async move { sem.value().await }, |py, v| {
            v.into_py_any(py)
        })
    }

    /// Who holds the semaphore: `(id, slots, fencing_token, [(master, slots, lease_left)])`.
    #[pyo3(signature = (*, callback=None))]
    fn holders(&self, callback: Option<Py<PyAny>>) -> Pending {
        let sem = self.sem.clone();
        spawn(callback, async move { sem.holders().await }, holders_object)
    }

    /// Waits for the releases this handle started in the background.
    #[pyo3(signature = (*, callback=None))]
    fn flush(&self, callback: Option<Py<PyAny>>) -> Pending {
        let sem = self.sem.clone();
        spawn(
            callback,
            async move {
                sem.flush().await;
                Ok(())
            },
            none,
        )
    }

    /// Deletes the semaphore's keys on every master.
    #[pyo3(signature = (*, callback=None))]
    fn delete(&self, callback: Option<Py<PyAny>>) -> Pending {
        let sem = self.sem.clone();
        spawn(callback, async move { sem.delete().await }, |py, v| {
            v.into_py_any(py)
        })
    }

    #[getter]
    fn initial_value(&self) -> u32 {
        self.sem.initial_value()
    }

    #[getter]
    fn name(&self) -> String {
        self.sem.name().to_string()
    }

    #[getter]
    fn lease(&self) -> f64 {
        self.sem.lease().as_secs_f64()
    }

    #[getter]
    fn bounded(&self) -> bool {
        self.sem.bounded()
    }

    /// The latest failure of a master that has not answered since, as text.
    fn last_error(&self) -> Option<String> {
        self.sem.last_error().map(|e| {
            format!(
                "{}: {} ({} failures in a row)",
                e.master, e.error, e.failures
            )
        })
    }
}

fn holders_object(py: Python<'_>, holders: Vec<Holder>) -> PyResult<Py<PyAny>> {
    let rows: Vec<_> = holders
        .into_iter()
        .map(|h| {
            let masters: Vec<_> = h
                .masters
                .into_iter()
                .map(|m| (m.master, m.slots, m.lease_left.as_secs_f64()))
                .collect();
            (h.id, h.slots, h.fencing_token, masters)
        })
        .collect();
    rows.into_py_any(py)
}

/// A permit: the library's [`Permit`] guard, until it is released, detached or closed.
#[pyclass(module = "redis_semaphore_rs._native", frozen)]
struct NativePermit {
    id: String,
    token: u64,
    slots: Vec<u32>,
    /// Shared (weakly) with the task that watches for the loss, which must not keep the
    /// permit alive: one garbage-collected unreleased is released in the background.
    inner: Arc<Mutex<Option<Permit>>>,
}

impl NativePermit {
    fn take(&self) -> Option<Permit> {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

#[pymethods]
impl NativePermit {
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    #[getter]
    fn fencing_token(&self) -> u64 {
        self.token
    }

    #[getter]
    fn slots(&self) -> Vec<u32> {
        self.slots.clone()
    }

    /// Whether the lease is known to be held (false once released, detached or lost).
    fn is_valid(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(Permit::is_valid)
    }

    /// Whether this object still holds the permit (not released, detached nor closed).
    fn held(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Releases the permit and waits for the masters; a permit already let go is a no-op.
    #[pyo3(signature = (*, callback=None))]
    fn release(&self, callback: Option<Py<PyAny>>) -> Pending {
        let permit = self.take();
        spawn(
            callback,
            async move {
                match permit {
                    Some(permit) => permit.release().await,
                    None => Ok(()),
                }
            },
            none,
        )
    }

    /// Hands the permit to its semaphore handle, whose `release(n)` releases it later.
    fn detach(&self) {
        if let Some(permit) = self.take() {
            permit.detach();
        }
    }

    /// Lets the permit go without waiting: it is released in the background.
    fn close(&self) {
        drop(self.take());
    }

    /// Calls `callback()` (on a runtime thread) once the lease is lost while this object
    /// still holds the permit (not after a release, a detach or a close).
    fn on_lost(&self, callback: Py<PyAny>) {
        let inner = Arc::downgrade(&self.inner);
        let lost = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(Permit::lost);
        let Some(lost) = lost else {
            return;
        };
        runtime().spawn(async move {
            lost.await;
            let held = inner.upgrade().is_some_and(|inner| {
                inner
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
            });
            if !held {
                return;
            }
            Python::attach(|py| {
                if let Err(error) = callback.call0(py) {
                    error.write_unraisable(py, None);
                }
            });
        });
    }
}

/// The native part of `redis_semaphore_rs`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<NativeError>())?;
    m.add_class::<Pending>()?;
    m.add_class::<NativeSemaphore>()?;
    m.add_class::<NativePermit>()?;
    m.add_function(wrap_pyfunction!(build, m)?)?;
    m.add(
        "DEFAULT_LEASE",
        redis_semaphore::DEFAULT_LEASE.as_secs_f64(),
    )?;
    m.add(
        "DEFAULT_OUTAGE_TIMEOUT",
        redis_semaphore::DEFAULT_OUTAGE_TIMEOUT.as_secs_f64(),
    )?;
    Ok(())
}
