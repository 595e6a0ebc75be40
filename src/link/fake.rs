//! A [`Link`] for unit tests: it answers each script from a function the test gives, and
//! records every call, so a test can count exactly what was sent where. No server: this
//! checks the client's decisions, never Redis's semantics (the tests in `tests/` do that).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{Call, Link};
use crate::error::Error;
use crate::health::Health;
use crate::subscriber::Listener;

/// What a fake master answers to one call.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// A reply of integers (an acquire's, a renewal's, a status's).
    Ints(Vec<i64>),
    /// One integer (a release's count).
    Int(i64),
    /// A failure: the master is unreachable (transient).
    Down,
    /// No reply at all, ever: the request is stuck (the caller's timeout or drop ends it).
    Hang,
}

/// One call as the fake master saw it: the script's file and its arguments as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sent {
    pub(crate) script: &'static str,
    pub(crate) args: Vec<String>,
}

type Answer = dyn Fn(&Sent) -> Reply + Send + Sync;

pub(crate) struct FakeLink {
    name: String,
    health: Health,
    answer: Box<Answer>,
    sent: Mutex<Vec<Sent>>,
}

impl std::fmt::Debug for FakeLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeLink")
            .field("name", &self.name)
            .finish()
    }
}

impl FakeLink {
    pub(crate) fn new(
        name: &str,
        answer: impl Fn(&Sent) -> Reply + Send + Sync + 'static,
    ) -> Arc<FakeLink> {
        Arc::new(FakeLink {
            name: name.to_string(),
            health: Health::default(),
            answer: Box::new(answer),
            sent: Mutex::new(Vec::new()),
        })
    }

    /// A master that answers with `answer`, or where it says `None`, as a healthy master
    /// would: a renewal with the slots it was asked to hold, a release with 1 freed.
    pub(crate) fn master(
        name: &str,
        answer: impl Fn(&Sent) -> Option<Reply> + Send + Sync + 'static,
    ) -> Arc<FakeLink> {
        FakeLink::new(name, move |sent| {
            answer(sent).unwrap_or_else(|| match sent.script {
                // ARGV: permits, id, lease, token, claim, line, slots...
                "renew.lua" => {
                    Reply::Ints(sent.args[6..].iter().map(|s| s.parse().unwrap()).collect())
                }
                "release.lua" => Reply::Int(1),
                other => panic!("no answer to {other}"),
            })
        })
    }

    /// Every call so far, in order.
    pub(crate) fn log(&self) -> Vec<Sent> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every call of `script` (`"acquire.lua"`, ...) so far.
    pub(crate) fn calls(&self, script: &str) -> Vec<Sent> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.script == script)
            .cloned()
            .collect()
    }
}

impl Link for FakeLink {
    fn name(&self) -> &str {
        &self.name
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(100)
    }

    fn health(&self) -> &Health {
        &self.health
    }

    fn run<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<redis::Value, Error>> {
        let sent = Sent {
            script: call.script.file,
            args: call
                .args
                .iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        };
        let reply = (self.answer)(&sent);
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sent);
        Box::pin(async move {
            match reply {
                Reply::Ints(ints) => Ok(redis::Value::Array(
                    ints.into_iter().map(redis::Value::Int).collect(),
                )),
                Reply::Int(n) => Ok(redis::Value::Int(n)),
                Reply::Down => Err(Error::Redis {
                    master: self.name.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "down")
                        .into(),
                }),
                Reply::Hang => std::future::pending().await,
            }
        })
    }

    fn listen<'a>(&'a self, _channel: &'a str, _line: &'a str) -> BoxFuture<'a, Option<Listener>> {
        Box::pin(async { None })
    }

    fn reconnect(&self) -> BoxFuture<'_, Result<Arc<dyn Link>, Error>> {
        Box::pin(async {
            Err(Error::InvalidArgument(
                "a fake master cannot reconnect".into(),
            ))
        })
    }
}

/// An acquire's grant: `[1, token, stamp, slots...]`.
pub(crate) fn granted(token: i64, slots: &[i64]) -> Reply {
    let mut reply = vec![1, token, 1];
    reply.extend(slots);
    Reply::Ints(reply)
}

/// An acquire's busy answer, with the earliest expiry in ms (-1: none known).
pub(crate) fn busy(wait_ms: i64) -> Reply {
    Reply::Ints(vec![0, wait_ms, 1, -1])
}
