//! Resident memory of the worker process, for status reports.

/// Resident set size in bytes, or `None` when the process is gone or unreadable.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    crate::platform::process_rss_bytes(pid).or_else(|| sysinfo_rss(pid))
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
    fn own_process_has_some_rss() {
        let rss = rss_bytes(std::process::id()).expect("rss of this test process");
        assert!(rss > 1024 * 1024, "{rss}");
        assert!(sysinfo_rss(std::process::id()).is_some());
    }
}
