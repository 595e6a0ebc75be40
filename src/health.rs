//! What a handle knows of its masters' health: each master's failure since it last
//! answered, so that "no permit" (`Ok(None)`) can be told from "no server".

use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::time::Instant;

use crate::error::Error;

/// A master that failed and has not answered since: what
/// [`AsyncSemaphore::last_error`](crate::AsyncSemaphore::last_error) reports.
///
/// A master *fails* when a request to it gets no reply within the request timeout, cannot
/// connect, or is refused by the server itself (a wrong password, a missing ACL
/// permission, a full server): an [`Error::Redis`]. An answer the semaphore's scripts give
/// (a [`ConfigMismatch`](Error::ConfigMismatch), a [`WrongType`](Error::WrongType)) is an
/// answer, not a failure. The entry is cleared by the master's next answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MasterError {
    /// The master, as `host:port` (never with its password).
    pub master: String,
    /// Its latest failure.
    pub error: Error,
    /// When the master's run of failures began: it has not answered since.
    pub since: SystemTime,
    /// When the latest failure happened.
    pub at: SystemTime,
    /// Failed requests in a row, the latest included.
    pub failures: u64,
}

/// One master's health, shared by the clones of its [`crate::master::Master`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Health(Arc<Mutex<Option<(MasterError, Instant)>>>);

impl Health {
    /// Records a failure of `master`.
    pub(crate) fn failed(&self, master: &str, error: &Error) {
        let now = SystemTime::now();
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match &mut *state {
            Some((last, _)) => {
                last.error = error.clone();
                last.at = now;
                last.failures += 1;
                crate::trace::master_still_failing(master, error, last.failures);
            }
            None => {
                crate::trace::master_error(master, error);
                *state = Some((
                    MasterError {
                        master: master.to_string(),
                        error: error.clone(),
                        since: now,
                        at: now,
                        failures: 1,
                    },
                    Instant::now(),
                ));
            }
        }
    }

    /// The master answered: its run of failures, if any, is over.
    pub(crate) fn answered(&self, master: &str) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((last, started)) = state.take() {
            crate::trace::master_back(master, started.elapsed(), last.failures);
        }
    }

    /// The master's failure since it last answered.
    pub(crate) fn error(&self) -> Option<MasterError> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(last, _)| last.clone())
    }
}
