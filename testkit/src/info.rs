//! What servers say they served, from `INFO commandstats`, `INFO cpu` and `INFO stats`: the
//! one reader of those sections for the tests and the tools.

use std::collections::BTreeMap;
use std::time::Duration;

/// What one server, or several added up, had served when asked: script calls (`EVALSHA`
/// and, should a client fall back to it, `EVAL`), every command (`calls=` over `INFO
/// commandstats`, which counts the commands scripts run) and each command's calls, CPU time
/// (`used_cpu_user + used_cpu_sys`), and the bytes written to clients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Served {
    /// EVALSHA and EVAL calls.
    pub script_calls: u64,
    /// Calls of every command.
    pub commands: u64,
    /// CPU time, user and system, in µs.
    pub cpu_us: f64,
    /// Calls by command name (lowercase, as INFO gives it: `evalsha`, `client|setinfo`).
    pub by_command: BTreeMap<String, u64>,
    /// `total_net_output_bytes`.
    pub net_out_bytes: u64,
}

impl Served {
    /// Reads the sections of an INFO reply that it has; what is absent counts 0.
    pub fn parse(info: &str) -> Result<Served, String> {
        let mut served = Served::default();
        for line in info.lines().map(str::trim_end) {
            let bad = |e: &dyn std::fmt::Display| format!("{line:?}: {e}");
            if let Some(rest) = line.strip_prefix("cmdstat_") {
                let calls = rest
                    .split_once("calls=")
                    .and_then(|(_, r)| r.split(',').next())
                    .ok_or_else(|| bad(&"no calls="))?
                    .parse::<u64>()
                    .map_err(|e| bad(&e))?;
                served.commands += calls;
                let command = rest.split(':').next().unwrap_or(rest);
                if command == "evalsha" || command == "eval" {
                    served.script_calls += calls;
                }
                *served.by_command.entry(command.to_string()).or_default() += calls;
            } else if let Some(v) = line
                .strip_prefix("used_cpu_user:")
                .or_else(|| line.strip_prefix("used_cpu_sys:"))
            {
                served.cpu_us += v.parse::<f64>().map_err(|e| bad(&e))? * 1e6;
            } else if let Some(v) = line.strip_prefix("total_net_output_bytes:") {
                served.net_out_bytes += v.parse::<u64>().map_err(|e| bad(&e))?;
            }
        }
        Ok(served)
    }

    /// Calls of `command` (lowercase).
    pub fn calls(&self, command: &str) -> u64 {
        self.by_command.get(command).copied().unwrap_or(0)
    }

    /// Adds `other` in (a sum over several servers).
    pub fn add(&mut self, other: &Served) {
        self.script_calls += other.script_calls;
        self.commands += other.commands;
        self.cpu_us += other.cpu_us;
        self.net_out_bytes += other.net_out_bytes;
        for (command, calls) in &other.by_command {
            *self.by_command.entry(command.clone()).or_default() += calls;
        }
    }

    /// What was served between `before` and `self`, less `infos` INFO calls (those that
    /// took the snapshots).
    pub fn since(&self, before: &Served, infos: u64) -> Served {
        let mut by_command = self.by_command.clone();
        for (command, calls) in by_command.iter_mut() {
            *calls = calls.saturating_sub(before.calls(command));
        }
        if let Some(info) = by_command.get_mut("info") {
            *info = info.saturating_sub(infos);
        }
        by_command.retain(|_, calls| *calls > 0);
        Served {
            script_calls: self.script_calls.saturating_sub(before.script_calls),
            commands: self
                .commands
                .saturating_sub(before.commands)
                .saturating_sub(infos),
            cpu_us: self.cpu_us - before.cpu_us,
            by_command,
            net_out_bytes: self.net_out_bytes.saturating_sub(before.net_out_bytes),
        }
    }
}

/// Reads [`Served`] from servers on connections of its own, made before the first snapshot
/// so that their setup is not counted. Patient: a server kept busy (a herd of 10,000 lines)
/// can take more than redis-rs's default 500 ms to answer INFO.
#[derive(Debug)]
pub struct Stats {
    conns: Vec<(String, redis::aio::MultiplexedConnection)>,
}

impl Stats {
    /// Connects to every server of `urls`.
    pub async fn connect(urls: &[String]) -> Result<Stats, String> {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
        let mut conns = Vec::new();
        for url in urls {
            let client = redis::Client::open(url.as_str()).map_err(|e| format!("{url}: {e}"))?;
            let con = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            conns.push((url.clone(), con));
        }
        Ok(Stats { conns })
    }

    /// What the servers have served so far, added up (one INFO each).
    pub async fn snapshot(&mut self) -> Result<Served, String> {
        let mut sum = Served::default();
        for (url, con) in &mut self.conns {
            let info: String = redis::cmd("INFO")
                .arg("commandstats")
                .arg("cpu")
                .arg("stats")
                .query_async(con)
                .await
                .map_err(|e| format!("INFO on {url}: {e}"))?;
            sum.add(&Served::parse(&info).map_err(|e| format!("{url}: {e}"))?);
        }
        Ok(sum)
    }

    /// What the servers served since `before`, less the INFO calls that took `before`.
    pub async fn since(&mut self, before: &Served) -> Result<Served, String> {
        let now = self.snapshot().await?;
        Ok(now.since(before, self.conns.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::Served;

    #[test]
    fn parses_and_subtracts() {
        let before = Served::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5\r\ncmdstat_info:calls=2,usec=1\r\n\
             # CPU\r\nused_cpu_sys:0.5\r\nused_cpu_user:1.0\r\n",
        )
        .unwrap();
        assert_eq!(before.script_calls, 10);
        assert_eq!(before.commands, 12);
        assert_eq!(before.cpu_us, 1.5e6);
        let after = Served::parse(
            "cmdstat_evalsha:calls=13,usec=5\r\ncmdstat_info:calls=3,usec=1\r\n\
             cmdstat_client|setinfo:calls=2\r\nused_cpu_sys:0.5\r\nused_cpu_user:2.0\r\n\
             total_net_output_bytes:100\r\n",
        )
        .unwrap();
        let served = after.since(&before, 1);
        assert_eq!(served.script_calls, 3);
        assert_eq!(served.commands, 5);
        assert_eq!(served.calls("info"), 0);
        assert_eq!(served.calls("client|setinfo"), 2);
        assert_eq!(served.net_out_bytes, 100);
        assert!(Served::parse("cmdstat_get:usec=1").is_err());
    }
}
