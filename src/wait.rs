//! How a waiter spaces its attempts.
//!
//! A waiter sleeps until a wake-up: a release by this handle (a [`tokio::sync::Notify`]),
//! or one published by a script that freed a slot ([`crate::wake`]). Expired leases are
//! not events, so it also wakes when the earliest lease its attempt saw expires, and at
//! the latest after [`WAKE_CAP`] in case a message was missed. Errors and masters that
//! granted different slots are retried after a short jittered backoff.

use std::time::Duration;

/// Longest sleep of a waiter without a wake-up.
pub(crate) const WAKE_CAP: Duration = Duration::from_millis(250);

/// How long a queued waiter keeps its place in a fair semaphore's queue without asking
/// again: 1 s, four times the longest sleep of a waiter (250 ms), so a live waiter never
/// loses it, and one whose process died drops out within a second. A grant pushed to a
/// waiter also lasts at most this long until the permit's first renewal. Not configurable.
pub const WAITER_LEASE: Duration = Duration::from_millis(1000);

/// The sleep after a busy reply whose earliest lease expires in `hint`.
pub(crate) fn wake_pause(hint: Duration) -> Duration {
    (hint + Duration::from_millis(1)).min(WAKE_CAP)
}

/// First pause after a failed attempt.
const FIRST: Duration = Duration::from_millis(2);
/// Longest pause between two attempts.
const CAP: Duration = Duration::from_millis(50);

/// Doubling backoff from [`FIRST`] to [`CAP`], each pause jittered by ±50% so that waiters
/// released together do not retry together.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: FIRST }
    }

    /// The pause before the next attempt. `hint` is when the earliest lease expires: there
    /// is no point sleeping past it (a millisecond after, so that it has expired).
    pub(crate) fn delay(&mut self, hint: Option<Duration>) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(CAP);
        let jittered = base.mul_f64(rand::random_range(0.5..1.5));
        match hint {
            Some(hint) => jittered.min(hint + Duration::from_millis(1)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new();
        let delays: Vec<_> = (0..10).map(|_| backoff.delay(None)).collect();
        assert!(delays[0] >= FIRST / 2 && delays[0] <= FIRST * 3 / 2);
        assert!(delays.iter().all(|d| *d <= CAP * 3 / 2));
        assert!(
            delays[9] >= CAP / 2,
            "backoff should reach its cap: {delays:?}"
        );
    }

    #[test]
    fn never_sleeps_past_the_earliest_expiry() {
        let mut backoff = Backoff::new();
        for _ in 0..5 {
            backoff.delay(None);
        }
        assert_eq!(
            backoff.delay(Some(Duration::ZERO)),
            Duration::from_millis(1)
        );
        assert!(backoff.delay(Some(Duration::from_secs(60))) <= CAP * 3 / 2);
    }
}
