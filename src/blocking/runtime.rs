//! The private runtime: a current-thread Tokio runtime on a thread of its own, which every
//! blocking call hands its work to.

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::error::Error;

/// The private runtime and its thread. Dropping the last reference stops and joins it.
pub(super) struct Runtime {
    handle: tokio::runtime::Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Runtime {
    /// Starts the thread. When it stops, it waits up to `settle` for the background
    /// releases still running.
    pub(super) fn start(settle: Duration) -> Result<Arc<Self>, Error> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("redis-semaphore-runtime".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stop_rx.await;
                    // The last handle's drop spawned releases of its detached permits: let
                    // them reach the master (bounded) before the runtime goes away.
                    let metrics = tokio::runtime::Handle::current().metrics();
                    let until_idle = async {
                        while metrics.num_alive_tasks() > 0 {
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    };
                    let _ = tokio::time::timeout(settle, until_idle).await;
                });
            })
            .map_err(|e| Error::InvalidArgument(format!("cannot start the runtime thread: {e}")))?;
        let handle = match ready_rx.recv() {
            Ok(Ok(handle)) => handle,
            Ok(Err(why)) => {
                return Err(Error::InvalidArgument(format!(
                    "cannot start a runtime: {why}"
                )));
            }
            Err(_) => return Err(Error::RuntimeStopped),
        };
        Ok(Arc::new(Runtime {
            handle,
            stop: Mutex::new(Some(stop_tx)),
            thread: Mutex::new(Some(thread)),
        }))
    }

    /// Runs `work` on the runtime thread and blocks until it is done.
    pub(super) fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        F: Future<Output = Result<T, Error>> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.handle.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.blocking_recv().unwrap_or(Err(Error::RuntimeStopped))
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(stop) = self
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = stop.send(());
        }
        if let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            // The last reference can be dropped on the runtime thread itself (by a task it
            // was running), where joining would wait forever, or on an async runtime's
            // thread, which must not block: the thread then finishes on its own.
            let on_own_thread = thread.thread().id() == std::thread::current().id();
            if !on_own_thread && tokio::runtime::Handle::try_current().is_err() {
                let _ = thread.join();
            }
        }
    }
}

/// Panics when called from inside an async runtime, where blocking would stall it.
#[track_caller]
pub(super) fn assert_not_async(what: &str) {
    if tokio::runtime::Handle::try_current().is_ok() {
        panic!(
            "redis_semaphore::blocking::{what} called from inside an async runtime; \
             use redis_semaphore::AsyncSemaphore there"
        );
    }
}
