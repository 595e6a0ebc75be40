//! One master: a reconnecting connection, the request timeout, and the mapping from what
//! the server answered to [`Error`].

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::address::Address;
use crate::error::Error;
use crate::health::Health;
use crate::link::{Call, Link};
use crate::lua::code;
use crate::replicas::{Replicas, Waits};
use crate::sentinel::Service;
use crate::subscriber::{Listener, Subscriber};

/// A master and its connection. Cheap to clone: the connection is shared and reconnects
/// in the background after it drops.
#[derive(Clone)]
pub(crate) struct Master {
    name: String,
    conn: Conn,
    /// What it was made from: for a fresh connection, and for the wake-up subscriber.
    address: Address,
    timeout: Duration,
    health: Health,
    /// `Builder::replicas`: grants and renewals wait for replicas.
    replicas: Option<Arc<Waits>>,
}

/// A master's connection: one server's (a Sentinel service's primary's too, which it
/// follows), or (feature `cluster`) a Redis Cluster's, on which each semaphore lives on the
/// shard that owns its hash tag. The kind of master is its [`Address`]; this is what is
/// connected, and a cluster's scripts publish with `SPUBLISH`.
#[derive(Clone)]
enum Conn {
    Server(Arc<Managed>),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

/// A server's reconnecting connection, replaced by a fresh one after a refused
/// authentication: redis-rs's manager reconnects after I/O errors only, so a connection
/// whose password was refused once would fail for good, even after the password is fixed.
///
/// For a Sentinel-managed master it also follows the primary: the client is the primary's
/// found last, replaced (with the connection, and a new generation) when the sentinels
/// name another one.
struct Managed {
    conn: Mutex<ConnectionManager>,
    client: Mutex<redis::Client>,
    config: ConnectionManagerConfig,
    sentinel: Option<Arc<Service>>,
    /// Counts the primaries followed, so that dedicated connections to an old one are dropped.
    generation: AtomicU64,
    /// For a Sentinel master: false from a failure a failover may explain until the
    /// sentinels name the primary again; requests fail at once meanwhile.
    confirmed: AtomicBool,
}

impl Managed {
    fn get(&self) -> ConnectionManager {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn client(&self) -> (redis::Client, u64) {
        let client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        (client.clone(), self.generation.load(Ordering::Acquire))
    }

    /// Starts over with a new connection (made lazily, at the next request).
    fn renew(&self) {
        let (client, _) = self.client();
        if let Ok(fresh) = ConnectionManager::new_lazy_with_config(client, self.config.clone()) {
            *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
        }
    }

    /// After a failure a failover may explain: asks the sentinels (in the background)
    /// and moves to the primary they name if it is another server.
    fn follow(self: &Arc<Self>, error: &redis::RedisError) {
        let Some(service) = &self.sentinel else {
            return;
        };
        if !crate::sentinel::failover_may_explain(error) {
            return;
        }
        self.confirmed.store(false, Ordering::Release);
        self.look_up(service);
    }

    fn look_up(self: &Arc<Self>, service: &Arc<Service>) {
        let current = self.client().0.get_connection_info().addr().to_string();
        let managed = Arc::clone(self);
        service.follow(current, move |moved| {
            if let Some(primary) = moved {
                *managed
                    .client
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = primary;
                managed.generation.fetch_add(1, Ordering::AcqRel);
                managed.renew();
            }
            managed.confirmed.store(true, Ordering::Release);
        });
    }

    /// For a Sentinel master whose primary is not confirmed since a failure: the error
    /// to fail a request with at once (and a lookup is started).
    fn unconfirmed(self: &Arc<Self>) -> Option<redis::RedisError> {
        let service = self.sentinel.as_ref()?;
        if self.confirmed.load(Ordering::Acquire) {
            return None;
        }
        self.look_up(service);
        Some(
            io::Error::new(
                io::ErrorKind::NotConnected,
                format!(
                    "after a failure, waiting for the sentinels of {} to name the primary",
                    service.label()
                ),
            )
            .into(),
        )
    }
}

impl fmt::Debug for Master {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Master")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Master {
    /// Makes the connection without waiting for it: the first request connects. Must run
    /// inside a Tokio runtime.
    fn new(client: redis::Client, timeout: Duration) -> Result<Self, Error> {
        let name = client.get_connection_info().addr().to_string();
        Master::managed(client, name, None, timeout)
    }

    /// A Sentinel-managed master: its primary now, followed across failovers. Asks the
    /// sentinels before it returns; an error when they name no primary in time.
    async fn sentinel(service: Arc<Service>, timeout: Duration) -> Result<Self, Error> {
        let primary = service.primary().await.map_err(|source| Error::Redis {
            master: service.label().to_string(),
            source,
        })?;
        let name = service.label().to_string();
        Master::managed(primary, name, Some(service), timeout)
    }

    fn managed(
        client: redis::Client,
        name: String,
        sentinel: Option<Arc<Service>>,
        timeout: Duration,
    ) -> Result<Self, Error> {
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(5))
            .set_max_delay(timeout);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|source| Error::Redis {
                master: name.clone(),
                source,
            })?;
        let address = match &sentinel {
            Some(service) => Address::Sentinel(Arc::clone(service)),
            None => Address::Server(Box::new(client.clone())),
        };
        let managed = Managed {
            conn: Mutex::new(conn),
            client: Mutex::new(client),
            config,
            sentinel,
            generation: AtomicU64::new(0),
            confirmed: AtomicBool::new(true),
        };
        Ok(Master {
            name,
            conn: Conn::Server(Arc::new(managed)),
            address,
            timeout,
            health: Health::default(),
            replicas: None,
        })
    }

    /// Makes grants and renewals on this master wait for `replicas` (none: they do not).
    fn with_replicas(mut self, replicas: Option<Replicas>) -> Self {
        self.replicas = replicas.map(|r| Arc::new(Waits::new(r)));
        self
    }

    /// Connects to a Redis Cluster through its seed `nodes`; the cluster client follows
    /// MOVED and ASK redirections and refreshes its slot map after a failover.
    #[cfg(feature = "cluster")]
    async fn cluster(nodes: Vec<redis::ConnectionInfo>, timeout: Duration) -> Result<Self, Error> {
        let name = format!(
            "cluster({})",
            nodes
                .iter()
                .map(|n| n.addr().to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let error = |source| Error::Redis {
            master: name.clone(),
            source,
        };
        let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(error)?;
        let conn = tokio::time::timeout(timeout, client.get_async_connection())
            .await
            .map_err(|_| {
                error(
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no cluster within the request timeout ({timeout:?})"),
                    )
                    .into(),
                )
            })?
            .map_err(error)?;
        Ok(Master {
            name,
            conn: Conn::Cluster(conn),
            address: Address::Cluster(nodes),
            timeout,
            health: Health::default(),
            replicas: None,
        })
    }

    /// Connects to the master at `address`, each request bounded by `timeout`; grants and
    /// renewals wait for `replicas` if given (not on a cluster: the builder refuses it).
    pub(crate) async fn connect(
        address: Address,
        timeout: Duration,
        replicas: Option<Replicas>,
    ) -> Result<Self, Error> {
        let master = match address {
            Address::Server(client) => Master::new(*client, timeout)?,
            Address::Sentinel(service) => Master::sentinel(service, timeout).await?,
            #[cfg(feature = "cluster")]
            Address::Cluster(nodes) => Master::cluster(nodes, timeout).await?,
        };
        Ok(master.with_replicas(replicas))
    }

    /// The same master on fresh connections, made on the current runtime.
    async fn reconnected(&self) -> Result<Master, Error> {
        let replicas = self.replicas.as_ref().map(|w| w.replicas());
        Master::connect(self.address.clone(), self.timeout, replicas).await
    }

    /// Runs one script on this master, bounded by the request timeout (which also covers
    /// reconnecting and reloading a script the server forgot).
    async fn invoke(&self, call: Call<'_>) -> Result<redis::Value, Error> {
        let (script, keys, args) = (call.script, call.keys, call.args);
        let (scripted, replicated) = (script, crate::replicas::must_replicate(script));
        let script = match self.conn {
            Conn::Server(_) => &script.plain,
            #[cfg(feature = "cluster")]
            Conn::Cluster(_) => &script.sharded,
        };
        let args = match &self.replicas {
            Some(_) => crate::replicas::args_for(scripted, args),
            None => std::borrow::Cow::Borrowed(args),
        };
        let mut invocation = script.prepare_invoke();
        for key in keys.as_slice() {
            invocation.key(key);
        }
        invocation.arg(&*args);
        let reply = match &self.conn {
            Conn::Server(managed) => {
                let unconfirmed = managed.unconfirmed();
                let reply = match (&self.replicas, unconfirmed) {
                    (_, Some(error)) => Ok(Err(error)),
                    (Some(waits), None) if replicated => {
                        let (client, generation) = managed.client();
                        let run = waits.run(&client, generation, &invocation, self.timeout);
                        tokio::time::timeout(self.timeout + waits.replicas().timeout, run).await
                    }
                    (_, None) => {
                        let mut conn = managed.get();
                        let invoke = invocation.invoke_async(&mut conn);
                        tokio::time::timeout(self.timeout, invoke).await
                    }
                };
                match &reply {
                    Ok(Err(error)) if error.kind() == redis::ErrorKind::AuthenticationFailed => {
                        managed.renew();
                    }
                    Ok(Err(error)) => managed.follow(error),
                    Err(_elapsed) => managed.follow(&self.timed_out()),
                    Ok(Ok(_)) => {}
                }
                reply
            }
            #[cfg(feature = "cluster")]
            Conn::Cluster(conn) => {
                let mut conn = conn.clone();
                let invoke = invocation.invoke_async(&mut conn);
                tokio::time::timeout(self.timeout, invoke).await
            }
        };
        let error = match reply {
            Ok(Ok(value)) => {
                self.health.answered(&self.name);
                return Ok(value);
            }
            // redis-rs's own response timeout is the request timeout too: say which.
            Ok(Err(source)) if source.is_timeout() => self.error(self.timed_out(), &call),
            Ok(Err(source)) => self.error(source, &call),
            Err(_elapsed) => self.error(self.timed_out(), &call),
        };
        match &error {
            Error::Redis { .. } => self.health.failed(&self.name, &error),
            // The scripts' own errors are answers.
            _ => self.health.answered(&self.name),
        }
        Err(error)
    }

    /// The error of a request that got no reply in time, naming the time.
    fn timed_out(&self) -> redis::RedisError {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no reply within the request timeout ({:?}; see Builder::request_timeout)",
                self.timeout
            ),
        )
        .into()
    }

    /// Turns what the server answered into an [`Error`]; the scripts' own errors become
    /// the variants a user can act on.
    fn error(&self, source: redis::RedisError, call: &Call<'_>) -> Error {
        let master = self.name.clone();
        let detail = || source.detail().map(strip_script_suffix).unwrap_or_default();
        match source.code() {
            Some(code::WRONG_TYPE) => Error::WrongType {
                master,
                detail: detail(),
            },
            Some("WRONGTYPE") => Error::WrongType {
                master,
                detail: source.to_string(),
            },
            Some(code::LIMIT) => Error::InvalidArgument(detail()),
            Some(code::NOT_FOUND) => Error::NotFound {
                name: call.keys.name().to_string(),
            },
            Some(code::CONFIG) => match parse_stored(&detail()) {
                Some((stored, stored_bounded)) => Error::ConfigMismatch {
                    stored,
                    requested: call.caller.permits,
                    stored_bounded,
                    requested_bounded: call.caller.bounded,
                },
                None => Error::Redis { master, source },
            },
            _ => Error::Redis { master, source },
        }
    }
}

impl Link for Master {
    fn name(&self) -> &str {
        &self.name
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn health(&self) -> &Health {
        &self.health
    }

    fn run<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<redis::Value, Error>> {
        Box::pin(self.invoke(call))
    }

    fn listen<'a>(&'a self, channel: &'a str, line: &'a str) -> BoxFuture<'a, Option<Listener>> {
        Box::pin(async move {
            Subscriber::for_address(&self.address, self.timeout)
                .subscribe(channel, line)
                .await
        })
    }

    fn reconnect(&self) -> BoxFuture<'_, Result<Arc<dyn Link>, Error>> {
        Box::pin(async move { Ok(Arc::new(self.reconnected().await?) as Arc<dyn Link>) })
    }
}

/// `SEMCONFIG`'s detail: the stored count and boundedness (`3 1`).
fn parse_stored(detail: &str) -> Option<(u32, bool)> {
    let mut words = detail.split_whitespace();
    let stored = words.next()?.parse().ok()?;
    let bounded = match words.next()? {
        "1" => true,
        "0" => false,
        _ => return None,
    };
    Some((stored, bounded))
}

/// Redis appends `" script: <sha>, on @user_script:<line>."` to errors raised in a script.
fn strip_script_suffix(detail: &str) -> String {
    match detail.find(" script: ") {
        Some(at) => detail[..at].to_string(),
        None => detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_the_script_suffix() {
        assert_eq!(
            strip_script_suffix(
                "semaphore:{a}:slots holds a string script: 1f2e, on @user_script:33."
            ),
            "semaphore:{a}:slots holds a string"
        );
        assert_eq!(strip_script_suffix("3"), "3");
    }

    #[test]
    fn parses_the_stored_configuration() {
        assert_eq!(parse_stored("3 1"), Some((3, true)));
        assert_eq!(parse_stored("3 0"), Some((3, false)));
        assert_eq!(parse_stored("3"), None);
        assert_eq!(parse_stored("x 1"), None);
    }
}
