//! What memory adds to an LLM request: the session window as user/assistant turns, then the
//! facts recalled for the question as one system message.

use super::{Fact, Turn};
use crate::llm::{ChatMessage, Role};

/// Messages to put between the system prompt and the new question: `turns` (the session
/// window, or the part of it a request may see), then the facts; no facts recalled means no
/// facts message at all.
pub fn chat_context<'a>(turns: impl Iterator<Item = &'a Turn>, recalled: &[(Fact, f64)]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(1 + 2 * turns.size_hint().0);
    for turn in turns {
        messages.push(ChatMessage::new(Role::User, turn.record.user_text.clone()));
        messages.push(ChatMessage::new(Role::Assistant, turn.record.reply_text.clone()));
    }
    // After the conversation, not before it: the facts change with every question, and
    // everything before them stays in the LLM's KV cache from one turn to the next.
    messages.extend(facts_message(recalled));
    messages
}

/// The recalled facts as one system message (none: no message).
pub fn facts_message(recalled: &[(Fact, f64)]) -> Option<ChatMessage> {
    if recalled.is_empty() {
        return None;
    }
    let lines: Vec<String> = recalled.iter().map(|(f, _)| format!("- {}", f.text)).collect();
    Some(ChatMessage::new(Role::System, format!("Things the user has told you before:\n{}", lines.join("\n"))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Session, Store, TurnRecord};
    use std::sync::Arc;

    #[test]
    fn the_window_then_the_facts_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let mut session = Session::start(store.clone(), 2).unwrap();
        for i in 0..3 {
            session.record(TurnRecord { user_text: format!("q{i}"), reply_text: format!("a{i}"), ..Default::default() }).unwrap();
        }
        assert_eq!(chat_context(session.turns(), &[]).len(), 4, "no facts, no system message");
        let fact = store.facts().remember("My sister is Anna").unwrap().fact;
        let messages = chat_context(session.turns(), &[(fact, 1.0)]);
        let shown: Vec<(Role, &str)> = messages.iter().map(|m| (m.role, m.content.as_str())).collect();
        assert_eq!(
            shown,
            [
                (Role::User, "q1"),
                (Role::Assistant, "a1"),
                (Role::User, "q2"),
                (Role::Assistant, "a2"),
                (Role::System, "Things the user has told you before:\n- My sister is Anna"),
            ]
        );
    }
}
