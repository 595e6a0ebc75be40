//! `renew.lua`: a renewal, which also settles an acquire on several masters and spreads a
//! permit to the masters that did not grant it. Its reply is the slots held afterwards
//! ([`slots_of`](super::slots_of)).

use redis::ToRedisArgs;

use super::{Args, Caller};

/// `renew.lua`'s ARGV.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenewArgs<'a> {
    pub(crate) caller: Caller,
    pub(crate) id: &'a str,
    pub(crate) lease_ms: u64,
    pub(crate) token: u64,
    pub(crate) claim: bool,
    pub(crate) line: &'a str,
    pub(crate) slots: &'a [u32],
}

impl RenewArgs<'_> {
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
