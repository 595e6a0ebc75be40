//! One worker of a mixed fleet: Rust and Python processes on one semaphore (the Python
//! package's tests start it beside Python workers). It takes a permit `rounds` times,
//! counts itself in and out on an observer server that is not one of the masters (the
//! highest count seen is kept there, under `<name>:max`), and holds each permit `hold_ms`.
//!
//! ```text
//! cargo run --example fleet_worker -- MASTERS NAME PERMITS ROUNDS OBSERVER_URL [HOLD_MS]
//! ```
//!
//! `MASTERS` is one URL or several separated by commas. It prints `done <rounds>` at the
//! end, and exits 1 if it ever saw more than `PERMITS` holders.

use std::time::Duration;

use redis_semaphore::AsyncSemaphore;
use testkit::Observer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [masters, name, permits, rounds, observer, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: fleet_worker MASTERS NAME PERMITS ROUNDS OBSERVER_URL [HOLD_MS]".into(),
        );
    };
    let permits: u32 = permits.parse()?;
    let rounds: u32 = rounds.parse()?;
    let hold = Duration::from_millis(rest.first().map_or(Ok(5), |h| h.parse())?);
    let sem = AsyncSemaphore::builder(name.as_str(), permits)
        .masters(masters.split(','))
        .build()
        .await?;
    // The keys the Python tests' observer uses too: `<name>:inside`, `<name>:max`.
    let observer = Observer::connect_named(observer, &format!("{name}:")).await;
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
