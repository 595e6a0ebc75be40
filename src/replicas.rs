//! `Builder::replicas(n, timeout)`: a grant or a renewal counts on a master only once `n`
//! of its replicas have it.
//!
//! `WAIT n timeout` blocks the connection it is sent on until `n` replicas acknowledged
//! every write that connection made, so it cannot go on the master's shared multiplexed
//! connection (it would hold up every request behind it). The scripts that grant or renew
//! (acquire and hold) run instead on a connection of their own, taken from a small pool of
//! the master's dedicated connections, and are followed there by `WAIT`. Fewer than `n`
//! acknowledgements within the timeout is a failure of that master, reported like any
//! failed request: the grant is not counted, and the permit id stays the acquire's to
//! retry or to release (see `acquire/guard.rs`: an attempt that fails keeps its cancel guard
//! armed), and a renewal that keeps failing loses the permit at its deadline.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, ScriptInvocation};

use crate::lua::{self, Scripted};

/// `acquire.lua`'s `push` (`ARGV[11]`): whether a release may grant this request and hand
/// the grant over in its wake-up. Such a grant is written by the release's script and
/// taken by the waiter without a request of its own, so no `WAIT` would confirm it: with
/// replicas the acquire never asks for it (the waiter is woken and asks instead).
const PUSH_ARG: usize = 10;

/// Dedicated connections kept per master when idle; more are made when more requests
/// run at once.
const POOL: usize = 8;

/// What a grant must reach: `n` replicas within `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Replicas {
    pub(crate) n: u32,
    pub(crate) timeout: Duration,
}

/// One master's dedicated connections for scripts followed by `WAIT`.
pub(crate) struct Waits {
    replicas: Replicas,
    /// Idle connections, each with the generation of the master's connection (a new
    /// primary after a failover starts a new generation) it was made for.
    idle: Mutex<Vec<(u64, MultiplexedConnection)>>,
}

impl std::fmt::Debug for Waits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waits")
            .field("replicas", &self.replicas)
            .finish_non_exhaustive()
    }
}

/// Why `replicas` cannot work with this request timeout and lease, if it cannot.
pub(crate) fn validate(
    replicas: Replicas,
    request_timeout: Duration,
    lease: Duration,
) -> Result<(), String> {
    if replicas.n == 0 {
        return Err("replicas(n, ..) needs n of at least 1 (leave it out for no waiting)".into());
    }
    if replicas.timeout.is_zero() {
        return Err("replicas(.., timeout) needs a timeout above zero".into());
    }
    if (request_timeout + replicas.timeout) * 2 > lease {
        return Err(format!(
            "the request timeout {request_timeout:?} plus the replicas' timeout {:?} must be \
             under half the lease {lease:?}, or waiting for replicas could cost a permit its \
             lease",
            replicas.timeout
        ));
    }
    Ok(())
}

/// The scripts whose writes must reach the replicas: the grant and the renewal (which
/// also settles a grant on several masters). Releases need not: a release that a
/// failover loses only leaves a lease to run out.
pub(crate) fn must_replicate(script: &Scripted) -> bool {
    std::ptr::eq(script, &*lua::ACQUIRE) || std::ptr::eq(script, &*lua::RENEW)
}

/// `args` of `script` as sent with replicas: an acquire's without `push`.
pub(crate) fn args_for<'a>(
    script: &Scripted,
    args: &'a [Vec<u8>],
) -> std::borrow::Cow<'a, [Vec<u8>]> {
    if std::ptr::eq(script, &*lua::ACQUIRE) && args.len() > PUSH_ARG {
        let mut args = args.to_vec();
        args[PUSH_ARG] = b"0".to_vec();
        std::borrow::Cow::Owned(args)
    } else {
        std::borrow::Cow::Borrowed(args)
    }
}

impl Waits {
    pub(crate) fn new(replicas: Replicas) -> Waits {
        Waits {
            replicas,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn replicas(&self) -> Replicas {
        self.replicas
    }

    /// Runs `invocation` on a dedicated connection to `client`'s server, then `WAIT`s for
    /// the replicas there. `generation` is that of the master's connection, so that a
    /// connection to a demoted primary is never reused.
    pub(crate) async fn run<T: FromRedisValue>(
        &self,
        client: &redis::Client,
        generation: u64,
        invocation: &ScriptInvocation<'_>,
        connect_timeout: Duration,
    ) -> redis::RedisResult<T> {
        let mut conn = match self.take(generation) {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    // The caller bounds the whole request.
                    .set_response_timeout(None);
                client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?
            }
        };
        let value: T = invocation.invoke_async(&mut conn).await?;
        let Replicas { n, timeout } = self.replicas;
        let acked: u32 = redis::cmd("WAIT")
            .arg(n)
            .arg(
                u64::try_from(timeout.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
            )
            .query_async(&mut conn)
            .await?;
        self.put(generation, conn);
        if acked < n {
            return Err(io::Error::other(format!(
                "{acked} of the {n} replicas asked for acknowledged the write within {timeout:?} \
                 (see Builder::replicas); not counted"
            ))
            .into());
        }
        Ok(value)
    }

    fn take(&self, generation: u64) -> Option<MultiplexedConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        idle.retain(|(g, _)| *g == generation);
        idle.pop().map(|(_, conn)| conn)
    }

    fn put(&self, generation: u64, conn: MultiplexedConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < POOL {
            idle.push((generation, conn));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lua::{AcquireArgs, Caller, Queue};

    #[test]
    fn an_acquire_with_replicas_is_never_pushed() {
        let ask = |push| {
            AcquireArgs {
                caller: Caller {
                    permits: 2,
                    bounded: true,
                },
                id: "id",
                k: 1,
                lease_ms: 1000,
                queue: Queue::Join,
                waiter_ms: 1000,
                line: "line",
                more: false,
                arrival: 7,
                again: 8,
                push,
                waits: true,
            }
            .args()
        };
        let (pushed, not) = (ask(true), ask(false));
        assert_eq!(pushed[PUSH_ARG], b"1", "PUSH_ARG is acquire.lua's push");
        assert_eq!(&*args_for(&lua::ACQUIRE, &pushed), &not[..]);
        assert_eq!(&*args_for(&lua::RENEW, &pushed), &pushed[..]);
    }

    #[test]
    fn rejects_replicas_that_cannot_work() {
        let r = |n, ms| Replicas {
            n,
            timeout: Duration::from_millis(ms),
        };
        let (rt, lease) = (Duration::from_millis(100), Duration::from_secs(1));
        assert!(validate(r(1, 100), rt, lease).is_ok());
        assert!(
            validate(r(0, 100), rt, lease)
                .unwrap_err()
                .contains("at least 1")
        );
        assert!(
            validate(r(1, 0), rt, lease)
                .unwrap_err()
                .contains("above zero")
        );
        assert!(
            validate(r(1, 450), rt, lease)
                .unwrap_err()
                .contains("half the lease")
        );
    }
}
