//! `NativePermit`: the library's [`Permit`] guard, held for Python until it is released,
//! detached or closed.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use redis_semaphore::Permit;

use crate::gate::call_python;
use crate::pending::{Finish, Pending, none, runtime, spawn_with};

/// A permit: the library's [`Permit`] guard, until it is released, detached or closed.
#[pyclass(module = "redis_semaphore_rs._native", frozen)]
pub(crate) struct NativePermit {
    id: String,
    token: u64,
    slots: Vec<u32>,
    /// Shared (weakly) with the task that watches for the loss, which must not keep the
    /// permit alive: one garbage-collected unreleased is released in the background.
    inner: Arc<Mutex<Option<Permit>>>,
}

impl NativePermit {
    /// An acquire's outcome as Python sees it: a `NativePermit`, or `None` when no permit
    /// came.
    pub(crate) fn from_acquired(py: Python<'_>, permit: Option<Permit>) -> PyResult<Py<PyAny>> {
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
