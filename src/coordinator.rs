//! The one owner of Roxy's conversational state: Idle → Listening → Thinking → Speaking.
//! The wake word, the hotkey and the menu all arrive here as inputs, one at a time, so they
//! cannot race; the coordinator answers with effects for the runtime to carry out. Each turn
//! has a number, and news from a turn that was cancelled (barge-in) is ignored.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Idle,
    Listening,
    Thinking,
    Speaking,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    WakeWord,
    Hotkey,
    Menu,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The wake word, the hotkey or "Listen now": start listening (interrupting any answer).
    Activate(Trigger),
    /// The VAD closed an utterance.
    SpeechEnded,
    /// Listening heard nothing worth answering in time.
    ListenTimeout,
    /// Turn `n` had nothing to answer (only the wake word was said, or noise): keep listening.
    NothingHeard(u64),
    /// Turn `n`'s first audio is playing.
    AnswerStarted(u64),
    /// Turn `n` has finished playing (or had nothing to say).
    AnswerDone(u64),
    /// "Stop" from the menu, the stop skill or the hotkey while speaking.
    Stop,
    /// Something the user can read also went wrong (the effects say nothing).
    Failed(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A short sound: Roxy is listening.
    Earcon,
    StartListening,
    /// Transcribe the closed utterance and answer it as turn `n`.
    Answer(u64),
    /// Cancel turn `n`'s generation and its queued speech.
    Cancel(u64),
    StopPlayback,
}

#[derive(Debug)]
pub struct Coordinator {
    state: State,
    turn: u64,
}

impl Default for Coordinator {
    fn default() -> Self {
        Coordinator { state: State::Idle, turn: 0 }
    }
}

impl Coordinator {
    pub fn state(&self) -> State {
        self.state
    }

    /// The current (or last) turn's number.
    pub fn turn(&self) -> u64 {
        self.turn
    }

    pub fn handle(&mut self, input: Input) -> Vec<Effect> {
        use Effect::*;
        use State::*;
        let current = |n: u64, turn: u64| n == turn;
        let (next, effects) = match (self.state, input) {
            (Idle, Input::Activate(_)) => (Listening, vec![Earcon, StartListening]),
            (Listening, Input::Activate(_)) => (Listening, vec![]),
            // Barge-in: the answer in progress is dropped and Roxy listens again.
            (Thinking, Input::Activate(_)) => (Listening, vec![Cancel(self.turn), Earcon, StartListening]),
            (Speaking, Input::Activate(_)) => (Listening, vec![StopPlayback, Cancel(self.turn), Earcon, StartListening]),
            (Listening, Input::SpeechEnded) => {
                self.turn += 1;
                (Thinking, vec![Answer(self.turn)])
            }
            (Listening, Input::ListenTimeout) => (Idle, vec![]),
            (Thinking, Input::AnswerStarted(n)) if current(n, self.turn) => (Speaking, vec![]),
            (Thinking, Input::NothingHeard(n)) if current(n, self.turn) => (Listening, vec![StartListening]),
            (Thinking | Speaking, Input::AnswerDone(n) | Input::Failed(n)) if current(n, self.turn) => (Idle, vec![]),
            (Thinking, Input::Stop) => (Idle, vec![Cancel(self.turn)]),
            (Speaking, Input::Stop) => (Idle, vec![StopPlayback, Cancel(self.turn)]),
            (Listening, Input::Stop) => (Idle, vec![]),
            // Speech while idle (no wake word), stale news from a cancelled turn, and the rest.
            (state, input) => {
                tracing::trace!(?state, ?input, "ignored");
                (state, vec![])
            }
        };
        if next != self.state {
            tracing::debug!(from = ?self.state, to = ?next, "state");
        }
        self.state = next;
        effects
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Effect::*;

    #[test]
    fn a_whole_turn() {
        let mut c = Coordinator::default();
        assert_eq!(c.handle(Input::SpeechEnded), vec![], "speech without the wake word is ignored");
        assert_eq!(c.handle(Input::Activate(Trigger::WakeWord)), vec![Earcon, StartListening]);
        assert_eq!(c.handle(Input::SpeechEnded), vec![Answer(1)]);
        assert_eq!(c.handle(Input::NothingHeard(1)), vec![StartListening], "the wake word alone: the command comes next");
        assert_eq!(c.handle(Input::SpeechEnded), vec![Answer(2)]);
        assert_eq!(c.state(), State::Thinking);
        assert_eq!(c.handle(Input::AnswerStarted(2)), vec![]);
        assert_eq!(c.state(), State::Speaking);
        assert_eq!(c.handle(Input::AnswerDone(2)), vec![]);
        assert_eq!(c.state(), State::Idle);
    }

    #[test]
    fn barge_in_cancels_and_late_news_is_ignored() {
        let mut c = Coordinator::default();
        c.handle(Input::Activate(Trigger::Hotkey));
        c.handle(Input::SpeechEnded);
        c.handle(Input::AnswerStarted(1));
        assert_eq!(c.handle(Input::Activate(Trigger::WakeWord)), vec![StopPlayback, Cancel(1), Earcon, StartListening]);
        assert_eq!(c.state(), State::Listening);
        // The cancelled turn's last events arrive late: nothing changes.
        assert_eq!(c.handle(Input::AnswerDone(1)), vec![]);
        assert_eq!(c.state(), State::Listening);
        assert_eq!(c.handle(Input::SpeechEnded), vec![Answer(2)]);
        assert_eq!(c.handle(Input::Activate(Trigger::Menu)), vec![Cancel(2), Earcon, StartListening], "barge-in while thinking");
    }

    #[test]
    fn stop_and_timeouts_return_to_idle() {
        let mut c = Coordinator::default();
        c.handle(Input::Activate(Trigger::Menu));
        assert_eq!(c.handle(Input::Activate(Trigger::Hotkey)), vec![], "a second press while listening does nothing");
        assert_eq!(c.handle(Input::ListenTimeout), vec![]);
        assert_eq!(c.state(), State::Idle);
        c.handle(Input::Activate(Trigger::Menu));
        c.handle(Input::SpeechEnded);
        c.handle(Input::AnswerStarted(1));
        assert_eq!(c.handle(Input::Stop), vec![StopPlayback, Cancel(1)]);
        assert_eq!(c.state(), State::Idle);
        assert_eq!(c.handle(Input::Stop), vec![]);
    }
}
