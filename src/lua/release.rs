//! `release.lua`: its arguments; the reply is the number of slots freed.

use redis::ToRedisArgs;

use super::{Args, Caller};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_arguments_list_the_slots() {
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
