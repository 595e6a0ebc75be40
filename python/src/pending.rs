//! The bridge from Python to the runtime: each operation is a task on one Tokio runtime
//! that the extension owns, and a [`Pending`] that synchronous Python code waits on, or a
//! callback that the task calls with its outcome (the asyncio layer hands it to its event
//! loop with `call_soon_threadsafe`).
//!
//! Cancelling the task drops the library's future, which is cancel safe: whatever an
//! acquire may have been granted is released in the background. Releases are the
//! exception: once begun they run to their end whoever stops waiting for them
//! ([`Finish::RunsToEnd`]).

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PyRuntimeError, PyTimeoutError};
use pyo3::prelude::*;
use redis_semaphore::Error;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

use crate::duration::seconds;
use crate::errors::native_error;
use crate::gate::{FINISHING, call_python};

/// How often a synchronous wait wakes to look for signals (Ctrl-C).
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

/// The runtime of this process, made on first use. A child made by `fork()` inherits the
/// parent's runtime without its threads: it gets a runtime of its own (the parent's is
/// leaked there, never dropped, since dropping it would wait for threads that do not exist).
pub(crate) fn runtime() -> Arc<Runtime> {
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

/// An operation running on the runtime. Wait for it with [`wait`](Pending::wait), or give
/// the operation a callback when starting it; [`cancel`](Pending::cancel) drops it.
#[pyclass(module = "redis_semaphore_rs._native", frozen)]
pub(crate) struct Pending {
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
pub(crate) enum Finish {
    /// Drops it: for operations that are cancel safe and worth stopping (acquires, reads).
    Abortable,
    /// Nothing: it runs to its end, and interpreter exit waits for it (a while). Releases:
    /// one abandoned before its first step would leave the permits with the handle.
    RunsToEnd,
}

/// Starts `future` on the runtime. Its outcome goes to `callback(ok, value)` (called on a
/// runtime thread, with the GIL) if one is given, else to [`Pending::wait`].
pub(crate) fn spawn<T, F>(
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
pub(crate) fn spawn_with<T, F>(
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

/// The Python value of an operation that returns nothing: `None`.
pub(crate) fn none(py: Python<'_>, _: ()) -> PyResult<Py<PyAny>> {
    Ok(py.None())
}
