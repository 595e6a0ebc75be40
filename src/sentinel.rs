//! A master that is a Sentinel-managed service: its primary is found through the sentinels
//! and followed across failovers.
//!
//! redis-rs's `Sentinel` asks the sentinels for the service's primary and checks with
//! `ROLE` that the server it names calls itself a primary. The master's connection keeps
//! pointing at the server found last; a request to it that fails in a way a failover
//! explains (no connection, no reply, `READONLY` from a demoted primary, `MASTERDOWN`) asks
//! the sentinels again, one lookup at a time and at most every [`MIN_LOOKUP_INTERVAL`], and
//! a different primary replaces the connection. Until the sentinels have named the primary
//! again, requests fail at once (a transient error): after a lost connection the server
//! at the old address may be the old primary restarted empty, which calls itself a primary
//! until the sentinels demote it, and must not be asked for grants. The subscriber for wake-ups asks the
//! sentinels each time it connects (see `subscriber/`).
//!
//! There is no `redis+sentinel://` URL: redis-rs parses none, so the sentinels and the
//! service are given to [`Builder::sentinel`](crate::Builder::sentinel).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use tokio::time::Instant;

use crate::error::Error;

/// The least time between two lookups of one service's primary: during a failover every
/// failed request would ask otherwise.
pub(crate) const MIN_LOOKUP_INTERVAL: Duration = Duration::from_millis(50);

/// A service as given to the builder, checked.
#[derive(Clone)]
pub(crate) struct Given {
    sentinels: Vec<redis::ConnectionInfo>,
    service: String,
    nodes: SentinelNodeConnectionInfo,
}

impl Given {
    pub(crate) fn new<S: redis::IntoConnectionInfo>(
        sentinels: impl IntoIterator<Item = S>,
        service: String,
        nodes: SentinelNodeConnectionInfo,
    ) -> Result<Given, String> {
        let sentinels = sentinels
            .into_iter()
            .map(redis::IntoConnectionInfo::into_connection_info)
            .collect::<redis::RedisResult<Vec<_>>>()
            .map_err(|e| format!("a sentinel's address does not parse: {e}"))?;
        if sentinels.is_empty() {
            return Err(format!("service {service:?} is given no sentinel"));
        }
        if service.is_empty() {
            return Err("a Sentinel service needs a name".into());
        }
        Ok(Given {
            sentinels,
            service,
            nodes,
        })
    }

    /// `service@host:port,host:port`.
    pub(crate) fn label(&self) -> String {
        label(&self.sentinels, &self.service)
    }

    /// The service, to be asked with requests bounded by `timeout`.
    pub(crate) fn service(self, timeout: Duration) -> Result<Arc<Service>, Error> {
        let label = self.label();
        Service::new(self.sentinels, self.service, self.nodes, timeout)
            .map(Arc::new)
            .map_err(|source| Error::Redis {
                master: label,
                source,
            })
    }
}

/// One Sentinel-managed service, shared by the master's connection and its subscriber.
pub(crate) struct Service {
    /// `service@sentinel,sentinel`: the master's name in errors.
    label: String,
    service: String,
    sentinels: tokio::sync::Mutex<Sentinel>,
    /// How to reach the data nodes (their user, password, database, TLS).
    node: SentinelNodeConnectionInfo,
    /// The bound on one lookup.
    timeout: Duration,
    /// A lookup is running.
    looking: AtomicBool,
    /// When the last lookup started.
    last: Mutex<Option<Instant>>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

impl Service {
    pub(crate) fn new(
        sentinels: Vec<redis::ConnectionInfo>,
        service: String,
        node: SentinelNodeConnectionInfo,
        timeout: Duration,
    ) -> redis::RedisResult<Service> {
        let label = label(&sentinels, &service);
        Ok(Service {
            label,
            service,
            sentinels: tokio::sync::Mutex::new(Sentinel::build(sentinels)?),
            node,
            timeout,
            looking: AtomicBool::new(false),
            last: Mutex::new(None),
        })
    }

    /// `service@host:port,host:port`.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// A client for the service's primary now, as the sentinels name it and as it calls
    /// itself (`ROLE`), within the lookup bound.
    pub(crate) async fn primary(&self) -> redis::RedisResult<redis::Client> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        let bound = self.lookup_timeout();
        let lookup = async {
            let mut sentinels = self.sentinels.lock().await;
            sentinels
                .async_master_for(&self.service, Some(&self.node))
                .await
        };
        match tokio::time::timeout(bound, lookup).await {
            Ok(found) => found,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the sentinels did not name a primary for {} within {bound:?}",
                    self.label
                ),
            )
            .into()),
        }
    }

    /// A lookup asks several sentinels, then the primary itself.
    fn lookup_timeout(&self) -> Duration {
        (self.timeout * 2).max(Duration::from_millis(500))
    }

    /// Looks the primary up again in the background, unless a lookup is running or one
    /// started less than [`MIN_LOOKUP_INTERVAL`] ago; `found` gets the primary's client when
    /// it is not at `current` (its `host:port`), `None` when it still is.
    pub(crate) fn follow(
        self: &Arc<Self>,
        current: String,
        found: impl FnOnce(Option<redis::Client>) + Send + 'static,
    ) {
        let recent = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < MIN_LOOKUP_INTERVAL);
        if recent || self.looking.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.looking.store(false, Ordering::Release);
            return;
        };
        let service = Arc::clone(self);
        runtime.spawn(async move {
            let lookup = service.primary().await;
            service.looking.store(false, Ordering::Release);
            match lookup {
                Ok(client) if client.get_connection_info().addr().to_string() != current => {
                    #[cfg(feature = "tracing")]
                    tracing::info!(
                        master = %service.label,
                        from = %current,
                        to = %client.get_connection_info().addr(),
                        "the sentinels name another primary: following it"
                    );
                    found(Some(client));
                }
                Ok(_) => found(None),
                Err(_) => {}
            }
        });
    }
}

/// `service@host:port,host:port`.
fn label(sentinels: &[redis::ConnectionInfo], service: &str) -> String {
    let addrs: Vec<String> = sentinels.iter().map(|s| s.addr().to_string()).collect();
    format!("{service}@{}", addrs.join(","))
}

/// True for the failures a failover explains: the primary is gone (no connection, no
/// reply) or was demoted (`READONLY`), or it lost its own primary (`MASTERDOWN`).
pub(crate) fn failover_may_explain(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || matches!(error.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_service_and_its_sentinels() {
        let sentinels = vec![
            redis::IntoConnectionInfo::into_connection_info("redis://127.0.0.1:26379").unwrap(),
            redis::IntoConnectionInfo::into_connection_info("redis://10.0.0.2:26380").unwrap(),
        ];
        assert_eq!(
            label(&sentinels, "mymaster"),
            "mymaster@127.0.0.1:26379,10.0.0.2:26380"
        );
    }

    #[test]
    fn failover_errors() {
        let refused: redis::RedisError =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "down").into();
        assert!(failover_may_explain(&refused));
        let auth: redis::RedisError =
            (redis::ErrorKind::AuthenticationFailed, "wrong password").into();
        assert!(!failover_may_explain(&auth));
    }
}
