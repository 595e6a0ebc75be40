//! `redsem`: a distributed counting semaphore for shell scripts, and a look inside one.
//!
//! `redsem run backup --permits 1 -- ./backup.sh` runs the command while holding a permit
//! (renewed in the background), on as many hosts as share the masters; `status`,
//! `set-permits`, `release` and `delete` inspect and fix a semaphore by hand.

use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use redis_semaphore::{AsyncSemaphore, Error, Holder, MAX_LEASE, Permit};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;

/// Exit status when no permit came within `--timeout` (as GNU `timeout` exits when its
/// time is up).
const EXIT_TIMEOUT: u8 = 124;
/// Exit status when redsem itself failed: bad arguments, masters unreachable, a count that
/// does not match the stored one, or the lease lost while the command ran (which was then
/// stopped). As GNU `timeout` exits when it fails itself.
const EXIT_FAILED: u8 = 125;
/// Exit status when the command exists but could not be run.
const EXIT_CANNOT_RUN: u8 = 126;
/// Exit status when the command was not found.
const EXIT_NOT_FOUND: u8 = 127;

/// How often redsem looks whether the processes it is stopping are gone.
const POLL: Duration = Duration::from_millis(20);
/// The first "waiting" line comes after this long, then one every [`REPORT_EVERY`].
const REPORT_FIRST: Duration = Duration::from_secs(1);
/// See [`REPORT_FIRST`].
const REPORT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "redsem",
    version,
    about = "A distributed counting semaphore on Redis or Valkey, for shell scripts",
    after_help = "Exit status of `run`: the command's own whenever it ran to its end (128 + N \
                  if signal N ended it); 124 when no permit came within --timeout; 125 when \
                  redsem failed (bad arguments, masters unreachable, the lease lost while the \
                  command ran: it was then stopped); 126 when the command could not be run; \
                  127 when it was not found; 128 + N when redsem got signal N while waiting \
                  (it left the queue). The other subcommands exit 0 or 125."
)]
struct Cli {
    /// A master's URL (`redis://[user:pass@]host:port/db`); repeat for several independent
    /// masters. Also read from REDSEM_URL, comma-separated.
    #[arg(
        long = "url",
        global = true,
        env = "REDSEM_URL",
        value_delimiter = ',',
        value_name = "URL"
    )]
    urls: Vec<String>,

    /// No progress messages on stderr (errors are still reported).
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Commands,
}

#[derive(Debug, Subcommand)]
enum Commands {
    /// Run a command while holding a permit; exit with its status.
    Run(RunArgs),
    /// Show who holds a semaphore.
    Status {
        #[command(flatten)]
        name: Name,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a semaphore's permit count.
    ///
    /// `redsem set-permits NAME COUNT`; the name may also be given with --name and the
    /// count with --permits.
    SetPermits(SetPermitsArgs),
    /// Release someone else's permit, by id (see `status`).
    ///
    /// Exits 0 when no such permit is held (any more), or there is no such semaphore, as
    /// `rm -f` does for a missing file.
    Release {
        #[command(flatten)]
        name: Name,
        /// The permit's id.
        #[arg(long)]
        id: String,
    },
    /// Delete a semaphore: its count, its token counter and every lease.
    ///
    /// Exits 0 when there is no such semaphore, as `rm -f` does for a missing file.
    Delete {
        #[command(flatten)]
        name: Name,
    },
}

/// The semaphore's name: positional, or with `--name` (every subcommand takes both).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct Name {
    /// The semaphore's name (or give it with --name).
    #[arg(value_name = "NAME")]
    positional: Option<String>,
    /// The semaphore's name.
    #[arg(long = "name", value_name = "NAME")]
    flag: Option<String>,
}

impl Name {
    fn get(&self) -> &str {
        self.positional
            .as_deref()
            .or(self.flag.as_deref())
            .expect("clap requires one of them")
    }
}

#[derive(Debug, Args)]
struct SetPermitsArgs {
    /// The semaphore's name (or give it with --name).
    #[arg(value_name = "NAME")]
    first: Option<String>,
    /// The new count (or give it with --permits).
    #[arg(value_name = "COUNT")]
    second: Option<String>,
    /// The semaphore's name.
    #[arg(long = "name", value_name = "NAME")]
    name: Option<String>,
    /// The new count.
    #[arg(long, value_name = "COUNT")]
    permits: Option<u32>,
}

impl SetPermitsArgs {
    /// The name and the count, from whichever of the accepted forms was used.
    fn resolve(&self) -> Result<(String, u32), String> {
        let usage = "give the name and the count: redsem set-permits NAME COUNT";
        let mut positionals = self.first.iter().chain(&self.second);
        let name = match &self.name {
            Some(name) => name.clone(),
            None => positionals
                .next()
                .cloned()
                .ok_or_else(|| format!("no name: {usage}"))?,
        };
        let count = match (self.permits, positionals.next()) {
            (Some(count), None) => count,
            (None, Some(text)) => text
                .parse()
                .map_err(|_| format!("{text:?} is not a permit count (1 or more): {usage}"))?,
            (None, None) => return Err(format!("no count: {usage}")),
            (Some(_), Some(extra)) => {
                return Err(format!("{extra:?} is one argument too many: {usage}"));
            }
        };
        if let Some(extra) = positionals.next() {
            return Err(format!("{extra:?} is one argument too many: {usage}"));
        }
        Ok((name, count))
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    name: Name,
    /// How many may run at once. Without it, the count stored with the semaphore is used
    /// (and a semaphore that does not exist yet is an error).
    #[arg(long)]
    permits: Option<u32>,
    /// Give up after waiting this long for a permit (e.g. 30s, 5m, 1h30m); default: wait
    /// forever.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// The permit's lease: a crashed redsem gives its permit back within it (at most 1d).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    lease: Duration,
    /// How long the command gets between SIGTERM and SIGKILL when redsem stops it (a lost
    /// lease, or processes it left running after it exited).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    grace: Duration,
    /// Keep the command in redsem's process group, so it can read from the terminal and
    /// gets the terminal's signals directly (as `timeout --foreground`); redsem then
    /// signals only the command's own process. By default the command runs in a process
    /// group of its own, and every signal redsem passes on or sends reaches that whole
    /// group.
    #[arg(long)]
    foreground: bool,
    /// Signal only the command's own process, not the rest of its process group, and let
    /// what it leaves running after it exits run on (as earlier versions of redsem did).
    #[arg(long)]
    child_only: bool,
    /// Let the command run on if redsem itself dies (SIGKILL, a crash). By default, on
    /// Linux, the command's own process then gets SIGKILL (its children are not covered).
    #[arg(long)]
    survive_redsem: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// The units a duration may use, longest first.
const UNITS: [(&str, f64); 5] = [
    ("d", 86_400.0),
    ("h", 3_600.0),
    ("m", 60.0),
    ("s", 1.0),
    ("ms", 0.001),
];

/// `250ms`, `1.5s`, `90s`, `30m`, `1h30m`, `100d`: numbers each with a unit (ms, s, m, h,
/// d), or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let hint = "use a duration such as 250ms, 1.5s, 90s, 30m, 1h30m or 100d";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("an empty duration: {hint}"));
    }
    let number_end = |s: &str| {
        s.find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len())
    };
    let parse_number = |number: &str| {
        if number.is_empty() || number.starts_with('.') && number.len() == 1 {
            return None;
        }
        number.parse::<f64>().ok()
    };
    if number_end(text) == text.len() {
        let seconds = parse_number(text).ok_or_else(|| format!("{text:?}: {hint}"))?;
        return Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"));
    }
    let mut seconds = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let (number, after) = rest.split_at(number_end(rest));
        let number = parse_number(number).ok_or_else(|| format!("{text:?}: {hint}"))?;
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| {
                if unit.is_empty() {
                    format!("{text:?}: a number without a unit; {hint}")
                } else {
                    format!("unknown unit {unit:?} in {text:?}: use ms, s, m, h or d")
                }
            })?;
        seconds += number * scale;
        rest = after;
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

/// A duration as a person writes it, in the units [`parse_duration`] reads: `0s`,
/// `250ms`, `1.5s`, `1m30s`, `1h30m`, `100d`.
/// Why a permit was lost: the masters did not answer its renewals, or they answered that
/// it was no longer held (released by someone else, `redsem release --id`, or expired
/// while this process was stalled).
fn loss_reason(sem: &AsyncSemaphore) -> String {
    match sem.last_error() {
        Some(down) => format!("its renewals went unanswered: {}", down.error),
        None => "the masters no longer hold it: released with `redsem release`, or its lease \
                 expired while redsem could not renew it"
            .to_string(),
    }
}

fn human(duration: Duration) -> String {
    if duration.is_zero() {
        return "0s".into();
    }
    if duration < Duration::from_millis(1) {
        return format!("{}µs", duration.as_micros());
    }
    if duration < Duration::from_secs(1) {
        return format!("{}ms", duration.as_millis());
    }
    let secs = duration.as_secs();
    let millis = duration.subsec_millis();
    let mut out = String::new();
    for (value, unit) in [
        (secs / 86_400, "d"),
        (secs / 3_600 % 24, "h"),
        (secs / 60 % 60, "m"),
    ] {
        if value > 0 {
            out.push_str(&format!("{value}{unit}"));
        }
    }
    let (s, ms) = (secs % 60, millis);
    if ms > 0 {
        let fraction = format!("{ms:03}");
        out.push_str(&format!("{s}.{}s", fraction.trim_end_matches('0')));
    } else if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and the version are what was asked for; anything else is a usage error.
            return ExitCode::from(if e.use_stderr() { EXIT_FAILED } else { 0 });
        }
    };
    // One thread: the command is spawned from the main thread, which lives as long as
    // redsem does (the parent-death signal is sent when the *thread* that forked exits).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("redsem: cannot start: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(dispatch(cli)))
}

/// Runs the subcommand; says what went wrong (and what to type next) on stderr.
async fn dispatch(cli: Cli) -> u8 {
    if cli.urls.is_empty() {
        eprintln!("redsem: no master: give --url redis://host:port or set REDSEM_URL");
        return EXIT_FAILED;
    }
    let outcome = match cli.command {
        Commands::Run(args) => return run(&cli.urls, cli.quiet, args).await,
        Commands::Status { name, json } => status(&cli.urls, name.get(), json).await,
        Commands::SetPermits(args) => match args.resolve() {
            Ok((name, permits)) => set_permits(&cli.urls, &name, permits).await,
            Err(why) => {
                eprintln!("redsem set-permits: {why}");
                return EXIT_FAILED;
            }
        },
        Commands::Release { name, id } => release(&cli.urls, name.get(), &id).await,
        Commands::Delete { name } => delete(&cli.urls, name.get()).await,
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("redsem: {}", explain(&e, None));
            EXIT_FAILED
        }
    }
}

/// An error as a message for the shell: the library's own, except where the shell's
/// remedy differs from the library's.
fn explain(error: &Error, run: Option<&RunArgs>) -> String {
    match (error, run) {
        (
            Error::ConfigMismatch {
                stored_bounded: false,
                ..
            },
            Some(args),
        ) => {
            let name = args.name.get();
            format!(
                "{name} is an unbounded semaphore (made by a library handle with \
                 .bounded(false)), and redsem makes bounded ones: run it without --permits, to \
                 take the stored configuration"
            )
        }
        (
            Error::ConfigMismatch {
                stored, requested, ..
            },
            Some(args),
        ) => {
            let name = args.name.get();
            format!(
                "{name} has {stored} permits, not {requested}: run it with --permits {stored} \
                 (or without --permits, to take the stored count), or change the count for \
                 everyone with `redsem set-permits {name} {requested}`"
            )
        }
        (Error::NotFound { name }, Some(_)) => format!(
            "there is no semaphore named {name:?} yet: give its count to make it, \
             `redsem run {name} --permits N -- CMD...`"
        ),
        (Error::NotFound { name }, None) => format!(
            "there is no semaphore named {name:?} (the first `redsem run {name} --permits N \
             -- CMD...` makes it)"
        ),
        (other, _) => other.to_string(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn open(urls: &[String], name: &str) -> Result<AsyncSemaphore, Error> {
    AsyncSemaphore::open(name).masters(urls).build().await
}

async fn status(urls: &[String], name: &str, json: bool) -> Result<(), Error> {
    let sem = open(urls, name).await?;
    let holders = sem.holders().await?;
    let available = sem.value().await?;
    if json {
        println!("{}", status_json(&sem, available, &holders));
    } else {
        print!("{}", status_table(&sem, available, &holders));
    }
    Ok(())
}

async fn set_permits(urls: &[String], name: &str, permits: u32) -> Result<(), Error> {
    let sem = open(urls, name).await?;
    let before = sem.initial_value();
    sem.set_permits(permits).await?;
    println!("{name}: {before} -> {permits} permits");
    Ok(())
}

async fn release(urls: &[String], name: &str, id: &str) -> Result<(), Error> {
    let sem = match open(urls, name).await {
        Ok(sem) => sem,
        Err(Error::NotFound { .. }) => {
            println!("no semaphore {name}; nothing released");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    match sem.release_holder(id).await? {
        0 => println!(
            "{name}: no permit {id}; nothing released (`redsem status {name}` lists the holders)"
        ),
        n => println!("{name}: released {id} ({n} slot{})", plural(n as usize)),
    }
    Ok(())
}

async fn delete(urls: &[String], name: &str) -> Result<(), Error> {
    let deleted = match open(urls, name).await {
        Ok(sem) => sem.delete().await?,
        Err(Error::NotFound { .. }) => false,
        Err(e) => return Err(e),
    };
    if deleted {
        println!("{name}: deleted");
    } else {
        println!("no semaphore {name}; nothing deleted");
    }
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP, caught from the start of `run`: while redsem waits they
/// cancel the wait cleanly, and while the command runs they are passed on to it.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn catch() -> std::io::Result<Self> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// The next signal to arrive.
    async fn recv(&mut self) -> Signal {
        tokio::select! {
            _ = self.interrupt.recv() => Signal::SIGINT,
            _ = self.terminate.recv() => Signal::SIGTERM,
            _ = self.hangup.recv() => Signal::SIGHUP,
        }
    }
}

/// How a wait for a permit ended.
enum Waited {
    Granted(Permit),
    TimedOut,
    Signalled(Signal),
}

async fn run(urls: &[String], quiet: bool, args: RunArgs) -> u8 {
    let name = args.name.get().to_string();
    if args.lease > MAX_LEASE {
        eprintln!(
            "redsem: --lease {} is too long: the most is {} (the lease is renewed while the \
             command runs; it only bounds how long a crashed redsem keeps its permit)",
            human(args.lease),
            human(MAX_LEASE)
        );
        return EXIT_FAILED;
    }
    let mut signals = match Signals::catch() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("redsem: cannot catch signals: {e}");
            return EXIT_FAILED;
        }
    };
    let builder = match args.permits {
        Some(permits) => AsyncSemaphore::builder(name.as_str(), permits),
        None => AsyncSemaphore::open(name.as_str()),
    };
    let built = tokio::select! {
        built = builder.masters(urls).lease(args.lease).build() => built,
        signal = signals.recv() => return 128 + signal as u8,
    };
    let sem = match built {
        Ok(sem) => sem,
        Err(e) => {
            eprintln!("redsem: {}", explain(&e, Some(&args)));
            return EXIT_FAILED;
        }
    };
    let waited = wait(&sem, args.timeout, quiet, &mut signals).await;
    // Whatever the wait left to release in the background (its place in the queue, a
    // grant that came too late) is released before redsem goes on or exits.
    sem.flush().await;
    let code = match waited {
        Ok(Waited::Granted(permit)) => execute(&args, &sem, permit, quiet, &mut signals).await,
        Ok(Waited::TimedOut) => {
            if !quiet {
                eprintln!(
                    "redsem: no permit of {name} within {}; giving up (`redsem status {name}` \
                     shows who holds them)",
                    human(args.timeout.unwrap_or_default())
                );
            }
            EXIT_TIMEOUT
        }
        Ok(Waited::Signalled(signal)) => {
            if !quiet {
                eprintln!(
                    "redsem: {} while waiting for a permit of {name}; left the queue",
                    signal.as_str()
                );
            }
            128 + signal as u8
        }
        Err(e) => {
            eprintln!("redsem: {}", explain(&e, Some(&args)));
            EXIT_FAILED
        }
    };
    sem.flush().await;
    code
}

/// Waits for a permit, saying so on stderr after a second and then every ten unless
/// `quiet`. A signal ends the wait: the acquire is dropped, which gives its place in the
/// queue back (in the background; the caller flushes).
async fn wait(
    sem: &AsyncSemaphore,
    timeout: Option<Duration>,
    quiet: bool,
    signals: &mut Signals,
) -> Result<Waited, Error> {
    let first = tokio::select! {
        first = sem.try_acquire() => first?,
        signal = signals.recv() => return Ok(Waited::Signalled(signal)),
    };
    if let Some(permit) = first {
        return Ok(Waited::Granted(permit));
    }
    let waiting = async {
        match timeout {
            Some(timeout) => sem.acquire_timeout(timeout).await,
            None => sem.acquire().await.map(Some),
        }
    };
    tokio::pin!(waiting);
    let started = Instant::now();
    let mut report = tokio::time::interval_at(started + REPORT_FIRST, REPORT_EVERY);
    loop {
        tokio::select! {
            permit = &mut waiting => {
                return Ok(permit?.map_or(Waited::TimedOut, Waited::Granted));
            }
            signal = signals.recv() => return Ok(Waited::Signalled(signal)),
            _ = report.tick(), if !quiet => eprintln!(
                "redsem: waiting for a permit of {name} ({} permit{}, all held) for {} \
                 (`redsem status {name}` shows who holds them)",
                sem.initial_value(),
                plural(sem.initial_value() as usize),
                human(Duration::from_secs(started.elapsed().as_secs())),
                name = sem.name(),
            ),
        }
    }
}

/// Starts the command under `permit`, supervises it, releases the permit; the exit status.
async fn execute(
    args: &RunArgs,
    sem: &AsyncSemaphore,
    permit: Permit,
    quiet: bool,
    signals: &mut Signals,
) -> u8 {
    let name = args.name.get();
    // A signal that came with the grant: the command is not started at all.
    let pending = tokio::select! {
        biased;
        signal = signals.recv() => Some(signal),
        () = std::future::ready(()) => None,
    };
    if let Some(signal) = pending {
        let _ = permit.release().await;
        if !quiet {
            eprintln!(
                "redsem: {} before the command started; released the permit of {name}",
                signal.as_str()
            );
        }
        return 128 + signal as u8;
    }
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("REDSEM_NAME", name)
        .env("REDSEM_PERMIT_ID", permit.id())
        .env("REDSEM_FENCING_TOKEN", permit.fencing_token().to_string())
        .env(
            "REDSEM_SLOTS",
            permit
                .slots()
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    if !args.foreground {
        command.process_group(0);
    }
    if !args.survive_redsem {
        die_with_redsem(&mut command);
    }
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("redsem: cannot run {:?}: {e}", args.command[0]);
            let _ = permit.release().await;
            return if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_RUN
            };
        }
    };
    let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) else {
        eprintln!("redsem: the command started but has no process id");
        return EXIT_FAILED;
    };
    let pid = Pid::from_raw(pid);
    // In the foreground the command shares redsem's group: signalling that group would
    // signal redsem (and the shell's job) too.
    let target = if args.foreground || args.child_only {
        Target::Child(pid)
    } else {
        Target::Group(pid)
    };
    let mut supervised = Supervised {
        child,
        status: None,
        target,
        grace: args.grace,
    };
    supervised
        .supervise(name, sem, permit, quiet, signals)
        .await
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
struct Supervised {
    child: Child,
    /// Set once the command's own process has exited (and was reaped: its pid may be
    /// reused, so it is not signalled any more).
    status: Option<ExitStatus>,
    target: Target,
    grace: Duration,
}

impl Supervised {
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

    /// Runs until the command exits (then stops what it left in its group, releases and
    /// returns its status), or the lease is lost (then stops the command: 125), passing
    /// signals on to it.
    async fn supervise(
        &mut self,
        name: &str,
        sem: &AsyncSemaphore,
        permit: Permit,
        quiet: bool,
        signals: &mut Signals,
    ) -> u8 {
        let lost = permit.lost();
        tokio::pin!(lost);
        let ran_out = loop {
            tokio::select! {
                _ = self.wait_child() => break false,
                _ = &mut lost => break true,
                signal = signals.recv() => self.signal(signal),
            }
        };
        if ran_out {
            eprintln!(
                "redsem: lost the permit of {name} ({}); stopping the command",
                loss_reason(sem)
            );
            self.stop(signals).await;
            // Whatever the masters still hold for it goes; the answer is known (lost).
            let _ = permit.release().await;
            return EXIT_FAILED;
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
        let code = exit_code(self.status);
        match permit.release().await {
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
        code
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
        let limit = Instant::now() + Duration::from_secs(5);
        while self.running() && Instant::now() < limit {
            tokio::select! {
                _ = self.wait_child() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
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
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold anything, so from the last ')'.
            let Some((_, after)) = stat.rsplit_once(')') else {
                continue;
            };
            let mut fields = after.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
            if pgrp == Some(group) && !matches!(state, Some("Z" | "X")) {
                return Some(true);
            }
        }
        Some(false)
    }
}

/// The command's status as redsem's: its code, or 128 + the signal that ended it.
fn exit_code(status: Option<ExitStatus>) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    let Some(status) = status else {
        return EXIT_FAILED;
    };
    match (status.code(), status.signal()) {
        (Some(code), _) => (code & 0xff) as u8,
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(EXIT_FAILED),
        (None, None) => EXIT_FAILED,
    }
}

fn status_table(sem: &AsyncSemaphore, available: u32, holders: &[Holder]) -> String {
    let mut out = format!(
        "{}: {} permit{}, {available} available, {} holder{} ({})\n",
        sem.name(),
        sem.initial_value(),
        plural(sem.initial_value() as usize),
        holders.len(),
        plural(holders.len()),
        if sem.bounded() {
            "bounded"
        } else {
            "unbounded"
        },
    );
    if holders.is_empty() {
        return out;
    }
    out.push_str(&format!(
        "{:<10} {:<18} {:>10} {:>8}  {}\n",
        "SLOTS", "TOKEN", "LEASE LEFT", "MASTERS", "ID"
    ));
    for holder in holders {
        let slots = if holder.slots.is_empty() {
            "-".to_string()
        } else {
            holder
                .slots
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let left = holder
            .masters
            .iter()
            .map(|m| m.lease_left)
            .min()
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<10} {:<18} {:>9.1}s {:>8}  {}\n",
            slots,
            holder.fencing_token,
            left.as_secs_f64(),
            holder.masters.len(),
            holder.id
        ));
    }
    out
}

fn status_json(sem: &AsyncSemaphore, available: u32, holders: &[Holder]) -> serde_json::Value {
    serde_json::json!({
        "name": sem.name(),
        "permits": sem.initial_value(),
        "bounded": sem.bounded(),
        "available": available,
        "holders": holders.iter().map(|h| serde_json::json!({
            "id": h.id,
            "slots": h.slots,
            "fencing_token": h.fencing_token,
            "masters": h.masters.iter().map(|m| serde_json::json!({
                "master": m.master,
                "slots": m.slots,
                "lease_left_ms": u64::try_from(m.lease_left.as_millis()).unwrap_or(u64::MAX),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("250ms"), Ok(ms(250)));
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("90s"), Ok(secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(ms(1500)));
        assert_eq!(parse_duration("2"), Ok(secs(2)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1.5m"), Ok(secs(90)));
        assert_eq!(parse_duration("1h"), Ok(secs(3600)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1m30s"), Ok(secs(90)));
        assert_eq!(parse_duration("1s500ms"), Ok(ms(1500)));
        assert_eq!(parse_duration("100d"), Ok(secs(100 * 86_400)));
        assert_eq!(parse_duration("2d12h"), Ok(secs(60 * 3600)));
        for bad in [
            "", "soon", "5 days", "-1s", "1x", "1h30", ".s", "s", "1..5s", "ms5",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(
            parse_duration("3w")
                .unwrap_err()
                .contains("use ms, s, m, h or d")
        );
    }

    #[test]
    fn prints_durations_humanly() {
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        assert_eq!(human(Duration::ZERO), "0s");
        assert_eq!(human(ms(250)), "250ms");
        assert_eq!(human(ms(1500)), "1.5s");
        assert_eq!(human(ms(1250)), "1.25s");
        assert_eq!(human(secs(10)), "10s");
        assert_eq!(human(secs(90)), "1m30s");
        assert_eq!(human(secs(5400)), "1h30m");
        assert_eq!(human(secs(86_400)), "1d");
        assert_eq!(human(secs(100 * 86_400)), "100d");
        assert_eq!(human(Duration::from_micros(20)), "20µs");
        // What is printed reads back as the same duration.
        for d in [ms(250), ms(1500), secs(90), secs(5400), secs(100 * 86_400)] {
            assert_eq!(parse_duration(&human(d)), Ok(d));
        }
    }

    #[test]
    fn set_permits_takes_the_name_and_count_either_way() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(
                ["redsem", "set-permits"]
                    .iter()
                    .chain(args)
                    .copied()
                    .collect::<Vec<_>>(),
            )
            .expect("parses");
            match cli.command {
                Commands::SetPermits(args) => args.resolve(),
                other => panic!("{other:?}"),
            }
        };
        let want = Ok(("job".to_string(), 3));
        assert_eq!(parse(&["job", "3"]), want);
        assert_eq!(parse(&["--name", "job", "3"]), want);
        assert_eq!(parse(&["job", "--permits", "3"]), want);
        assert_eq!(parse(&["--name", "job", "--permits", "3"]), want);
        assert!(parse(&["job"]).unwrap_err().contains("no count"));
        assert!(parse(&["--permits", "3"]).unwrap_err().contains("no name"));
        assert!(
            parse(&["job", "x"])
                .unwrap_err()
                .contains("not a permit count")
        );
        assert!(parse(&["job", "3", "--permits", "3"]).is_err());
        assert!(parse(&["--name", "job", "a", "3"]).is_err());
    }

    #[test]
    fn every_subcommand_takes_the_name_either_way() {
        for args in [
            &["run", "job", "--", "true"][..],
            &["run", "--name", "job", "--", "true"],
            &["status", "job"],
            &["status", "--name", "job"],
            &["release", "job", "--id", "x"],
            &["release", "--name", "job", "--id", "x"],
            &["delete", "job"],
            &["delete", "--name", "job"],
        ] {
            let cli = Cli::try_parse_from(["redsem"].iter().chain(args))
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let name = match &cli.command {
                Commands::Run(run) => run.name.get(),
                Commands::Status { name, .. }
                | Commands::Release { name, .. }
                | Commands::Delete { name } => name.get(),
                Commands::SetPermits(_) => unreachable!(),
            };
            assert_eq!(name, "job", "{args:?}");
        }
        assert!(Cli::try_parse_from(["redsem", "status"]).is_err());
        assert!(Cli::try_parse_from(["redsem", "status", "a", "--name", "b"]).is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
