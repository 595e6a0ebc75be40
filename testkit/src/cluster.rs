//! A throwaway Redis (or Valkey) Cluster of primaries on loopback, assembled by hand
//! (ADDSLOTSRANGE and MEET, no `redis-cli --cluster`), so it works with any server binary.

use std::thread;
use std::time::{Duration, Instant};

use crate::Server;

/// The slots of a cluster.
const SLOTS: u16 = 16384;

/// Primaries that share the 16,384 slots between them, no replicas.
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<Server>,
}

impl Cluster {
    /// Starts `n` primaries, gives each an equal range of slots, introduces them, and
    /// waits (at most 20 s) until every node reports the cluster ok.
    pub fn start(n: usize) -> Cluster {
        assert!(n >= 1);
        let nodes: Vec<Server> = (0..n)
            .map(|_| {
                Server::start_with(&[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ])
            })
            .collect();
        let per = SLOTS as usize / n;
        for (i, node) in nodes.iter().enumerate() {
            let first = i * per;
            let last = if i + 1 == n {
                SLOTS as usize - 1
            } else {
                first + per - 1
            };
            node.cmd(&[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &first.to_string(),
                &last.to_string(),
            ]);
        }
        for node in &nodes[1..] {
            nodes[0].cmd(&["CLUSTER", "MEET", "127.0.0.1", &node.port().to_string()]);
        }
        let cluster = Cluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster.is_ok() {
            assert!(
                Instant::now() < deadline,
                "the cluster did not form within 20 s:\n{}",
                cluster.nodes[0].log_tail()
            );
            thread::sleep(Duration::from_millis(50));
        }
        cluster
    }

    fn is_ok(&self) -> bool {
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        self.nodes.iter().all(|node| {
            let info: String = redis::from_redis_value(node.cmd(&["CLUSTER", "INFO"])).unwrap();
            info.contains("cluster_state:ok") && info.contains(&known)
        })
    }

    /// The seed URLs of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Server::url).collect()
    }

    /// The node that owns `key`'s slot.
    pub fn owner(&self, key: &str) -> &Server {
        let slot: i64 = self.nodes[0].int(&["CLUSTER", "KEYSLOT", key]);
        let per = SLOTS as i64 / self.nodes.len() as i64;
        let index = ((slot / per) as usize).min(self.nodes.len() - 1);
        &self.nodes[index]
    }
}
