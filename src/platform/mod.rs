//! Everything that differs between macOS (the product) and Linux (development and CI), in one
//! place: each OS has one file with the same items, and no other engine module names an OS.
//!
//! `scripts/check-macos` builds the engine on Linux with `--cfg roxy_check_macos`, which swaps
//! `linux.rs` for `macos.rs`: code outside this module that leans on a Linux-only item, or a
//! macOS item that is missing here, then fails to compile. (No standard library for
//! `aarch64-apple-darwin` can be installed on the build machines, so a real cross-check is not
//! possible there.)

#[cfg_attr(any(target_os = "macos", roxy_check_macos), path = "macos.rs")]
#[cfg_attr(not(any(target_os = "macos", roxy_check_macos)), path = "linux.rs")]
mod os;

pub use os::*;

/// Whether the LLM and Whisper may offload to a GPU by default: Metal on Apple Silicon.
pub const DEFAULT_GPU_LAYERS: u32 = os::DEFAULT_GPU_LAYERS;

/// Charge in percent and whether it is charging, from `pmset -g batt`'s output. Lives here,
/// outside the macOS file, so it is tested on every machine.
pub fn parse_pmset_battery(text: &str) -> Option<(u8, bool)> {
    // "Now drawing from 'Battery Power'\n -InternalBattery-0 (id=…)\t87%; discharging; 4:12 remaining present: true"
    let line = text.lines().find(|l| l.contains("InternalBattery") || l.contains('%'))?;
    let percent_at = line.find('%')?;
    let digits: String = line[..percent_at].chars().rev().take_while(char::is_ascii_digit).collect::<Vec<_>>().into_iter().rev().collect();
    let percent = digits.parse::<u8>().ok()?.min(100);
    // The state is the field after the percentage: "charging", "discharging", "charged",
    // "finishing charge" or "AC attached; not charging".
    let state = line[percent_at + 1..].trim_start_matches(';').trim().split(';').next().unwrap_or("").trim();
    let charging = state == "charging" || state == "finishing charge";
    Some((percent, charging))
}

#[cfg(test)]
mod tests {
    use super::parse_pmset_battery;

    #[test]
    fn pmset_states_are_read_from_the_state_field() {
        let cases = [
            ("Now drawing from 'Battery Power'\n -InternalBattery-0 (id=4653155)\t87%; discharging; 4:12 remaining present: true", Some((87, false))),
            ("Now drawing from 'AC Power'\n -InternalBattery-0 (id=4653155)\t64%; charging; 1:02 remaining present: true", Some((64, true))),
            ("Now drawing from 'AC Power'\n -InternalBattery-0 (id=4653155)\t100%; charged; 0:00 remaining present: true", Some((100, false))),
            ("Now drawing from 'AC Power'\n -InternalBattery-0 (id=4653155)\t80%; AC attached; not charging present: true", Some((80, false))),
            ("Now drawing from 'AC Power'\n -InternalBattery-0 (id=4653155)\t99%; finishing charge; 0:05 remaining present: true", Some((99, true))),
            ("Now drawing from 'AC Power'\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_pmset_battery(text), want, "{text}");
        }
    }
}
