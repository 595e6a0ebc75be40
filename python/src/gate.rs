//! The finalization gate: the runtime's threads call into Python only through
//! [`call_python`], and [`shutdown`] closes it at interpreter exit.
//!
//! A thread that takes the GIL while the interpreter finalizes aborts the process
//! (`PyGILState_Release ... finalizing`), so the gate is closed from an `atexit` hook,
//! before finalization starts, and `shutdown` waits for the calls already inside.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

/// A count guarded by a mutex, with a condition variable to wait for it to reach zero.
pub(crate) struct Census {
    state: Mutex<CensusState>,
    zero: Condvar,
}

struct CensusState {
    /// The process counted: a child made by `fork()` starts afresh (the parent's threads,
    /// and so what they counted, are not in it).
    pid: u32,
    /// Once set, [`Census::enter`] refuses: the interpreter is exiting.
    closed: bool,
    count: usize,
}

impl Census {
    const fn new() -> Self {
        Census {
            state: Mutex::new(CensusState {
                pid: 0,
                closed: false,
                count: 0,
            }),
            zero: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CensusState> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let pid = std::process::id();
        if state.pid != pid {
            *state = CensusState {
                pid,
                closed: false,
                count: 0,
            };
        }
        state
    }

    /// Counts one in, unless closed; the returned guard counts it out when dropped.
    fn enter(&'static self) -> Option<CensusGuard> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        state.count += 1;
        Some(CensusGuard(self))
    }

    /// Counts one in even when closed (work that must finish regardless).
    pub(crate) fn enter_always(&'static self) -> CensusGuard {
        self.lock().count += 1;
        CensusGuard(self)
    }

    /// Refuses new entries from now on.
    fn close(&self) {
        self.lock().closed = true;
    }

    /// Waits until the count is zero or `deadline` passes; whether it reached zero.
    fn wait_zero(&self, deadline: Instant) -> bool {
        let mut state = self.lock();
        while state.count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .zero
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

/// One counted in a [`Census`]; counted out when dropped.
pub(crate) struct CensusGuard(&'static Census);

impl Drop for CensusGuard {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.count = state.count.saturating_sub(1);
        if state.count == 0 {
            self.0.zero.notify_all();
        }
    }
}

/// The runtime threads' calls into Python now in progress; closed at interpreter exit.
static PYTHON_CALLS: Census = Census::new();

/// Operations that run to their end ([`Finish::RunsToEnd`](crate::pending::Finish)) not
/// finished yet.
pub(crate) static FINISHING: Census = Census::new();

/// Runs `f` with the GIL on a runtime thread, unless the interpreter is exiting (then `f`
/// is dropped unrun: whatever it would have handed to Python is dropped in Rust, a permit
/// released in the background).
pub(crate) fn call_python(f: impl FnOnce(Python<'_>)) {
    let Some(_inside) = PYTHON_CALLS.enter() else {
        return;
    };
    let _ = Python::try_attach(f);
}

/// Called at interpreter exit, before it finalizes: no runtime thread calls into Python
/// from now on (those inside a call finish it first: each only hands an outcome to an event
/// loop or sets an event), and releases in progress get up to `timeout` seconds to end.
/// Returns whether all of them did.
#[pyfunction]
pub(crate) fn shutdown(py: Python<'_>, timeout: f64) -> bool {
    PYTHON_CALLS.close();
    let deadline = Instant::now() + Duration::try_from_secs_f64(timeout).unwrap_or_default();
    // The GIL released: a runtime thread inside a call may be waiting for it.
    py.detach(|| PYTHON_CALLS.wait_zero(deadline) && FINISHING.wait_zero(deadline))
}
