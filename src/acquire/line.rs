//! [`Line`]: a handle's waiters, standing in one line. In this process they wait in turn
//! for the line's lock, and only the head asks the masters; in a fair semaphore's queue in
//! Redis the line is one member, its id, so a release wakes this process once rather than
//! each of its waiters.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::acquire::listeners::Listeners;
use crate::background::GiveBack;
use crate::core::Core;
use crate::quorum::Leave;

#[derive(Debug)]
pub(crate) struct Line {
    /// The line's id in a fair semaphore's queue: random, like a permit id.
    pub(crate) id: String,
    /// Held by the head of the line: the one waiter that asks the masters and listens.
    pub(crate) head: tokio::sync::Mutex<Listeners>,
    /// Waiters of the handle now (the head included).
    waiting: AtomicUsize,
    /// A granted head left the line's place in the queue to the next waiter, who then
    /// waits for its turn to be published instead of asking at once.
    queued: AtomicBool,
}

impl Line {
    pub(crate) fn new(id: String) -> Self {
        Line {
            id,
            head: tokio::sync::Mutex::default(),
            waiting: AtomicUsize::new(0),
            queued: AtomicBool::new(false),
        }
    }

    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A granted head leaves the line's place in the queue to the next waiter.
    pub(crate) fn keep_place(&self) {
        self.queued.store(true, Ordering::Relaxed);
    }

    /// Takes the place a granted head left, if it did (then no one else may leave it).
    pub(crate) fn take_place(&self) -> bool {
        self.queued.swap(false, Ordering::Relaxed)
    }

    /// What a waiter that gives up does with the line in the queue: the last one takes it
    /// off (counting itself: it leaves after this).
    pub(crate) fn leaving(&self) -> Leave {
        if self.waiting() <= 1 {
            Leave::Dequeue(self.id.clone())
        } else {
            Leave::Unregister(self.id.clone())
        }
    }
}

/// Counts a waiter of the handle while it lives. The last waiter to leave takes the line
/// off the queue if a granted head had put it back there for a waiter that then gave up
/// (a dropped future) before its turn: an empty line must not keep its place.
pub(crate) struct Waiting<'a> {
    core: &'a Arc<Core>,
    line: &'a Line,
}

impl<'a> Waiting<'a> {
    pub(crate) fn enter(core: &'a Arc<Core>, line: &'a Line) -> Self {
        line.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting { core, line }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.line.waiting.fetch_sub(1, Ordering::Relaxed) == 1 && self.line.take_place() {
            let give = GiveBack {
                leave: Leave::Dequeue(self.line.id.clone()),
                ..GiveBack::default()
            };
            self.core.release_in_background(&self.core.runtime, give);
        }
    }
}
