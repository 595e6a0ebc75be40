//! The blocking twin: same behaviour on a private runtime thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_semaphore::Error;
use redis_semaphore::blocking::Semaphore;
use testkit::Server;

fn blocking(server: &Server, name: &str, permits: u32) -> Semaphore {
    Semaphore::builder(name, permits)
        .master(server.url())
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[test]
fn threads_share_a_blocking_semaphore() {
    let server = Server::start();
    let sem = blocking(&server, "threads", 2);
    let inside = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let (sem, inside) = (sem.clone(), Arc::clone(&inside));
            std::thread::spawn(move || {
                for _ in 0..5 {
                    let permit = sem.acquire().unwrap();
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= 2, "{now} holders of 2 permits");
                    std::thread::sleep(Duration::from_millis(2));
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(permit);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(sem.value().unwrap(), 2);
}

#[test]
fn drop_returns_after_the_release() {
    let server = Server::start();
    let sem = blocking(&server, "drop", 1);
    for _ in 0..20 {
        let permit = sem.acquire().unwrap();
        assert!(permit.is_valid());
        assert_eq!(sem.value().unwrap(), 0);
        drop(permit);
        // No waiting: the release is done when drop returns.
        assert_eq!(sem.value().unwrap(), 1);
    }
}

#[test]
fn the_same_methods_as_the_async_semaphore() {
    let server = Server::start();
    let sem = blocking(&server, "methods", 3);
    assert_eq!(sem.initial_value(), 3);
    assert_eq!(sem.name(), "methods");
    let two = sem.acquire_many(2).unwrap();
    assert_eq!(two.permits(), 2);
    assert_eq!(two.slots(), &[0, 1]);
    let one = sem.try_acquire().unwrap().expect("one left");
    assert!(sem.locked().unwrap());
    assert!(sem.try_acquire_many(1).unwrap().is_none());
    assert!(
        sem.acquire_timeout(Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    assert!(
        sem.acquire_many_timeout(2, Duration::from_millis(50))
            .unwrap()
            .is_none()
    );
    assert!(one.fencing_token() > two.fencing_token());
    assert!(!two.wait_lost(Duration::from_millis(10)));
    one.detach();
    assert!(matches!(
        sem.release(2),
        Err(Error::Bounded {
            held: 1,
            requested: 2
        })
    ));
    sem.release(1).unwrap();
    two.release().unwrap();
    assert_eq!(sem.value().unwrap(), 3);
    assert_eq!(two_id_len(&sem), 32);
}

fn two_id_len(sem: &Semaphore) -> usize {
    sem.acquire().unwrap().id().len()
}

#[test]
fn a_lost_blocking_permit_reports_it() {
    let server = Server::start();
    let sem = Semaphore::builder("lost", 1)
        .master(server.url())
        .lease(Duration::from_millis(300))
        .request_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let permit = sem.acquire().unwrap();
    server.pause();
    assert!(
        permit.wait_lost(Duration::from_secs(2)),
        "lease lost while the master is paused"
    );
    server.resume();
    assert!(!permit.is_valid());
    assert!(matches!(permit.release(), Err(Error::PermitLost { .. })));
}

#[tokio::test]
#[should_panic = "called from inside an async runtime"]
async fn blocking_calls_inside_a_runtime_panic() {
    let _ = Semaphore::builder("x", 1)
        .master("redis://127.0.0.1:1")
        .build();
}

#[test]
fn a_blocking_permit_used_inside_a_runtime_panics_with_a_clear_message() {
    let server = Server::start();
    let sem = blocking(&server, "inside", 1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let panic = runtime.block_on(async {
        let sem = sem.clone();
        tokio::spawn(async move { sem.value() }).await.unwrap_err()
    });
    let message = panic.into_panic();
    let message = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        message.contains("use redis_semaphore::AsyncSemaphore"),
        "{message}"
    );
    drop(runtime);
    assert_eq!(sem.value().unwrap(), 1);
}

#[test]
fn dropping_the_last_handle_releases_detached_permits() {
    let server = Server::start();
    let sem = blocking(&server, "orphans", 2);
    sem.acquire_many(2).unwrap().detach();
    drop(sem);
    // Dropping joined the runtime thread, after the release reached the master.
    assert_eq!(blocking(&server, "orphans", 2).value().unwrap(), 2);
}
