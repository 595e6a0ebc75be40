//! The command while redsem holds its permit: how it is started (its environment, its own
//! process group, its death with redsem), the signals passed on to it, and how it and what
//! it leaves behind are stopped.

use std::process::ExitStatus;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use redis_semaphore::{AsyncSemaphore, Error, Permit};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::cli::RunArgs;
use crate::duration::human;
use crate::exit;
use crate::explain::loss_reason;
use crate::signals::Signals;

/// How often redsem looks whether the processes it is stopping are gone.
const POLL: Duration = Duration::from_millis(20);
/// How long redsem waits for the kernel to tear down what it sent SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// The command of `args`, set up to run under `permit`: the permit's facts in its
/// environment, in a process group of its own (unless `--foreground`), and killed with
/// redsem (unless `--survive-redsem`).
pub(crate) fn command(args: &RunArgs, permit: &Permit) -> Command {
    let slots = permit
        .slots()
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("REDSEM_NAME", args.name.get())
        .env("REDSEM_PERMIT_ID", permit.id())
        .env("REDSEM_FENCING_TOKEN", permit.fencing_token().to_string())
        .env("REDSEM_SLOTS", slots);
    if !args.foreground {
        command.process_group(0);
    }
    if !args.survive_redsem {
        die_with_redsem(&mut command);
    }
    command
}

/// Asks the kernel to SIGKILL the command when redsem dies (Linux: `PR_SET_PDEATHSIG`).
/// That covers the command's own process only; what it started itself is not signalled.
/// The signal comes when the thread that spawned the command ends, so redsem spawns it
/// from its main thread.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_redsem(command: &mut Command) {
    let redsem = nix::unistd::getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls may be made: it makes two system calls (prctl, getppid),
    // and neither it nor they allocate or take a lock.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // redsem may have died before the call above took effect: nobody would send
            // the signal then, so do not run the command at all.
            if nix::unistd::getppid() != redsem {
                return Err(std::io::Error::from(nix::errno::Errno::ESRCH));
            }
            Ok(())
        });
    }
}

/// Elsewhere there is no parent-death signal: the command runs on if redsem dies, until
/// its lease runs out.
#[cfg(not(target_os = "linux"))]
fn die_with_redsem(_command: &mut Command) {}

/// Whom redsem's signals reach.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// The command's process group (its id is the command's pid), so every process the
    /// command started that did not leave the group.
    Group(Pid),
    /// The command's own process.
    Child(Pid),
}

/// The command, while redsem supervises it.
pub(crate) struct Supervised {
    child: Child,
    /// Set once the command's own process has exited (and was reaped: its pid may be
    /// reused, so it is not signalled any more).
    status: Option<ExitStatus>,
    target: Target,
    grace: Duration,
}

impl Supervised {
    /// Takes charge of the command started from `args`; `None` if it has no process id.
    pub(crate) fn new(child: Child, args: &RunArgs) -> Option<Self> {
        let pid = Pid::from_raw(child.id().and_then(|id| i32::try_from(id).ok())?);
        // In the foreground the command shares redsem's group: signalling that group would
        // signal redsem (and the shell's job) too.
        let target = if args.foreground || args.child_only {
            Target::Child(pid)
        } else {
            Target::Group(pid)
        };
        Some(Supervised {
            child,
            status: None,
            target,
            grace: args.grace,
        })
    }

    /// Runs until the command exits (then stops what it left in its group, releases and
    /// returns its status), or the lease is lost (then stops the command: 125), passing
    /// signals on to it.
    pub(crate) async fn supervise(
        &mut self,
        name: &str,
        sem: &AsyncSemaphore,
        permit: Permit,
        quiet: bool,
        signals: &mut Signals,
    ) -> u8 {
        if self.lost_before_exit(&permit, signals).await {
            eprintln!(
                "redsem: lost the permit of {name} ({}); stopping the command",
                loss_reason(sem)
            );
            self.stop(signals).await;
            // Whatever the masters still hold for it goes; the answer is known (lost).
            let _ = permit.release().await;
            return exit::FAILED;
        }
        if self.running() {
            if !quiet {
                eprintln!(
                    "redsem: the command exited, leaving processes running in its group; \
                     stopping them (SIGTERM, then SIGKILL after {})",
                    human(self.grace)
                );
            }
            self.stop(signals).await;
        }
        let code = exit::of_command(self.status);
        report_release(name, sem, permit.release().await);
        code
    }

    /// Passes signals on until the command's own process exits (false) or the permit is
    /// lost (true).
    async fn lost_before_exit(&mut self, permit: &Permit, signals: &mut Signals) -> bool {
        let lost = permit.lost();
        tokio::pin!(lost);
        loop {
            tokio::select! {
                _ = self.wait_child() => return false,
                _ = &mut lost => return true,
                signal = signals.recv() => self.signal(signal),
            }
        }
    }

    fn signal(&self, signal: Signal) {
        match self.target {
            Target::Group(group) => {
                let _ = killpg(group, signal);
            }
            Target::Child(pid) if self.status.is_none() => {
                let _ = kill(pid, signal);
            }
            Target::Child(_) => {}
        }
    }

    /// Whether anything redsem answers for still runs.
    fn running(&self) -> bool {
        self.status.is_none()
            || match self.target {
                Target::Group(group) => group_running(group),
                Target::Child(_) => false,
            }
    }

    async fn wait_child(&mut self) {
        if self.status.is_none() {
            self.status = self.child.wait().await.ok();
        }
    }

    /// SIGTERM to the target, then SIGKILL to whatever of it still runs after the grace
    /// period; returns once it is gone (bounded).
    async fn stop(&mut self, signals: &mut Signals) {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + self.grace;
        while self.running() && Instant::now() < deadline {
            tokio::select! {
                _ = self.wait_child() => {}
                _ = tokio::time::sleep(POLL) => {}
                signal = signals.recv() => self.signal(signal),
            }
        }
        if !self.running() {
            return;
        }
        self.signal(Signal::SIGKILL);
        // SIGKILL cannot be caught; what is left is the kernel tearing them down.
        let limit = Instant::now() + KILL_WAIT;
        while self.running() && Instant::now() < limit {
            tokio::select! {
                _ = self.wait_child() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
}

/// Says on stderr what a failed release after the command's own end means; the command's
/// status stands either way.
fn report_release(name: &str, sem: &AsyncSemaphore, released: Result<(), Error>) {
    match released {
        Ok(()) => {}
        Err(Error::PermitLost { .. }) => eprintln!(
            "redsem: the permit of {name} was gone when the command exited ({}); another \
             holder may have run meanwhile",
            loss_reason(sem)
        ),
        Err(e) => eprintln!(
            "redsem: the command exited, but the release of its permit failed: {e}; the \
             permit comes back on its own within the lease"
        ),
    }
}

/// Whether a process of group `group` still runs. Zombies (exited, waiting to be reaped
/// by their parent) do not count: they run nothing.
fn group_running(group: Pid) -> bool {
    if killpg(group, None).is_err() {
        return false;
    }
    #[cfg(target_os = "linux")]
    if let Some(running) = linux::group_running(group.as_raw()) {
        return running;
    }
    true
}

#[cfg(target_os = "linux")]
mod linux {
    /// Reads `/proc`: whether a process of group `group` is there and not a zombie; `None`
    /// if `/proc` cannot be read.
    pub(super) fn group_running(group: i32) -> Option<bool> {
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if live_process_group(pid) == Some(group) {
                return Some(true);
            }
        }
        Some(false)
    }

    /// The process group of process `pid`, from `/proc/<pid>/stat`; `None` if it is gone
    /// or a zombie.
    fn live_process_group(pid: u32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) state ppid pgrp ...": comm may hold anything, so from the last ')'.
        let (_, after) = stat.rsplit_once(')')?;
        let mut fields = after.split_whitespace();
        if matches!(fields.next()?, "Z" | "X") {
            return None;
        }
        fields.nth(1)?.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redsems_own_group_runs() {
        let own = nix::unistd::getpgrp();
        assert!(group_running(own));
        #[cfg(target_os = "linux")]
        assert_eq!(linux::group_running(own.as_raw()), Some(true));
    }
}
