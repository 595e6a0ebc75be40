//! The Lua scripts (`src/scripts/*.lua`) and typed calls to them.
//!
//! Every script is the shared prelude followed by its own body, so each one checks the keys'
//! types, loads the stored config and reclaims expired leases before it does its work, in
//! one atomic EVALSHA. `redis::Script` reloads a script the server has forgotten (NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

/// One script in its two forms: publishing wake-ups with `PUBLISH` (a plain server) or
/// with `SPUBLISH` (a cluster, where the channel shares the keys' hash tag and so their
/// shard). The first line of the text sets which; the rest is the prelude and the body.
#[derive(Debug)]
pub(crate) struct Scripted {
    pub(crate) plain: Script,
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) sharded: Script,
}

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            let body = concat!(
                include_str!("scripts/prelude.lua"),
                include_str!(concat!("scripts/", $file))
            );
            Scripted {
                plain: Script::new(&format!("local PUBLISH = 'PUBLISH'\n{body}")),
                sharded: Script::new(&format!("local PUBLISH = 'SPUBLISH'\n{body}")),
            }
        })
    };
}

pub(crate) static ACQUIRE: LazyLock<Scripted> = script!("acquire.lua");
pub(crate) static HOLD: LazyLock<Scripted> = script!("hold.lua");
pub(crate) static RELEASE: LazyLock<Scripted> = script!("release.lua");
pub(crate) static STATUS: LazyLock<Scripted> = script!("status.lua");
pub(crate) static GROW: LazyLock<Scripted> = script!("grow.lua");
pub(crate) static HOLDERS: LazyLock<Scripted> = script!("holders.lua");
pub(crate) static RESIZE: LazyLock<Scripted> = script!("resize.lua");
pub(crate) static DELETE: LazyLock<Scripted> = script!("delete.lua");

/// The keys of one semaphore, in the order the scripts take them. They share the hash tag
/// `{name}`, so on a cluster they live on one shard.
#[derive(Debug, Clone)]
pub(crate) struct Keys([String; 6]);

impl Keys {
    pub(crate) fn new(name: &str) -> Self {
        Keys(
            ["config", "leases", "free", "state", "queue", "waiters"]
                .map(|part| format!("semaphore:{{{name}}}:{part}")),
        )
    }

    /// The channel the scripts publish wake-ups on (not a key, but named like one).
    pub(crate) fn channel(&self) -> String {
        let config = &self.0[0];
        format!("{}wake", &config[..config.len() - "config".len()])
    }

    pub(crate) fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// What one master answered to an acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// Slots granted with a fencing token.
    Granted { token: u64, slots: Vec<u32> },
    /// Not enough free slots; the earliest lease expires in this many ms (None: nothing held).
    Busy { wait_ms: Option<u64> },
}

impl Acquired {
    /// One master's reply, and the script's stamp (its time in microseconds).
    pub(crate) fn parse(reply: &[i64]) -> Option<(Self, u64)> {
        match reply {
            [1, token, stamp, slots @ ..] if !slots.is_empty() => Some((
                Acquired::Granted {
                    token: u64::try_from(*token).ok()?,
                    slots: slots_of(slots)?,
                },
                u64::try_from(*stamp).ok()?,
            )),
            [0, wait, stamp] => Some((
                Acquired::Busy {
                    wait_ms: u64::try_from(*wait).ok(),
                },
                u64::try_from(*stamp).ok()?,
            )),
            _ => None,
        }
    }
}

/// What the status script reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) available: u32,
    pub(crate) limit: u32,
    pub(crate) held: u32,
    /// The stored permit count.
    pub(crate) permits: u32,
    /// The held slots, when they were asked for.
    pub(crate) slots: Vec<u32>,
}

impl Status {
    pub(crate) fn parse(reply: &[i64]) -> Option<Self> {
        match reply {
            [available, limit, held, _wait, permits, slots @ ..] => Some(Status {
                available: u32::try_from(*available).ok()?,
                limit: u32::try_from(*limit).ok()?,
                held: u32::try_from(*held).ok()?,
                permits: u32::try_from(*permits).ok()?,
                slots: slots_of(slots)?,
            }),
            _ => None,
        }
    }
}

/// Slot numbers from a script reply; `None` if one is out of range.
pub(crate) fn slots_of(reply: &[i64]) -> Option<Vec<u32>> {
    reply.iter().map(|&s| u32::try_from(s).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_one_hash_tag() {
        let keys = Keys::new("jobs");
        assert_eq!(keys.as_slice()[0], "semaphore:{jobs}:config");
        assert_eq!(keys.channel(), "semaphore:{jobs}:wake");
        assert!(
            keys.as_slice()
                .iter()
                .all(|k| k.starts_with("semaphore:{jobs}:"))
        );
    }

    #[test]
    fn parses_replies() {
        assert_eq!(
            Acquired::parse(&[1, 7, 1000, 0, 2]),
            Some((
                Acquired::Granted {
                    token: 7,
                    slots: vec![0, 2]
                },
                1000
            ))
        );
        assert_eq!(
            Acquired::parse(&[0, 15, 9]),
            Some((Acquired::Busy { wait_ms: Some(15) }, 9))
        );
        assert_eq!(
            Acquired::parse(&[0, -1, 9]),
            Some((Acquired::Busy { wait_ms: None }, 9))
        );
        assert_eq!(Acquired::parse(&[0, 15]), None);
        assert_eq!(Acquired::parse(&[1, 7, 1000]), None);
        assert_eq!(Acquired::parse(&[1, -7, 1000, 1]), None);
        assert_eq!(
            Status::parse(&[1, 3, 2, 10, 3]),
            Some(Status {
                available: 1,
                limit: 3,
                held: 2,
                permits: 3,
                slots: vec![]
            })
        );
        assert_eq!(
            Status::parse(&[1, 3, 2, 10, 3, 0, 2]).map(|s| s.slots),
            Some(vec![0, 2])
        );
        assert_eq!(Status::parse(&[1, 3]), None);
    }
}
