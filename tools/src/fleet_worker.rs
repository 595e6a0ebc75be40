//! One worker of a mixed fleet: Rust and Python processes on one semaphore (the Python
//! package's tests start it beside Python workers). It takes a permit `rounds` times,
//! counts itself in and out on an observer server that is not one of the masters (the
//! highest count seen is kept there, under `<name>:max`), and holds each permit `hold_ms`.
//!
//! ```text
//! cargo run -p tools -- fleet-worker MASTERS NAME PERMITS ROUNDS OBSERVER_URL [HOLD_MS]
//! ```
//!
//! `MASTERS` is one URL or several separated by commas. It prints `done <rounds>` at the
//! end, and exits 1 if it ever saw more than `PERMITS` holders.

use std::time::Duration;

use redis_semaphore::AsyncSemaphore;
use testkit::Observer;

/// The fleet worker's arguments, positional as the Python tests pass them.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// One master URL or several separated by commas.
    masters: String,
    /// The semaphore's name.
    name: String,
    /// Its permits.
    permits: u32,
    /// How many times to take a permit.
    rounds: u32,
    /// The observer's server, none of the masters.
    observer: String,
    /// How long each permit is held, in ms.
    #[arg(default_value = "5", value_parser = crate::measure::millis)]
    hold_ms: Duration,
}

pub(crate) fn main(args: Args) -> i32 {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(work(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("fleet-worker: {e}");
            1
        }
    }
}

async fn work(args: Args) -> Result<(), redis_semaphore::Error> {
    let Args {
        masters,
        name,
        permits,
        rounds,
        observer,
        hold_ms: hold,
    } = args;
    let sem = AsyncSemaphore::builder(name.as_str(), permits)
        .masters(masters.split(','))
        .build()
        .await?;
    // The keys the Python tests' observer uses too: `<name>:inside`, `<name>:max`.
    let observer = Observer::connect_named(&observer, &format!("{name}:")).await;
    for round in 0..rounds {
        let permit = sem.acquire().await?;
        let now = observer.enter().await;
        if now > permits {
            eprintln!("round {round}: {now} holders of {permits} permits");
            std::process::exit(1);
        }
        tokio::time::sleep(hold).await;
        observer.exit().await;
        permit.release().await?;
    }
    println!("done {rounds}");
    Ok(())
}
