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

use redis_semaphore::{AsyncSemaphore, redis};

/// Counts a holder in (returning how many are inside) and keeps the highest count.
const ENTER: &str = "local v = redis.call('INCR', KEYS[1]) \
    if v > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], v) end \
    return v";

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
    let mut observer = redis::Client::open(observer.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let enter = redis::Script::new(ENTER);
    let (inside, max) = (format!("{name}:inside"), format!("{name}:max"));
    for round in 0..rounds {
        let permit = sem.acquire().await?;
        let now: u32 = enter
            .key(&inside)
            .key(&max)
            .invoke_async(&mut observer)
            .await?;
        if now > permits {
            eprintln!("round {round}: {now} holders of {permits} permits");
            std::process::exit(1);
        }
        tokio::time::sleep(hold).await;
        let _: i64 = redis::cmd("DECR")
            .arg(&inside)
            .query_async(&mut observer)
            .await?;
        permit.release().await?;
    }
    println!("done {rounds}");
    Ok(())
}
