//! `redsem`: a distributed counting semaphore for shell scripts, and a look inside one.
//!
//! `redsem run --name backup --permits 1 -- ./backup.sh` runs the command while holding a
//! permit (renewed in the background), on as many hosts as share the masters; `status`,
//! `set-permits`, `release` and `delete` inspect and fix a semaphore by hand.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis_semaphore::{AsyncSemaphore, Error, Holder, Permit};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

/// Exit status when no permit came within `--timeout` (as GNU `timeout` exits).
const EXIT_TIMEOUT: u8 = 124;
/// Exit status when the lease was lost and the command was stopped.
const EXIT_LOST: u8 = 125;
/// Exit status when the command exists but could not be run.
const EXIT_CANNOT_RUN: u8 = 126;
/// Exit status when the command was not found.
const EXIT_NOT_FOUND: u8 = 127;
/// Exit status for every other failure (a master unreachable, bad arguments...).
const EXIT_ERROR: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "redsem",
    version,
    about = "A distributed counting semaphore on Redis or Valkey, for shell scripts",
    after_help = "Exit status of `run`: the command's own (128 + N if a signal N ended it); \
                  124 when no permit came within --timeout; 125 when the lease was lost and \
                  the command was stopped; 126 when the command could not be run; 127 when \
                  it was not found; 1 for any other error."
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

    /// No progress messages on stderr.
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
        /// The semaphore's name.
        name: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Change a semaphore's permit count.
    SetPermits {
        /// The semaphore's name.
        name: String,
        /// The new count.
        permits: u32,
    },
    /// Release someone else's permit, by id (see `status`).
    Release {
        /// The semaphore's name.
        name: String,
        /// The permit's id.
        #[arg(long)]
        id: String,
    },
    /// Delete a semaphore: its count, its token counter and every lease.
    Delete {
        /// The semaphore's name.
        name: String,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The semaphore's name.
    #[arg(long)]
    name: String,
    /// How many may run at once.
    #[arg(long)]
    permits: u32,
    /// Give up after waiting this long for a permit (e.g. 30s, 5m); default: wait forever.
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// The permit's lease: a crashed redsem gives its permit back within it.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    lease: Duration,
    /// After a lost lease, how long the command gets between SIGTERM and SIGKILL.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    grace: Duration,
    /// Keep the command in redsem's process group, so it can read from the terminal and
    /// gets the terminal's signals directly (as `timeout --foreground`). By default it
    /// runs in its own group and redsem passes SIGINT and SIGTERM on to it.
    #[arg(long)]
    foreground: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    command: Vec<String>,
}

/// `500ms`, `30s`, `5m`, `1h`, or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 30s, 5m or 1h"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        other => {
            return Err(format!(
                "unknown unit {other:?} in {text:?}: use ms, s, m or h"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("redsem: cannot start: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("redsem: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, Error> {
    if cli.urls.is_empty() {
        return Err(Error::InvalidArgument(
            "no master: give --url redis://host:port or set REDSEM_URL".into(),
        ));
    }
    match cli.command {
        Commands::Run(args) => run(&cli.urls, cli.quiet, args).await,
        Commands::Status { name, json } => {
            let sem = open(&cli.urls, &name).await?;
            let holders = sem.holders().await?;
            let available = sem.value().await?;
            if json {
                println!("{}", status_json(&sem, available, &holders));
            } else {
                print!("{}", status_table(&sem, available, &holders));
            }
            Ok(0)
        }
        Commands::SetPermits { name, permits } => {
            let sem = open(&cli.urls, &name).await?;
            let before = sem.initial_value();
            sem.set_permits(permits).await?;
            println!("{name}: {before} -> {permits} permits");
            Ok(0)
        }
        Commands::Release { name, id } => {
            let sem = open(&cli.urls, &name).await?;
            match sem.release_holder(&id).await? {
                0 => {
                    eprintln!("redsem: {name} has no permit {id}");
                    Ok(EXIT_ERROR)
                }
                n => {
                    println!("{name}: released {id} ({n} slot{})", plural(n));
                    Ok(0)
                }
            }
        }
        Commands::Delete { name } => {
            let sem = open(&cli.urls, &name).await?;
            sem.delete().await?;
            println!("{name}: deleted");
            Ok(0)
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

async fn open(urls: &[String], name: &str) -> Result<AsyncSemaphore, Error> {
    AsyncSemaphore::open(name).masters(urls).build().await
}

async fn run(urls: &[String], quiet: bool, args: RunArgs) -> Result<u8, Error> {
    let sem = AsyncSemaphore::builder(args.name.as_str(), args.permits)
        .masters(urls)
        .lease(args.lease)
        .build()
        .await?;
    let Some(permit) = acquire(&sem, args.timeout, quiet).await? else {
        if !quiet {
            eprintln!(
                "redsem: no permit of {} within {:?}; giving up",
                args.name,
                args.timeout.unwrap_or_default()
            );
        }
        return Ok(EXIT_TIMEOUT);
    };
    let mut command = Command::new(&args.command[0]);
    command
        .args(&args.command[1..])
        .env("REDSEM_NAME", &args.name)
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
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("redsem: cannot run {:?}: {e}", args.command[0]);
            permit.release().await?;
            return Ok(if e.kind() == std::io::ErrorKind::NotFound {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_RUN
            });
        }
    };
    supervise(child, permit, &args).await
}

/// Waits for a permit, saying so on stderr now and then unless `quiet`.
async fn acquire(
    sem: &AsyncSemaphore,
    timeout: Option<Duration>,
    quiet: bool,
) -> Result<Option<Permit>, Error> {
    if let Some(permit) = sem.try_acquire().await? {
        return Ok(Some(permit));
    }
    let waiting = async {
        match timeout {
            Some(timeout) => sem.acquire_timeout(timeout).await,
            None => sem.acquire().await.map(Some),
        }
    };
    tokio::pin!(waiting);
    let started = tokio::time::Instant::now();
    // A first word after a second, then every ten.
    let mut report =
        tokio::time::interval_at(started + Duration::from_secs(1), Duration::from_secs(10));
    loop {
        tokio::select! {
            permit = &mut waiting => return permit,
            _ = report.tick(), if !quiet => eprintln!(
                "redsem: waiting for a permit of {} ({} permits, all held) for {}s",
                sem.name(),
                sem.initial_value(),
                started.elapsed().as_secs()
            ),
        }
    }
}

/// Runs until the child exits (then releases and returns its status), or the lease is
/// lost (then stops the child), passing SIGINT and SIGTERM on to it.
async fn supervise(mut child: Child, permit: Permit, args: &RunArgs) -> Result<u8, Error> {
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);
    let mut interrupts = signal(SignalKind::interrupt()).map_err(io_error)?;
    let mut terminations = signal(SignalKind::terminate()).map_err(io_error)?;
    let lost = permit.lost();
    tokio::pin!(lost);
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.map_err(io_error)?;
                permit.release().await?;
                return Ok(exit_code(status));
            }
            _ = &mut lost => break,
            _ = interrupts.recv() => forward(pid, Signal::SIGINT),
            _ = terminations.recv() => forward(pid, Signal::SIGTERM),
        }
    }
    eprintln!(
        "redsem: lost the lease of {} (masters unreachable or too slow); stopping the command",
        args.name
    );
    forward(pid, Signal::SIGTERM);
    if tokio::time::timeout(args.grace, child.wait())
        .await
        .is_err()
    {
        forward(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
    // Whatever the masters still hold for it goes; the answer is known (lost).
    let _ = permit.release().await;
    Ok(EXIT_LOST)
}

fn forward(pid: Option<Pid>, signal: Signal) {
    if let Some(pid) = pid {
        let _ = kill(pid, signal);
    }
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(EXIT_ERROR),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(EXIT_ERROR),
        (None, None) => EXIT_ERROR,
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::InvalidArgument(format!("cannot supervise the command: {e}"))
}

fn status_table(sem: &AsyncSemaphore, available: u32, holders: &[Holder]) -> String {
    let mut out = format!(
        "{}: {} permits, {available} available, {} holder{}\n",
        sem.name(),
        sem.initial_value(),
        holders.len(),
        if holders.len() == 1 { "" } else { "s" }
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
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 days").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
