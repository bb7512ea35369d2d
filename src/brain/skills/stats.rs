//! "How fast are you?": Roxy's own timing statistics, spoken.

use super::{Plan, Skill, SkillReply};
use crate::metrics::{Registry, Stage};
use std::sync::Arc;

pub struct Stats {
    metrics: Arc<Registry>,
}

impl Stats {
    pub fn new(metrics: Arc<Registry>) -> Stats {
        Stats { metrics }
    }
}

impl Skill for Stats {
    fn name(&self) -> &'static str {
        "stats"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "how fast are you",
            "how quick are your answers",
            "what's your latency",
            "show me your timing statistics",
            "how long do you take to answer",
            "what's your response time",
        ]
    }

    fn plan(&self, _utterance: &str) -> Option<Plan> {
        let metrics = self.metrics.clone();
        Some(Box::new(move || {
            let stats = metrics.snapshot();
            let get = |stage: Stage| stats.iter().find(|s| s.stage == stage && s.count > 0);
            let mut parts = Vec::new();
            if let Some(e2e) = get(Stage::E2e) {
                parts.push(format!(
                    "from the end of your speech to my first word takes {:.0} milliseconds typically and {:.0} at the 90th percentile, over {} turns",
                    e2e.p50, e2e.p90, e2e.count
                ));
            }
            for (stage, what) in [(Stage::Stt, "speech recognition"), (Stage::LlmFirstToken, "the first word of thought"), (Stage::Intent, "understanding a command")] {
                if let Some(s) = get(stage) {
                    parts.push(format!("{what} {:.0}", s.p50));
                }
            }
            if parts.is_empty() {
                return SkillReply::say("I haven't timed anything yet. Ask me something first.");
            }
            let first = parts.remove(0);
            let rest = if parts.is_empty() { String::new() } else { format!(". Median milliseconds: {}", parts.join(", ")) };
            SkillReply::say(format!("{}{rest}.", super::words::capitalise(&first)))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speaks_the_recorded_figures() {
        let metrics = Arc::new(Registry::new());
        let skill = Stats::new(metrics.clone());
        assert_eq!(skill.plan("how fast are you").unwrap()().text, "I haven't timed anything yet. Ask me something first.");
        for ms in [400.0, 500.0, 600.0] {
            metrics.record_ms(Stage::E2e, ms);
        }
        metrics.record_ms(Stage::Intent, 3.0);
        let text = skill.plan("how fast are you").unwrap()().text;
        assert!(text.starts_with("From the end of your speech to my first word takes 500 milliseconds"), "{text}");
        assert!(text.contains("over 3 turns") && text.contains("understanding a command 3"), "{text}");
    }
}
