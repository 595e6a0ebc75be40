//! The `tracing` feature: an acquire, a renewal, a release, a master's error and a lost
//! permit each leave an event. Runs with `cargo test --features tracing --test tracing`
//! (`make test` does).

#![cfg(feature = "tracing")]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testkit::{Server, sem};

/// Everything the subscriber writes, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[test]
fn acquire_renewal_release_error_and_loss_are_traced() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = Server::start();
    runtime.block_on(async {
        let lease = Duration::from_millis(300);
        let sem = sem(&server, "traced", 1)
            .lease(lease)
            .build()
            .await
            .unwrap();
        let permit = sem.acquire().await.unwrap();
        tokio::time::sleep(lease / 2).await;
        permit.release().await.unwrap();
        let permit = sem.acquire().await.unwrap();
        server.pause();
        tokio::time::timeout(lease * 3, permit.lost())
            .await
            .unwrap();
        server.resume();
    });
    let text = captured.text();
    for expected in [
        "acquire{semaphore=\"traced\" permits=1}",
        "acquired",
        "attempts=1",
        "masters_granted=1",
        "lease renewed",
        "released",
        "master error",
        "permit lost",
    ] {
        assert!(text.contains(expected), "no {expected:?} in:\n{text}");
    }
}

#[test]
fn an_outage_is_one_warning_and_its_end_is_reported() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut server = Server::start();
    runtime.block_on(async {
        let sem = sem(&server, "outage", 1)
            .outage_timeout(Duration::from_millis(300))
            .build()
            .await
            .unwrap();
        server.kill();
        for _ in 0..5 {
            assert!(sem.try_acquire().await.unwrap().is_none());
        }
        assert!(sem.acquire().await.is_err(), "gave up on the outage");
        server.restart();
        let permit = sem.acquire().await.unwrap();
        permit.release().await.unwrap();
    });
    let text = captured.text();
    let warnings = text.matches("WARN").count();
    let unreachable = text
        .matches("master error; retried until it answers again")
        .count();
    assert_eq!(unreachable, 1, "one warning for the outage:\n{text}");
    assert!(text.contains("acquire gave up"), "{text}");
    assert!(text.contains("master answers again"), "{text}");
    assert_eq!(warnings, 2, "{text}");
}
