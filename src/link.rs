//! [`Link`]: what the quorum needs of one master, as a trait: send this script there, say
//! who it is, listen to its wake-ups, connect to it afresh.
//!
//! [`Master`](crate::master::Master) is the real one. The quorum and the acquire loop see
//! masters only through this trait, so their decisions run in unit tests against links
//! that answer from a script of replies (granted, busy, an error, no reply at all), with an
//! exact count of what was sent, and no server. That is the way deadpool tests its
//! cancellation matrix; the tests with real servers (`tests/`) stay the judge of the Redis
//! semantics.
//!
//! Dynamic dispatch (`Arc<dyn Link>`) rather than a type parameter: a boxed future per
//! request costs nothing beside a network round trip, and a generic `Quorum<L>` would reach
//! every type that holds one, the public ones included.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::error::Error;
use crate::health::Health;
use crate::lua::{Caller, Keys, Scripted};
use crate::subscriber::Listener;

/// One script run: which script, on which semaphore's keys, with what arguments, for a
/// handle with what configuration (so a refusal can be reported whole: the stored count
/// beside the caller's, the semaphore's name).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) script: &'a Scripted,
    pub(crate) keys: &'a Keys,
    pub(crate) args: &'a [Vec<u8>],
    pub(crate) caller: Caller,
}

/// One master, as the quorum talks to it.
pub(crate) trait Link: Send + Sync + fmt::Debug {
    /// The master as `host:port` (never with a password).
    fn name(&self) -> &str;

    /// The longest one request may take: a request without a reply by then fails.
    fn timeout(&self) -> Duration;

    /// Its failure since it last answered, if any.
    fn health(&self) -> &Health;

    /// Runs one script there, bounded by [`timeout`](Link::timeout); the script's own
    /// refusals come back as the [`Error`] variants a caller can act on.
    fn run<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<redis::Value, Error>>;

    /// Listens to `channel` for waiter line `line` (`""`: every message) on the master's
    /// shared subscriber connection; `None` when it cannot be reached in time (the
    /// caller's timers do then).
    fn listen<'a>(&'a self, channel: &'a str, line: &'a str) -> BoxFuture<'a, Option<Listener>>;

    /// The same master on fresh connections, made on the current runtime: for a release
    /// that outlived the runtime the link's own connections were made on.
    fn reconnect(&self) -> BoxFuture<'_, Result<Arc<dyn Link>, Error>>;
}

#[cfg(test)]
pub(crate) mod fake;
