//! The semaphore's settings, passed whole from Python as one object.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use redis_semaphore::{AsyncSemaphore, Builder};

use crate::duration::seconds;

/// What `build` makes a handle from: the Python layer's `Options` (a frozen dataclass in
/// `redis_semaphore_rs/_options.py`), read by attribute, its values already checked there
/// in pottery-semaphore's words. The same object is what a handle pickles as.
#[derive(FromPyObject)]
pub(crate) struct SemaphoreOptions {
    /// The semaphore's key (`key=`).
    name: String,
    /// The permit count (`value=`); ignored when `open`.
    permits: u32,
    /// Master URLs, redis-py clients already read into them.
    masters: Vec<String>,
    bounded: bool,
    raise_on_redis_errors: bool,
    /// Seconds.
    lease: f64,
    fair: bool,
    /// Seconds; `None` for the library's default.
    request_timeout: Option<f64>,
    /// Seconds; `None` waits through any outage.
    outage_timeout: Option<f64>,
    /// Adopt the stored permit count and `bounded` ([`AsyncSemaphore::open`]).
    open: bool,
}

impl SemaphoreOptions {
    /// The library's builder with these settings.
    pub(crate) fn into_builder(self) -> PyResult<Builder> {
        let builder = if self.open {
            AsyncSemaphore::open(self.name)
        } else {
            AsyncSemaphore::builder(self.name, self.permits)
        };
        let mut builder = builder
            .masters(self.masters)
            .bounded(self.bounded)
            .raise_on_redis_errors(self.raise_on_redis_errors)
            .fair(self.fair)
            .outage_timeout(seconds("outage_timeout", self.outage_timeout)?);
        let lease = seconds("lease", Some(self.lease))?
            .ok_or_else(|| PyValueError::new_err("lease must be a finite number of seconds"))?;
        builder = builder.lease(lease);
        if let Some(timeout) = seconds("request_timeout", self.request_timeout)? {
            builder = builder.request_timeout(timeout);
        }
        Ok(builder)
    }
}
