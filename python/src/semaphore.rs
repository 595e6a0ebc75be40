//! `NativeSemaphore`: a handle on one semaphore (the library's [`AsyncSemaphore`]), and
//! `build`, which makes one.

use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use redis_semaphore::{AsyncSemaphore, Holder};

use crate::duration::seconds;
use crate::errors::last_error_text;
use crate::options::SemaphoreOptions;
use crate::pending::{Finish, Pending, none, spawn, spawn_with};
use crate::permit::NativePermit;

/// A handle on one semaphore: the library's [`AsyncSemaphore`].
#[pyclass(module = "redis_semaphore_rs._native", frozen, weakref)]
pub(crate) struct NativeSemaphore {
    sem: AsyncSemaphore,
}

/// Starts building a handle from the Python layer's `Options`; the outcome is a
/// `NativeSemaphore`.
#[pyfunction]
#[pyo3(signature = (options, *, callback=None))]
pub(crate) fn build(options: SemaphoreOptions, callback: Option<Py<PyAny>>) -> PyResult<Pending> {
    let builder = options.into_builder()?;
    Ok(spawn(callback, builder.build(), |py, sem| {
        NativeSemaphore { sem }.into_py_any(py)
    }))
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
            NativePermit::from_acquired,
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
        spawn(callback, async move { sem.holders().await }, holder_rows)
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
        self.sem.last_error().map(|e| last_error_text(&e))
    }
}

/// Holders as plain tuples (the `HolderRow` of `_native.pyi`); the Python layer makes its
/// dataclasses of them.
fn holder_rows(py: Python<'_>, holders: Vec<Holder>) -> PyResult<Py<PyAny>> {
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
