//! Checks shared by the bad-input tests (key types, configuration, refusals).

use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, Error};

use crate::Server;

/// A short lease, so that what a failure leaves held is back within the test.
pub const LEASE: Duration = Duration::from_millis(600);

pub fn invalid<T: std::fmt::Debug>(result: Result<T, Error>, expect: &str) {
    match result {
        Err(Error::InvalidArgument(why)) => {
            assert!(why.contains(expect), "{why:?} lacks {expect:?}")
        }
        other => panic!("expected InvalidArgument({expect}), got {other:?}"),
    }
}

pub fn key(name: &str, part: &str) -> String {
    format!("semaphore:{{{name}}}:{part}")
}

pub fn string_at(server: &Server, key: &str) -> Option<String> {
    redis::from_redis_value(server.cmd(&["GET", key])).unwrap()
}

/// Everything is free within one lease and `permits` permits (at most
/// [`MAX_ACQUIRE_MANY`](redis_semaphore::MAX_ACQUIRE_MANY)) can be taken at once.
pub async fn all_free(sem: &AsyncSemaphore, permits: u32) {
    let started = Instant::now();
    loop {
        let value = sem.value().await;
        let holders = sem.holders().await;
        if matches!(value, Ok(v) if v == permits) && matches!(&holders, Ok(h) if h.is_empty()) {
            break;
        }
        assert!(
            started.elapsed() < LEASE + Duration::from_millis(400),
            "still held: value {value:?}, holders {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let all = sem
        .try_acquire_many(permits.min(redis_semaphore::MAX_ACQUIRE_MANY))
        .await
        .unwrap()
        .expect("every permit");
    all.release().await.unwrap();
}

/// The error of a call that must fail at once (well within a second).
pub async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    call: impl Future<Output = Result<T, Error>>,
) -> Error {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .unwrap_or_else(|_| panic!("{what}: still waiting after 3 s"));
    let took = started.elapsed();
    let error = result.expect_err(what);
    assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
    assert!(!error.is_transient(), "{what}: waiting cannot fix {error}");
    error
}
