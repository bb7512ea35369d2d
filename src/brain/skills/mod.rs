//! Skills: things Roxy does itself, without the LLM, in milliseconds. Each one names the
//! phrasings it answers (embedded once for the intent matcher) and turns an utterance into a
//! ready-to-run [`Plan`], or declines it so the router can try the next candidate or the LLM.

mod calc;
mod clock;
mod facts;
mod open;
mod stats;
mod stop;
mod system;
mod timers;
pub mod words;

pub use calc::{evaluate, Calculator, CalcError};
pub use clock::Clock;
pub use facts::{Forget, Recall, Remember};
pub use open::{Launcher, Open, OpenTarget, SystemLauncher};
pub use stats::Stats;
pub use stop::Stop;
pub use system::SystemInfo;
pub use timers::{Timer, TimerFired, Timers};

/// What a skill answers, and what the coordinator should do besides speaking it.
#[derive(Debug, Clone, PartialEq)]
pub struct SkillReply {
    /// Spoken as is; empty means say nothing (e.g. "stop").
    pub text: String,
    pub action: Option<Action>,
    /// The skill understood but could not do it (the text says why).
    pub failed: bool,
}

impl SkillReply {
    pub fn say(text: impl Into<String>) -> SkillReply {
        SkillReply { text: text.into(), action: None, failed: false }
    }

    pub fn failed(text: impl Into<String>) -> SkillReply {
        SkillReply { text: text.into(), action: None, failed: true }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Stop speaking and cancel the answer in progress.
    Stop,
}

/// A parsed request, ready to run.
pub type Plan = Box<dyn FnOnce() -> SkillReply + Send>;

pub trait Skill: Send + Sync {
    fn name(&self) -> &'static str;
    /// Example phrasings. Numbers in them stand for any number (see [`words::shape`]).
    fn templates(&self) -> &'static [&'static str];
    /// The plan for `utterance`, or `None` when it is not this skill's after all (the intent
    /// matcher only says it sounds like it).
    fn plan(&self, utterance: &str) -> Option<Plan>;
    /// A sign the skill is sure of ("remember that …", an arithmetic expression that parses,
    /// an allow-listed app after "open"). It lifts the skill's confidence by `CUE_BONUS`, so
    /// wordings far from every template still reach it.
    fn cue(&self, _utterance: &str) -> bool {
        false
    }
}

/// Added to a skill's similarity when its cue is present.
pub const CUE_BONUS: f32 = 0.3;
