//! `redsem run`: wait for a permit (saying so, and leaving the queue on a signal), run the
//! command under it, and give it back.

use std::time::Duration;

use nix::sys::signal::Signal;
use redis_semaphore::{AsyncSemaphore, Error, MAX_LEASE, Permit};
use tokio::time::Instant;

use crate::cli::RunArgs;
use crate::duration::human;
use crate::exit;
use crate::explain::{plural, run_error};
use crate::signals::Signals;
use crate::supervise::{self, Supervised};

/// The first "waiting" line comes after this long, then one every [`REPORT_EVERY`].
const REPORT_FIRST: Duration = Duration::from_secs(1);
/// See [`REPORT_FIRST`].
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// How a wait for a permit ended.
enum Waited {
    Granted(Permit),
    TimedOut,
    Signalled(Signal),
}

/// Runs the command of `args` under a permit; redsem's exit status.
pub(crate) async fn run(urls: &[String], quiet: bool, args: RunArgs) -> u8 {
    if args.lease > MAX_LEASE {
        return lease_too_long(args.lease);
    }
    let mut signals = match Signals::catch() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("redsem: cannot catch signals: {e}");
            return exit::FAILED;
        }
    };
    let sem = match connect(urls, &args, &mut signals).await {
        Ok(sem) => sem,
        Err(code) => return code,
    };
    let waited = wait(&sem, args.timeout, quiet, &mut signals).await;
    // Whatever the wait left to release in the background (its place in the queue, a
    // grant that came too late) is released before redsem goes on or exits.
    sem.flush().await;
    let code = match waited {
        Ok(Waited::Granted(permit)) => execute(&args, &sem, permit, quiet, &mut signals).await,
        Ok(Waited::TimedOut) => timed_out(&args, quiet),
        Ok(Waited::Signalled(signal)) => left_queue(signal, &args, quiet),
        Err(e) => {
            eprintln!("redsem: {}", run_error(&e, args.name.get()));
            exit::FAILED
        }
    };
    sem.flush().await;
    code
}

/// `--lease` above [`MAX_LEASE`]: says why it is refused; the exit status.
fn lease_too_long(lease: Duration) -> u8 {
    eprintln!(
        "redsem: --lease {} is too long: the most is {} (the lease is renewed while the \
         command runs; it only bounds how long a crashed redsem keeps its permit)",
        human(lease),
        human(MAX_LEASE)
    );
    exit::FAILED
}

/// The handle: it makes the semaphore with `--permits`, or opens the stored one. A signal
/// meanwhile ends redsem at once; the error is the exit status.
async fn connect(
    urls: &[String],
    args: &RunArgs,
    signals: &mut Signals,
) -> Result<AsyncSemaphore, u8> {
    let name = args.name.get();
    let builder = match args.permits {
        Some(permits) => AsyncSemaphore::builder(name, permits),
        None => AsyncSemaphore::open(name),
    };
    let built = tokio::select! {
        built = builder.masters(urls).lease(args.lease).build() => built,
        signal = signals.recv() => return Err(exit::signalled(signal)),
    };
    built.map_err(|e| {
        eprintln!("redsem: {}", run_error(&e, name));
        exit::FAILED
    })
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
            _ = report.tick(), if !quiet => report_waiting(sem, started),
        }
    }
}

/// The line that says redsem is still waiting, and where to look for why.
fn report_waiting(sem: &AsyncSemaphore, started: Instant) {
    eprintln!(
        "redsem: waiting for a permit of {name} ({} permit{}, all held) for {} \
         (`redsem status {name}` shows who holds them)",
        sem.initial_value(),
        plural(sem.initial_value() as usize),
        human(Duration::from_secs(started.elapsed().as_secs())),
        name = sem.name(),
    );
}

/// No permit came within `--timeout`: says so (unless `quiet`); the exit status.
fn timed_out(args: &RunArgs, quiet: bool) -> u8 {
    if !quiet {
        let name = args.name.get();
        eprintln!(
            "redsem: no permit of {name} within {}; giving up (`redsem status {name}` \
             shows who holds them)",
            human(args.timeout.unwrap_or_default())
        );
    }
    exit::TIMEOUT
}

/// A signal came while redsem waited (and its place in the queue is given back): says so
/// (unless `quiet`); the exit status.
fn left_queue(signal: Signal, args: &RunArgs, quiet: bool) -> u8 {
    if !quiet {
        eprintln!(
            "redsem: {} while waiting for a permit of {}; left the queue",
            signal.as_str(),
            args.name.get()
        );
    }
    exit::signalled(signal)
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
    if let Some(signal) = signals.pending().await {
        let _ = permit.release().await;
        if !quiet {
            eprintln!(
                "redsem: {} before the command started; released the permit of {name}",
                signal.as_str()
            );
        }
        return exit::signalled(signal);
    }
    let child = match supervise::command(args, &permit).spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("redsem: cannot run {:?}: {e}", args.command[0]);
            let _ = permit.release().await;
            return exit::cannot_start(&e);
        }
    };
    let Some(mut supervised) = Supervised::new(child, args) else {
        eprintln!("redsem: the command started but has no process id");
        return exit::FAILED;
    };
    supervised
        .supervise(name, sem, permit, quiet, signals)
        .await
}
