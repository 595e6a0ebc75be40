//! Master addresses: what may name a master ([`IntoMaster`]: a URL in one of redis-rs's
//! forms, a client, a connection info), and [`Address`], the one enum for the three kinds
//! of master (a server, a Sentinel-managed service, a Redis Cluster), from the builder to
//! the master's connection and its wake-up subscriber.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::sentinel::{Given, Service};

/// Something that names a master: a URL (`&str`, `String`), a [`redis::Client`](https://docs.rs/redis/1/redis/struct.Client.html) or
/// a [`redis::ConnectionInfo`](https://docs.rs/redis/1/redis/struct.ConnectionInfo.html) (the `redis` crate is re-exported as
/// `redis_semaphore::redis`).
pub trait IntoMaster {
    /// Turns `self` into a client, or says why it cannot.
    fn into_client(self) -> redis::RedisResult<redis::Client>;
}

impl IntoMaster for redis::Client {
    fn into_client(self) -> redis::RedisResult<redis::Client> {
        Ok(self)
    }
}

impl IntoMaster for redis::ConnectionInfo {
    fn into_client(self) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self)
    }
}

impl IntoMaster for &str {
    fn into_client(self) -> redis::RedisResult<redis::Client> {
        open_url(self)
    }
}

impl IntoMaster for String {
    fn into_client(self) -> redis::RedisResult<redis::Client> {
        open_url(&self)
    }
}

impl IntoMaster for &String {
    fn into_client(self) -> redis::RedisResult<redis::Client> {
        open_url(self)
    }
}

/// The URLs redis-rs accepts, as a bad one's error lists them.
const URL_FORMS: &str = "redis://[user[:password]@]host[:port][/db], \
    rediss://... (TLS, feature `tls`), valkey://... and valkeys://... alike, or a Unix \
    socket: redis+unix:///path/to/socket, unix:///path/to/socket (also valkey+unix://; \
    options ?db=N&user=U&pass=P)";

/// A client for `url`, or an error that shows the URL (its password hidden), what is
/// wrong with it and the accepted forms.
fn open_url(url: &str) -> redis::RedisResult<redis::Client> {
    redis::Client::open(url).map_err(|error| {
        let text = error.to_string();
        let why = match error.detail() {
            Some(detail) => detail.to_string(),
            // "Redis URL did not parse - InvalidClientConfig": the first part says it.
            None => text.split(" - ").next().unwrap_or(&text).to_string(),
        };
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "not a valid Redis URL",
            format!(
                "{:?} ({why}); the accepted forms are {URL_FORMS}",
                hide_password(url)
            ),
        ))
    })
}

/// `url` with the password of its user part, if any, replaced by `***`.
fn hide_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// A master's configuration error as the builder reports it: our own detail (a bad URL's),
/// without redis-rs's kind in the middle.
pub(crate) fn describe(error: &redis::RedisError) -> String {
    match error.detail() {
        Some(detail) if error.kind() == redis::ErrorKind::InvalidClientConfig => detail.to_string(),
        _ => error.to_string(),
    }
}

/// One master: a server, a Sentinel-managed service (its primary, followed across
/// failovers), or (feature `cluster`) a Redis Cluster, reached through its seed nodes.
///
/// The builder holds the service as it was given ([`Given`], checked but not asked yet);
/// [`resolve`](Address::resolve) makes it the [`Service`] that the master's connection and
/// its subscriber then share (one lookup of the primary at a time for both).
#[derive(Clone)]
pub(crate) enum Address<S = Arc<Service>> {
    Server(Box<redis::Client>),
    Sentinel(S),
    #[cfg(feature = "cluster")]
    Cluster(Vec<redis::ConnectionInfo>),
}

impl Address<Given> {
    /// The addresses it names, as `host:port` (a service as `service@host:port,...`).
    pub(crate) fn addrs(&self) -> Vec<String> {
        match self {
            Address::Server(client) => vec![client.get_connection_info().addr().to_string()],
            Address::Sentinel(given) => vec![given.label()],
            #[cfg(feature = "cluster")]
            Address::Cluster(nodes) => nodes.iter().map(|n| n.addr().to_string()).collect(),
        }
    }

    /// The same master with its service made, to be asked with requests bounded by
    /// `timeout`.
    pub(crate) fn resolve(self, timeout: Duration) -> Result<Address, Error> {
        Ok(match self {
            Address::Server(client) => Address::Server(client),
            Address::Sentinel(given) => Address::Sentinel(given.service(timeout)?),
            #[cfg(feature = "cluster")]
            Address::Cluster(nodes) => Address::Cluster(nodes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_the_password_of_a_url() {
        assert_eq!(
            hide_password("redis://u:secret@h:1/0"),
            "redis://u:***@h:1/0"
        );
        assert_eq!(hide_password("redis://:secret@h"), "redis://:***@h");
        assert_eq!(hide_password("redis://u@h"), "redis://u@h");
        assert_eq!(hide_password("redis://h/a@b"), "redis://h/a@b");
        assert_eq!(hide_password("not a url"), "not a url");
    }
}
