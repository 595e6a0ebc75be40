//! A Sentinel group on loopback: a primary, two replicas and three sentinels, all of the
//! suite's server binary (`REDIS_SERVER_BIN`; redis-server and valkey-server both run as
//! a sentinel with `--sentinel`), with fast failure detection (`down-after-milliseconds`
//! 1500, `failover-timeout` 3000). With 800 ms, a loaded CI machine saw a replica just
//! promoted taken for down and a second failover started at once; the group then took
//! about 30 s to settle (the demoted node is converted to a replica some 10 s later),
//! hence also the 60 s allowed for a failover.

use std::fs;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::{Server, free_port, make_temp_dir, server_binary};

/// The service name the sentinels monitor.
pub const SERVICE: &str = "mymaster";
/// How long a failover may take before the harness gives up.
const FAILOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// One sentinel process.
#[derive(Debug)]
pub struct SentinelProcess {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl SentinelProcess {
    fn start(bin: &str, primary_port: u16) -> SentinelProcess {
        let dir = make_temp_dir();
        for _ in 0..5 {
            let port = free_port();
            let conf = dir.join("sentinel.conf");
            fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n\
                     dir {dir}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
                     sentinel down-after-milliseconds {SERVICE} 1500\n\
                     sentinel failover-timeout {SERVICE} 3000\n\
                     sentinel parallel-syncs {SERVICE} 2\n",
                    dir = dir.display()
                ),
            )
            .expect("write sentinel.conf");
            let log = fs::File::create(dir.join("sentinel.log")).expect("sentinel log");
            let child = match Command::new(bin)
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
            {
                Ok(child) => child,
                Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                    "{bin} not found: run scripts/install-servers.sh (redis-server runs as a \
                     sentinel with --sentinel)"
                ),
                Err(e) => panic!("cannot start {bin} --sentinel: {e}"),
            };
            let mut sentinel = SentinelProcess {
                child: Some(child),
                port,
                dir: dir.clone(),
            };
            if sentinel.wait_ready() {
                return sentinel;
            }
            sentinel.kill();
        }
        panic!(
            "{bin} --sentinel did not start; log:\n{}",
            fs::read_to_string(dir.join("sentinel.log")).unwrap_or_default()
        );
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().ok().flatten().is_some()
            {
                return false;
            }
            if self.try_cmd(&["PING"]).is_ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn try_cmd(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        let client = redis::Client::open(self.url())?;
        let mut con = client.get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        c.query(&mut con)
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A primary with two replicas, watched by three sentinels.
#[derive(Debug)]
pub struct Group {
    /// The data nodes; `nodes[0]` is the first primary.
    pub nodes: Vec<Server>,
    pub sentinels: Vec<SentinelProcess>,
}

impl Group {
    /// Starts the group and waits until every sentinel knows both replicas and the other
    /// sentinels (a failover needs them to agree).
    pub fn start() -> Group {
        let bin = server_binary();
        let primary = Server::start_bin(bin.clone(), &[]);
        let port = primary.port().to_string();
        let mut nodes = vec![primary];
        for _ in 0..2 {
            nodes.push(Server::start_bin(
                bin.clone(),
                &["--replicaof", "127.0.0.1", &port],
            ));
        }
        let sentinels = (0..3)
            .map(|_| SentinelProcess::start(&bin, nodes[0].port()))
            .collect();
        let group = Group { nodes, sentinels };
        group.wait_until("the sentinels know the replicas and each other", |g| {
            g.sentinels.iter().all(|s| {
                let fields = master_fields(s);
                fields.get("num-slaves").map(String::as_str) == Some("2")
                    && fields.get("num-other-sentinels").map(String::as_str) == Some("2")
            }) && g.replicas_in_sync(g.primary())
        });
        group
    }

    /// The sentinels' URLs.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(SentinelProcess::url).collect()
    }

    /// The port of the primary a majority of the sentinels name now.
    pub fn named_primary_port(&self) -> Option<u16> {
        let mut votes = std::collections::HashMap::new();
        for s in &self.sentinels {
            if let Ok(redis::Value::Array(addr)) =
                s.try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE])
                && let Some(port) = addr.get(1)
                && let Ok(port) = redis::from_redis_value::<u16>(port.clone())
            {
                *votes.entry(port).or_insert(0) += 1;
            }
        }
        votes.into_iter().find(|&(_, n)| n >= 2).map(|(p, _)| p)
    }

    /// The index of the node that is the primary now (named by the sentinels, and a
    /// primary by its own `ROLE`).
    pub fn primary(&self) -> usize {
        let port = self
            .named_primary_port()
            .expect("the sentinels name a primary");
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("the primary is one of the nodes")
    }

    /// Forces a failover (`SENTINEL FAILOVER`) and waits until another node is the
    /// primary and the group is whole again. Returns the new primary's index.
    pub fn force_failover(&mut self) -> usize {
        let old = self.primary();
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        // A sentinel refuses while a previous failover is still settling (-INPROG).
        loop {
            match self.sentinels[0].try_cmd(&["SENTINEL", "FAILOVER", SERVICE]) {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "SENTINEL FAILOVER refused: {e}");
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
        self.settle(old)
    }

    /// Kills the primary (SIGKILL), waits until the sentinels promote a replica, then
    /// restarts the killed node empty (it rejoins as a replica). Returns the new primary's
    /// index.
    pub fn kill_primary(&mut self) -> usize {
        let old = self.primary();
        self.nodes[old].kill();
        self.wait_until("the sentinels promote a replica", |g| {
            g.named_primary_port()
                .is_some_and(|p| p != g.nodes[old].port())
        });
        self.nodes[old].restart();
        self.settle(old)
    }

    /// Waits until a node other than `old` is the primary, by the sentinels and by its
    /// own role, and every other node replicates from it, in sync.
    fn settle(&self, old: usize) -> usize {
        self.wait_until("a new primary, with both replicas in sync", |g| {
            let Some(port) = g.named_primary_port() else {
                return false;
            };
            let Some(new) = g.nodes.iter().position(|n| n.port() == port) else {
                return false;
            };
            new != old && g.replicas_in_sync(new)
        });
        self.primary()
    }

    /// Node `primary` says it is a primary with two replicas online.
    fn replicas_in_sync(&self, primary: usize) -> bool {
        let Ok(info) = replication(&self.nodes[primary]) else {
            return false;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(|v| v.trim().to_string())
        };
        if field("role").as_deref() != Some("master")
            || field("connected_slaves").as_deref() != Some("2")
        {
            return false;
        }
        (0..2).all(|i| field(&format!("slave{i}")).is_some_and(|l| l.contains("state=online")))
    }

    fn wait_until(&self, what: &str, mut check: impl FnMut(&Group) -> bool) {
        let deadline = Instant::now() + FAILOVER_TIMEOUT;
        while !check(self) {
            assert!(
                Instant::now() < deadline,
                "not within {FAILOVER_TIMEOUT:?}: {what}\n{}",
                self.describe()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// What each node says of its role, and the end of each sentinel's log: for a failure
    /// message that says where the group got stuck.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let role = replication(node)
                .map(|info| {
                    info.lines()
                        .filter(|l| {
                            l.starts_with("role:")
                                || l.starts_with("master_port:")
                                || l.starts_with("master_link_status:")
                                || l.starts_with("connected_slaves:")
                                || l.starts_with("slave")
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_else(|e| format!("unreachable: {e}"));
            out += &format!("node {i} (port {}): {role}\n", node.port());
        }
        for (i, sentinel) in self.sentinels.iter().enumerate() {
            let log = fs::read_to_string(sentinel.dir.join("sentinel.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            out += &format!("sentinel {i} log, last lines:\n");
            for line in tail.into_iter().rev() {
                out += &format!("  {line}\n");
            }
        }
        out
    }
}

/// A node's `INFO replication`.
fn replication(node: &Server) -> redis::RedisResult<String> {
    let mut conn = node
        .client()
        .get_connection_with_timeout(Duration::from_secs(1))?;
    redis::cmd("INFO").arg("replication").query(&mut conn)
}

/// `SENTINEL MASTER mymaster` as field -> value.
fn master_fields(s: &SentinelProcess) -> std::collections::HashMap<String, String> {
    let Ok(redis::Value::Array(items)) = s.try_cmd(&["SENTINEL", "MASTER", SERVICE]) else {
        return Default::default();
    };
    let strings: Vec<String> = items
        .into_iter()
        .map(|v| redis::from_redis_value::<String>(v).unwrap_or_default())
        .collect();
    strings
        .chunks(2)
        .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone())))
        .collect()
}
