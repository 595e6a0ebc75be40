//! The blocking facade's runtime lives on one named thread, started by `build()` and
//! joined when the last handle or permit is dropped. Alone in its test binary, so that no
//! other test's runtime threads are counted.

use std::time::Duration;

use redis_semaphore::blocking::Semaphore;
use testkit::Server;

/// Threads of this process named like ours (Linux keeps the first 15 bytes of a name).
fn runtime_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "redis-semaphore")
        .count()
}

#[test]
fn one_named_runtime_thread_per_semaphore_kept_alive_by_its_permits() {
    let server = Server::start();
    assert_eq!(runtime_threads(), 0);
    let sem = Semaphore::builder("thread", 1)
        .master(server.url())
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    assert_eq!(runtime_threads(), 1);
    let clone = sem.clone();
    let permit = sem.acquire().unwrap();
    drop((sem, clone));
    assert_eq!(runtime_threads(), 1, "the permit keeps the runtime alive");
    drop(permit);
    assert_eq!(runtime_threads(), 0, "the last drop joins the thread");
}
