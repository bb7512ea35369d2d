//! Tier presets for 8 GB and 32 GB Macs, chosen from total RAM, and the memory mode
//! (FULL / LITE / MINIMAL) chosen from the memory available right now.

use serde::{Deserialize, Serialize};

const GIB: u64 = 1024 * 1024 * 1024;

/// Which preset the config asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PresetChoice {
    /// Pick `8gb` or `32gb` from this machine's total RAM.
    #[default]
    Auto,
    #[serde(rename = "8gb")]
    Gb8,
    #[serde(rename = "32gb")]
    Gb32,
    /// No tier values: built-in defaults plus whatever the config file sets.
    Custom,
}

/// A concrete tier: the model sizes and limits a class of machine can afford.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tier {
    #[serde(rename = "8gb")]
    Gb8,
    #[serde(rename = "32gb")]
    Gb32,
}

impl Tier {
    /// Machines with at least this much RAM get the 32 GB tier. A "32 GB" Mac reports a little
    /// under 32 GiB; 16 and 24 GB Macs stay on the 8 GB tier, which leaves room for the user's apps.
    pub const GB32_MIN_TOTAL: u64 = 28 * GIB;

    pub fn for_total_memory(total_bytes: u64) -> Tier {
        if total_bytes >= Self::GB32_MIN_TOTAL {
            Tier::Gb32
        } else {
            Tier::Gb8
        }
    }

    /// The manifest tier whose models this preset prefers.
    pub fn manifest_tier(self) -> &'static str {
        match self {
            Tier::Gb8 => "8gb",
            Tier::Gb32 => "32gb",
        }
    }

    /// The values this tier sets, as a TOML table laid under the user's config file.
    pub fn values(self) -> toml::Table {
        let text = match self {
            Tier::Gb8 => include_str!("presets/8gb.toml"),
            Tier::Gb32 => include_str!("presets/32gb.toml"),
        };
        text.parse().expect("built-in preset is valid TOML (checked by tests)")
    }
}

impl PresetChoice {
    /// The tier this choice resolves to on a machine with `total_bytes` of RAM (`None` for custom).
    pub fn resolve(self, total_bytes: u64) -> Option<Tier> {
        match self {
            PresetChoice::Auto => Some(Tier::for_total_memory(total_bytes)),
            PresetChoice::Gb8 => Some(Tier::Gb8),
            PresetChoice::Gb32 => Some(Tier::Gb32),
            PresetChoice::Custom => None,
        }
    }
}

/// How much Roxy may load given the memory free now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MemoryMode {
    /// ≥ 4 GiB available: everything as configured.
    Full,
    /// 2–4 GiB: the LLM context and answer length are halved.
    Lite,
    /// < 2 GiB: no LLM; answers come from skills and fixed templates only.
    Minimal,
}

impl MemoryMode {
    pub fn for_available_memory(available_bytes: u64) -> MemoryMode {
        if available_bytes >= 4 * GIB {
            MemoryMode::Full
        } else if available_bytes >= 2 * GIB {
            MemoryMode::Lite
        } else {
            MemoryMode::Minimal
        }
    }
}

/// Total and available RAM of this machine, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryInfo {
    pub total: u64,
    pub available: u64,
}

impl MemoryInfo {
    pub fn detect() -> MemoryInfo {
        let mut sys = sysinfo::System::new();
        sys.refresh_memory();
        MemoryInfo { total: sys.total_memory(), available: sys.available_memory() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_ram_picks_the_tier() {
        assert_eq!(Tier::for_total_memory(8 * GIB), Tier::Gb8);
        assert_eq!(Tier::for_total_memory(16 * GIB), Tier::Gb8);
        // What a 32 GB Mac reports after the firmware's share.
        assert_eq!(Tier::for_total_memory(31 * GIB + GIB / 2), Tier::Gb32);
        assert_eq!(Tier::for_total_memory(64 * GIB), Tier::Gb32);
        assert_eq!(PresetChoice::Auto.resolve(8 * GIB), Some(Tier::Gb8));
        assert_eq!(PresetChoice::Gb32.resolve(8 * GIB), Some(Tier::Gb32));
        assert_eq!(PresetChoice::Custom.resolve(64 * GIB), None);
    }

    #[test]
    fn available_memory_picks_the_mode() {
        assert_eq!(MemoryMode::for_available_memory(6 * GIB), MemoryMode::Full);
        assert_eq!(MemoryMode::for_available_memory(4 * GIB), MemoryMode::Full);
        assert_eq!(MemoryMode::for_available_memory(3 * GIB), MemoryMode::Lite);
        assert_eq!(MemoryMode::for_available_memory(GIB), MemoryMode::Minimal);
    }

    #[test]
    fn detected_memory_is_plausible() {
        let m = MemoryInfo::detect();
        assert!(m.total > 256 * 1024 * 1024, "{m:?}");
        assert!(m.available <= m.total, "{m:?}");
    }
}
