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

mod permit;
mod runtime;
mod semaphore;

pub use permit::Permit;
pub use semaphore::{Builder, Semaphore};
