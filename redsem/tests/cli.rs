//! `redsem`, end to end against real servers: exit statuses, a command's whole process
//! group stopped when the lease is lost and reached by signals passed on, a command that
//! dies with a killed redsem, a waiter that leaves the queue when interrupted, runs on
//! several "hosts" (processes) that never overlap, and the admin commands (`status --json`
//! parsed). Processes are checked by pid in `/proc` (Linux).

use testkit as support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
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
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("renewals went unanswered"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_permit_released_by_an_operator_says_so_and_stops_the_command() {
    let server = Server::start();
    let dir = temp_dir("revoked");
    let script = format!(
        "echo $REDSEM_PERMIT_ID > {dir}/id.tmp; mv {dir}/id.tmp {dir}/id; sleep 30",
        dir = dir.display()
    );
    let mut child = redsem(&server)
        .args(["run", "revoked", "--permits", "1", "--lease", "600ms", "--"])
        .args(["sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&dir.join("id"));
    let id = std::fs::read_to_string(dir.join("id")).unwrap();
    let released = output(redsem(&server).args(["release", "revoked", "--id", id.trim()]));
    assert_eq!(code(&released), 0, "{released:?}");
    // Found out at the next renewal, within a third of the lease (and slack).
    let status = wait_exit(&mut child, Duration::from_secs(3));
    assert_eq!(status.code(), Some(125));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("the masters no longer hold it"), "{stderr}");
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
    assert_eq!(code(&missing), 125);
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no semaphore named \"ops\""),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );

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
    assert_eq!(
        code(&out),
        0,
        "nothing left to release is no failure, as with rm -f"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing released"));

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
fn status_shows_whether_the_semaphore_is_bounded() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (name, bounded) in [("fixed", true), ("growable", false)] {
        runtime
            .block_on(sem(&server, name, 1).bounded(bounded).build())
            .unwrap();
        let out = output(redsem(&server).args(["status", name, "--json"]));
        assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(status["bounded"], bounded, "{status}");
        let table = output(redsem(&server).args(["status", name]));
        let table = String::from_utf8_lossy(&table.stdout);
        let want = if bounded { "(bounded)" } else { "(unbounded)" };
        assert!(
            table.starts_with(&format!("{name}: 1 permit, 1 available, 0 holders {want}")),
            "{table}"
        );
    }
    // `run --permits` makes bounded semaphores, and says how to use an unbounded one.
    let out = output(redsem(&server).args(["run", "growable", "--permits", "1", "--", "true"]));
    assert_eq!(code(&out), 125);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unbounded") && stderr.contains("without --permits"),
        "{stderr}"
    );
    let out = output(redsem(&server).args(["run", "growable", "--", "true"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn no_url_is_a_clear_error() {
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_redsem"))
            .env_remove("REDSEM_URL")
            .args(["status", "x"]),
    );
    assert_eq!(code(&out), 125);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no master"));
}

/// Whether process `pid` still runs: a zombie (dead, waiting to be reaped) runs nothing.
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .and_then(|(_, after)| after.split_whitespace().next());
            !matches!(state, Some("Z" | "X"))
        }
    }
}

/// The pid a script wrote to `path` (waits, bounded, for the file and a whole number).
fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(pid) = std::fs::read_to_string(path)
            .unwrap_or_default()
            .trim()
            .parse()
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits (bounded) for a child to exit.
fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "redsem did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills what a test left running (a grandchild it expected to survive, or one a failed
/// assertion left behind) when dropped.
struct Reap(Vec<u32>);

impl Drop for Reap {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if running(pid) {
                support::signal("KILL", pid);
            }
        }
    }
}

/// The command: a shell whose own child (the "grandchild", redsem's view) sleeps
/// in the foreground and writes its pid to `gc.pid`; `after` appears if the shell goes on.
fn grandchild_script(dir: &Path) -> String {
    format!(
        "sh -c 'echo $$ > {d}/gc.pid; exec sleep 31'; echo after > {d}/after",
        d = dir.display()
    )
}

#[test]
fn a_lost_lease_stops_the_whole_process_group() {
    let server = Server::start();
    let dir = temp_dir("lost-group");
    let mut child = redsem(&server)
        .args([
            "run",
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
        ])
        .arg(grandchild_script(&dir))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let grandchild = read_pid(&dir.join("gc.pid"));
    let _reap = Reap(vec![grandchild]);
    server.pause();
    let status = wait_exit(&mut child, Duration::from_secs(5));
    server.resume();
    assert_eq!(status.code(), Some(125));
    assert!(
        !running(grandchild),
        "the grandchild {grandchild} runs on without a permit"
    );
    assert!(!dir.join("after").exists(), "the shell went on");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_forwarded_sigterm_reaches_the_whole_process_group() {
    let server = Server::start();
    let dir = temp_dir("term-group");
    let mut child = redsem(&server)
        .args(["run", "job", "--permits", "1", "--", "sh", "-c"])
        .arg(grandchild_script(&dir))
        .spawn()
        .unwrap();
    let grandchild = read_pid(&dir.join("gc.pid"));
    let _reap = Reap(vec![grandchild]);
    support::signal("TERM", child.id());
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(143), "the shell's own status: SIGTERM");
    assert!(
        !running(grandchild),
        "the grandchild {grandchild} runs on without a permit"
    );
    let out = output(redsem(&server).args(["status", "job", "--json"]));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["available"], 1, "released");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn what_the_command_leaves_running_in_its_group_is_stopped_before_the_release() {
    let server = Server::start();
    let dir = temp_dir("leftover");
    let script = format!("sleep 31 & echo $! > {}/gc.pid", dir.display());
    let out = output(
        redsem(&server)
            .args([
                "run",
                "job",
                "--permits",
                "1",
                "--grace",
                "1s",
                "--",
                "sh",
                "-c",
            ])
            .arg(&script),
    );
    let grandchild = read_pid(&dir.join("gc.pid"));
    let _reap = Reap(vec![grandchild]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        !running(grandchild),
        "the background job {grandchild} runs on without a permit"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("leaving processes running"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn child_only_signals_the_command_alone_as_before() {
    let server = Server::start();
    let dir = temp_dir("child-only");
    let mut child = redsem(&server)
        .args([
            "run",
            "job",
            "--permits",
            "1",
            "--child-only",
            "--",
            "sh",
            "-c",
        ])
        .arg(grandchild_script(&dir))
        .spawn()
        .unwrap();
    let grandchild = read_pid(&dir.join("gc.pid"));
    let _reap = Reap(vec![grandchild]);
    support::signal("TERM", child.id());
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(143));
    assert!(running(grandchild), "--child-only leaves the grandchild be");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_dies_with_a_killed_redsem() {
    let server = Server::start();
    let dir = temp_dir("pdeathsig");
    let script = format!("echo $$ > {}/cmd.pid; exec sleep 31", dir.display());
    let mut child = redsem(&server)
        .args(["run", "job", "--permits", "1", "--", "sh", "-c", &script])
        .spawn()
        .unwrap();
    let command = read_pid(&dir.join("cmd.pid"));
    let _reap = Reap(vec![command]);
    support::signal("KILL", child.id());
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(2);
    while running(command) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        !running(command),
        "the command {command} runs on after redsem was killed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lines queued on `server` for semaphore `name` (not the `~` member, scored -1, that
/// keeps the key).
fn queued(server: &Server, name: &str) -> i64 {
    server.int(&[
        "ZCOUNT",
        &format!("semaphore:{{{name}}}:queue"),
        "0",
        "+inf",
    ])
}

fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "not within 5 s: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigint_while_waiting_leaves_the_queue() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(sem(&server, "job", 1).build()).unwrap();
    let permit = runtime.block_on(holder.acquire()).unwrap();
    let mut waiter = redsem(&server)
        .args(["run", "job", "--permits", "1", "--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("redsem queued", || queued(&server, "job") == 1);
    let next = runtime.block_on(sem(&server, "job", 1).build()).unwrap();
    let behind = runtime.spawn(async move {
        let permit = next.acquire().await.unwrap();
        (Instant::now(), permit)
    });
    wait_until("a second waiter queued behind it", || {
        queued(&server, "job") == 2
    });
    support::signal("INT", waiter.id());
    let status = wait_exit(&mut waiter, Duration::from_secs(5));
    let released = Instant::now();
    runtime.block_on(permit.release()).unwrap();
    let (granted, permit) = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(3), behind).await })
        .expect("the next waiter was served")
        .unwrap();
    let took = granted - released;
    assert!(
        took < Duration::from_millis(200),
        "the next waiter was served {took:?} after the release"
    );
    assert_eq!(status.code(), Some(130), "128 + SIGINT");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut waiter.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("left the queue"), "{stderr}");
    runtime.block_on(permit.release()).unwrap();
}

#[test]
fn a_failed_release_after_the_command_keeps_the_commands_status() {
    let mut server = Server::start();
    let dir = temp_dir("release-fails");
    let script = format!("echo > {}/started; sleep 1; exit 3", dir.display());
    let child = redsem(&server)
        .args(["run", "job", "--permits", "1", "--", "sh", "-c", &script])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_file(&dir.join("started"));
    server.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 3, "the command's status: {stderr}");
    assert!(stderr.contains("release of its permit failed"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redsem_failures_are_125_and_never_look_like_the_commands() {
    let server = Server::start();
    // No command: a usage error.
    let out = output(redsem(&server).args(["run", "job", "--permits", "1"]));
    assert_eq!(code(&out), 125, "{}", String::from_utf8_lossy(&out.stderr));
    // The masters cannot be reached.
    let out = output(
        redsem(&server)
            .env("REDSEM_URL", "redis://127.0.0.1:1")
            .args(["run", "job", "--permits", "1", "--", "true"]),
    );
    assert_eq!(code(&out), 125, "{}", String::from_utf8_lossy(&out.stderr));
    // Help is what was asked for.
    let out = output(redsem(&server).args(["run", "--help"]));
    assert_eq!(code(&out), 0);
    assert!(String::from_utf8_lossy(&out.stdout).contains("--child-only"));
}

#[test]
fn a_mismatched_count_says_what_to_type_next() {
    let server = Server::start();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(sem(&server, "job", 2).build()).unwrap();
    let out = output(redsem(&server).args(["run", "job", "--permits", "3", "--", "true"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 125, "{stderr}");
    assert!(stderr.contains("--permits 2"), "{stderr}");
    assert!(stderr.contains("redsem set-permits job 3"), "{stderr}");
    assert!(
        !stderr.contains("AsyncSemaphore"),
        "library advice: {stderr}"
    );
}

#[test]
fn run_without_permits_takes_the_stored_count() {
    let server = Server::start();
    let out = output(redsem(&server).args(["run", "job", "--", "true"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 125, "no such semaphore yet: {stderr}");
    assert!(stderr.contains("--permits"), "{stderr}");

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(sem(&server, "job", 2).build()).unwrap();
    let permit = runtime.block_on(holder.acquire()).unwrap();
    let out = output(
        redsem(&server)
            .args(["run", "job", "--timeout", "2s", "--", "sh", "-c"])
            .arg("test \"$REDSEM_SLOTS\" = 1"),
    );
    assert_eq!(
        code(&out),
        0,
        "the second of 2 permits: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    runtime.block_on(permit.release()).unwrap();
}

#[test]
fn every_subcommand_takes_the_name_positionally_or_with_name() {
    let server = Server::start();
    let out = output(redsem(&server).args(["run", "ops", "--permits", "2", "--", "true"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let out = output(redsem(&server).args(["run", "--name", "ops", "--", "true"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    for args in [&["status", "ops"][..], &["status", "--name", "ops"]] {
        let out = output(redsem(&server).args(args));
        assert_eq!(
            code(&out),
            0,
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("ops: 2 permits"));
    }
    let out = output(redsem(&server).args(["set-permits", "--name", "ops", "3"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let out = output(redsem(&server).args(["set-permits", "ops", "--permits", "4"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ops: 3 -> 4 permits"
    );
    let out = output(redsem(&server).args(["release", "--name", "ops", "--id", "ab"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let out = output(redsem(&server).args(["delete", "--name", "ops"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.int(&["DBSIZE"]), 0);
}

#[test]
fn compound_durations_are_read_and_durations_printed_as_people_write_them() {
    let server = Server::start();
    let out = output(redsem(&server).args([
        "run",
        "job",
        "--permits",
        "1",
        "--timeout",
        "100d",
        "--lease",
        "1h30m",
        "--grace",
        "1.5s",
        "--",
        "true",
    ]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(sem(&server, "job", 1).build()).unwrap();
    let permit = runtime.block_on(holder.acquire()).unwrap();
    let out = output(redsem(&server).args(["run", "job", "--timeout", "0s", "--", "true"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 124, "{stderr}");
    assert!(stderr.contains("within 0s;"), "{stderr}");
    let out = output(redsem(&server).args(["run", "job", "--lease", "100d", "--", "true"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 125, "{stderr}");
    assert!(stderr.contains("the most is 1d"), "{stderr}");
    runtime.block_on(permit.release()).unwrap();
}

#[test]
fn delete_or_release_of_what_is_not_there_is_no_failure() {
    let server = Server::start();
    let out = output(redsem(&server).args(["delete", "nothing"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no semaphore nothing; nothing deleted"
    );
    let out = output(redsem(&server).args(["release", "nothing", "--id", "ab"]));
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "no semaphore nothing; nothing released"
    );
    assert_eq!(server.int(&["DBSIZE"]), 0, "and nothing made");
}
