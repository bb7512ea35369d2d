//! Resident memory of the worker process, for status reports.

/// Resident set size in bytes, or `None` when the process is gone or unreadable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    if let Some(bytes) = proc_status_rss(pid) {
        return Some(bytes);
    }
    sysinfo_rss(pid)
}

/// Cheaper than a sysinfo refresh: one small file read.
#[cfg(target_os = "linux")]
fn proc_status_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.trim_start_matches("VmRSS:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

fn sysinfo_rss(pid: u32) -> Option<u64> {
    use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
    let pid = Pid::from_u32(pid);
    let mut system = System::new();
    system.refresh_processes_specifics(
        ProcessesToUpdate::Some(&[pid]),
        true,
        ProcessRefreshKind::nothing().with_memory(),
    );
    system.process(pid).map(|p| p.memory())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_rss_in_kib() {
        let status = "Name:\troxy-llm\nVmPeak:\t  300000 kB\nVmRSS:\t  123456 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(123_456 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_has_some_rss() {
        let rss = rss_bytes(std::process::id()).expect("rss of this test process");
        assert!(rss > 1024 * 1024, "{rss}");
        assert!(sysinfo_rss(std::process::id()).is_some());
    }
}
