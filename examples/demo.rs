//! A dozen workers, each with its own handle as if in its own process, contend for 3
//! permits. The timeline shows who holds which slot, and that never more than 3 are inside.
//!
//! ```text
//! make demo          # installs and starts a local redis-server, then runs this
//! cargo run --example demo -- redis://127.0.0.1:6379 [workers] [rounds]
//! ```

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_semaphore::AsyncSemaphore;

const PERMITS: u32 = 3;

/// Who holds each slot, for the timeline.
struct Board {
    started: Instant,
    slots: Mutex<Vec<Option<usize>>>,
    inside: AtomicU32,
    max_inside: AtomicU32,
}

impl Board {
    fn show(&self, event: &str) {
        let slots = self.slots.lock().unwrap();
        let lanes: Vec<String> = slots
            .iter()
            .map(|s| s.map_or_else(|| " -- ".to_string(), |w| format!(" w{w:02}")))
            .collect();
        println!(
            "{:>7.3}s  [{}]  inside {}/{}  {event}",
            self.started.elapsed().as_secs_f64(),
            lanes.join(""),
            self.inside.load(Ordering::SeqCst),
            PERMITS
        );
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let workers: usize = args.next().map_or(Ok(12), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;

    let name = format!("demo-{}", std::process::id());
    println!(
        "{workers} workers, {rounds} rounds each, on semaphore {name:?} with {PERMITS} permits at {url}"
    );
    println!("  time   [slot 0 1 2 ]  holders  event");
    let board = Arc::new(Board {
        started: Instant::now(),
        slots: Mutex::new(vec![None; PERMITS as usize]),
        inside: AtomicU32::new(0),
        max_inside: AtomicU32::new(0),
    });
    let last_token = Arc::new(AtomicU64::new(0));

    let mut tasks = Vec::new();
    for worker in 0..workers {
        // Its own handle and connection, as a separate process would have.
        let sem = AsyncSemaphore::builder(name.as_str(), PERMITS)
            .master(url.as_str())
            .lease(Duration::from_secs(5))
            .build()
            .await?;
        let (board, last_token) = (Arc::clone(&board), Arc::clone(&last_token));
        tasks.push(tokio::spawn(async move {
            for round in 0..rounds {
                let asked = Instant::now();
                let permit = sem.acquire().await?;
                let slot = permit.slots()[0] as usize;
                let inside = board.inside.fetch_add(1, Ordering::SeqCst) + 1;
                board.max_inside.fetch_max(inside, Ordering::SeqCst);
                board.slots.lock().unwrap()[slot] = Some(worker);
                let token = permit.fencing_token();
                last_token.fetch_max(token, Ordering::SeqCst);
                board.show(&format!(
                    "w{worker:02} in  (round {}, slot {slot}, token {token}, waited {} ms)",
                    round + 1,
                    asked.elapsed().as_millis()
                ));
                assert!(inside <= PERMITS, "{inside} holders of {PERMITS} permits");

                let work = 60 + (worker as u64 * 37 + round as u64 * 53) % 140;
                tokio::time::sleep(Duration::from_millis(work)).await;

                board.slots.lock().unwrap()[slot] = None;
                board.inside.fetch_sub(1, Ordering::SeqCst);
                board.show(&format!("w{worker:02} out"));
                permit.release().await?;
                // Other work between rounds, outside the semaphore.
                tokio::time::sleep(Duration::from_millis(20 + (worker as u64 * 11) % 60)).await;
            }
            Ok::<_, redis_semaphore::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let max = board.max_inside.load(Ordering::SeqCst);
    println!(
        "done: {} acquisitions in {:.2}s, at most {max} of {PERMITS} inside at once, last fencing token {}",
        workers * rounds,
        board.started.elapsed().as_secs_f64(),
        last_token.load(Ordering::SeqCst)
    );
    Ok(())
}
