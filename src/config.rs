//! [`Config`]: what a handle was built with, checked by the builder and passed whole.

use std::time::Duration;

/// A handle's settings, as [`Builder`](crate::Builder) checked them. The permit count and
/// boundedness are not here: they are what the scripts are told, and live with the
/// masters' [`Quorum`](crate::quorum::Quorum), which `set_permits` changes.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The semaphore's name: the hash tag of its keys.
    pub(crate) name: String,
    /// The lease of every permit the handle grants.
    pub(crate) lease: Duration,
    /// Report a master's failure at once instead of retrying (or `Ok(None)` for a try).
    pub(crate) raise_on_redis_errors: bool,
    /// How long a waiting acquire rides out masters that do not answer; `None`: for ever.
    pub(crate) outage_timeout: Option<Duration>,
    /// Waiters are served in order across processes (the queue in Redis).
    pub(crate) fair: bool,
}
