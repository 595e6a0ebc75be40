//! The command line: the subcommands, their arguments and their help texts.
//!
//! The doc comments on fields are the help texts (clap reads them), so they speak to the
//! person typing the command.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration;

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
pub(crate) struct Cli {
    /// A master's URL (`redis://[user:pass@]host:port/db`); repeat for several independent
    /// masters. Also read from REDSEM_URL, comma-separated.
    #[arg(
        long = "url",
        global = true,
        env = "REDSEM_URL",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub(crate) urls: Vec<String>,

    /// No progress messages on stderr (errors are still reported).
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,

    #[command(subcommand)]
    pub(crate) command: Commands,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Commands {
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
pub(crate) struct Name {
    /// The semaphore's name (or give it with --name).
    #[arg(value_name = "NAME")]
    positional: Option<String>,
    /// The semaphore's name.
    #[arg(long = "name", value_name = "NAME")]
    flag: Option<String>,
}

impl Name {
    pub(crate) fn get(&self) -> &str {
        self.positional
            .as_deref()
            .or(self.flag.as_deref())
            .expect("clap requires one of them")
    }
}

#[derive(Debug, Args)]
pub(crate) struct SetPermitsArgs {
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
    pub(crate) fn resolve(&self) -> Result<(String, u32), String> {
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
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) name: Name,
    /// How many may run at once. Without it, the count stored with the semaphore is used
    /// (and a semaphore that does not exist yet is an error).
    #[arg(long)]
    pub(crate) permits: Option<u32>,
    /// Give up after waiting this long for a permit (e.g. 30s, 5m, 1h30m); default: wait
    /// forever.
    #[arg(long, value_parser = duration::parse)]
    pub(crate) timeout: Option<Duration>,
    /// The permit's lease: a crashed redsem gives its permit back within it (at most 1d).
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub(crate) lease: Duration,
    /// How long the command gets between SIGTERM and SIGKILL when redsem stops it (a lost
    /// lease, or processes it left running after it exited).
    #[arg(long, value_parser = duration::parse, default_value = "10s")]
    pub(crate) grace: Duration,
    /// Keep the command in redsem's process group, so it can read from the terminal and
    /// gets the terminal's signals directly (as `timeout --foreground`); redsem then
    /// signals only the command's own process. By default the command runs in a process
    /// group of its own, and every signal redsem passes on or sends reaches that whole
    /// group.
    #[arg(long)]
    pub(crate) foreground: bool,
    /// Signal only the command's own process, not the rest of its process group, and let
    /// what it leaves running after it exits run on (as earlier versions of redsem did).
    #[arg(long)]
    pub(crate) child_only: bool,
    /// Let the command run on if redsem itself dies (SIGKILL, a crash). By default, on
    /// Linux, the command's own process then gets SIGKILL (its children are not covered).
    #[arg(long)]
    pub(crate) survive_redsem: bool,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
