#![doc = include_str!("../README.md")]

mod admin;
mod builder;
mod error;
mod lease;
mod master;
mod permit;
mod quorum;
mod scripts;
mod semaphore;
mod trace;
mod wait;
mod wake;

pub mod blocking;

pub use admin::{HeldOn, Holder};
pub use builder::{Builder, IntoMaster, MAX_LEASE, MAX_NAME_LEN};
pub use error::{Error, MasterFailure, Result};
pub use permit::Permit;
pub use semaphore::AsyncSemaphore;
pub use wait::WAITER_LEASE;

/// The re-exported `redis` crate, for [`redis::Client`] and [`redis::ConnectionInfo`].
pub use redis;
