//! Timers and reminders. One scheduler thread sleeps until the next one is due and sends a
//! [`TimerFired`] event, which the coordinator speaks ("Your 10 minute timer is done.").
//! Timers live in memory: they do not survive a restart.

use super::words::{duration, numbers_to_digits, say_duration};
use super::{Plan, Skill, SkillReply};
use regex::Regex;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// A timer or reminder that came due.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerFired {
    pub id: u64,
    /// What to say now.
    pub text: String,
}

struct Pending {
    id: u64,
    due: Instant,
    set_for: Duration,
    reminder: Option<String>,
}

#[derive(Default)]
struct State {
    pending: Vec<Pending>,
    next_id: u64,
    closed: bool,
}

/// The running timers. Cheap to clone; the scheduler thread stops when the last clone drops.
#[derive(Clone)]
pub struct Timers {
    shared: Arc<(Mutex<State>, Condvar)>,
    _owner: Arc<Owner>,
}

struct Owner(Arc<(Mutex<State>, Condvar)>);

impl Drop for Owner {
    fn drop(&mut self) {
        let (state, wake) = &*self.0;
        state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        wake.notify_all();
    }
}

impl Timers {
    /// The timers and the channel their due events arrive on.
    pub fn start() -> (Timers, Receiver<TimerFired>) {
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("roxy-timers".into())
            .spawn(move || run(thread_shared, tx))
            .expect("spawning the timer thread");
        (Timers { _owner: Arc::new(Owner(shared.clone())), shared }, rx)
    }

    pub fn set(&self, after: Duration, reminder: Option<String>) -> u64 {
        let (state, wake) = &*self.shared;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.next_id += 1;
        let id = state.next_id;
        state.pending.push(Pending { id, due: Instant::now() + after, set_for: after, reminder });
        wake.notify_all();
        id
    }

    /// Cancels every pending timer; returns how many there were.
    pub fn cancel_all(&self) -> usize {
        let (state, wake) = &*self.shared;
        let n = std::mem::take(&mut state.lock().unwrap_or_else(|e| e.into_inner()).pending).len();
        wake.notify_all();
        n
    }

    /// Time left on each pending timer, soonest first.
    pub fn remaining(&self) -> Vec<(Duration, Option<String>)> {
        let now = Instant::now();
        let state = self.shared.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut left: Vec<_> = state.pending.iter().map(|p| (p.due.saturating_duration_since(now), p.reminder.clone())).collect();
        left.sort_by_key(|(d, _)| *d);
        left
    }
}

fn run(shared: Arc<(Mutex<State>, Condvar)>, tx: Sender<TimerFired>) {
    let (state, wake) = &*shared;
    let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if guard.closed {
            return;
        }
        let now = Instant::now();
        let (due, waiting): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut guard.pending).into_iter().partition(|p| p.due <= now);
        guard.pending = waiting;
        for p in due {
            let text = match p.reminder {
                Some(what) => format!("Reminder: {what}."),
                None => format!("Your {} timer is done.", say_duration(p.set_for)),
            };
            if tx.send(TimerFired { id: p.id, text }).is_err() {
                tracing::debug!("nobody listens for timers any more");
            }
        }
        let next = guard.pending.iter().map(|p| p.due).min();
        guard = match next {
            Some(due) => wake.wait_timeout(guard, due.saturating_duration_since(Instant::now())).unwrap_or_else(|e| e.into_inner()).0,
            None => wake.wait(guard).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

pub struct Timer {
    timers: Timers,
}

impl Timer {
    pub fn new(timers: Timers) -> Timer {
        Timer { timers }
    }
}

impl Skill for Timer {
    fn name(&self) -> &'static str {
        "timer"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "set a timer for 5 minutes",
            "start a 5 minute timer",
            "timer for 5 seconds",
            "set an alarm in 5 hours",
            "remind me in 5 minutes to check the oven",
            "remind me to call mom in 5 minutes",
            "cancel the timer",
            "stop my timer",
            "how much time is left on my timer",
            "how long until my reminder",
        ]
    }

    fn cue(&self, utterance: &str) -> bool {
        static CUE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(timer|remind me|alarm)\b").unwrap());
        CUE.is_match(utterance)
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        static CANCEL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(cancel|stop|delete|clear|remove)\b.*\b(timers?|reminders?|alarms?)\b").unwrap());
        static LEFT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(how (much|long)|time left|remaining)\b").unwrap());
        static SET: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\b(timer|remind|reminder|alarm)\b").unwrap());
        static REMINDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\bremind me\b(?:.*?)\bto\b\s+(.+)$").unwrap());
        static TRAILING_WHEN: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)\s+in\s+(\d+(\.\d+)?|an?|half)\s.*$").unwrap());
        let timers = self.timers.clone();
        if CANCEL.is_match(utterance) {
            return Some(Box::new(move || match timers.cancel_all() {
                0 => SkillReply::say("There's no timer running."),
                1 => SkillReply::say("Cancelled your timer."),
                n => SkillReply::say(format!("Cancelled {n} timers.")),
            }));
        }
        if !SET.is_match(utterance) {
            return None;
        }
        if LEFT.is_match(utterance) && duration(utterance).is_none() {
            return Some(Box::new(move || match timers.remaining().first() {
                None => SkillReply::say("There's no timer running."),
                Some((left, _)) => SkillReply::say(format!("{} left.", say_duration(round_up(*left)))),
            }));
        }
        let Some(after) = duration(utterance) else {
            return Some(Box::new(|| SkillReply::failed("For how long? Say, for example, \"set a timer for 10 minutes\".")));
        };
        let digits = numbers_to_digits(utterance.trim().trim_end_matches(['.', '!', '?']));
        let reminder = REMINDER.captures(&digits).map(|c| {
            let what = TRAILING_WHEN.replace(&c[1], "");
            super::words::second_person(what.trim())
        });
        Some(Box::new(move || {
            timers.set(after, reminder.clone());
            match reminder {
                Some(what) => SkillReply::say(format!("Okay, I'll remind you to {what} in {}.", say_duration(after))),
                None => SkillReply::say(format!("Timer set for {}.", say_duration(after))),
            }
        }))
    }
}

fn round_up(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_fires_and_says_so() {
        let (timers, fired) = Timers::start();
        let skill = Timer::new(timers.clone());
        assert_eq!(skill.plan("set a timer for 1 second").unwrap()().text, "Timer set for 1 second.");
        let event = fired.recv_timeout(Duration::from_secs(5)).expect("the timer fires");
        assert_eq!(event.text, "Your 1 second timer is done.");
        assert!(timers.remaining().is_empty());
    }

    #[test]
    fn reminders_keep_what_to_do() {
        let (timers, fired) = Timers::start();
        let skill = Timer::new(timers.clone());
        let reply = skill.plan("Remind me to call my mom in 1 second.").unwrap()();
        assert_eq!(reply.text, "Okay, I'll remind you to call your mom in 1 second.");
        assert_eq!(fired.recv_timeout(Duration::from_secs(5)).unwrap().text, "Reminder: call your mom.");
        let reply = skill.plan("remind me in ten minutes to check the oven").unwrap()();
        assert_eq!(reply.text, "Okay, I'll remind you to check the oven in 10 minutes.");
    }

    #[test]
    fn cancel_and_time_left() {
        let (timers, fired) = Timers::start();
        let skill = Timer::new(timers.clone());
        skill.plan("set a timer for 2 minutes").unwrap()();
        assert_eq!(skill.plan("how much time is left on my timer").unwrap()().text, "2 minutes left.");
        assert_eq!(skill.plan("cancel the timer").unwrap()().text, "Cancelled your timer.");
        assert_eq!(skill.plan("cancel my timer").unwrap()().text, "There's no timer running.");
        assert!(fired.recv_timeout(Duration::from_millis(200)).is_err());
    }

    #[test]
    fn no_duration_asks_for_one() {
        let (timers, _fired) = Timers::start();
        let reply = Timer::new(timers).plan("set a timer").unwrap()();
        assert!(reply.failed && reply.text.starts_with("For how long?"));
        let (timers, _fired) = Timers::start();
        assert!(Timer::new(timers).plan("what is the weather").is_none());
    }
}
