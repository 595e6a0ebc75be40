//! `status.lua`: its arguments and its reply.

use redis::ToRedisArgs;

use super::holders::Cursor;
use super::{Args, Caller, slots_of};

/// `status.lua`'s ARGV; its reply is a [`Status`].
pub(crate) fn status_args(caller: Caller, list: bool) -> Args {
    args![caller, u8::from(list)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statuses() {
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
    }
}
