//! `acquire.lua`: its arguments, and one master's answer.

use redis::ToRedisArgs;

use super::{Args, Caller, slots_of};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers() {
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
    }
}
