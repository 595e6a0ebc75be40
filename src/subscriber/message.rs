//! Wake-up messages: what a script publishes (its stamp, then the lines it names, some
//! with a pushed grant), what one means for a waiter line ([`for_line`]), and the ids of
//! lines and processes that the channels and messages are written with.

use std::sync::{Arc, Mutex, PoisonError};

/// A wake-up: the publishing script's stamp, then the waiter lines the free slots are kept
/// for (none: anyone may try), separated by spaces.
pub(crate) type Wake = Arc<str>;

/// This process's part of its waiter lines' ids, and so of its wake-up channels: 64
/// random bits, made again in a forked child (which must not share its parent's channel).
pub(crate) fn process_id() -> String {
    static PROCESS: Mutex<Option<(u32, String)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut process = PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
    match &*process {
        Some((made_in, id)) if *made_in == pid => id.clone(),
        _ => {
            let id = format!("{:016x}", rand::random::<u64>());
            *process = Some((pid, id.clone()));
            id
        }
    }
}

/// A fresh waiter line id: this process's id, a dot, then 64 random bits. The scripts
/// read the process from it, to wake the line on its process's channel.
pub(crate) fn line_id() -> String {
    format!("{}.{:016x}", process_id(), rand::random::<u64>())
}

/// The part of a line's id before the dot: its process.
pub(crate) fn process_of(line: &str) -> Option<&str> {
    line.split_once('.').map(|(process, _)| process)
}

/// What a wake-up means for one waiter line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Named {
    /// Not for it (kept for other lines), or stale.
    Not,
    /// Its turn, or anyone's: ask.
    Ask,
    /// The waiter registered as `id` was granted these slots with this token, by the script
    /// that freed them, stamped `stamp` (µs on the master's clock).
    Granted {
        id: String,
        token: u64,
        slots: Vec<u32>,
        stamp: u64,
    },
}

/// What wake-up `wake` ("stamp entry entry ...", an entry being `line` or
/// `line=id:token:slot,slot`) means for waiter line `line`. It is stale when stamped before
/// `seen`, the stamp of the line's last answered request on that master (whose own wake-up
/// may name the line). No entries: anyone may try. An empty wake-up (the subscriber
/// reconnected) is for everyone.
pub(crate) fn for_line(wake: &str, line: &str, seen: u64) -> Named {
    let mut parts = wake.split(' ').filter(|p| !p.is_empty());
    let Some(stamp) = parts.next() else {
        return Named::Ask;
    };
    let stamp = stamp.parse::<u64>().ok();
    if stamp.is_some_and(|stamp| stamp < seen) {
        return Named::Not;
    }
    let mut entries = parts.peekable();
    if entries.peek().is_none() {
        return Named::Ask;
    }
    for entry in entries {
        let (named, grant) = entry.split_once('=').unwrap_or((entry, ""));
        if named != line {
            continue;
        }
        return stamp
            .and_then(|stamp| parse_grant(grant, stamp))
            .unwrap_or(Named::Ask);
    }
    Named::Not
}

/// `id:token:slot,slot` in a wake-up stamped `stamp`, or None.
fn parse_grant(grant: &str, stamp: u64) -> Option<Named> {
    let mut fields = grant.split(':');
    let id = fields.next().filter(|id| !id.is_empty())?.to_string();
    let token = fields.next()?.parse().ok()?;
    let slots = fields
        .next()?
        .split(',')
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    Some(Named::Granted {
        id,
        token,
        slots,
        stamp,
    })
}

#[cfg(test)]
mod tests {
    use super::{Named, for_line};

    #[test]
    fn wake_ups_are_for_named_lines_and_fresh() {
        assert_eq!(
            for_line("", "a", 100),
            Named::Ask,
            "a reconnect wakes everyone"
        );
        assert_eq!(
            for_line("100", "a", 100),
            Named::Ask,
            "no line named: anyone"
        );
        assert_eq!(for_line("150 b a", "a", 100), Named::Ask);
        assert_eq!(for_line("150 b c", "a", 100), Named::Not, "kept for others");
        assert_eq!(for_line("99 a", "a", 100), Named::Not, "stale");
    }

    #[test]
    fn wake_ups_carry_grants() {
        assert_eq!(
            for_line("150 b=x:7:0 a=id1:42:3,5", "a", 100),
            Named::Granted {
                id: "id1".into(),
                token: 42,
                slots: vec![3, 5],
                stamp: 150,
            }
        );
        assert_eq!(for_line("150 a=id1:42:3", "b", 100), Named::Not);
        assert_eq!(for_line("150 a=garbled", "a", 100), Named::Ask);
    }
}
