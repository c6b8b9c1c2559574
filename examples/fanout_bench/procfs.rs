//! CPU time and resident memory of a process, from `/proc` (Linux).

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU seconds used so far by process `pid` (all its threads).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTimes {
    /// In the process itself (`utime`).
    pub user: f64,
    /// In the kernel on its behalf (`stime`): for these servers mostly the TCP send path,
    /// which on loopback includes delivering to the receiving socket.
    pub system: f64,
}

impl CpuTimes {
    /// User plus system.
    pub fn total(&self) -> f64 {
        self.user + self.system
    }
}

/// User and system CPU seconds used so far by process `pid`.
pub fn cpu_times(pid: u32) -> Option<CpuTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are space separated.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 (utime) and 15 (stime) of stat(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(CpuTimes {
        user: utime as f64 / TICKS_PER_SECOND,
        system: stime as f64 / TICKS_PER_SECOND,
    })
}

/// User plus system CPU seconds used so far by process `pid` (all its threads).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_times(pid).map(|times| times.total())
}

/// Write system calls made so far by process `pid` (`syscw` of `/proc/<pid>/io`: `write`,
/// `writev` and the like), which for these servers are the socket writes.
pub fn write_calls(pid: u32) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    let line = io.lines().find(|l| l.starts_with("syscw:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of process `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU seconds the whole machine spent busy so far (every core; from `/proc/stat`: user,
/// nice, system, irq, softirq and steal).
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum();
    Some(busy as f64 / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        assert!(super::cpu_seconds(pid).is_some());
        assert!(super::cpu_times(pid).is_some());
        assert!(super::write_calls(pid).is_some());
        assert!(super::rss_bytes(pid).unwrap() > 0);
        assert!(super::machine_busy_seconds().unwrap() > 0.0);
    }
}
