//! The test kit of redis-semaphore (not published): throwaway servers that a test pauses,
//! kills and restarts, a fault-injecting proxy, a Sentinel group, a cluster, a server on a
//! fake clock, and one observer of who is inside a semaphore. Used by the library's tests
//! and benches, the tools (`tools/`) and, through the observer's Lua, the Python tests.
//!
//! ```ignore
//! let server = testkit::Server::start();
//! let sem = testkit::sem(&server, "name", 2).build().await?;
//! ```

pub mod checks;
pub mod cluster;
pub mod faketime;
pub mod info;
pub mod observer;
pub mod proxy;
pub mod sentinel;
pub mod server;

use std::time::{Duration, Instant};

pub use observer::{Entered, Observer};
pub use server::{Server, free_port, make_temp_dir, server_binary, signal};

/// A builder for a semaphore on `server`, with a request timeout short enough for tests.
pub fn sem(server: &Server, name: &str, permits: u32) -> redis_semaphore::Builder {
    redis_semaphore::AsyncSemaphore::builder(name, permits)
        .master(server.url())
        .request_timeout(Duration::from_millis(100))
}

/// `n` servers to use as the masters of one semaphore.
pub fn masters(n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::start()).collect()
}

/// A builder for a semaphore on all of `servers`, with a short request timeout.
pub fn sem_on(servers: &[Server], name: &str, permits: u32) -> redis_semaphore::Builder {
    redis_semaphore::AsyncSemaphore::builder(name, permits)
        .masters(servers.iter().map(Server::url))
        .request_timeout(Duration::from_millis(100))
}

/// Polls `check` every 10 ms until it holds; panics naming `what` after 2 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    while !check().await {
        assert!(Instant::now() < deadline, "not within 2 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Runs the tests of a test file with `harness = false` (its tests start child processes of
/// the same binary) one by one: prints each outcome and a closing `<file>: N passed, M
/// failed` line, and exits 1 if any failed.
pub fn run_tests(file: &str, tests: &[(&str, fn())]) {
    let mut failed = 0;
    for (name, test) in tests {
        let started = std::time::Instant::now();
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok ({:?})", started.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{file}: {} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
