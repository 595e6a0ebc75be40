//! Background renewal of a permit's lease, and the permit's view of its own validity.
//!
//! The server decides when a lease expires (its own clock, in the scripts); the client
//! keeps a conservative local deadline on its monotonic clock: the start of the request
//! that granted or renewed the lease, plus the lease, minus a drift allowance. Past that
//! deadline the permit is treated as lost even if the server might still hold it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::{Instant, sleep_until};

use crate::quorum::Quorum;
use crate::quorum::decide::validity;

/// What a permit and its renewal task share.
#[derive(Debug)]
pub(crate) struct LeaseState {
    pub(crate) id: String,
    pub(crate) token: u64,
    /// The slots the permit holds now (a detached permit can be released in part).
    slots: Mutex<Vec<u32>>,
    deadline: Mutex<Instant>,
    lost: watch::Sender<bool>,
}

impl LeaseState {
    pub(crate) fn new(id: String, token: u64, slots: Vec<u32>, deadline: Instant) -> Self {
        LeaseState {
            id,
            token,
            slots: Mutex::new(slots),
            deadline: Mutex::new(deadline),
            lost: watch::Sender::new(false),
        }
    }

    pub(crate) fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn slots(&self) -> Vec<u32> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes up to `n` of the permit's slots off it, lowest first, for a partial release.
    /// Renewals after this no longer hold them.
    pub(crate) fn take_slots(&self, n: usize) -> Vec<u32> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let n = n.min(slots.len());
        slots.drain(..n).collect()
    }

    fn extend(&self, deadline: Instant) {
        *self.deadline.lock().unwrap_or_else(PoisonError::into_inner) = deadline;
    }

    pub(crate) fn mark_lost(&self) {
        self.lost.send_replace(true);
    }

    pub(crate) fn is_valid(&self) -> bool {
        !*self.lost.borrow() && Instant::now() < self.deadline()
    }

    /// Resolves when the lease is lost, or when nothing can lose it any more (the permit
    /// was released and its renewal stopped).
    pub(crate) fn lost(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut lost = self.lost.subscribe();
        async move {
            let _ = lost.wait_for(|lost| *lost).await;
        }
    }
}

/// Starts renewing `state`'s lease every `lease / 3`, from `granted_at`. The task ends when
/// the lease is lost; the permit aborts it when it is released.
///
/// `first` is the lease of the grant itself when it is shorter than `lease` (a grant pushed
/// to a waiter lasts at most a waiter lease until its first renewal).
pub(crate) fn spawn_renewal(
    runtime: &tokio::runtime::Handle,
    quorum: Arc<Quorum>,
    lease: Duration,
    first: Duration,
    state: Arc<LeaseState>,
    granted_at: Instant,
) -> AbortHandle {
    runtime
        .spawn(renew(quorum, lease, first, state, granted_at))
        .abort_handle()
}

async fn renew(
    quorum: Arc<Quorum>,
    lease: Duration,
    first: Duration,
    state: Arc<LeaseState>,
    granted_at: Instant,
) {
    let period = lease / 3;
    // After a failed renewal, try again soon, still well before the deadline.
    let retry = (first.min(lease) / 12).max(Duration::from_millis(5));
    let mut next = granted_at + first.min(lease) / 3;
    loop {
        let deadline = state.deadline();
        tokio::select! {
            _ = sleep_until(next) => {}
            _ = sleep_until(deadline) => break,
        }
        let started = Instant::now();
        let slots = state.slots();
        tokio::select! {
            renewed = quorum.renew(&state.id, &slots, state.token, lease, || state.slots()) => match renewed {
                Ok(true) => {
                    state.extend(started + validity(lease));
                    next = started + period;
                    crate::trace::renewed(&state.id, started.elapsed());
                }
                // The masters no longer hold it: someone else may, already.
                Ok(false) => break,
                // Unreachable or slow: keep trying until the deadline says otherwise.
                Err(error) => {
                    crate::trace::renewal_failed(&state.id, &error);
                    next = Instant::now() + retry;
                }
            },
            _ = sleep_until(deadline) => break,
        }
    }
    crate::trace::lost(&state.id);
    state.mark_lost();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn state_turns_invalid_at_its_deadline() {
        let state = LeaseState::new(
            "a".into(),
            1,
            vec![0],
            Instant::now() + Duration::from_secs(1),
        );
        assert!(state.is_valid());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!state.is_valid());
    }

    #[tokio::test]
    async fn lost_resolves_when_marked() {
        let state = LeaseState::new(
            "a".into(),
            1,
            vec![0],
            Instant::now() + Duration::from_secs(60),
        );
        let lost = state.lost();
        state.mark_lost();
        tokio::time::timeout(Duration::from_secs(1), lost)
            .await
            .expect("lost() resolves");
        assert!(!state.is_valid());
    }
}
