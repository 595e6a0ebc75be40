//! How a waiter spaces its attempts.
//!
//! A release in this process wakes local waiters at once (a [`tokio::sync::Notify`]);
//! releases elsewhere are found by trying again after a short jittered backoff, or
//! as soon as the earliest lease that the failed attempt reported expires, whichever
//! comes first.

use std::time::Duration;

/// First pause after a busy reply.
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
