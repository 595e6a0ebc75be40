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
//! [`AsyncSemaphore::flush`](crate::AsyncSemaphore::flush).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::error::Error;
use crate::master::Master;
use crate::quorum::{Leave, Quorum};
use crate::semaphore::Core;
use crate::trace;

/// After a release at shutdown went unanswered, how long the next ones are not tried.
const QUIET: Duration = Duration::from_secs(1);

/// Time allowed on top of the request timeout for the release thread to start.
const SLACK: Duration = Duration::from_millis(50);

/// When a release at shutdown last went unanswered.
static UNANSWERED: Mutex<Option<Instant>> = Mutex::new(None);

/// A handle's background releases: how many are still running, and how to do one again
/// on fresh connections if its runtime shuts down first.
#[derive(Debug)]
pub(crate) struct Releases {
    running: AtomicUsize,
    idle: Notify,
    /// The handle's masters, whose addresses a release at shutdown connects to afresh.
    masters: Vec<Master>,
    name: String,
    timeout: Duration,
}

impl Releases {
    pub(crate) fn new(masters: Vec<Master>, name: String) -> Self {
        let timeout = masters
            .iter()
            .map(Master::timeout)
            .max()
            .unwrap_or_default();
        Releases {
            running: AtomicUsize::new(0),
            idle: Notify::new(),
            masters,
            name,
            timeout,
        }
    }

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

    fn finished(&self) {
        if self.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// One background release: `id`'s `slots` (all when empty), and its registration with
/// waiter `line` (when not empty), which leaves the queue if `dequeue`. Counted as running
/// from its making to its drop; done over again at its drop if it did not finish.
pub(crate) struct Release {
    core: Arc<Core>,
    id: String,
    line: String,
    dequeue: bool,
    slots: Vec<u32>,
    finished: bool,
}

impl Release {
    pub(crate) fn new(core: Arc<Core>, id: String, line: (String, bool), slots: Vec<u32>) -> Self {
        core.releases.running.fetch_add(1, Ordering::AcqRel);
        Release {
            core,
            id,
            line: line.0,
            dequeue: line.1,
            slots,
            finished: false,
        }
    }

    /// Releases on the handle's own connections; a failure is left to the leases, which
    /// expire on their own.
    pub(crate) async fn run(mut self) {
        let leave = Leave {
            line: &self.line,
            dequeue: self.dequeue,
        };
        let released = self
            .core
            .quorum
            .release(&self.id, &leave, &self.slots)
            .await;
        trace::released(&self.id, &released);
        self.core.released.notify_waiters();
        // A release that fails while the runtime shuts down may have failed because of
        // it (the shutdown drops the connections' tasks first): do it over elsewhere.
        self.finished = released.is_ok() || !runtime_closing();
    }

    /// Does the release on a thread of its own and waits for it, at most about one
    /// request timeout. Never panics: whatever fails is left to the lease.
    fn rescue(&self) {
        let releases = &self.core.releases;
        let unanswered = *UNANSWERED.lock().unwrap_or_else(PoisonError::into_inner);
        if unanswered.is_some_and(|at| at.elapsed() < QUIET) {
            return;
        }
        let timeout = releases.timeout;
        let masters = releases.masters.clone();
        let name = releases.name.clone();
        let permits = self.core.quorum.permits();
        let bounded = self.core.quorum.bounded();
        let (id, line, dequeue, slots) = (
            self.id.clone(),
            self.line.clone(),
            self.dequeue,
            self.slots.clone(),
        );
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
                    let mut fresh = Vec::with_capacity(masters.len());
                    for master in &masters {
                        fresh.push(master.reconnect().await?);
                    }
                    let leave = Leave {
                        line: &line,
                        dequeue,
                    };
                    Quorum::new(fresh, &name, permits, bounded)
                        .release(&id, &leave, &slots)
                        .await
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
            self.core.released.notify_waiters();
        }
        self.core.releases.finished();
    }
}
