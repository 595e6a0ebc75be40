//! Transitional, for `redsem/tests/cli.rs` alone, which still includes this file by path:
//! the test kit is the crate `testkit/` now. Once redsem's tests depend on it
//! (`testkit = { path = "../testkit" }` in redsem's dev-dependencies and
//! `use testkit as support;` in place of the `#[path]` include), delete this directory.
#![allow(dead_code, unreachable_pub)]

#[path = "../../testkit/src/info.rs"]
mod info;
#[path = "../../testkit/src/server.rs"]
mod server;

use std::time::Duration;

pub use server::{Server, signal};

/// A builder for a semaphore on `server`, with a request timeout short enough for tests.
pub fn sem(server: &Server, name: &str, permits: u32) -> redis_semaphore::Builder {
    redis_semaphore::AsyncSemaphore::builder(name, permits)
        .master(server.url())
        .request_timeout(Duration::from_millis(100))
}
