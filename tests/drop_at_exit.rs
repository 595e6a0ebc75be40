//! A permit dropped at the very end of `#[tokio::main]` is released before the process
//! exits, on either runtime flavor; an unanswered release holds up exit for about one
//! request timeout and no longer; `AsyncSemaphore::flush` waits for background releases.
//!
//! This test binary re-runs itself as the child processes (`harness = false` in
//! Cargo.toml): with `EXIT_CHILD` set, `main` is a child; without it, the test runner.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use redis_semaphore::{AsyncSemaphore, blocking};
use testkit::Server;

/// Long enough that a permit that is not released is plainly still held.
const LEASE: Duration = Duration::from_secs(30);
/// The children's request timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(400);

fn main() {
    if let Ok(mode) = std::env::var("EXIT_CHILD") {
        match mode.as_str() {
            "multi_thread" => multi_thread_child(),
            "current_thread" => current_thread_child(),
            other => panic!("unknown child mode {other}"),
        }
        return;
    }
    let tests: &[(&str, fn())] = &[
        (
            "a_permit_dropped_at_the_end_of_main_is_released",
            a_permit_dropped_at_the_end_of_main_is_released,
        ),
        (
            "exit_waits_about_one_request_timeout_for_a_master_that_does_not_answer",
            exit_waits_about_one_request_timeout_for_a_master_that_does_not_answer,
        ),
        (
            "flush_waits_for_background_releases",
            flush_waits_for_background_releases,
        ),
    ];
    testkit::run_tests("drop_at_exit", tests);
}

/// What every child does: take the permit, say so, wait for the word to go on stdin, and
/// return from `main` with the permit dropped on the way out (the user's code in the
/// issue: `let p = sem.acquire().await?; Ok(())`).
async fn child() -> Result<(), redis_semaphore::Error> {
    let url = std::env::var("EXIT_URL").expect("EXIT_URL");
    let sem = AsyncSemaphore::builder("exit", 1)
        .master(url)
        .lease(LEASE)
        .request_timeout(REQUEST_TIMEOUT)
        .build()
        .await?;
    let _permit = sem.acquire().await?;
    println!("HELD");
    std::io::stdout().flush().unwrap();
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).unwrap();
    Ok(())
}

#[tokio::main]
async fn multi_thread_child() {
    child().await.unwrap();
}

#[tokio::main(flavor = "current_thread")]
async fn current_thread_child() {
    child().await.unwrap();
}

struct Exiting {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Exiting {
    /// Starts a child of `flavor` and waits (bounded by its own request timeouts) until
    /// it holds the permit.
    fn holding(server: &Server, flavor: &str) -> Exiting {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("EXIT_CHILD", flavor)
            .env("EXIT_URL", server.url())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "HELD", "the {flavor} child holds the permit");
        Exiting { child, stdout }
    }

    /// Lets the child return from `main`; returns its status and how long it took to exit.
    fn go(mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let deadline = started + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut rest = String::new();
                let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
                return (status, started.elapsed());
            }
            assert!(Instant::now() < deadline, "the child never exited");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Exiting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn blocking_sem(server: &Server) -> blocking::Semaphore {
    blocking::Semaphore::builder("exit", 1)
        .master(server.url())
        .lease(LEASE)
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// The case: the process after the one that returned from `main` with a permit
/// gets it at once, not after the 30 s lease.
fn a_permit_dropped_at_the_end_of_main_is_released() {
    let server = Server::start();
    let next = blocking_sem(&server);
    for flavor in ["current_thread", "multi_thread"] {
        let (status, _) = Exiting::holding(&server, flavor).go();
        assert!(
            status.success(),
            "the {flavor} child exited cleanly: {status}"
        );
        // Nothing may be left to the lease: the release was done before the exit.
        assert_eq!(
            next.holders().unwrap(),
            Vec::new(),
            "a {flavor} child's permit outlived its process"
        );
        let asked = Instant::now();
        let permit = next
            .acquire_timeout(Duration::from_secs(2))
            .unwrap()
            .unwrap_or_else(|| panic!("no permit within 2 s after a {flavor} child's exit"));
        assert!(asked.elapsed() < Duration::from_secs(2));
        permit.release().unwrap();
    }
}

/// A master that does not answer (paused) holds up the exit for about one request
/// timeout: the release is tried, and exit does not wait for it beyond that.
fn exit_waits_about_one_request_timeout_for_a_master_that_does_not_answer() {
    let server = Server::start();
    for flavor in ["current_thread", "multi_thread"] {
        let holding = Exiting::holding(&server, flavor);
        server.pause();
        let (status, took) = holding.go();
        server.resume();
        println!("  {flavor}: exit took {took:?} with the master paused");
        assert!(
            status.success(),
            "the {flavor} child exited cleanly: {status}"
        );
        assert!(
            took >= REQUEST_TIMEOUT,
            "a {flavor} child exited after {took:?}, without trying to release"
        );
        assert!(
            took < REQUEST_TIMEOUT + Duration::from_millis(1500),
            "a {flavor} child's exit was held up for {took:?}"
        );
        // The lease of the permit it could not release is the next test's business.
        server.cmd(&["FLUSHALL"]);
    }
}

/// `flush` returns only once the releases that drops started in the background are done,
/// even on a current-thread runtime that has not run them yet.
fn flush_waits_for_background_releases() {
    let server = Server::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let watcher = blocking_sem(&server);
    runtime.block_on(async {
        let sem = testkit::sem(&server, "exit", 1)
            .lease(LEASE)
            .build()
            .await
            .unwrap();
        let permit = sem.acquire().await.unwrap();
        drop(permit);
        // A cancelled acquire's release goes the same way.
        let other = sem.clone();
        let held = other.acquire().await.unwrap();
        let waiting = tokio::time::timeout(Duration::from_millis(50), sem.acquire()).await;
        assert!(waiting.is_err(), "the semaphore was full");
        drop(held);
        sem.flush().await;
    });
    // The runtime runs nothing outside block_on: what is released now was released by
    // the time flush returned.
    assert_eq!(watcher.holders().unwrap(), Vec::new());
    assert_eq!(watcher.value().unwrap(), 1);
    assert_eq!(
        // Lines are scored by their arrival; the member `~` (scored -1) keeps the key.
        server.int(&["ZCOUNT", "semaphore:{exit}:queue", "0", "+inf"]),
        0,
        "the cancelled waiter left the queue"
    );
}
