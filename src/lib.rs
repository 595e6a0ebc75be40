#![doc = include_str!("../docs/lib.md")]

mod acquire;
mod address;
mod admin;
mod background;
mod builder;
mod config;
mod core;
mod detached;
mod error;
mod health;
mod lease;
mod link;
mod lua;
mod master;
mod pacing;
mod permit;
mod quorum;
mod replicas;
mod semaphore;
mod sentinel;
mod subscriber;
mod trace;

pub mod blocking;

pub use address::IntoMaster;
pub use admin::{HeldOn, Holder};
pub use builder::{
    Builder, DEFAULT_LEASE, DEFAULT_OUTAGE_TIMEOUT, MAX_LEASE, MAX_NAME_LEN, MIN_LEASE,
};
pub use error::{Error, MasterFailure, Result};
pub use health::MasterError;
pub use lua::MAX_ACQUIRE_MANY;
pub use pacing::WAITER_LEASE;
pub use permit::Permit;
pub use semaphore::AsyncSemaphore;

/// The least ACL permissions a user of this library needs, as an `ACL SETUSER` rule:
/// the commands its scripts and connections use, its keys (`semaphore:*`) and its wake-up
/// channels (`semaphore:*`, which on a cluster are sharded channels).
///
/// ```text
/// ACL SETUSER sem on >password <ACL_RULE>
/// ```
///
/// On a cluster, add `+spublish +pubsub|shardnumsub +ssubscribe +sunsubscribe
/// +cluster|slots +cluster|shards +readonly +ping` ([`ACL_RULE_CLUSTER`] has it all). The
/// scripts ask `PUBSUB NUMSUB` whether a waiter's process still listens (a dead one's
/// place is given to the next); a rule without it fails those scripts with `NOPERM`. A user without `evalsha` gets a
/// clear error at once (`NOPERM`, not retried), never a hang. On Redis 7.2+ and Valkey you
/// may add `+client|setinfo`: redis-rs announces its name and version with it when it
/// connects and ignores a refusal, which only shows in `ACL LOG` (Redis 7.0 has no such
/// subcommand and refuses the rule).
pub const ACL_RULE: &str = "resetkeys resetchannels -@all \
    +evalsha +script|load +subscribe +unsubscribe \
    +type +exists +del +unlink +time +pexpire +pexpireat +pttl +publish +pubsub|numsub \
    +hget +hmget +hset +hdel +hlen +hincrby \
    +zadd +zrem +zrange +zrangebyscore +zcount +zcard +zscore +zrank \
    ~semaphore:* &semaphore:*";

/// [`ACL_RULE`] for a cluster: with sharded pub/sub and the slot map.
pub const ACL_RULE_CLUSTER: &str = "resetkeys resetchannels -@all \
    +evalsha +script|load +subscribe +unsubscribe \
    +type +exists +del +unlink +time +pexpire +pexpireat +pttl +publish +pubsub|numsub \
    +hget +hmget +hset +hdel +hlen +hincrby \
    +zadd +zrem +zrange +zrangebyscore +zcount +zcard +zscore +zrank \
    +spublish +pubsub|shardnumsub +ssubscribe +sunsubscribe +cluster|slots +cluster|shards \
    +readonly +ping \
    ~semaphore:* &semaphore:*";

/// The re-exported `redis` crate, for [`redis::Client`](https://docs.rs/redis/1/redis/struct.Client.html) and
/// [`redis::ConnectionInfo`](https://docs.rs/redis/1/redis/struct.ConnectionInfo.html) (give either to [`Builder::master`]).
pub use redis;
