//! [`Detached`]: the permits a handle holds for itself ([`Permit::detach`]), renewed until
//! [`AsyncSemaphore::release`] gives them back, oldest first: pottery-semaphore's way of
//! pairing `acquire` and `release` by hand.
//!
//! Every clone of a handle and every permit it granted hold the list (a permit to hand
//! itself back to it); when the last of them is gone nobody can release what it holds, so
//! its drop releases the permits rather than leave them renewed for ever.
//!
//! [`Permit::detach`]: crate::Permit::detach
//! [`AsyncSemaphore::release`]: crate::AsyncSemaphore::release

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::task::AbortHandle;

use crate::background::GiveBack;
use crate::core::Core;
use crate::error::Error;
use crate::lease::LeaseState;

#[derive(Debug)]
pub(crate) struct Detached {
    core: Arc<Core>,
    permits: Mutex<VecDeque<Held>>,
}

/// One detached permit: its lease, and its renewal to stop when it is released.
#[derive(Debug)]
struct Held {
    state: Arc<LeaseState>,
    renewal: AbortHandle,
}

/// What `release(n)` takes off the list: whole permits, or the first slots of one
/// (`slots` empty: all of them).
type Taken = Vec<(Arc<LeaseState>, Vec<u32>)>;

impl Detached {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Detached {
            core,
            permits: Mutex::new(VecDeque::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Held>> {
        self.permits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps a permit, still renewed by `renewal`.
    pub(crate) fn push(&self, state: Arc<LeaseState>, renewal: AbortHandle) {
        self.lock().push_back(Held { state, renewal });
    }

    /// Takes `n` slots off the list, oldest permits first, and how many more than it held
    /// were asked for; on a bounded semaphore asking for more is [`Error::Bounded`], and
    /// then nothing is taken.
    fn take(&self, n: u32, bounded: bool) -> Result<(Taken, u32), Error> {
        let mut permits = self.lock();
        let held: usize = permits.iter().map(|d| d.state.slots().len()).sum();
        let held = u32::try_from(held).unwrap_or(u32::MAX);
        if n > held && bounded {
            return Err(Error::Bounded { held, requested: n });
        }
        let mut wanted = n.min(held) as usize;
        let mut taken = Vec::new();
        while wanted > 0 {
            let Some(front) = permits.front_mut() else {
                break;
            };
            let has = front.state.slots().len();
            if has <= wanted {
                wanted -= has;
                let whole = permits.pop_front().expect("front exists");
                whole.renewal.abort();
                taken.push((whole.state, Vec::new()));
            } else {
                taken.push((Arc::clone(&front.state), front.state.take_slots(wanted)));
                wanted = 0;
            }
        }
        Ok((taken, n.saturating_sub(held)))
    }

    /// `AsyncSemaphore::release(n)`: releases `n` detached permits, and on an unbounded
    /// semaphore adds the excess as new permits.
    pub(crate) async fn release(&self, n: u32) -> Result<(), Error> {
        let core = &self.core;
        let (taken, excess) = self.take(n, core.quorum.bounded())?;
        // Whatever is not released yet when this future errs or is dropped is released in
        // the background: these permits left the handle and nobody else will.
        let mut pending = Pending {
            core,
            runtime: tokio::runtime::Handle::current(),
            left: taken.into(),
        };
        let mut lost = None;
        while let Some((state, slots)) = pending.left.front() {
            match core.release_lease(state, slots).await {
                Ok(()) => {}
                Err(error @ Error::PermitLost { .. }) => {
                    lost.get_or_insert(error);
                }
                Err(error) => return Err(error),
            }
            pending.left.pop_front();
        }
        core.releases.freed();
        if excess > 0 {
            core.quorum.grow(excess).await?;
        }
        lost.map_or(Ok(()), Err)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        let permits = std::mem::take(
            self.permits
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for permit in permits {
            permit.renewal.abort();
            self.core
                .release_in_background(&self.core.runtime, GiveBack::permit(&permit.state.id));
        }
    }
}

/// Permits taken off the list by `release(n)` and not released yet.
struct Pending<'a> {
    core: &'a Arc<Core>,
    runtime: tokio::runtime::Handle,
    left: VecDeque<(Arc<LeaseState>, Vec<u32>)>,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        for (state, slots) in self.left.drain(..) {
            let give = GiveBack {
                id: state.id.clone(),
                slots,
                ..GiveBack::default()
            };
            self.core.release_in_background(&self.runtime, give);
        }
    }
}
