//! "Stop", "never mind": silence and cancel whatever Roxy is saying or thinking.

use super::{Action, Plan, Skill, SkillReply};

pub struct Stop;

impl Skill for Stop {
    fn name(&self) -> &'static str {
        "stop"
    }

    fn templates(&self) -> &'static [&'static str] {
        &["stop", "stop talking", "be quiet", "cancel", "never mind", "shut up", "that's enough", "quiet please", "nevermind", "cancel that"]
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        // Short commands only: "stop the music in the kitchen" is something else.
        (utterance.split_whitespace().count() <= 4).then(|| -> Plan { Box::new(|| SkillReply { text: String::new(), action: Some(Action::Stop), failed: false }) })
    }
}
