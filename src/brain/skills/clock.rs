//! The time and the date, from the system clock in the local time zone.

use super::{Plan, Skill, SkillReply};
use chrono::{DateTime, Local, Timelike};
use regex::Regex;
use std::sync::{Arc, LazyLock};

/// The clock is a seam so tests can fix "now".
pub struct Clock {
    now: Arc<dyn Fn() -> DateTime<Local> + Send + Sync>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { now: Arc::new(Local::now) }
    }
}

impl Clock {
    pub fn at(now: impl Fn() -> DateTime<Local> + Send + Sync + 'static) -> Clock {
        Clock { now: Arc::new(now) }
    }
}

impl Skill for Clock {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "what time is it",
            "what's the time",
            "tell me the time",
            "do you have the time",
            "what time is it now",
            "what's the date today",
            "what day is it",
            "what is today's date",
            "what day of the week is it",
            "what's today",
        ]
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        // "what time is it in Tokyo" needs time zones the LLM (or the cloud) knows better.
        static ELSEWHERE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(in|at) [a-z]").unwrap());
        static DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(date|day|today)\b").unwrap());
        static TIME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\btime\b").unwrap());
        if ELSEWHERE.is_match(utterance) {
            return None;
        }
        let want_date = DATE.is_match(utterance);
        if !want_date && !TIME.is_match(utterance) {
            return None;
        }
        let now = self.now.clone();
        Some(Box::new(move || {
            let now = now();
            if want_date {
                SkillReply::say(format!("Today is {}.", now.format("%A, %B %-d, %Y")))
            } else {
                SkillReply::say(format!("It's {}.", spoken_time(&now)))
            }
        }))
    }
}

/// "3:05 PM", "noon", "midnight".
fn spoken_time(t: &DateTime<Local>) -> String {
    match (t.hour(), t.minute()) {
        (12, 0) => "noon".into(),
        (0, 0) => "midnight".into(),
        _ => t.format("%-I:%M %p").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn clock() -> Clock {
        Clock::at(|| Local.with_ymd_and_hms(2026, 11, 23, 15, 5, 0).unwrap())
    }

    #[test]
    fn time_and_date() {
        assert_eq!(clock().plan("What time is it?").unwrap()().text, "It's 3:05 PM.");
        assert_eq!(clock().plan("what's the date today").unwrap()().text, "Today is Monday, November 23, 2026.");
    }

    #[test]
    fn other_places_and_other_questions_decline() {
        assert!(clock().plan("what time is it in Tokyo").is_none());
        assert!(clock().plan("how long does pasta take").is_none());
    }
}
