//! The project's tools, one binary with a subcommand each:
//!
//! ```text
//! cargo run -p tools --release -- load --workers 16 --permits 4 --hold-ms 5 --secs 3
//! cargo run -p tools --release -- soak --secs 20 --masters 3
//! cargo run -p tools --release -- uncontended --masters 3 --scaling --json
//! cargo run -p tools --release -- bench-report          # what `make bench` runs
//! cargo run -p tools -- fleet-worker MASTERS NAME PERMITS ROUNDS OBSERVER_URL [HOLD_MS]
//! ```
//!
//! Every server they start is a throwaway one of the test kit (`testkit`, `REDIS_SERVER_BIN`
//! picks the binary).

mod bench_report;
mod fleet_worker;
mod load;
mod measure;
mod plot;
mod soak;
mod uncontended;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tools",
    about = "Load, soak and benchmark tools of redis-semaphore"
)]
struct Cli {
    #[command(subcommand)]
    tool: Tool,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Many workers contending for a few permits: wait, hand-off, script calls, fairness,
    /// an independent count of holders; or (--herd) what a crowd of waiters costs.
    Load(load::Options),
    /// Workers contending through faults (masters paused, killed, slowed, partitioned;
    /// failovers with --sentinel), checked by an observer; exits 1 on over-admission or a
    /// leak.
    Soak(soak::Args),
    /// Uncontended round trips, one client, timed one by one (beside the npm peer).
    Uncontended(uncontended::Options),
    /// The SVG of the load sweep (wait and throughput against workers).
    Plot(plot::Args),
    /// One Rust worker of the Python tests' mixed fleet.
    FleetWorker(fleet_worker::Args),
    /// `make bench`: criterion, redis-benchmark, the load sweep, the npm peer and the herd,
    /// written to target/bench-report/ (report.md, results.json, load.svg).
    BenchReport(bench_report::Args),
}

fn main() {
    let code = match Cli::parse().tool {
        Tool::Load(o) => load::main(o),
        Tool::Soak(args) => soak::main(args),
        Tool::Uncontended(o) => uncontended::main(o),
        Tool::Plot(args) => plot::main(args),
        Tool::FleetWorker(args) => fleet_worker::main(args),
        Tool::BenchReport(args) => bench_report::main(args),
    };
    std::process::exit(code);
}
