//! Background releases, and those that outlive their runtime.
//!
//! A dropped permit, a cancelled acquire and a waiter that gave up are released by a task
//! spawned on the runtime they were made on. When that runtime shuts down first, as it
//! does right after `#[tokio::main]` returns, the task is dropped with it, unfinished or
//! never polled, and the permit would stay held until its lease ran out. So the task owns
//! a guard, [`Release`], that does the release itself when it is dropped unfinished: on a
//! thread of its own, with a small current-thread runtime and fresh connections (the
//! handle's own connections die with their runtime), and waits for it for about one
//! request timeout, never longer, so that a master that does not answer cannot hold up
//! the process's exit for more than that. Once such a release has gone unanswered, those
//! dropped within the next [`QUIET`] are not tried: the masters are not answering, and
//! those leases end on their own.
//!
//! [`Releases`] counts the releases of a handle still running, for
//! [`AsyncSemaphore::flush`](crate::AsyncSemaphore::flush), and wakes the handle's
//! waiters when one is done.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::error::Error;
use crate::quorum::{Leave, Quorum};
use crate::trace;

/// After a release at shutdown went unanswered, how long the next ones are not tried.
const QUIET: Duration = Duration::from_secs(1);

/// Time allowed on top of the request timeout for the release thread to start.
const SLACK: Duration = Duration::from_millis(50);

/// When a release at shutdown last went unanswered.
static UNANSWERED: Mutex<Option<Instant>> = Mutex::new(None);

/// A handle's background releases: how many are still running, and the wake-up of the
/// handle's waiters when a permit is given back.
#[derive(Debug, Default)]
pub(crate) struct Releases {
    running: AtomicUsize,
    idle: Notify,
    /// Wakes this process's waiters when one of its permits is released.
    freed: Notify,
}

impl Releases {
    /// Waits until no background release of the handle is running.
    pub(crate) async fn flush(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.running.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Resolves at the next [`freed`](Self::freed).
    pub(crate) fn on_freed(&self) -> tokio::sync::futures::Notified<'_> {
        self.freed.notified()
    }

    /// Wakes the handle's waiters: one of its permits was released.
    pub(crate) fn freed(&self) {
        self.freed.notify_waiters();
    }

    fn finished(&self) {
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// What a background release gives back: `id`'s `slots` (all of them when empty; no
/// permit when `id` is empty), and what `leave` says of the acquire's waiter line.
#[derive(Debug, Clone, Default)]
pub(crate) struct GiveBack {
    pub(crate) id: String,
    pub(crate) slots: Vec<u32>,
    pub(crate) leave: Leave,
}

impl GiveBack {
    /// A whole permit (a dropped one, or a grant an acquire may have been given).
    pub(crate) fn permit(id: &str) -> Self {
        GiveBack {
            id: id.to_string(),
            ..GiveBack::default()
        }
    }
}

/// One background release. Counted as running from its making to its drop; done over
/// again at its drop if it did not finish.
pub(crate) struct Release {
    quorum: Arc<Quorum>,
    releases: Arc<Releases>,
    give: GiveBack,
    finished: bool,
}

impl Release {
    pub(crate) fn new(quorum: Arc<Quorum>, releases: Arc<Releases>, give: GiveBack) -> Self {
        releases.running.fetch_add(1, Ordering::AcqRel);
        Release {
            quorum,
            releases,
            give,
            finished: false,
        }
    }

    /// Releases on the handle's own connections; a failure is left to the leases, which
    /// expire on their own.
    pub(crate) async fn run(mut self) {
        let GiveBack { id, slots, leave } = &self.give;
        let released = self.quorum.release(id, leave, slots).await;
        trace::released(id, &released);
        self.releases.freed();
        // A release that fails while the runtime shuts down may have failed because of
        // it (the shutdown drops the connections' tasks first): do it over elsewhere.
        self.finished = released.is_ok() || !runtime_closing();
    }

    /// Does the release on a thread of its own and waits for it, at most about one
    /// request timeout. Never panics: whatever fails is left to the lease.
    fn rescue(&self) {
        let unanswered = *UNANSWERED.lock().unwrap_or_else(PoisonError::into_inner);
        if unanswered.is_some_and(|at| at.elapsed() < QUIET) {
            return;
        }
        let timeout = self.quorum.request_timeout();
        let quorum = Arc::clone(&self.quorum);
        let GiveBack { id, slots, leave } = self.give.clone();
        let (done, answered) = std::sync::mpsc::channel();
        let started = std::thread::Builder::new()
            .name("redis-semaphore-exit-release".into())
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                let release = async {
                    let fresh = quorum.reconnected().await?;
                    fresh.release(&id, &leave, &slots).await
                };
                let released: Result<Result<u32, Error>, _> =
                    runtime.block_on(async { tokio::time::timeout(timeout, release).await });
                if let Ok(released) = &released {
                    trace::released(&id, released);
                }
                let _ = done.send(released.is_ok());
            });
        if started.is_err() {
            return;
        }
        if !matches!(answered.recv_timeout(timeout + SLACK), Ok(true)) {
            *UNANSWERED.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        }
    }
}

/// Whether the current runtime is shutting down (or gone): a task spawned on it now is
/// dropped at once, without being polled.
fn runtime_closing() -> bool {
    /// Records whether the probe task ran, and whether it was dropped.
    struct Probe(Arc<[AtomicBool; 2]>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0[1].store(true, Ordering::SeqCst);
        }
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return true;
    };
    let flags = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let probe = Probe(Arc::clone(&flags));
    drop(runtime.spawn(async move {
        probe.0[0].store(true, Ordering::SeqCst);
    }));
    let dropped = flags[1].load(Ordering::SeqCst);
    dropped && !flags[0].load(Ordering::SeqCst)
}

impl Drop for Release {
    fn drop(&mut self) {
        if !self.finished {
            self.rescue();
            self.releases.freed();
        }
        self.releases.finished();
    }
}
