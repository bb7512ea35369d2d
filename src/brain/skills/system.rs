//! Battery, memory and CPU load of this machine.

use super::{Plan, Skill, SkillReply};
use regex::Regex;
use std::sync::LazyLock;

pub struct SystemInfo;

impl Skill for SystemInfo {
    fn name(&self) -> &'static str {
        "system_info"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "how much battery do i have",
            "what's my battery level",
            "is my laptop charging",
            "how much memory is free",
            "how much ram am i using",
            "what's the cpu load",
            "system status",
            "how is my computer doing",
        ]
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        static BATTERY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(battery|charg\w*|power)\b").unwrap());
        static MEMORY: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(memory|ram)\b").unwrap());
        static CPU: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(cpu|processor|load)\b").unwrap());
        static STATUS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(system|computer|mac|laptop|machine)\b").unwrap());
        let (battery, memory, cpu) = (BATTERY.is_match(utterance), MEMORY.is_match(utterance), CPU.is_match(utterance));
        let all = !battery && !memory && !cpu;
        if all && !STATUS.is_match(utterance) {
            return None;
        }
        Some(Box::new(move || {
            let mut parts = Vec::new();
            if battery || all {
                parts.push(match battery_state() {
                    Some((percent, charging)) => format!("the battery is at {percent}%{}", if charging { " and charging" } else { "" }),
                    None if battery => "I can't find a battery on this machine".to_string(),
                    None => String::new(),
                });
            }
            if memory || cpu || all {
                let mut sys = sysinfo::System::new();
                if memory || all {
                    sys.refresh_memory();
                    let gb = |b: u64| b as f64 / 1024f64.powi(3);
                    parts.push(format!("{:.1} of {:.0} GB of memory is in use", gb(sys.used_memory()), gb(sys.total_memory())));
                }
                if cpu || all {
                    let load = sysinfo::System::load_average();
                    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
                    parts.push(format!("the CPU load is {:.0}% of {cores} cores", (load.one / cores as f64 * 100.0).min(999.0)));
                }
            }
            parts.retain(|p| !p.is_empty());
            SkillReply::say(format!("{}.", super::words::capitalise(&parts.join(", "))))
        }))
    }
}

fn battery_state() -> Option<(u8, bool)> {
    crate::platform::battery_state()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_this_machines_memory_and_battery_honestly() {
        let reply = SystemInfo.plan("how much memory is free").unwrap()();
        assert!(reply.text.contains("GB of memory is in use"), "{reply:?}");
        let reply = SystemInfo.plan("what's my battery level").unwrap()();
        match battery_state() {
            Some((p, _)) => assert!(reply.text.contains(&format!("{p}%"))),
            None => assert_eq!(reply.text, "I can't find a battery on this machine."),
        }
        assert!(SystemInfo.plan("tell me a joke").is_none());
    }
}
