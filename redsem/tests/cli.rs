//! `redsem`, end to end against real servers: exit statuses, a child stopped when the lease
//! is lost, signals passed on, runs on several "hosts" (processes) that never overlap, and
//! the admin commands (`status --json` parsed).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{Server, sem};

fn redsem(server: &Server) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_redsem"));
    command.env("REDSEM_URL", server.url()).stdin(Stdio::null());
    command
}

fn output(command: &mut Command) -> Output {
    command.output().expect("redsem runs")
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited, not killed")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "redsem-{tag}-{}-{:x}",
        std::process::id(),
        rand_u64()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(Instant::now())
}

/// Waits (bounded) until `path` exists.
fn wait_for_file(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn run_exits_with_the_commands_status_and_passes_the_permit_on() {
    let server = Server::start();
    let out = output(
        redsem(&server)
            .args(["run", "--name", "job", "--permits", "1", "--"])
            .args([
                "sh",
                "-c",
                "test -n \"$REDSEM_FENCING_TOKEN\" && test \"$REDSEM_SLOTS\" = 0 && exit 3",
            ]),
    );
    assert_eq!(code(&out), 3, "{}", String::from_utf8_lossy(&out.stderr));
    // The permit was released on the way out.
    let out =
        output(redsem(&server).args(["run", "--name", "job", "--permits", "1", "--", "true"]));
    assert_eq!(code(&out), 0);
    let out = output(redsem(&server).args(["status", "job"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 available"));
}

#[test]
fn a_command_that_cannot_run_is_127_and_releases() {
    let server = Server::start();
    let out = output(redsem(&server).args([
        "run",
        "--name",
        "job",
        "--permits",
        "1",
        "--",
        "/nonexistent/command",
    ]));
    assert_eq!(code(&out), 127);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot run"));
    let out = output(redsem(&server).args(["status", "job", "--json"]));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["available"], 1);
}

#[test]
fn no_permit_within_the_timeout_is_124() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(sem(&server, "job", 1).build()).unwrap();
    let permit = runtime.block_on(holder.acquire()).unwrap();
    let started = Instant::now();
    let out = output(redsem(&server).args([
        "run",
        "--name",
        "job",
        "--permits",
        "1",
        "--timeout",
        "300ms",
        "--",
        "true",
    ]));
    let took = started.elapsed();
    assert_eq!(code(&out), 124, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    runtime.block_on(permit.release()).unwrap();
}

#[test]
fn a_lost_lease_stops_the_command_and_is_125() {
    let server = Server::start();
    let dir = temp_dir("lost");
    let script = format!(
        "trap 'echo TERM > {dir}/term; kill $! 2>/dev/null; exit 143' TERM; \
         echo > {dir}/started; sleep 30 & wait",
        dir = dir.display()
    );
    let mut child = redsem(&server)
        .args([
            "run",
            "--name",
            "job",
            "--permits",
            "1",
            "--lease",
            "600ms",
            "--grace",
            "2s",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&dir.join("started"));
    // The master stops answering: renewals fail until the lease runs out.
    server.pause();
    let paused = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            paused.elapsed() < Duration::from_secs(5),
            "redsem never gave up"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    server.resume();
    assert_eq!(status.code(), Some(125));
    assert!(
        paused.elapsed() < Duration::from_secs(3),
        "{:?}",
        paused.elapsed()
    );
    let term = std::fs::read_to_string(dir.join("term")).expect("the command got SIGTERM");
    assert_eq!(term.trim(), "TERM");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_is_passed_on_to_the_command() {
    let server = Server::start();
    let dir = temp_dir("term");
    let script = format!(
        "trap 'kill $! 2>/dev/null; exit 42' TERM; echo > {}/started; sleep 30 & wait",
        dir.display()
    );
    let mut child = redsem(&server)
        .args([
            "run",
            "--name",
            "job",
            "--permits",
            "1",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .spawn()
        .unwrap();
    wait_for_file(&dir.join("started"));
    support::signal("TERM", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "redsem did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(42), "the command's own status");
    let out = output(redsem(&server).args(["status", "job", "--json"]));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["available"], 1, "released");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn runs_on_several_hosts_never_overlap() {
    let server = Server::start();
    let dir = temp_dir("overlap");
    // mkdir is atomic: a second holder inside at the same time fails it and exits 99.
    let script = format!(
        "mkdir {dir}/inside || exit 99; sleep 0.05; rmdir {dir}/inside",
        dir = dir.display()
    );
    let started = Instant::now();
    let children: Vec<_> = (0..6)
        .map(|_| {
            redsem(&server)
                .args([
                    "run",
                    "--name",
                    "job",
                    "--permits",
                    "1",
                    "--quiet",
                    "--timeout",
                    "20s",
                    "--",
                    "sh",
                    "-c",
                    &script,
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), 0, "a run overlapped another, or failed");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "6 x 50 ms, one at a time"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_set_permits_release_and_delete() {
    let server = Server::start();
    let missing = output(redsem(&server).args(["status", "ops"]));
    assert_eq!(code(&missing), 1);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no semaphore named \"ops\""));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(sem(&server, "ops", 2).build()).unwrap();
    let permit = runtime.block_on(holder.acquire()).unwrap();

    let out = output(redsem(&server).args(["status", "ops", "--json"]));
    assert_eq!(code(&out), 0);
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["name"], "ops");
    assert_eq!(status["permits"], 2);
    assert_eq!(status["available"], 1);
    let holders = status["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1);
    assert_eq!(holders[0]["id"], permit.id());
    assert_eq!(holders[0]["slots"], serde_json::json!([0]));
    assert_eq!(holders[0]["fencing_token"], permit.fencing_token());
    let left = holders[0]["masters"][0]["lease_left_ms"].as_u64().unwrap();
    assert!(left > 0 && left <= 10_000);

    let table = output(redsem(&server).args(["status", "ops"]));
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("2 permits, 1 available, 1 holder"),
        "{table}"
    );
    assert!(table.contains(permit.id()), "{table}");

    let out = output(redsem(&server).args(["set-permits", "ops", "3"]));
    assert_eq!(code(&out), 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ops: 2 -> 3 permits"
    );

    let out = output(redsem(&server).args(["release", "ops", "--id", permit.id()]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let out = output(redsem(&server).args(["release", "ops", "--id", permit.id()]));
    assert_eq!(code(&out), 1, "nothing left to release");

    let out = output(redsem(&server).args(["status", "ops", "--json"]));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["permits"], 3);
    assert_eq!(status["available"], 3);

    let out = output(redsem(&server).args(["delete", "ops"]));
    assert_eq!(code(&out), 0);
    assert_eq!(server.int(&["DBSIZE"]), 0);
    drop(permit);
}

#[test]
fn no_url_is_a_clear_error() {
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_redsem"))
            .env_remove("REDSEM_URL")
            .args(["status", "x"]),
    );
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no master"));
}
