//! `tracing` spans and events (feature `tracing`); without the feature every function here
//! is empty and the types are zero-sized, so call sites stay free of `cfg`.
//!
//! Targets and levels: `redis_semaphore` at DEBUG for acquires, renewals and releases, WARN
//! for a lost permit, for a master's first failure after it answered (DEBUG for the
//! failures that follow, so an outage does not flood the log) and for an acquire that gave
//! up on an outage, INFO for a master that answers again.

use std::time::Duration;

#[cfg(feature = "tracing")]
use tokio::time::Instant;

use crate::error::Error;

/// One acquire: its span, and what the grant event reports.
#[derive(Debug)]
pub(crate) struct Acquire {
    #[cfg(feature = "tracing")]
    span: tracing::Span,
    #[cfg(feature = "tracing")]
    started: Instant,
    #[cfg(feature = "tracing")]
    attempts: u32,
}

impl Acquire {
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn start(name: &str, k: u32) -> Self {
        Acquire {
            #[cfg(feature = "tracing")]
            span: tracing::debug_span!("acquire", semaphore = name, permits = k),
            #[cfg(feature = "tracing")]
            started: Instant::now(),
            #[cfg(feature = "tracing")]
            attempts: 0,
        }
    }

    /// An attempt is about to be sent.
    pub(crate) fn attempt(&mut self) {
        #[cfg(feature = "tracing")]
        {
            self.attempts += 1;
        }
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn granted(&self, id: &str, token: u64, slots: &[u32], masters: usize) {
        #[cfg(feature = "tracing")]
        self.span.in_scope(|| {
            tracing::debug!(
                id,
                token,
                ?slots,
                masters_granted = masters,
                attempts = self.attempts,
                waited_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                "acquired"
            );
        });
    }

    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    pub(crate) fn outage(&self, lasted: Duration, error: &Error) {
        #[cfg(feature = "tracing")]
        self.span.in_scope(|| {
            tracing::warn!(
                attempts = self.attempts,
                outage_ms = lasted.as_secs_f64() * 1000.0,
                %error,
                "acquire gave up: the masters did not answer for the outage timeout"
            );
        });
    }

    pub(crate) fn gave_up(&self) {
        #[cfg(feature = "tracing")]
        self.span.in_scope(|| {
            tracing::debug!(
                attempts = self.attempts,
                waited_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                "no permit in time"
            );
        });
    }
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn renewed(id: &str, took: Duration) {
    #[cfg(feature = "tracing")]
    tracing::debug!(id, took_ms = took.as_secs_f64() * 1000.0, "lease renewed");
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn renewal_failed(id: &str, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::debug!(id, %error, "renewal failed; trying again before the deadline");
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn lost(id: &str) {
    #[cfg(feature = "tracing")]
    tracing::warn!(id, "permit lost: its lease could not be renewed in time");
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn released(id: &str, result: &Result<u32, Error>) {
    #[cfg(feature = "tracing")]
    match result {
        Ok(freed) => tracing::debug!(id, freed, "released"),
        Err(error) => tracing::debug!(id, %error, "release failed; the lease will expire"),
    }
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn master_error(master: &str, error: &Error) {
    #[cfg(feature = "tracing")]
    tracing::warn!(master, %error, "master error; retried until it answers again");
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn master_still_failing(master: &str, error: &Error, failures: u64) {
    #[cfg(feature = "tracing")]
    tracing::debug!(master, %error, failures, "master error");
}

#[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
pub(crate) fn master_back(master: &str, after: Duration, failures: u64) {
    #[cfg(feature = "tracing")]
    tracing::info!(
        master,
        outage_ms = after.as_secs_f64() * 1000.0,
        failures,
        "master answers again"
    );
}
