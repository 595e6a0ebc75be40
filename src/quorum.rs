//! The semaphore's masters, and each operation as the scripts see it.
//!
//! With one master every operation is one script call. Several masters (a Redlock mutex
//! per permit slot) fan out from here, so the façade does not change when they come.

use std::time::Duration;

use crate::error::Error;
use crate::master::Master;
use crate::scripts::{self, Acquired, Keys, Status};

/// Script arguments, each turned into its wire form (a slice becomes one argument per item).
macro_rules! args {
    ($($arg:expr),* $(,)?) => {{
        let mut args: Vec<Vec<u8>> = Vec::new();
        $(args.extend(redis::ToRedisArgs::to_redis_args(&$arg));)*
        args
    }};
}

/// Everything needed to talk to one semaphore's masters.
#[derive(Debug, Clone)]
pub(crate) struct Quorum {
    masters: Vec<Master>,
    keys: Keys,
    permits: u32,
}

impl Quorum {
    pub(crate) fn new(masters: Vec<Master>, name: &str, permits: u32) -> Self {
        Quorum {
            masters,
            keys: Keys::new(name),
            permits,
        }
    }

    fn master(&self) -> &Master {
        &self.masters[0]
    }

    /// Fills in what the master could not know about a config mismatch.
    fn fix(&self, error: Error) -> Error {
        match error {
            Error::ConfigMismatch { stored, .. } => Error::ConfigMismatch {
                stored,
                requested: self.permits,
            },
            other => other,
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        args: &[Vec<u8>],
    ) -> Result<T, Error> {
        self.master()
            .run(script, &self.keys, args)
            .await
            .map_err(|e| self.fix(e))
    }

    /// Asks for `k` slots under permit `id`.
    pub(crate) async fn acquire(
        &self,
        id: &str,
        k: u32,
        lease: Duration,
    ) -> Result<Acquired, Error> {
        let reply: Vec<i64> = self
            .run(
                &scripts::ACQUIRE,
                &args![self.permits, id, k, millis(lease)],
            )
            .await?;
        Acquired::parse(&reply).ok_or_else(|| self.unexpected("acquire", &reply))
    }

    /// Renews the lease of `id`; `false` when it had already expired.
    pub(crate) async fn refresh(&self, id: &str, lease: Duration) -> Result<bool, Error> {
        let reply: Vec<i64> = self
            .run(&scripts::REFRESH, &args![self.permits, id, millis(lease)])
            .await?;
        Ok(reply.first() == Some(&1))
    }

    /// Frees `slots` of `id` (all of them when empty); returns how many were freed.
    pub(crate) async fn release(&self, id: &str, slots: &[u32]) -> Result<u32, Error> {
        self.run(&scripts::RELEASE, &args![self.permits, id, slots])
            .await
    }

    pub(crate) async fn status(&self) -> Result<Status, Error> {
        let reply: Vec<i64> = self.run(&scripts::STATUS, &args![self.permits]).await?;
        Status::parse(&reply).ok_or_else(|| self.unexpected("status", &reply))
    }

    /// Adds `n` permits (an unbounded semaphore released more than it held).
    pub(crate) async fn grow(&self, n: u32) -> Result<u32, Error> {
        self.run(&scripts::GROW, &args![self.permits, n]).await
    }

    fn unexpected(&self, what: &str, reply: &[i64]) -> Error {
        let detail = format!("unexpected {what} reply {reply:?}");
        Error::Redis {
            master: self.master().name().to_string(),
            source: (
                redis::ErrorKind::UnexpectedReturnType,
                "script reply",
                detail,
            )
                .into(),
        }
    }
}

/// A lease in whole milliseconds, at least 1.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}
