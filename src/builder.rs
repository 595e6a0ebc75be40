//! [`Builder`], shared by the async and the blocking semaphore: its settings, the checks of
//! what it is given, and connecting to the masters. [`Builder::build`], which makes the
//! handle, is the façade's (`semaphore.rs`), so that this file does not import it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::address::{Address, IntoMaster, describe};
use crate::config::Config;
use crate::core::Core;
use crate::error::Error;
use crate::link::Link;
use crate::master::Master;
use crate::quorum::Quorum;
use crate::replicas::{self, Replicas};
use crate::sentinel::Given;

/// Longest semaphore name accepted, in bytes (1024): every request carries it four times.
pub const MAX_NAME_LEN: usize = 1024;

/// Longest lease accepted: one day ([`Builder::lease`]).
pub const MAX_LEASE: Duration = Duration::from_secs(24 * 60 * 60);

/// Shortest lease accepted: 10 ms. A renewal every lease / 3 must fit a round trip.
pub const MIN_LEASE: Duration = Duration::from_millis(10);

/// The lease of a permit unless [`Builder::lease`] says otherwise: 10 s.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// How long a waiting acquire rides out masters that do not answer before it returns
/// [`Error::Outage`], unless [`Builder::outage_timeout`] says otherwise: 30 s.
pub const DEFAULT_OUTAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Configures and builds an [`AsyncSemaphore`](crate::AsyncSemaphore) (or, through
/// [`blocking::Builder`](crate::blocking::Builder), a blocking one).
///
/// Setters take and return the builder; nothing is checked or connected until
/// [`build`](Builder::build), which reports every problem as an [`Error`].
#[must_use = "a builder does nothing until `.build()`"]
#[derive(Clone)]
pub struct Builder {
    pub(crate) name: String,
    pub(crate) permits: u32,
    masters: Vec<Result<Address<Given>, String>>,
    lease: Duration,
    bounded: bool,
    raise_on_redis_errors: bool,
    fair: bool,
    request_timeout: Option<Duration>,
    outage_timeout: Option<Duration>,
    /// `replicas(n, timeout)`.
    replicas: Option<Replicas>,
    /// Built by `AsyncSemaphore::open`: take the stored permit count.
    adopt: bool,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masters: Vec<String> = self
            .masters
            .iter()
            .map(|m| match m {
                Ok(spec) => spec.addrs().join(","),
                Err(e) => format!("invalid: {e}"),
            })
            .collect();
        f.debug_struct("Builder")
            .field("name", &self.name)
            .field("permits", &self.permits)
            .field("masters", &masters)
            .field("lease", &self.lease)
            .field("bounded", &self.bounded)
            .field("raise_on_redis_errors", &self.raise_on_redis_errors)
            .field("request_timeout", &self.effective_request_timeout())
            .field("outage_timeout", &self.outage_timeout)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl Builder {
    /// A builder for an existing semaphore whose permit count is read from the masters.
    pub(crate) fn adopting(name: String) -> Self {
        Builder {
            adopt: true,
            ..Builder::new(name, 0)
        }
    }

    pub(crate) fn new(name: String, permits: u32) -> Self {
        Builder {
            name,
            permits,
            masters: Vec::new(),
            lease: DEFAULT_LEASE,
            bounded: true,
            raise_on_redis_errors: false,
            fair: true,
            request_timeout: None,
            outage_timeout: Some(DEFAULT_OUTAGE_TIMEOUT),
            replicas: None,
            adopt: false,
        }
    }

    /// Adds a master: a URL such as `redis://user:pass@host:6379/0`, a
    /// [`redis::Client`](https://docs.rs/redis/1/redis/struct.Client.html) or a [`redis::ConnectionInfo`](https://docs.rs/redis/1/redis/struct.ConnectionInfo.html).
    ///
    /// The URL forms are those of redis-rs: `redis://[user[:password]@]host[:port][/db]`
    /// (port 6379 and database 0 by default), `rediss://` for TLS (feature `tls`),
    /// `valkey://` and `valkeys://` alike, and a Unix socket as
    /// `redis+unix:///path/to/socket` or `unix:///path/to/socket` (options
    /// `?db=N&user=U&pass=P`). A URL that does not parse is reported by `build()` as
    /// [`Error::InvalidArgument`], which shows the URL (its password hidden) and these forms.
    ///
    /// Call it once for one master, or once per master for several independent masters
    /// (not replicas of each other): each permit slot is then a Redlock mutex, held while a
    /// majority (`M / 2 + 1`) of the masters hold it, so the semaphore survives the loss of
    /// a minority of them. Use an odd number: 3 masters survive the loss of 1, and so do 4
    /// (a majority of 4 is 3), which only adds a master that can fail; 5 survive 2.
    ///
    /// A master that restarts without its data must stay down for at least one lease
    /// before it comes back (or persist with `appendfsync always`): otherwise it forgets
    /// grants that the majority still counts on, and its vote can give a held slot to a
    /// second holder.
    pub fn master(mut self, master: impl IntoMaster) -> Self {
        self.masters.push(
            master
                .into_client()
                .map(|client| Address::Server(Box::new(client)))
                .map_err(|e| describe(&e)),
        );
        self
    }

    /// Adds a Redis (or Valkey) Cluster as one master, reached through its seed `nodes`
    /// (feature `cluster`). All keys of a semaphore share the hash tag `{name}`, so each
    /// semaphore lives on one shard, every script touches one slot, and wake-ups use
    /// sharded pub/sub on that shard. Many semaphores spread over the shards.
    ///
    /// A cluster is one master as far as the Redlock quorum goes: a failover promotes a
    /// replica that may not have received the latest grants (replication is
    /// asynchronous), so a permit granted just before a failover can be granted again.
    /// Give several independent clusters (or add `WAIT`-style durability on the servers)
    /// where that matters.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), redis_semaphore::Error> {
    /// let sem = redis_semaphore::AsyncSemaphore::builder("tenant-42", 4)
    ///     .cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "cluster")]
    pub fn cluster<N: redis::IntoConnectionInfo>(
        mut self,
        nodes: impl IntoIterator<Item = N>,
    ) -> Self {
        let nodes: redis::RedisResult<Vec<redis::ConnectionInfo>> = nodes
            .into_iter()
            .map(redis::IntoConnectionInfo::into_connection_info)
            .collect();
        self.masters.push(match nodes {
            Ok(nodes) if nodes.is_empty() => Err("a cluster needs at least one node".into()),
            Ok(nodes) => Ok(Address::Cluster(nodes)),
            Err(e) => Err(describe(&e)),
        });
        self
    }

    /// Adds a Sentinel-managed service as one master: its primary, found through the
    /// `sentinels` (their URLs, `redis://host:26379`) under the service name `service`, and
    /// followed across failovers.
    ///
    /// The primary is the server the sentinels name and that calls itself a primary
    /// (`ROLE`). A request to it that fails as a failover would make it fail (no connection,
    /// no reply, `READONLY` from a demoted primary) asks the sentinels again, and the
    /// handle moves to the new primary, the wake-up subscriber too. `build()` asks the
    /// sentinels once and fails if they name no primary within the request timeout. The
    /// data nodes are reached with the sentinels' URLs' TLS setting and no password; use
    /// [`sentinel_with`](Self::sentinel_with) to give them one.
    ///
    /// Replication is asynchronous: a failover can promote a replica that had not received
    /// the latest grants, and the new primary then grants those slots again while their
    /// holders still hold them. [`replicas`](Self::replicas) narrows that (see there for
    /// what exactly it guarantees), and several independent services as the masters of one
    /// semaphore (call this once per service) make it a Redlock quorum in which one
    /// service's failover is one master's fault. There is no `redis+sentinel://` URL:
    /// redis-rs parses none.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), redis_semaphore::Error> {
    /// let sem = redis_semaphore::AsyncSemaphore::builder("reports", 3)
    ///     .sentinel(["redis://10.0.0.1:26379", "redis://10.0.0.2:26379"], "mymaster")
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn sentinel<S: redis::IntoConnectionInfo>(
        self,
        sentinels: impl IntoIterator<Item = S>,
        service: impl Into<String>,
    ) -> Self {
        self.sentinel_with(sentinels, service, Default::default())
    }

    /// [`sentinel`](Self::sentinel), with how to reach the data nodes (primary and
    /// replicas): their user, password, database, TLS, as redis-rs's
    /// `SentinelNodeConnectionInfo` holds them. The sentinels' own credentials go in their
    /// URLs.
    pub fn sentinel_with<S: redis::IntoConnectionInfo>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        service: impl Into<String>,
        nodes: redis::sentinel::SentinelNodeConnectionInfo,
    ) -> Self {
        self.masters
            .push(Given::new(sentinels, service.into(), nodes).map(Address::Sentinel));
        self
    }

    /// Counts a grant or a renewal on a master only once at least `n` of its replicas have
    /// it, waiting at most `timeout` for them (`WAIT n timeout` after the script, on a
    /// connection of the request's own, so that the wait holds up no other request). Off by
    /// default. `n` must be at least 1, `timeout` above zero, and the request timeout plus
    /// `timeout` under half the lease, or `build()` returns [`Error::InvalidArgument`].
    ///
    /// A grant that fewer than `n` replicas acknowledge in time is not counted: to the
    /// acquire it is a failed request to that master (an [`Error::Redis`] saying how many
    /// acknowledged, counted in [`last_error`](crate::AsyncSemaphore::last_error)), the acquire
    /// tries again with the same permit id or, giving up, releases it. A renewal that
    /// cannot reach `n` replicas before the permit's deadline loses the permit, as a
    /// renewal that gets no answer does.
    ///
    /// What it guarantees across a failover: a permit whose grant and latest renewal
    /// `n` replicas acknowledged is on those replicas. If the replica the sentinels promote
    /// is one of them (with `n` equal to the number of replicas, it always is, as long as
    /// no replica was added since), the new primary keeps the permit's slot for it: no one
    /// else is granted that slot while the lease lasts, and the holder's next renewal
    /// finds it there. What it does not: replication stays asynchronous, so `WAIT` tells
    /// only that the write reached the replicas' memory (not their disks, and a replica
    /// that restarts without persistence forgets it); a replica that was behind, or that
    /// did not acknowledge, can still be promoted (Sentinel prefers the most up to date,
    /// but does not know about this semaphore), and then the slot can be granted again.
    /// Releases do not wait: a lost release only leaves a lease to run out.
    pub fn replicas(mut self, n: u32, timeout: Duration) -> Self {
        self.replicas = Some(Replicas { n, timeout });
        self
    }

    /// Adds several masters at once, as [`master`](Self::master) does one by one.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), redis_semaphore::Error> {
    /// let sem = redis_semaphore::AsyncSemaphore::builder("gpu", 2)
    ///     .masters(["redis://10.0.0.1", "redis://10.0.0.2", "redis://10.0.0.3"])
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn masters<M: IntoMaster>(self, masters: impl IntoIterator<Item = M>) -> Self {
        masters.into_iter().fold(self, Builder::master)
    }

    /// How long a permit's lease lasts without renewal; renewals run every `lease / 3`.
    /// A holder that crashes gives its permits back within one lease. Default:
    /// [`DEFAULT_LEASE`] (10 s); at least [`MIN_LEASE`] (10 ms), at most [`MAX_LEASE`] (one
    /// day), and more than twice the request timeout, or `build()` returns
    /// [`Error::InvalidArgument`].
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Whether [`AsyncSemaphore::release`](crate::AsyncSemaphore::release) of more permits than the handle holds is an
    /// error (`true`, [`Error::Bounded`]) or adds permits (`false`). Default: `true`.
    ///
    /// It is stored with the semaphore when the semaphore is created, like the permit
    /// count: a handle built with the other setting gets [`Error::ConfigMismatch`] from
    /// `build()`, and a handle from [`AsyncSemaphore::open`](crate::AsyncSemaphore::open) takes the stored one (this
    /// setter does not matter there). A semaphore created by a version that did not store
    /// it counts as bounded. To change it, [`delete`](crate::AsyncSemaphore::delete) the semaphore
    /// and build it anew.
    pub fn bounded(mut self, bounded: bool) -> Self {
        self.bounded = bounded;
        self
    }

    /// Whether an acquire that fails because the master errored (not because permits were
    /// taken) returns the error at once (`true`) or keeps trying (`false`, as
    /// pottery-semaphore does). Default: `false`.
    ///
    /// With `false`, a [`try_acquire`](crate::AsyncSemaphore::try_acquire) on an unreachable
    /// master returns `Ok(None)` as if every permit were held ([`AsyncSemaphore::last_error`](crate::AsyncSemaphore::last_error)
    /// tells the two apart), and a waiting acquire keeps trying until its own time limit or
    /// the [outage timeout](Self::outage_timeout) (30 s by default), whichever comes first.
    /// Errors that waiting cannot fix (a wrong password, a missing ACL permission, a key of
    /// another type) are returned at once either way.
    pub fn raise_on_redis_errors(mut self, raise: bool) -> Self {
        self.raise_on_redis_errors = raise;
        self
    }

    /// Whether waiters are served first come, first served across processes (`true`, the
    /// default) or whoever asks first after a release wins (`false`). Default: `true`.
    ///
    /// Fair waiting keeps a queue of waiter lines (one per handle) in Redis, updated by the
    /// same script as the grant: a freed slot is kept for the lines at the head of the
    /// queue, and the release wakes exactly those, on their own process's channel. A line
    /// keeps its place for minutes without asking; one whose process died (its
    /// subscription gone) is passed over when it reaches the head, and one that gave up
    /// leaves at once. Without fairness, every waiting process tries after each release
    /// and the fastest wins, which can starve a slow one.
    ///
    /// Every handle of one semaphore should agree: an unfair handle does not wait in line.
    pub fn fair(mut self, fair: bool) -> Self {
        self.fair = fair;
        self
    }

    /// How long one request to a master may take, connecting included, before it counts as
    /// failed (an [`Error::Redis`] that names this timeout). Must be above zero and under
    /// half the lease, or `build()` returns [`Error::InvalidArgument`]. Default: a quarter
    /// of the lease, at most 1 s (1 s with the default lease).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// How long a waiting acquire ([`acquire`](crate::AsyncSemaphore::acquire),
    /// [`acquire_timeout`](crate::AsyncSemaphore::acquire_timeout) and their `_many` forms) keeps
    /// trying while the masters do not answer, before it returns [`Error::Outage`] with the
    /// last error. `None` waits through any outage, as pottery-semaphore does. Default:
    /// [`DEFAULT_OUTAGE_TIMEOUT`] (30 s).
    ///
    /// The outage is counted from the first attempt that got no answer (from a majority,
    /// on several masters) and ends at the first that got one; while it lasts, the waiters
    /// of one handle share it, so a queue of waiters gives up together rather than one
    /// bound after another. A [`try_acquire`](crate::AsyncSemaphore::try_acquire) never waits
    /// and still returns `Ok(None)`; [`AsyncSemaphore::last_error`](crate::AsyncSemaphore::last_error) tells why. With
    /// [`raise_on_redis_errors(true)`](Self::raise_on_redis_errors) every acquire returns
    /// the first error at once and this bound does not apply.
    ///
    /// Why 30 s by default: long enough to ride out what is routine (a restart, a
    /// Sentinel or cluster failover, a network blip), short enough that a service whose
    /// Redis is gone finds out, instead of a task that waits forever and says nothing.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn demo() -> Result<(), redis_semaphore::Error> {
    /// let sem = redis_semaphore::AsyncSemaphore::builder("reports", 3)
    ///     .master("redis://127.0.0.1:6379")
    ///     .outage_timeout(Duration::from_secs(5)) // or None: wait through any outage
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn outage_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.outage_timeout = timeout.into();
        self
    }

    pub(crate) fn effective_request_timeout(&self) -> Duration {
        self.request_timeout
            .unwrap_or_else(|| (self.lease / 4).min(Duration::from_secs(1)))
    }

    /// Checks everything that can be checked without a master.
    fn validate(&self) -> Result<(), Error> {
        let invalid = |why: String| Err(Error::InvalidArgument(why));
        if self.name.is_empty() {
            return invalid("the semaphore's name is empty".into());
        }
        if self.name.len() > MAX_NAME_LEN {
            return invalid(format!(
                "the semaphore's name is {} bytes long; at most {MAX_NAME_LEN} are allowed",
                self.name.len()
            ));
        }
        // Zero permits mean something only where releases can add permits: an unbounded
        // semaphore that starts locked, like Python's `threading.Semaphore(0)`.
        if self.permits == 0 && !self.adopt && self.bounded {
            return invalid(
                "a bounded semaphore needs at least 1 permit (an unbounded one, \
                 .bounded(false), may start at 0 and be opened by releases)"
                    .into(),
            );
        }
        if self.masters.is_empty() {
            return invalid("no master: call .master(url) on the builder".into());
        }
        if let Some((i, Err(why))) = self.masters.iter().enumerate().find(|(_, m)| m.is_err()) {
            return invalid(format!("master #{} is not a valid address: {why}", i + 1));
        }
        let mut seen = std::collections::HashSet::new();
        for addr in self.masters.iter().flatten().flat_map(Address::addrs) {
            if !seen.insert(addr.clone()) {
                return invalid(format!(
                    "master {addr} is given twice; several masters must be independent servers"
                ));
            }
        }
        if self.lease < MIN_LEASE {
            return invalid(format!(
                "lease {:?} is too short; the least is {MIN_LEASE:?}",
                self.lease
            ));
        }
        if self.lease > MAX_LEASE {
            return invalid(format!(
                "lease {:?} is too long; the most is {MAX_LEASE:?} (a held permit is renewed, \
                 so a long lease only delays the return of a crashed holder's permits)",
                self.lease
            ));
        }
        let timeout = self.effective_request_timeout();
        if timeout.is_zero() || timeout * 2 > self.lease {
            return invalid(format!(
                "request timeout {timeout:?} must be above zero and under half the lease {:?}, \
                 or one slow request could cost a permit its lease",
                self.lease
            ));
        }
        if let Some(replicas) = self.replicas {
            replicas::validate(replicas, timeout, self.lease).map_err(Error::InvalidArgument)?;
            #[cfg(feature = "cluster")]
            if self
                .masters
                .iter()
                .flatten()
                .any(|m| matches!(m, Address::Cluster(_)))
            {
                return invalid("replicas() is not supported with a cluster as a master".into());
            }
        }
        Ok(())
    }

    /// Checks the configuration, connects to the masters and checks the semaphore stored
    /// there (creating it, unless the builder is from `open`): the core of a new handle.
    /// [`build`](Builder::build), on the façade, makes the handle.
    pub(crate) async fn connect(self) -> Result<Core, Error> {
        self.validate()?;
        let timeout = self.effective_request_timeout();
        let mut masters: Vec<Arc<dyn Link>> = Vec::new();
        for address in self.masters {
            let address = address.expect("validated").resolve(timeout)?;
            masters.push(Arc::new(
                Master::connect(address, timeout, self.replicas).await?,
            ));
        }
        // A handle from `open` asks as bounded with 0 permits (`ARGV[1]` 0: adopt), whatever
        // `.bounded()` said: unbounded with 0 permits would create a semaphore.
        let bounded = self.bounded || self.adopt;
        let mut quorum = Quorum::new(masters, &self.name, self.permits, bounded);
        let status = quorum.status().await?;
        if self.adopt {
            quorum = quorum.adopting(&status);
        }
        let config = Config {
            name: self.name,
            lease: self.lease,
            raise_on_redis_errors: self.raise_on_redis_errors,
            outage_timeout: self.outage_timeout,
            fair: self.fair,
        };
        Ok(Core::new(config, quorum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(builder: Builder) -> String {
        match builder.validate() {
            Err(Error::InvalidArgument(why)) => why,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn rejects_bad_configuration() {
        let ok = || Builder::new("jobs".into(), 2).master("redis://127.0.0.1:1");
        assert!(ok().validate().is_ok());
        assert!(invalid(Builder::new(String::new(), 2).master("redis://x")).contains("empty"));
        assert!(
            invalid(Builder::new("a".repeat(MAX_NAME_LEN + 1), 2).master("redis://x"))
                .contains("bytes")
        );
        assert!(invalid(Builder::new("jobs".into(), 0).master("redis://x")).contains("at least 1"));
        // Unbounded, zero permits is a semaphore that starts locked; `open` adopts.
        let zero = Builder::new("jobs".into(), 0)
            .master("redis://x")
            .bounded(false);
        assert!(zero.validate().is_ok());
        assert!(
            Builder::adopting("jobs".into())
                .master("redis://x")
                .validate()
                .is_ok()
        );
        assert!(invalid(Builder::new("jobs".into(), 2)).contains("no master"));
        assert!(
            invalid(Builder::new("jobs".into(), 2).master("nonsense://")).contains("master #1")
        );
        assert!(invalid(ok().lease(Duration::from_millis(1))).contains("too short"));
        assert!(invalid(ok().lease(Duration::MAX)).contains("too long"));
        assert!(invalid(ok().request_timeout(Duration::from_secs(6))).contains("half the lease"));
        assert!(invalid(ok().request_timeout(Duration::ZERO)).contains("above zero"));
    }

    #[test]
    fn default_request_timeout_follows_the_lease() {
        let b = Builder::new("jobs".into(), 1);
        assert_eq!(b.effective_request_timeout(), Duration::from_secs(1));
        assert_eq!(
            b.lease(Duration::from_millis(400))
                .effective_request_timeout(),
            Duration::from_millis(100)
        );
    }
}
