//! redsem's exit statuses. They are chosen as GNU `timeout` chooses its own, so that none
//! of redsem's can be taken for the command's.

use std::process::ExitStatus;

use nix::sys::signal::Signal;

/// No permit came within `--timeout` (as GNU `timeout` exits when its time is up).
pub(crate) const TIMEOUT: u8 = 124;
/// redsem itself failed: bad arguments, masters unreachable, a count that does not match
/// the stored one, or the lease lost while the command ran (which was then stopped). As GNU
/// `timeout` exits when it fails itself.
pub(crate) const FAILED: u8 = 125;
/// The command exists but could not be run.
pub(crate) const CANNOT_RUN: u8 = 126;
/// The command was not found.
pub(crate) const NOT_FOUND: u8 = 127;

/// redsem's status when `signal` ended it before the command ran: 128 + N, as a shell
/// reports a process that signal N killed.
pub(crate) fn signalled(signal: Signal) -> u8 {
    128 + signal as u8
}

/// The status for a command that could not be started.
pub(crate) fn cannot_start(error: &std::io::Error) -> u8 {
    if error.kind() == std::io::ErrorKind::NotFound {
        NOT_FOUND
    } else {
        CANNOT_RUN
    }
}

/// The command's status as redsem's: its code, or 128 + the signal that ended it.
pub(crate) fn of_command(status: Option<ExitStatus>) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return FAILED;
    };
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(FAILED),
        (None, None) => FAILED,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn the_commands_status_passes_through() {
        // Raw wait statuses: the code in the second byte, or the signal in the low bits.
        assert_eq!(of_command(Some(ExitStatus::from_raw(0))), 0);
        assert_eq!(of_command(Some(ExitStatus::from_raw(3 << 8))), 3);
        assert_eq!(of_command(Some(ExitStatus::from_raw(9))), 128 + 9);
        assert_eq!(of_command(None), FAILED);
        assert_eq!(signalled(Signal::SIGTERM), 143);
    }
}
