//! The semaphore's masters, and each operation as they decide it together.
//!
//! Every permit slot is a Redlock mutex: a permit holds a slot while a majority of the
//! masters (`M / 2 + 1`) hold that slot under the permit's id, within the permit's validity
//! time. Two holders of one slot would need two majorities, and two majorities of the same
//! masters always share one, which grants a slot to one id at a time: so at most `N`
//! holders, by the same argument as Redlock's. Counting per master (a majority quorum over
//! counters) has no such intersection, which is how other libraries admit three holders
//! to two permits on three masters.
//!
//! Every operation goes to all masters at once and waits for all of them, each bounded by
//! its own request timeout: a hung master costs one timeout, never a stalled caller. One
//! master is the case `M = 1`, quorum 1, through exactly the same code.
//!
//! This module sends the requests and reads the replies; what they mean is decided by the
//! pure functions of [`decide`], which are unit-tested without a server. The masters are
//! reached through [`Link`], so the quorum itself runs in tests against scripted links too
//! (`quorum/tests.rs`).
//!
//! The fan-out and the reading of replies are here; the acquire round with its settle is in
//! `acquire.rs`, the other operations (renew, release, status, holders, the operators'
//! changes) in `operations.rs`.

pub(crate) mod decide;

mod acquire;
mod operations;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::join_all;
use redis::FromRedisValue;

use crate::error::{Error, MasterFailure};
use crate::health::MasterError;
use crate::link::{Call, Link};
use crate::lua::{Caller, Keys, Scripted, Status};
use crate::subscriber::Listener;
use crate::subscriber::message::process_of;
use decide::Majority;

pub(crate) use acquire::{Ask, arrival_stamp};

/// Everything needed to talk to one semaphore's masters.
#[derive(Debug)]
pub(crate) struct Quorum {
    masters: Vec<Arc<dyn Link>>,
    keys: Keys,
    /// The handle's permit count, sent with every call (0: adopt the stored one); changed
    /// only by `set_permits`.
    permits: AtomicU32,
    /// The handle's boundedness, sent with the count: a semaphore stores it too.
    bounded: AtomicBool,
}

/// What a release does with the waiter line an acquire stood in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Leave {
    /// Nothing: a permit's own release.
    #[default]
    Stay,
    /// Take back the id's registration with this line (the line keeps its place: other
    /// waiters of the handle stand in it).
    Unregister(String),
    /// Take back the registration and take the line off the queue: its last waiter gave up.
    Dequeue(String),
}

impl Leave {
    /// The release script's `line` and `leave` arguments.
    fn args(&self) -> (&str, bool) {
        match self {
            Leave::Stay => ("", false),
            Leave::Unregister(line) => (line, false),
            Leave::Dequeue(line) => (line, true),
        }
    }
}

impl Quorum {
    pub(crate) fn new(
        masters: Vec<Arc<dyn Link>>,
        name: &str,
        permits: u32,
        bounded: bool,
    ) -> Self {
        Quorum {
            masters,
            keys: Keys::new(name),
            permits: AtomicU32::new(permits),
            bounded: AtomicBool::new(bounded),
        }
    }

    pub(crate) fn permits(&self) -> u32 {
        self.permits.load(Ordering::Relaxed)
    }

    pub(crate) fn bounded(&self) -> bool {
        self.bounded.load(Ordering::Relaxed)
    }

    /// What every script is told of this handle's configuration.
    fn caller(&self) -> Caller {
        Caller {
            permits: self.permits(),
            bounded: self.bounded(),
        }
    }

    /// The same masters and semaphore, for a handle with the configuration stored there.
    pub(crate) fn adopting(&self, status: &Status) -> Self {
        Quorum::new(
            self.masters.clone(),
            self.keys.name(),
            status.permits,
            status.bounded,
        )
    }

    /// The same masters and semaphore on fresh connections made on the current runtime.
    pub(crate) async fn reconnected(&self) -> Result<Quorum, Error> {
        let mut fresh = Vec::with_capacity(self.masters.len());
        for master in &self.masters {
            fresh.push(master.reconnect().await?);
        }
        Ok(Quorum::new(
            fresh,
            self.keys.name(),
            self.permits(),
            self.bounded(),
        ))
    }

    /// Listens to the semaphore's wake-ups on every master that can be reached, each
    /// with its master's index.
    ///
    /// A line in a fair queue listens on its process's channel, where the scripts name it
    /// when its turn comes; other waiters (`line` None: an unfair handle's) on the
    /// semaphore's own, where a wake-up means anyone may try.
    pub(crate) async fn listen(&self, line: Option<&str>) -> Vec<(usize, Listener)> {
        let (channel, line) = match line.and_then(|l| Some((process_of(l)?, l))) {
            Some((process, line)) => (self.keys.process_channel(process), line),
            None => (self.keys.channel(), ""),
        };
        join_all(self.masters.iter().map(|m| m.listen(&channel, line)))
            .await
            .into_iter()
            .enumerate()
            .filter_map(|(i, listener)| Some((i, listener?)))
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.masters.len()
    }

    /// The longest a request to one of the masters may take.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.masters
            .iter()
            .map(|m| m.timeout())
            .max()
            .unwrap_or_default()
    }

    fn majority(&self) -> Majority {
        Majority::of(self.masters.len())
    }

    /// Masters that must agree: a majority.
    pub(crate) fn needed(&self) -> usize {
        self.majority().needed()
    }

    fn several(&self) -> bool {
        self.masters.len() > 1
    }

    /// Runs `script` on the masters `which`, all at once; replies in the same order.
    async fn on<T: FromRedisValue>(
        &self,
        which: impl IntoIterator<Item = usize>,
        script: &Scripted,
        args: &[Vec<u8>],
    ) -> Vec<(usize, Result<T, Error>)> {
        let caller = self.caller();
        join_all(which.into_iter().map(|i| async move {
            let master = &self.masters[i];
            let call = Call {
                script,
                keys: &self.keys,
                args,
                caller,
            };
            let reply = master
                .run(call)
                .await
                .and_then(|value| T::from_redis_value(value).map_err(|e| self.failed(i, e.into())));
            (i, reply)
        }))
        .await
    }

    async fn on_all<T: FromRedisValue>(
        &self,
        script: &Scripted,
        args: &[Vec<u8>],
    ) -> Vec<(usize, Result<T, Error>)> {
        self.on(0..self.masters.len(), script, args).await
    }

    /// Runs `script` on every master and parses each reply with `parse`.
    async fn parsed<T>(
        &self,
        script: &Scripted,
        args: &[Vec<u8>],
        parse: impl Fn(usize, &[redis::Value]) -> Option<T>,
    ) -> Vec<(usize, Result<T, Error>)> {
        self.on_all::<Vec<redis::Value>>(script, args)
            .await
            .into_iter()
            .map(|(i, reply)| {
                let parsed = reply
                    .and_then(|r| parse(i, &r).ok_or_else(|| self.unexpected(i, script.file, &r)));
                (i, parsed)
            })
            .collect()
    }

    /// The answers if a majority of the masters gave one, else the error: the master's
    /// own error with one master, each master's failure with several. A minority's
    /// failures, even ones that waiting cannot fix (a wrong key type there, a full
    /// server), do not stop the majority.
    fn agreed<T>(&self, replies: Vec<(usize, Result<T, Error>)>) -> Result<Vec<(usize, T)>, Error> {
        let answers = Answers::sort(replies);
        if answers.ok.len() >= self.majority().needed() {
            Ok(answers.ok)
        } else {
            Err(self.no_quorum(answers.failures))
        }
    }

    /// The error when too few masters answered.
    fn no_quorum(&self, mut failures: Vec<(usize, Error)>) -> Error {
        if !self.several() && failures.len() == 1 {
            return failures.remove(0).1;
        }
        Error::Quorum {
            needed: self.majority().needed(),
            masters: self.masters.len(),
            failures: failures
                .into_iter()
                .map(|(i, error)| MasterFailure {
                    master: self.masters[i].name().to_string(),
                    error: Box::new(error),
                })
                .collect(),
        }
    }

    /// The masters that failed and have not answered since, the latest failure first.
    pub(crate) fn master_errors(&self) -> Vec<MasterError> {
        let mut errors: Vec<_> = self
            .masters
            .iter()
            .filter_map(|m| m.health().error())
            .collect();
        errors.sort_by_key(|e| std::cmp::Reverse(e.at));
        errors
    }

    /// The name of master `i`, as `host:port`.
    pub(crate) fn master_name(&self, i: usize) -> &str {
        self.masters[i].name()
    }

    /// A reply that does not have the script's shape: a failure of that master (as a
    /// reply redis-rs cannot convert is), recorded in its health like any other.
    fn unexpected(&self, master: usize, script: &str, reply: &impl std::fmt::Debug) -> Error {
        let source = (
            redis::ErrorKind::UnexpectedReturnType,
            "script reply",
            format!("unexpected {script} reply {reply:?}"),
        );
        self.failed(master, source.into())
    }

    /// Master `i` answered something this client cannot read: an [`Error::Redis`] that
    /// counts in [`master_errors`](Self::master_errors) until the master answers again.
    fn failed(&self, i: usize, source: redis::RedisError) -> Error {
        let master = &self.masters[i];
        let error = Error::Redis {
            master: master.name().to_string(),
            source,
        };
        master.health().failed(master.name(), &error);
        error
    }
}

/// Replies sorted out: the masters that answered, and those that failed.
struct Answers<T> {
    ok: Vec<(usize, T)>,
    failures: Vec<(usize, Error)>,
}

impl<T> Answers<T> {
    fn sort(replies: Vec<(usize, Result<T, Error>)>) -> Self {
        let mut answers = Answers {
            ok: Vec::new(),
            failures: Vec::new(),
        };
        for (i, reply) in replies {
            match reply {
                Ok(value) => answers.ok.push((i, value)),
                Err(error) => answers.failures.push((i, error)),
            }
        }
        answers
    }
}

#[cfg(test)]
mod tests;
