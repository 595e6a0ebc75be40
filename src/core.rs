//! [`Core`]: what a handle's permits, renewals and background releases share: the masters,
//! the configuration, the releases in flight. No handle-level state lives here (the
//! detached permits, the waiter line), so a running renewal never keeps a dropped handle's
//! detached permits alive.

use std::sync::Arc;

use crate::background::{GiveBack, Release, Releases};
use crate::config::Config;
use crate::error::Error;
use crate::lease::LeaseState;
use crate::quorum::{Leave, Quorum};
use crate::trace;

#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) config: Config,
    pub(crate) quorum: Arc<Quorum>,
    /// The background releases still running, and the wake-up of waiters when a permit is
    /// given back.
    pub(crate) releases: Arc<Releases>,
    /// The runtime the handle was built on: where the releases of its detached permits
    /// and of its waiter line run.
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Core {
    /// Must run inside a Tokio runtime: the handle's background work runs there.
    pub(crate) fn new(config: Config, quorum: Quorum) -> Self {
        Core {
            config,
            quorum: Arc::new(quorum),
            releases: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Releases `slots` of a lease (all of them when empty) and waits for the master.
    /// [`Error::PermitLost`] when the lease had passed first: the slots are free either
    /// way, but what they protected may have been used by another holder.
    pub(crate) async fn release_lease(
        &self,
        lease: &LeaseState,
        slots: &[u32],
    ) -> Result<(), Error> {
        let was_valid = lease.is_valid();
        let freed = self.quorum.release(&lease.id, &Leave::Stay, slots).await;
        trace::released(&lease.id, &freed);
        // A lease already lost is the answer, whether or not the masters could be reached.
        if !was_valid || freed? == 0 {
            return Err(Error::PermitLost {
                id: lease.id.clone(),
            });
        }
        Ok(())
    }

    /// Gives `give` back without waiting, on `runtime`; a failure is left to the leases,
    /// which expire on their own. If the runtime shuts down before the release is done,
    /// the release is done at that moment instead, on a thread of its own (see
    /// [`crate::background`]).
    pub(crate) fn release_in_background(&self, runtime: &tokio::runtime::Handle, give: GiveBack) {
        let release = Release::new(Arc::clone(&self.quorum), Arc::clone(&self.releases), give);
        runtime.spawn(release.run());
    }
}
