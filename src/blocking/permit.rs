//! The blocking [`Permit`]: an async permit kept with the runtime it renews on; its drop
//! waits for the release.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::runtime::{Runtime, assert_not_async};
use crate::error::Error;
use crate::permit::Permit as AsyncPermit;

/// A blocking permit: the twin of [`crate::Permit`]. Dropping it releases it and returns
/// once the master has answered (or the request timed out). Dropped inside an async
/// runtime, where it must not block, it releases in the background instead.
///
/// [`wait_lost`](Permit::wait_lost) is the blocking form of [`crate::Permit::lost`], with a
/// time limit since a permit that is never lost would block forever.
#[must_use = "dropping the permit releases it at once; hold it (`let _permit = ...`, not `let _ = ...`) for as long as you need the resource"]
pub struct Permit {
    inner: Option<AsyncPermit>,
    runtime: Arc<Runtime>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("blocking::Permit")
            .field(&self.inner)
            .finish()
    }
}

impl Permit {
    pub(super) fn new(permit: AsyncPermit, runtime: Arc<Runtime>) -> Self {
        Permit {
            inner: Some(permit),
            runtime,
        }
    }

    fn permit(&self) -> &AsyncPermit {
        self.inner
            .as_ref()
            .expect("a blocking permit holds its permit until dropped")
    }

    /// Releases the permit and waits for the master.
    ///
    /// # Errors
    ///
    /// As for [`crate::Permit::release`]: [`Error::PermitLost`] if the lease had passed
    /// first.
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn release(mut self) -> Result<(), Error> {
        assert_not_async("Permit::release");
        let permit = self
            .inner
            .take()
            .expect("a blocking permit holds its permit until dropped");
        self.runtime.run(permit.release())
    }

    /// Blocks up to `timeout` for the lease to be lost; true if it was (or if the runtime
    /// thread is gone).
    ///
    /// # Panics
    ///
    /// If called from inside an async runtime.
    #[track_caller]
    pub fn wait_lost(&self, timeout: Duration) -> bool {
        assert_not_async("Permit::wait_lost");
        let lost = self.permit().lost();
        self.runtime
            .run(async move { Ok(tokio::time::timeout(timeout, lost).await.is_ok()) })
            .unwrap_or(true)
    }

    /// True while the lease is known to be held. See [`crate::Permit::is_valid`].
    pub fn is_valid(&self) -> bool {
        self.permit().is_valid()
    }

    /// See [`crate::Permit::fencing_token`].
    pub fn fencing_token(&self) -> u64 {
        self.permit().fencing_token()
    }

    /// See [`crate::Permit::slots`].
    pub fn slots(&self) -> &[u32] {
        self.permit().slots()
    }

    /// See [`crate::Permit::permits`].
    pub fn permits(&self) -> u32 {
        self.permit().permits()
    }

    /// See [`crate::Permit::id`].
    pub fn id(&self) -> &str {
        self.permit().id()
    }

    /// Hands the permit back to its semaphore handle. See [`crate::Permit::detach`].
    pub fn detach(mut self) {
        if let Some(permit) = self.inner.take() {
            permit.detach();
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(permit) = self.inner.take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Cannot block here: the async permit's own drop releases it in the background.
            drop(permit);
            return;
        }
        let _ = self.runtime.run(async move {
            let _ = permit.release().await;
            Ok(())
        });
    }
}
