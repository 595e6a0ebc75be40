//! `redis_semaphore_rs._native`: the pyo3 layer under the Python package.
//!
//! It is deliberately thin. Every operation of the library's [`AsyncSemaphore`] and
//! [`Permit`] is started as a task on one Tokio runtime that the extension owns, and
//! returns a `Pending`: synchronous Python code waits on it with `Pending::wait`
//! (the GIL released, woken every few milliseconds to let `KeyboardInterrupt` through,
//! which cancels the task), and asyncio code passes a callback that the task calls with
//! its outcome (the Python layer hands it to its event loop with `call_soon_threadsafe`).
//! Cancelling the task drops the library's future, which is cancel safe: whatever an
//! acquire may have been granted is released in the background. Releases are the
//! exception: once begun they run to their end whoever stops waiting for them
//! (`Finish::RunsToEnd`).
//!
//! The runtime's threads call into Python (asyncio callbacks, `on_lost`) only through
//! `call_python`, a gate that `shutdown` closes at interpreter exit (from an `atexit`
//! hook, before the interpreter starts finalizing): a thread that took the GIL while the
//! interpreter finalizes aborts the process (`PyGILState_Release ... finalizing`).
//!
//! Errors cross as `NativeError(kind, message, details)`; the Python layer turns them into
//! its public exceptions (`SemaphoreError`, `BoundedSemaphoreError`, ...), so their
//! hierarchy lives in one place, in Python.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::IntoPyObjectExt;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyTimeoutError, PyValueError};
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

/// A count guarded by a mutex, with a condition variable to wait for it to reach zero.
struct Census {
    state: Mutex<CensusState>,
    zero: Condvar,
}

struct CensusState {
    /// The process counted: a child made by `fork()` starts afresh (the parent's threads,
    /// and so what they counted, are not in it).
    pid: u32,
    /// Once set, [`Census::enter`] refuses: the interpreter is exiting.
    closed: bool,
    count: usize,
}

impl Census {
    const fn new() -> Self {
        Census {
            state: Mutex::new(CensusState {
                pid: 0,
                closed: false,
                count: 0,
            }),
            zero: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CensusState> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = std::process::id();
        if state.pid != pid {
            *state = CensusState {
                pid,
                closed: false,
                count: 0,
            };
        }
        state
    }

    /// Counts one in, unless closed; the returned guard counts it out when dropped.
    fn enter(&'static self) -> Option<CensusGuard> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        state.count += 1;
        Some(CensusGuard(self))
    }

    /// Counts one in even when closed (work that must finish regardless).
    fn enter_always(&'static self) -> CensusGuard {
        self.lock().count += 1;
        CensusGuard(self)
    }

    /// Refuses new entries from now on.
    fn close(&self) {
        self.lock().closed = true;
    }

    /// Waits until the count is zero or `deadline` passes; whether it reached zero.
    fn wait_zero(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        while state.count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .zero
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

struct CensusGuard(&'static Census);

impl Drop for CensusGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.count = state.count.saturating_sub(1);
        if state.count == 0 {
            self.0.zero.notify_all();
        }
    }
}

/// The runtime threads' calls into Python now in progress; closed at interpreter exit.
static PYTHON_CALLS: Census = Census::new();

/// Operations that run to their end ([`Finish::RunsToEnd`]) not finished yet.
static FINISHING: Census = Census::new();

/// Runs `f` with the GIL on a runtime thread, unless the interpreter is exiting (then `f`
/// is dropped unrun: whatever it would have handed to Python is dropped in Rust, a permit
/// released in the background).
fn call_python(f: impl FnOnce(Python<'_>)) {
    let Some(_inside) = PYTHON_CALLS.enter() else {
        return;
    };
    let _ = Python::try_attach(f);
}

/// Called at interpreter exit, before it finalizes: no runtime thread calls into Python
/// from now on (those inside a call finish it first: each only hands an outcome to an event
/// loop or sets an event), and releases in progress get up to `timeout` seconds to end.
/// Returns whether all of them did.
#[pyfunction]
fn shutdown(py: Python<'_>, timeout: f64) -> bool {
    PYTHON_CALLS.close();
    let deadline = Instant::now() + Duration::try_from_secs_f64(timeout).unwrap_or_default();
    // The GIL released: a runtime thread inside a call may be waiting for it.
    py.detach(|| PYTHON_CALLS.wait_zero(deadline) && FINISHING.wait_zero(deadline))
}

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
    if let Error::InvalidArgument(_) = &error {
        return PyValueError::new_err(python_message(&error));
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
        _ => python_message(&error),
    };
    NativeError::new_err((kind, message, details.unbind()))
}

/// Seconds as a Python user writes them: `3.0`, `0.25`, `0.001`.
fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s > 0.0 && s < 0.001 {
        format!("{s:e}")
    } else if s >= 10.0 {
        format!("{s:.1}")
    } else {
        let mut text = format!("{s:.3}");
        while text.ends_with('0') && !text.ends_with(".0") {
            text.pop();
        }
        text
    }
}

/// The error's message in Python's terms: seconds as numbers, keyword arguments rather than
/// the Rust builder's methods.
fn python_message(error: &Error) -> String {
    match error {
        Error::Outage { lasted, error } => format!(
            "gave up after {} seconds without an answer from the masters (the outage \
             timeout: outage_timeout=, None to wait through any outage); the last error: {}",
            secs(*lasted),
            python_message(error)
        ),
        other => python_text(&other.to_string()),
    }
}

/// The library's words for Rust callers, said for Python ones: the builder's methods as
/// keyword arguments, and durations as Rust's `Debug` writes them (`200ms`, `3.001026684s`)
/// as seconds (`0.2 seconds`).
fn python_text(text: &str) -> String {
    let text = text
        .replace("Builder::request_timeout", "request_timeout=")
        .replace("Builder::outage_timeout", "outage_timeout=")
        .replace("Builder::lease", "lease=")
        .replace(".bounded(false)", "bounded=False")
        .replace(".bounded(true)", "bounded=True")
        .replace("AsyncSemaphore::open", "Semaphore.open");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some((at, duration, len)) = next_duration(rest) {
        out.push_str(&rest[..at]);
        out.push_str(&secs(duration));
        out.push_str(" seconds");
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}

/// The first duration written as Rust's `Debug` does (a number, then `ns`, `µs`, `ms` or
/// `s`, as a word of its own) in `text`: its byte offset, its value and its length.
fn next_duration(text: &str) -> Option<(usize, Duration, usize)> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.');
        if !(starts_word && bytes[i].is_ascii_digit()) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len() && (bytes[end].is_ascii_digit() || bytes[end] == b'.') {
            end += 1;
        }
        let number: Option<f64> = text[i..end].parse().ok();
        let unit = ["ns", "µs", "ms", "s"]
            .into_iter()
            .find(|unit| text[end..].starts_with(unit));
        if let (Some(number), Some(unit)) = (number, unit) {
            let after = end + unit.len();
            if bytes.get(after).is_none_or(|b| !b.is_ascii_alphanumeric()) {
                let scale = match unit {
                    "ns" => 1e-9,
                    "µs" => 1e-6,
                    "ms" => 1e-3,
                    _ => 1.0,
                };
                return Some((i, Duration::from_secs_f64(number * scale), after - i));
            }
        }
        i = end.max(i + 1);
    }
    None
}

/// An operation running on the runtime. Wait for it with [`wait`](Pending::wait), or give
/// the operation a callback when starting it; [`cancel`](Pending::cancel) drops it.
#[pyclass(module = "redis_semaphore_rs._native", frozen)]
struct Pending {
    outcome: Mutex<Option<mpsc::Receiver<Result<Make, Error>>>>,
    /// `None` for an operation that runs to its end ([`Finish::RunsToEnd`]).
    abort: Option<AbortHandle>,
}

#[pymethods]
impl Pending {
    /// Waits for the outcome with the GIL released; a signal handler's exception (say
    /// `KeyboardInterrupt`) cancels the operation and is raised. With `timeout` (seconds),
    /// an outcome not there by then cancels the operation and raises `TimeoutError`.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let deadline = seconds("timeout", timeout)?.map(|t| Instant::now() + t);
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
            let slice = deadline.map_or(SIGNAL_SLICE, |d| {
                SIGNAL_SLICE.min(d.saturating_duration_since(Instant::now()))
            });
            let (received, back) = py.detach(move || {
                let received = outcome.recv_timeout(slice);
                (received, outcome)
            });
            outcome = back;
            match received {
                Ok(Ok(make)) => return make(py),
                Ok(Err(error)) => return Err(native_error(py, error)),
                Err(RecvTimeoutError::Timeout) => {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        self.cancel();
                        return Err(PyTimeoutError::new_err("no outcome in time"));
                    }
                    if let Err(interrupted) = py.check_signals() {
                        self.cancel();
                        return Err(interrupted);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PyRuntimeError::new_err("the operation was cancelled"));
                }
            }
        }
    }

    /// Drops the operation (cancel safe: an acquire's grant is released in the background);
    /// a release goes on to its end.
    fn cancel(&self) {
        if let Some(abort) = &self.abort {
            abort.abort();
        }
    }
}

/// What cancelling an operation does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Finish {
    /// Drops it: for operations that are cancel safe and worth stopping (acquires, reads).
    Abortable,
    /// Nothing: it runs to its end, and interpreter exit waits for it (a while). Releases:
    /// one abandoned before its first step would leave the permits with the handle.
    RunsToEnd,
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
    spawn_with(Finish::Abortable, callback, future, make)
}

/// [`spawn`], cancelled as `finish` says.
fn spawn_with<T, F>(
    finish: Finish,
    callback: Option<Py<PyAny>>,
    future: F,
    make: impl FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
) -> Pending
where
    T: Send + 'static,
    F: Future<Output = Result<T, Error>> + Send + 'static,
{
    let (tx, rx) = mpsc::sync_channel(1);
    let finishing = (finish == Finish::RunsToEnd).then(|| FINISHING.enter_always());
    let task = runtime().spawn(async move {
        let outcome = future.await;
        drop(finishing);
        match callback {
            None => {
                let made =
                    outcome.map(|value| Box::new(move |py: Python<'_>| make(py, value)) as Make);
                // A receiver dropped meanwhile drops the value (a permit is then released).
                let _ = tx.send(made);
            }
            Some(callback) => call_python(|py| {
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
        abort: (finish == Finish::Abortable).then(|| task.abort_handle()),
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
        spawn_with(
            Finish::RunsToEnd,
            callback,
            async move { sem.release(n).await },
            none,
        )
    }

    /// Changes the stored permit count to `n` for every handle; this one takes it at once.
    #[pyo3(signature = (n, *, callback=None))]
    fn set_permits(&self, n: u32, callback: Option<Py<PyAny>>) -> Pending {
        let sem = self.sem.clone();
        spawn(callback, async move { sem.set_permits(n).await }, none)
    }

    /// Releases the permit `id`, whoever holds it; the number of slots freed.
    #[pyo3(signature = (id, *, callback=None))]
    fn release_holder(&self, id: String, callback: Option<Py<PyAny>>) -> Pending {
        let sem = self.sem.clone();
        spawn(
            callback,
            async move { sem.release_holder(&id).await },
            |py, freed| freed.into_py_any(py),
        )
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
            // An `Error::Redis` names its master itself: say the address once.
            let error = match &e.error {
                Error::Redis { source, .. } => python_text(&source.to_string()),
                other => python_message(other),
            };
            let failures = match e.failures {
                1 => "1 failure".to_string(),
                n => format!("{n} failures in a row"),
            };
            format!("{}: {error} ({failures})", e.master)
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
        spawn_with(
            Finish::RunsToEnd,
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
            call_python(|py| {
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
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add("VERSION", env!("CARGO_PKG_VERSION"))?;
    m.add("MIN_LEASE", redis_semaphore::MIN_LEASE.as_secs_f64())?;
    m.add("MAX_LEASE", redis_semaphore::MAX_LEASE.as_secs_f64())?;
    m.add("MAX_NAME_LEN", redis_semaphore::MAX_NAME_LEN)?;
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
