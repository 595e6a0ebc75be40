//! The Lua scripts (`src/lua/*.lua`, with the helpers they include from `src/lua/lib/`) and
//! a typed call to each: one struct per script whose fields are its `ARGV` in order, with
//! its reply's parser beside it.
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

/// How an acquire treats a fair semaphore's waiter queue (`acquire.lua`'s `queue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    /// An unfair handle: grant whatever is free.
    Ignore = 0,
    /// Wait in line: join the queue (or keep the place) when not granted.
    Join = 1,
    /// A try: respect the queue, but do not join it.
    Respect = 2,
}

/// `acquire.lua`'s ARGV.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcquireArgs<'a> {
    pub(crate) caller: Caller,
    pub(crate) id: &'a str,
    pub(crate) k: u32,
    pub(crate) lease_ms: u64,
    pub(crate) queue: Queue,
    pub(crate) waiter_ms: u64,
    pub(crate) line: &'a str,
    pub(crate) more: bool,
    pub(crate) arrival: u64,
    pub(crate) again: u64,
    pub(crate) push: bool,
    pub(crate) waits: bool,
}

impl AcquireArgs<'_> {
    pub(crate) fn args(&self) -> Args {
        args![
            self.caller,
            self.id,
            self.k,
            self.lease_ms,
            self.queue as u8,
            self.waiter_ms,
            self.line,
            u8::from(self.more),
            self.arrival,
            self.again,
            u8::from(self.push),
            u8::from(self.waits)
        ]
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

/// One master's answer to an acquire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) acquired: Acquired,
    /// The script's stamp (its time in microseconds).
    pub(crate) stamp: u64,
    /// Busy and queued: the lines ahead of the caller's.
    pub(crate) ahead: Option<u64>,
}

impl Answer {
    /// One master's reply to `acquire.lua`.
    pub(crate) fn parse(reply: &[i64]) -> Option<Self> {
        let (acquired, stamp, ahead) = match reply {
            [1, token, stamp, slots @ ..] if !slots.is_empty() => (
                Acquired::Granted {
                    token: u64::try_from(*token).ok()?,
                    slots: slots_of(slots)?,
                },
                stamp,
                None,
            ),
            [0, wait, stamp, ahead] => (
                Acquired::Busy {
                    wait_ms: u64::try_from(*wait).ok(),
                },
                stamp,
                u64::try_from(*ahead).ok(),
            ),
            _ => return None,
        };
        Some(Answer {
            acquired,
            stamp: u64::try_from(*stamp).ok()?,
            ahead,
        })
    }
}

/// `hold.lua`'s ARGV. The reply is the slots held afterwards ([`slots_of`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HoldArgs<'a> {
    pub(crate) caller: Caller,
    pub(crate) id: &'a str,
    pub(crate) lease_ms: u64,
    pub(crate) token: u64,
    pub(crate) claim: bool,
    pub(crate) line: &'a str,
    pub(crate) slots: &'a [u32],
}

impl HoldArgs<'_> {
    pub(crate) fn args(&self) -> Args {
        args![
            self.caller,
            self.id,
            self.lease_ms,
            self.token,
            u8::from(self.claim),
            self.line,
            self.slots
        ]
    }
}

/// `release.lua`'s ARGV. The reply is the number of slots freed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReleaseArgs<'a> {
    pub(crate) caller: Caller,
    pub(crate) id: &'a str,
    pub(crate) line: &'a str,
    pub(crate) leave: bool,
    /// None given frees all of the id's slots.
    pub(crate) slots: &'a [u32],
}

impl ReleaseArgs<'_> {
    pub(crate) fn args(&self) -> Args {
        args![
            self.caller,
            self.id,
            self.line,
            u8::from(self.leave),
            self.slots
        ]
    }
}

/// `status.lua`'s ARGV; its reply is a [`Status`].
pub(crate) fn status_args(caller: Caller, list: bool) -> Args {
    args![caller, u8::from(list)]
}

/// Where a page of held slots ends: the last slot listed and its lease expiry (ms), from
/// which `holders.lua` lists the next page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) expiry: u64,
    pub(crate) slot: u32,
}

/// `holders.lua`'s ARGV: the page after `after` (None: the first), with each slot's
/// holder when `detail`. Its reply is parsed by [`HeldPage::parse`].
pub(crate) fn holders_args(caller: Caller, detail: bool, after: Option<Cursor>) -> Args {
    match after {
        Some(Cursor { expiry, slot }) => args![caller, u8::from(detail), expiry, slot],
        None => args![caller, u8::from(detail), "", ""],
    }
}

/// A page of `holders.lua`'s reply: the cursor of the next page (None: this was the last)
/// and the entries, each `width` values.
#[derive(Debug, Clone)]
pub(crate) struct HeldPage<'a> {
    /// The slots held on the master (expired leases not reclaimed yet included).
    pub(crate) held: u64,
    pub(crate) next: Option<Cursor>,
    pub(crate) entries: std::slice::ChunksExact<'a, redis::Value>,
}

impl<'a> HeldPage<'a> {
    /// Splits a reply whose entries are `width` values each; `None` if it has another
    /// shape.
    pub(crate) fn parse(reply: &'a [redis::Value], width: usize) -> Option<Self> {
        let int = |v: &redis::Value| i64::from_redis_value(v.clone()).ok();
        let [held, more, expiry, slot, entries @ ..] = reply else {
            return None;
        };
        if !entries.len().is_multiple_of(width) {
            return None;
        }
        let next = match int(more)? {
            0 => None,
            1 => Some(Cursor {
                expiry: u64::try_from(int(expiry)?).ok()?,
                slot: u32::try_from(int(slot)?).ok()?,
            }),
            _ => return None,
        };
        Some(HeldPage {
            held: u64::try_from(int(held)?).ok()?,
            next,
            entries: entries.chunks_exact(width),
        })
    }
}

/// `grow.lua`'s and `resize.lua`'s ARGV: the caller's count and `n`. The reply is the
/// new limit.
pub(crate) fn count_args(caller: Caller, n: u32) -> Args {
    args![caller, n]
}

/// What the status script reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) available: u32,
    pub(crate) limit: u32,
    pub(crate) held: u32,
    /// The stored permit count.
    pub(crate) permits: u32,
    /// Whether the semaphore is stored as bounded.
    pub(crate) bounded: bool,
    /// The held slots, when they were asked for: the first page of them.
    pub(crate) slots: Vec<u32>,
    /// Where the held slots go on when there are more than a page of them (the rest come
    /// from `holders.lua`).
    pub(crate) more: Option<Cursor>,
}

impl Status {
    pub(crate) fn parse(reply: &[i64]) -> Option<Self> {
        match reply {
            [
                available,
                limit,
                held,
                _wait,
                permits,
                bounded @ (0 | 1),
                more @ (0 | 1),
                expiry,
                slot,
                slots @ ..,
            ] => Some(Status {
                available: u32::try_from(*available).ok()?,
                limit: u32::try_from(*limit).ok()?,
                held: u32::try_from(*held).ok()?,
                permits: u32::try_from(*permits).ok()?,
                bounded: *bounded == 1,
                slots: slots_of(slots)?,
                more: match more {
                    1 => Some(Cursor {
                        expiry: u64::try_from(*expiry).ok()?,
                        slot: u32::try_from(*slot).ok()?,
                    }),
                    _ => None,
                },
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
            ("hold", &*HOLD),
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
            "hold" => include_str!(concat!(env!("OUT_DIR"), "/lua/hold.lua")),
            "release" => include_str!(concat!(env!("OUT_DIR"), "/lua/release.lua")),
            "status" => include_str!(concat!(env!("OUT_DIR"), "/lua/status.lua")),
            "grow" => include_str!(concat!(env!("OUT_DIR"), "/lua/grow.lua")),
            "holders" => include_str!(concat!(env!("OUT_DIR"), "/lua/holders.lua")),
            "resize" => include_str!(concat!(env!("OUT_DIR"), "/lua/resize.lua")),
            "delete" => include_str!(concat!(env!("OUT_DIR"), "/lua/delete.lua")),
            _ => unreachable!(),
        }
    }

    #[test]
    fn parses_replies() {
        let answer = |acquired, stamp, ahead| {
            Some(Answer {
                acquired,
                stamp,
                ahead,
            })
        };
        assert_eq!(
            Answer::parse(&[1, 7, 1000, 0, 2]),
            answer(
                Acquired::Granted {
                    token: 7,
                    slots: vec![0, 2]
                },
                1000,
                None
            )
        );
        assert_eq!(
            Answer::parse(&[0, 15, 9, 3]),
            answer(Acquired::Busy { wait_ms: Some(15) }, 9, Some(3))
        );
        assert_eq!(
            Answer::parse(&[0, -1, 9, -1]),
            answer(Acquired::Busy { wait_ms: None }, 9, None)
        );
        assert_eq!(Answer::parse(&[0, 15, 9]), None);
        assert_eq!(Answer::parse(&[1, 7, 1000]), None);
        assert_eq!(Answer::parse(&[1, -7, 1000, 1]), None);
        assert_eq!(
            Status::parse(&[1, 3, 2, 10, 3, 0, 0, 0, 0]),
            Some(Status {
                available: 1,
                limit: 3,
                held: 2,
                permits: 3,
                bounded: false,
                slots: vec![],
                more: None,
            })
        );
        assert_eq!(
            Status::parse(&[1, 3, 2, 10, 3, 1, 0, 0, 0, 0, 2]).map(|s| (s.bounded, s.slots)),
            Some((true, vec![0, 2]))
        );
        assert_eq!(
            Status::parse(&[1, 3, 2, 10, 3, 1, 1, 5_000_000_000, 2, 0, 2]).map(|s| s.more),
            Some(Some(Cursor {
                expiry: 5_000_000_000,
                slot: 2
            }))
        );
        assert_eq!(Status::parse(&[1, 3]), None);
        assert_eq!(Status::parse(&[1, 3, 2, 10, 3, 2, 0, 0, 0]), None);
        assert_eq!(Status::parse(&[1, 3, 2, 10, 3, 1, 2, 0, 0]), None);
        let page = [5, 1, 7_000, 3, 3, 7_000].map(redis::Value::Int);
        let parsed = HeldPage::parse(&page, 2).expect("a page of two slots");
        assert_eq!(
            (parsed.held, parsed.next, parsed.entries.len()),
            (
                5,
                Some(Cursor {
                    expiry: 7_000,
                    slot: 3
                }),
                1
            )
        );
        assert!(HeldPage::parse(&page[..5], 2).is_none());
    }

    #[test]
    fn arguments_go_in_the_order_the_scripts_read_them() {
        let args = AcquireArgs {
            caller: Caller {
                permits: 3,
                bounded: false,
            },
            id: "id",
            k: 2,
            lease_ms: 500,
            queue: Queue::Respect,
            waiter_ms: 1000,
            line: "line",
            more: true,
            arrival: 11,
            again: 12,
            push: false,
            waits: true,
        }
        .args();
        let text: Vec<String> = args
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect();
        assert_eq!(
            text,
            [
                "-3", "id", "2", "500", "2", "1000", "line", "1", "11", "12", "0", "1"
            ]
        );
        let release = ReleaseArgs {
            caller: Caller {
                permits: 0,
                bounded: true,
            },
            id: "id",
            line: "",
            leave: false,
            slots: &[4, 5],
        }
        .args();
        assert_eq!(release.len(), 6);
    }
}
