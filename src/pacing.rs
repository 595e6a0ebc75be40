//! How a waiter spaces its attempts.
//!
//! A waiter sleeps until a wake-up: a release by this handle (a [`tokio::sync::Notify`]),
//! or one published by a script that freed a slot ([`crate::subscriber`]). In a fair queue the
//! scripts name a line when its turn comes, so a line far from the head asks again only to
//! keep its place, every [`PLACE_RENEW`] or so: waiting costs the server nothing per
//! second, however many wait. Expired leases are not events, so the few lines at the head
//! ([`NEAR`]) also wake when the earliest lease they saw expires (a holder that died frees
//! nothing by itself). Waiters outside the queue (an unfair handle's) wake at the latest
//! after [`WAKE_CAP`]. Errors and masters that granted different slots are retried after a
//! short jittered backoff.

use std::time::Duration;

use crate::lua::bound;

/// Longest sleep of a waiter outside the queue (an unfair handle's) without a wake-up.
pub(crate) const WAKE_CAP: Duration = Duration::from_millis(250);

/// How long a waiter may stay silent once it is its turn in a fair semaphore's queue: 1 s.
/// A line named in a wake-up keeps its place this long without asking, and a grant pushed
/// to a waiter lasts this long until the permit's first renewal; so a waiter whose process
/// died costs the next at most about this long. (A place further back is kept for minutes
/// without any request.) Not configurable.
pub const WAITER_LEASE: Duration = Duration::from_millis(bound::PUSHED_MS);

/// How long a queued line keeps its place without asking: 5 minutes. Whether its process
/// is alive is told by its subscription (`PUBSUB NUMSUB` in the scripts), so the place is
/// renewed only to keep the semaphore's keys from expiring under a live waiter.
pub(crate) const PLACE_LEASE: Duration = Duration::from_secs(300);

/// About how often a line far from the head asks to keep its place: well inside
/// [`PLACE_LEASE`], jittered by ±20% so that a crowd's renewals spread out.
pub(crate) const PLACE_RENEW: Duration = Duration::from_secs(120);

/// The lines at the head of a queue that watch the earliest lease (wake when it expires):
/// enough that some of them are alive when the holders and the first lines died together.
pub(crate) const NEAR: u64 = 8;

/// The sleep of a queued line far from the head: about [`PLACE_RENEW`].
pub(crate) fn renew_pause() -> Duration {
    PLACE_RENEW.mul_f64(rand::random_range(0.8..1.2))
}

/// The sleep of a line near the head whose earliest lease expires in `hint`: until just
/// after it (a holder that died frees its slots only when a script reclaims them), and at
/// most a [`WAITER_LEASE`] (a grant pushed to a line ahead whose process died meanwhile
/// ends that soon, and only a script frees it).
pub(crate) fn near_pause(hint: Duration) -> Duration {
    (hint + Duration::from_millis(1)).min(WAITER_LEASE)
}

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
