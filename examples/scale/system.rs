//! What the kernel says about a process and about its limits: `/proc` and `setrlimit`.

use std::fs;
use std::io;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use rlimit::Resource;

/// Resident memory of process `pid` (`"self"` for this one), from `VmRSS` in
/// `/proc/<pid>/status`, in bytes.
pub fn rss_bytes(pid: &str) -> io::Result<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// Peak resident memory (`VmHWM`), in bytes.
pub fn peak_rss_bytes(pid: &str) -> io::Result<u64> {
    status_kib(pid, "VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(pid: &str, field: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no {field} in /proc/{pid}/status")))
}

/// User plus system CPU time of process `pid`, all its threads, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: &str) -> io::Result<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after = stat
        .rfind(')')
        .map(|at| &stat[at + 1..])
        .ok_or_else(|| io::Error::other("unexpected /proc/<pid>/stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 (utime) and 15 (stime) of the whole line are 12 and 13 after the name.
    let ticks = |index: usize| -> io::Result<u64> {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| io::Error::other("unexpected /proc/<pid>/stat"))
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)` as `getconf` reports it; 100 on every common Linux.
fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .filter(|&ticks| ticks > 0)
            .unwrap_or(100)
    })
}

/// A sysctl value as text, e.g. `sysctl("net/core/somaxconn")`; `"?"` if unreadable.
pub fn sysctl(path: &str) -> String {
    fs::read_to_string(format!("/proc/sys/{path}"))
        .map(|text| text.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// The number of local ports the kernel hands out (`net.ipv4.ip_local_port_range`).
pub fn ephemeral_ports() -> Option<usize> {
    let range = sysctl("net/ipv4/ip_local_port_range");
    let mut parts = range.split_whitespace().map(|p| p.parse::<usize>().ok());
    let (low, high) = (parts.next()??, parts.next()??);
    high.checked_sub(low).map(|n| n + 1)
}

/// The open-file limit before and after raising it.
pub struct FileLimit {
    /// `(soft, hard)` found at start.
    pub before: (u64, u64),
    /// `(soft, hard)` now.
    pub after: (u64, u64),
}

/// Raises `RLIMIT_NOFILE` to at least `wanted` if possible: the soft limit up to the hard
/// one, and the hard one itself when it is too low (allowed for root, up to `fs.nr_open`).
/// Child processes inherit the result.
pub fn raise_file_limit(wanted: u64) -> io::Result<FileLimit> {
    let before = Resource::NOFILE.get()?;
    let (soft, hard) = before;
    if soft < wanted {
        if hard >= wanted {
            Resource::NOFILE.set(wanted, hard)?;
        } else if Resource::NOFILE.set(wanted, wanted).is_err() {
            // Raising the hard limit needs CAP_SYS_RESOURCE; without it, take what it allows.
            Resource::NOFILE.set(hard, hard)?;
        }
    }
    Ok(FileLimit {
        before,
        after: Resource::NOFILE.get()?,
    })
}

/// Bytes in MiB, for the table.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
