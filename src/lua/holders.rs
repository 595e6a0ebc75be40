//! `holders.lua`: its arguments, its pages and the held slots they list.

use std::time::Duration;

use redis::{FromRedisValue, ToRedisArgs};

use super::{Args, Caller};

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

/// One slot held on one master, as the holders script lists it.
#[derive(Debug, Clone)]
pub(crate) struct HeldSlot {
    pub(crate) master: usize,
    pub(crate) slot: u32,
    pub(crate) id: String,
    pub(crate) token: u64,
    pub(crate) lease_left: Duration,
}

impl HeldSlot {
    /// One entry of a `holders.lua` page from master `master`: `{slot, id, token, ms_left}`,
    /// or `{slot}` alone (then with no id, token 0 and no time left).
    pub(crate) fn parse(master: usize, entry: &[redis::Value]) -> Option<HeldSlot> {
        let int = |v: &redis::Value| i64::from_redis_value(v.clone()).ok();
        let slot = u32::try_from(int(entry.first()?)?).ok()?;
        let (id, token, ms_left) = match entry {
            [_] => (String::new(), 0, 0),
            [_, id, token, ms_left] => (
                String::from_redis_value(id.clone()).ok()?,
                u64::try_from(int(token)?).ok()?,
                u64::try_from(int(ms_left)?).ok()?,
            ),
            _ => return None,
        };
        Some(HeldSlot {
            master,
            slot,
            id,
            token,
            lease_left: Duration::from_millis(ms_left),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pages() {
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
}
