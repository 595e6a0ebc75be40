//! The blocking twin, for code without an async runtime: threads share one semaphore.
//!
//! ```text
//! cargo run --example blocking -- redis://127.0.0.1:6379
//! ```

use std::thread;
use std::time::Duration;

use redis_semaphore::blocking::Semaphore;

fn main() -> Result<(), redis_semaphore::Error> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let sem = Semaphore::builder("blocking-example", 2)
        .master(url)
        .build()?;

    let threads: Vec<_> = (0..4)
        .map(|n| {
            let sem = sem.clone();
            thread::spawn(move || -> Result<(), redis_semaphore::Error> {
                let permit = sem.acquire()?;
                println!("thread {n} holds slot {:?}", permit.slots());
                thread::sleep(Duration::from_millis(200));
                // Dropping the permit returns once the release is done.
                drop(permit);
                println!("thread {n} released");
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread panicked")?;
    }
    println!("{} of {} permits free", sem.value()?, sem.initial_value());
    Ok(())
}
