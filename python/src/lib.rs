//! `redis_semaphore_rs._native`: the pyo3 layer under the Python package.
//!
//! It is deliberately thin: the Python package checks arguments, names its exceptions and
//! keeps pottery-semaphore's API; this layer runs the library's operations. Every
//! operation of the library's `AsyncSemaphore` and `Permit` is a task on one Tokio runtime
//! that the extension owns, and synchronous and asyncio Python code wait for it in their
//! own ways (see `pending`). The runtime's threads call into Python only through a gate
//! that is closed at interpreter exit (`gate`).
//!
//! - `pending`: the runtime, `Pending`, and how a cancelled operation ends;
//! - `gate`: the finalization gate and `shutdown`;
//! - `errors`: the library's errors as `NativeError(kind, message, details)`, said in
//!   Python's terms;
//! - `options`: the settings a handle is built from, passed whole;
//! - `semaphore` and `permit`: the two classes Python code holds.

mod duration;
mod errors;
mod gate;
mod options;
mod pending;
mod permit;
mod semaphore;

use pyo3::prelude::*;

/// The native part of `redis_semaphore_rs`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("NativeError", m.py().get_type::<errors::NativeError>())?;
    m.add_class::<pending::Pending>()?;
    m.add_class::<semaphore::NativeSemaphore>()?;
    m.add_class::<permit::NativePermit>()?;
    m.add_function(wrap_pyfunction!(semaphore::build, m)?)?;
    m.add_function(wrap_pyfunction!(gate::shutdown, m)?)?;
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
