//! Clocks and CPU time shared by the tools.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Microseconds since the epoch: one clock for every process on this machine.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// This process's CPU time (user + system, every thread) in µs, from `/proc/self/stat`
/// (clock ticks of 1/100 s, Linux's `USER_HZ`); `None` where there is no such file.
pub(crate) fn process_cpu_us() -> Option<f64> {
    cpu_us_of("/proc/self/stat")
}

/// The CPU time in µs of the process whose `/proc/PID/stat` is `path`, as above.
pub(crate) fn cpu_us_of(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The fields after the command name, which is in parentheses: state is field 3,
    // utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 * 10_000.0)
}

/// A command-line duration in whole milliseconds (`--hold-ms 5`).
pub(crate) fn millis(s: &str) -> Result<Duration, String> {
    s.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("a whole number of milliseconds, not {s:?}"))
}

/// "Redis 7.0.15" from `<server binary> --version` ("Redis server v=7.0.15 sha=...").
pub(crate) fn server_version(bin: &str) -> Option<String> {
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    let name = words.next()?.to_string();
    let version = words.nth(1)?.trim_start_matches("v=").to_string();
    Some(format!("{name} {version}"))
}
