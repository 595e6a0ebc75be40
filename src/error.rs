//! The one error type shared by the async and the blocking API.

use std::fmt;

/// What went wrong. Shared by [`AsyncSemaphore`](crate::AsyncSemaphore) and
/// [`blocking::Semaphore`](crate::blocking::Semaphore).
///
/// Match on the variants that call for different handling (`PermitLost`, `Bounded`,
/// `ConfigMismatch`); the enum is `#[non_exhaustive]`, so keep a catch-all arm.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A master answered with an error, or did not answer within the request timeout.
    #[error("redis error on {master}: {source}")]
    Redis {
        /// The master, as `host:port` (never with its password).
        master: String,
        /// What the client library reported.
        #[source]
        source: redis::RedisError,
    },

    /// Too few masters could be reached to decide: each master's failure is listed.
    #[error("no quorum: {needed} of {masters} masters needed, failures: {}", FailureList(.failures))]
    Quorum {
        /// Masters that had to agree.
        needed: usize,
        /// Masters configured.
        masters: usize,
        /// The failures, one per master that failed.
        failures: Vec<MasterFailure>,
    },

    /// `release(n)` on a bounded semaphore asked to release more permits than the handle holds.
    #[error(
        "bounded semaphore: release of {requested} {}, but this handle holds {held}",
        permits(*.requested)
    )]
    Bounded {
        /// Permits the handle held (detached permits not yet released).
        held: u32,
        /// Permits the caller asked to release.
        requested: u32,
    },

    /// [`AsyncSemaphore::open`](crate::AsyncSemaphore::open) found no semaphore of that name.
    #[error("no semaphore named {name:?} exists")]
    NotFound {
        /// The semaphore's name.
        name: String,
    },

    /// The permit's lease had passed before it was released or renewed: another holder may
    /// have been granted its slots.
    #[error("permit {id} was lost: its lease passed before it was renewed or released")]
    PermitLost {
        /// The permit's id.
        id: String,
    },

    /// The semaphore exists with another permit count, or another boundedness, than this
    /// handle was built with. Both are stored with the semaphore when it is created, so
    /// every handle of one semaphore agrees on them.
    #[error("{}", Mismatch { stored: *.stored, requested: *.requested, stored_bounded: *.stored_bounded, requested_bounded: *.requested_bounded })]
    #[non_exhaustive]
    ConfigMismatch {
        /// The count stored with the semaphore.
        stored: u32,
        /// The count this handle was built with.
        requested: u32,
        /// Whether the semaphore is stored as bounded ([`Builder::bounded`](crate::Builder::bounded)).
        /// A semaphore created by a version that did not store it counts as bounded.
        stored_bounded: bool,
        /// Whether this handle was built bounded.
        requested_bounded: bool,
    },

    /// A waiting acquire gave up: the masters did not answer (too few of them, on several)
    /// for longer than the outage timeout ([`Builder::outage_timeout`](crate::Builder::outage_timeout)),
    /// while the semaphore does not raise master errors at once
    /// ([`Builder::raise_on_redis_errors`](crate::Builder::raise_on_redis_errors)).
    #[error(
        "gave up after {lasted:?} without an answer from the masters (the outage timeout, \
         Builder::outage_timeout); the last error: {error}"
    )]
    Outage {
        /// How long the masters had not answered when the acquire gave up.
        lasted: std::time::Duration,
        /// The last attempt's error: [`Error::Redis`] or [`Error::Quorum`].
        #[source]
        error: Box<Error>,
    },

    /// An argument can never work (zero permits, empty name, no master, `k > N`...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// One of the semaphore's keys holds a value this library did not write. Nothing was
    /// changed.
    #[error("wrong type on {master}: {detail}")]
    WrongType {
        /// The master, as `host:port`.
        master: String,
        /// Which key, what it holds, what was expected.
        detail: String,
    },

    /// The blocking facade's runtime thread is gone (it panicked or was shut down).
    #[error("the blocking runtime thread has stopped")]
    RuntimeStopped,
}

/// "permit" or "permits".
pub(crate) fn permits(n: u32) -> &'static str {
    if n == 1 { "permit" } else { "permits" }
}

fn boundedness(bounded: bool) -> &'static str {
    if bounded { "bounded" } else { "unbounded" }
}

/// [`Error::ConfigMismatch`]'s message: what differs, and the ways out.
struct Mismatch {
    stored: u32,
    requested: u32,
    stored_bounded: bool,
    requested_bounded: bool,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Mismatch {
            stored,
            requested,
            stored_bounded,
            requested_bounded,
        } = *self;
        if stored_bounded == requested_bounded {
            return write!(
                f,
                "semaphore exists with {stored} {}, this handle asked for {requested}; build \
                 the handle with the stored count (or with AsyncSemaphore::open), or change it \
                 with set_permits({requested})",
                permits(stored)
            );
        }
        let (stored_b, requested_b) = (boundedness(stored_bounded), boundedness(requested_bounded));
        if stored == requested {
            write!(
                f,
                "semaphore exists {stored_b} (with {stored} {}), this handle asked for \
                 {requested_b}; build the handle with .bounded({stored_bounded}) (or with \
                 AsyncSemaphore::open), or delete the semaphore to make it anew",
                permits(stored)
            )
        } else {
            write!(
                f,
                "semaphore exists {stored_b} with {stored} {}, this handle asked for \
                 {requested_b} with {requested}; build the handle with .bounded({stored_bounded}) \
                 and {stored} {} (or with AsyncSemaphore::open)",
                permits(stored),
                permits(stored)
            )
        }
    }
}

/// One master's failure, as listed in [`Error::Quorum`].
#[derive(Debug, Clone)]
pub struct MasterFailure {
    /// The master, as `host:port`.
    pub master: String,
    /// What went wrong there: usually [`Error::Redis`] (an error reply, or no reply within
    /// the request timeout), but also [`Error::WrongType`] or [`Error::ConfigMismatch`]
    /// when only some masters hold something unexpected.
    pub error: Box<Error>,
}

impl fmt::Display for MasterFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.error {
            Error::Redis { source, .. } => write!(f, "{}: {source}", self.master),
            other => write!(f, "{}: {other}", self.master),
        }
    }
}

struct FailureList<'a>(&'a [MasterFailure]);

impl fmt::Display for FailureList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

/// `Result<T, redis_semaphore::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The variant's name in snake case (`"permit_lost"`, `"outage"`...): a stable label
    /// for logs, metrics and bindings, one per variant, that does not change with the
    /// message's wording.
    ///
    /// ```
    /// let error = redis_semaphore::Error::PermitLost { id: "ab12".into() };
    /// assert_eq!(error.kind(), "permit_lost");
    /// ```
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Redis { .. } => "redis",
            Error::Quorum { .. } => "quorum",
            Error::Bounded { .. } => "bounded",
            Error::NotFound { .. } => "not_found",
            Error::PermitLost { .. } => "permit_lost",
            Error::ConfigMismatch { .. } => "config_mismatch",
            Error::Outage { .. } => "outage",
            Error::InvalidArgument(_) => "invalid_argument",
            Error::WrongType { .. } => "wrong_type",
            Error::RuntimeStopped => "runtime_stopped",
        }
    }

    /// True when retrying later may succeed: masters were unreachable, slow or restarting.
    /// False for problems that waiting cannot fix (a wrong password, a missing ACL
    /// permission, a full server, bad arguments, a lost permit).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Redis { source, .. } => is_transient(source),
            Error::Quorum { failures, .. } => {
                !failures.is_empty() && failures.iter().all(|f| f.error.is_transient())
            }
            Error::Outage { .. } => true,
            _ => false,
        }
    }
}
/// True when retrying later may succeed: the master was unreachable, slow, restarting or
/// failing over. Wrong passwords, missing ACL permissions, scripts refused (`OOM`) are not:
/// waiting on them would hang a caller that can never succeed.
fn is_transient(error: &redis::RedisError) -> bool {
    if error.kind() == redis::ErrorKind::AuthenticationFailed {
        return false;
    }
    if matches!(
        error.code(),
        Some("BUSY" | "LOADING" | "MASTERDOWN" | "TRYAGAIN" | "READONLY")
    ) {
        return true;
    }
    error.is_timeout()
        || error.is_io_error()
        || !matches!(error.retry_method(), redis::RetryMethod::NoRetry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn classifies_errors() {
        let timeout: redis::RedisError = io::Error::new(io::ErrorKind::TimedOut, "slow").into();
        assert!(is_transient(&timeout));
        let refused: redis::RedisError =
            io::Error::new(io::ErrorKind::ConnectionRefused, "down").into();
        assert!(is_transient(&refused));
        let auth: redis::RedisError =
            (redis::ErrorKind::AuthenticationFailed, "wrong password").into();
        assert!(!is_transient(&auth));
    }

    #[test]
    fn kinds_are_distinct_snake_case_labels() {
        let redis: redis::RedisError = io::Error::new(io::ErrorKind::TimedOut, "slow").into();
        let redis = Error::Redis {
            master: "m:6379".into(),
            source: redis,
        };
        let errors = [
            redis.clone(),
            Error::Quorum {
                needed: 2,
                masters: 3,
                failures: Vec::new(),
            },
            Error::Bounded {
                held: 0,
                requested: 1,
            },
            Error::NotFound { name: "a".into() },
            Error::PermitLost { id: "a".into() },
            Error::ConfigMismatch {
                stored: 1,
                requested: 2,
                stored_bounded: true,
                requested_bounded: true,
            },
            Error::Outage {
                lasted: std::time::Duration::ZERO,
                error: Box::new(redis),
            },
            Error::InvalidArgument(String::new()),
            Error::WrongType {
                master: "m:6379".into(),
                detail: String::new(),
            },
            Error::RuntimeStopped,
        ];
        let kinds: std::collections::HashSet<&str> = errors.iter().map(Error::kind).collect();
        assert_eq!(kinds.len(), errors.len());
        assert!(
            kinds
                .iter()
                .all(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
