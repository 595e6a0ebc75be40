//! [`CancelGuard`]: what an acquire must undo if its future is dropped (or fails), and
//! undoes in its `Drop`.
//!
//! A local guard in the `async fn` rather than a hand-written future with pin-project's
//! `PinnedDrop`: dropping the future drops its live locals, so the guard runs at exactly
//! the same moments, and the acquire stays ordinary async code.
//!
//! What the attempt may hold on the masters is one [`Stake`], set at each step of the
//! acquire and read by `Drop` alone, where two flags used to be set in eight places.

use std::sync::Arc;

use crate::acquire::line::Line;
use crate::background::GiveBack;
use crate::core::Core;

/// What an acquire may hold on the masters at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stake {
    /// Nothing: before the first request, after a clear busy answer, or once the permit
    /// is made (it releases itself).
    Nothing,
    /// Maybe a grant: a request is in flight, or went unanswered by a master that may
    /// still grant it (a request stuck on a paused master). Giving up releases the id.
    MaybeGrant,
    /// A place in a fair queue for the handle's line, with maybe a grant and a pushed
    /// grant's registration. Giving up releases the id, takes the registration back, and
    /// hands the place on: to the next waiter of the line, or off the queue if none.
    Place,
}

impl Stake {
    /// A request goes out; `joins` when it joins the fair queue.
    pub(crate) fn asking(self, joins: bool) -> Stake {
        if joins || self == Stake::Place {
            Stake::Place
        } else {
            Stake::MaybeGrant
        }
    }

    /// Every master answered busy (`joins`: and queued the line); `uncertain` when some
    /// earlier request of this acquire went unanswered.
    pub(crate) fn busy(joins: bool, uncertain: bool) -> Stake {
        match (joins, uncertain) {
            (true, _) => Stake::Place,
            (false, true) => Stake::MaybeGrant,
            (false, false) => Stake::Nothing,
        }
    }

    /// Too few masters answered: any of them may grant yet.
    pub(crate) fn unanswered(self) -> Stake {
        self.max(Stake::MaybeGrant)
    }
}

impl PartialOrd for Stake {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Stake {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (*self as u8).cmp(&(*other as u8))
    }
}

/// Gives back in the background what [`Stake`] says the attempt may hold, when dropped.
/// The id existed before the first request, so the release finds a grant even if its
/// reply never arrived.
pub(crate) struct CancelGuard<'a> {
    pub(crate) stake: Stake,
    core: &'a Arc<Core>,
    line: &'a Line,
    id: &'a str,
    runtime: tokio::runtime::Handle,
}

impl<'a> CancelGuard<'a> {
    pub(crate) fn new(core: &'a Arc<Core>, line: &'a Line, id: &'a str, stake: Stake) -> Self {
        CancelGuard {
            stake,
            core,
            line,
            id,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        let leave = match self.stake {
            Stake::Nothing => return,
            Stake::MaybeGrant => Default::default(),
            Stake::Place => {
                // Handed on: the next waiter asks at once rather than wait for the turn.
                self.line.take_place();
                self.line.leaving()
            }
        };
        let give = GiveBack {
            id: self.id.to_string(),
            slots: Vec::new(),
            leave,
        };
        self.core.release_in_background(&self.runtime, give);
    }
}
