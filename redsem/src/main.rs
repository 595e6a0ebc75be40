//! `redsem`: a distributed counting semaphore for shell scripts, and a look inside one.
//!
//! `redsem run backup --permits 1 -- ./backup.sh` runs the command while holding a permit
//! (renewed in the background), on as many hosts as share the masters; `status`,
//! `set-permits`, `release` and `delete` inspect and fix a semaphore by hand.
//!
//! This file parses the command line and hands each subcommand to its module: `run`
//! (waiting, then the command under [`supervise`]) and [`admin`] (the others).

mod admin;
mod cli;
mod duration;
mod exit;
mod explain;
mod run;
mod signals;
mod supervise;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Commands};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Help and the version are what was asked for; anything else is a usage error.
            return ExitCode::from(if e.use_stderr() { exit::FAILED } else { 0 });
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
            return ExitCode::from(exit::FAILED);
        }
    };
    ExitCode::from(runtime.block_on(dispatch(cli)))
}

/// Runs the subcommand; says what went wrong (and what to type next) on stderr.
async fn dispatch(cli: Cli) -> u8 {
    if cli.urls.is_empty() {
        eprintln!("redsem: no master: give --url redis://host:port or set REDSEM_URL");
        return exit::FAILED;
    }
    let urls = &cli.urls;
    let outcome = match cli.command {
        Commands::Run(args) => return run::run(urls, cli.quiet, args).await,
        Commands::Status { name, json } => admin::status(urls, name.get(), json).await,
        Commands::SetPermits(args) => match args.resolve() {
            Ok((name, permits)) => admin::set_permits(urls, &name, permits).await,
            Err(why) => {
                eprintln!("redsem set-permits: {why}");
                return exit::FAILED;
            }
        },
        Commands::Release { name, id } => admin::release(urls, name.get(), &id).await,
        Commands::Delete { name } => admin::delete(urls, name.get()).await,
    };
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("redsem: {}", explain::admin_error(&e));
            exit::FAILED
        }
    }
}
