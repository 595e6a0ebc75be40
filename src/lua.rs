//! The Lua scripts (`src/lua/*.lua`, with the helpers they include from `src/lua/lib/`) and
//! a typed call to each: one struct per script whose fields are its `ARGV` in order, with
//! its reply's parser beside it, in a file beside the script (`src/lua/acquire.rs` for
//! `acquire.lua`; the scripts whose `ARGV` is a count, `grow`, `resize` and `delete`, here).
//!
//! `build.rs` puts each script together with the library files it names (`--- @include`)
//! at compile time. In front of that, this module writes a header with what the Rust side
//! and the scripts must agree on, defined here once: the keys in their order, the wake-up
//! channel, the error codes, and `PUBLISH` or `SPUBLISH` (a cluster, where the channel
//! shares the keys' hash tag and so their shard). `redis::Script` sends EVALSHA and loads
//! the script only when the server answers NOSCRIPT (a master restarted or failed over).
//!
//! The data model the scripts keep is in `docs/ARCHITECTURE.md`.

use std::sync::LazyLock;

use redis::{FromRedisValue, RedisWrite, Script, ToRedisArgs};

/// One script in its two forms, publishing with `PUBLISH` (a plain server) or `SPUBLISH`
/// (a cluster).
#[derive(Debug)]
pub(crate) struct Scripted {
    /// The script's file name, `acquire.lua`: what traces and test links know it by.
    pub(crate) file: &'static str,
    pub(crate) plain: Script,
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) sharded: Script,
}

impl Scripted {
    fn new(file: &'static str, body: &str) -> Self {
        Scripted {
            file,
            plain: Script::new(&format!("{}{body}", header("PUBLISH", "NUMSUB"))),
            sharded: Script::new(&format!("{}{body}", header("SPUBLISH", "SHARDNUMSUB"))),
        }
    }
}

/// The keys of one semaphore, in the order the scripts take them, with the names the
/// scripts know them by.
const KEYS: [(&str, &str); 4] = [
    ("CONFIG", "config"),
    ("SLOTS", "slots"),
    ("HOLDS", "holds"),
    ("QUEUE", "queue"),
];

/// The last part of the wake-up channel's name, in place of a key's.
const CHANNEL: &str = "wake";

/// The error codes the scripts raise (the first word of the error), mapped to
/// [`crate::Error`] variants by `master.rs`.
pub(crate) mod code {
    /// A key of the semaphore holds something this library did not write.
    pub(crate) const WRONG_TYPE: &str = "SEMWRONGTYPE";
    /// A handle adopting the stored count found no semaphore.
    pub(crate) const NOT_FOUND: &str = "SEMNOTFOUND";
    /// The stored permit count or boundedness differs from the handle's; the detail is the
    /// stored count and boundedness (`3 1`).
    pub(crate) const CONFIG: &str = "SEMCONFIG";
    /// A permit count past the most a client can count.
    pub(crate) const LIMIT: &str = "SEMLIMIT";
}

/// The most permits one call may ask for: `acquire_many(k)` and its siblings refuse a
/// larger `k` at once with [`Error::InvalidArgument`](crate::Error::InvalidArgument), on
/// every semaphore.
///
/// Redis runs one script at a time for all of its clients, so a script that walked a
/// million slots would stall every other user of the server for seconds. Every script of
/// this library does a bounded amount of work, and a permit of `k` slots costs a grant,
/// a renewal and a release that each walk its `k` slots: hence the cap. A caller that
/// needs more should count in bigger units: a semaphore of 64 permits of 1 GiB each, not
/// 65,536 permits of 1 MiB.
pub const MAX_ACQUIRE_MANY: u32 = 1000;

/// How much one script may do, whatever its arguments and whatever state it finds: Redis
/// runs one script at a time for every client of the server, so a script's length is a
/// stall of the whole server. Each bound is sent to the scripts in their header.
pub(crate) mod bound {
    /// The most slots one permit holds ([`super::MAX_ACQUIRE_MANY`]): what one grant,
    /// renewal or release walks.
    pub(crate) const SLOTS: u32 = super::MAX_ACQUIRE_MANY;
    /// The most expired slots one script reclaims; the rest are reclaimed by the next
    /// scripts, a batch each (they stay held until then: never granted twice).
    pub(crate) const RECLAIM: u32 = 1000;
    /// The most slots one script grants to registered waiters (pushed grants); a line
    /// whose request does not fit is woken to ask itself.
    pub(crate) const PUSH: u32 = 1000;
    /// The most held slots one call lists (`holders`, and the status of several masters):
    /// the client asks again for the next page.
    pub(crate) const PAGE: u32 = 1000;
    /// How long (ms) a waiter may stay silent once it is its turn: a grant pushed to it
    /// lasts this long until its first renewal, and a line named in a wake-up keeps its
    /// place this long without asking ([`crate::WAITER_LEASE`]).
    pub(crate) const PUSHED_MS: u64 = 1000;
    /// How long (ms) after joining the queue a line counts as listening though its
    /// process is not subscribed yet: a waiter subscribes once told to wait, then asks
    /// again at once. A line dropped meanwhile loses nothing but a turn's lead: it joins
    /// again at its first arrival.
    pub(crate) const JOIN_GRACE_MS: u64 = 250;
}

fn header(publish: &str, numsub: &str) -> String {
    let names: Vec<&str> = KEYS.iter().map(|(name, _)| *name).collect();
    let keys: Vec<String> = (1..=KEYS.len()).map(|i| format!("KEYS[{i}]")).collect();
    // 'semaphore:{name}:config' -> 'semaphore:{name}:wake'
    let config_suffix = KEYS[0].1.len();
    format!(
        "local PUBLISH, NUMSUB = '{publish}', '{numsub}'\n\
         local {} = {}\n\
         local CHANNEL = string.sub(CONFIG, 1, -{}) .. '{CHANNEL}'\n\
         local E_WRONGTYPE, E_NOTFOUND, E_CONFIG, E_LIMIT = '{}', '{}', '{}', '{}'\n\
         local MAX_SLOTS, RECLAIM_BATCH, PUSH_BUDGET, PAGE = {}, {}, {}, {}\n\
         local PUSHED_MS, JOIN_GRACE_MS = {}, {}\n",
        names.join(", "),
        keys.join(", "),
        config_suffix + 1,
        code::WRONG_TYPE,
        code::NOT_FOUND,
        code::CONFIG,
        code::LIMIT,
        bound::SLOTS,
        bound::RECLAIM,
        bound::PUSH,
        bound::PAGE,
        bound::PUSHED_MS,
        bound::JOIN_GRACE_MS,
    )
}

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Scripted::new(
                $file,
                include_str!(concat!(env!("OUT_DIR"), "/lua/", $file)),
            )
        })
    };
}

pub(crate) static ACQUIRE: LazyLock<Scripted> = script!("acquire.lua");
pub(crate) static RENEW: LazyLock<Scripted> = script!("renew.lua");
pub(crate) static RELEASE: LazyLock<Scripted> = script!("release.lua");
pub(crate) static STATUS: LazyLock<Scripted> = script!("status.lua");
pub(crate) static GROW: LazyLock<Scripted> = script!("grow.lua");
pub(crate) static HOLDERS: LazyLock<Scripted> = script!("holders.lua");
pub(crate) static RESIZE: LazyLock<Scripted> = script!("resize.lua");
pub(crate) static DELETE: LazyLock<Scripted> = script!("delete.lua");

/// The keys of one semaphore, in the order the scripts take them. They share the hash tag
/// `{name}`, so on a cluster they live on one shard.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    name: String,
    keys: [String; KEYS.len()],
}

impl Keys {
    pub(crate) fn new(name: &str) -> Self {
        Keys {
            name: name.to_string(),
            keys: KEYS.map(|(_, part)| key(name, part)),
        }
    }

    /// The semaphore's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The channel the scripts publish wake-ups for anyone on (not a key, but named like
    /// one).
    pub(crate) fn channel(&self) -> String {
        let config = &self.keys[0];
        format!("{}{CHANNEL}", &config[..config.len() - KEYS[0].1.len()])
    }

    /// The channel the scripts wake the queued lines of `process` on.
    pub(crate) fn process_channel(&self, process: &str) -> String {
        format!("{}:{process}", self.channel())
    }

    pub(crate) fn as_slice(&self) -> &[String] {
        &self.keys
    }
}

fn key(name: &str, part: &str) -> String {
    format!("semaphore:{{{name}}}:{part}")
}

/// Script arguments in their wire form (a slice becomes one argument per item).
pub(crate) type Args = Vec<Vec<u8>>;

/// Appends each value's wire form to an [`Args`].
macro_rules! args {
    ($($arg:expr),* $(,)?) => {{
        let mut args: Args = Vec::new();
        $(args.extend(ToRedisArgs::to_redis_args(&$arg));)*
        args
    }};
}

mod acquire;
mod holders;
mod release;
mod renew;
mod status;

pub(crate) use acquire::{AcquireArgs, Acquired, Answer, Queue};
pub(crate) use holders::{Cursor, HeldPage, HeldSlot, holders_args};
pub(crate) use release::ReleaseArgs;
pub(crate) use renew::RenewArgs;
pub(crate) use status::{Status, status_args};

/// A duration in whole milliseconds, at least 1.
pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The caller's configuration, every script's `ARGV[1]`: its permit count, negative for an
/// unbounded handle; 0 adopts the stored configuration (a handle from `open`, before it
/// has read it), and `-0` is an unbounded semaphore of zero permits (opened by releases;
/// a bounded one of zero permits is refused by the builder, so `0` stays free for `open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub(crate) permits: u32,
    pub(crate) bounded: bool,
}

impl Caller {
    fn wire(self) -> i64 {
        let permits = i64::from(self.permits);
        if self.bounded { permits } else { -permits }
    }
}

impl ToRedisArgs for Caller {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        if self.permits == 0 && !self.bounded {
            // An integer has no negative zero: the sign is what says "unbounded".
            out.write_arg(b"-0");
        } else {
            self.wire().write_redis_args(out);
        }
    }
}

/// `grow.lua`'s and `resize.lua`'s ARGV: the caller's count and `n`. The reply is the
/// new limit.
pub(crate) fn count_args(caller: Caller, n: u32) -> Args {
    args![caller, n]
}

/// Slot numbers from a script reply; `None` if one is out of range.
pub(crate) fn slots_of(reply: &[i64]) -> Option<Vec<u32>> {
    reply.iter().map(|&s| u32::try_from(s).ok()).collect()
}

/// A reply of integers (`None` if one is not).
pub(crate) fn ints(reply: &[redis::Value]) -> Option<Vec<i64>> {
    reply
        .iter()
        .map(|v| i64::from_redis_value(v.clone()).ok())
        .collect()
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
    fn the_header_names_every_key_in_order() {
        let header = header("PUBLISH", "NUMSUB");
        assert!(
            header
                .contains("local CONFIG, SLOTS, HOLDS, QUEUE = KEYS[1], KEYS[2], KEYS[3], KEYS[4]"),
            "{header}"
        );
        assert!(
            header.contains("string.sub(CONFIG, 1, -7) .. 'wake'"),
            "{header}"
        );
    }

    #[test]
    fn every_script_is_assembled_with_its_includes() {
        for (name, script) in [
            ("acquire", &*ACQUIRE),
            ("renew", &*RENEW),
            ("release", &*RELEASE),
            ("status", &*STATUS),
            ("grow", &*GROW),
            ("holders", &*HOLDERS),
            ("resize", &*RESIZE),
            ("delete", &*DELETE),
        ] {
            let text = include_text(name);
            assert!(!text.contains("--- @include"), "{name}: include left in");
            assert!(text.contains("local function now_ms"), "{name}: no clock");
            // Each helper is put in once.
            assert_eq!(text.matches("local function now_ms").count(), 1, "{name}");
            assert_ne!(script.plain.get_hash(), script.sharded.get_hash(), "{name}");
        }
    }

    fn include_text(name: &str) -> &'static str {
        match name {
            "acquire" => include_str!(concat!(env!("OUT_DIR"), "/lua/acquire.lua")),
            "renew" => include_str!(concat!(env!("OUT_DIR"), "/lua/renew.lua")),
            "release" => include_str!(concat!(env!("OUT_DIR"), "/lua/release.lua")),
            "status" => include_str!(concat!(env!("OUT_DIR"), "/lua/status.lua")),
            "grow" => include_str!(concat!(env!("OUT_DIR"), "/lua/grow.lua")),
            "holders" => include_str!(concat!(env!("OUT_DIR"), "/lua/holders.lua")),
            "resize" => include_str!(concat!(env!("OUT_DIR"), "/lua/resize.lua")),
            "delete" => include_str!(concat!(env!("OUT_DIR"), "/lua/delete.lua")),
            _ => unreachable!(),
        }
    }
}
