//! The ten-line tour: a 3-permit semaphore, one permit held and released.
//!
//! ```text
//! cargo run --example quickstart -- redis://127.0.0.1:6379
//! ```

use std::time::Duration;

use redis_semaphore::AsyncSemaphore;

#[tokio::main]
async fn main() -> Result<(), redis_semaphore::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let sem = AsyncSemaphore::builder("quickstart", 3)
        .master(url)
        .build()
        .await?;

    let permit = sem.acquire().await?;
    println!(
        "holding slot {:?} with fencing token {}; {} of {} permits left",
        permit.slots(),
        permit.fencing_token(),
        sem.value().await?,
        sem.initial_value()
    );

    // Waiting with a limit; cancelling an acquire this way never leaks a permit.
    match tokio::time::timeout(Duration::from_secs(1), sem.acquire_many(2)).await {
        Ok(two) => println!("and two more: slots {:?}", two?.slots()),
        Err(_) => println!("two more did not come within a second"),
    }

    permit.release().await?;
    println!("released; {} permits free", sem.value().await?);
    Ok(())
}
