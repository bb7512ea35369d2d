//! What memory adds to an LLM request: the facts recalled for the question as one system
//! message, then the session window as user/assistant turns.

use super::{Fact, Session};
use crate::llm::{ChatMessage, Role};

/// Messages to put between the system prompt and the new question. Facts come first so the
/// model reads them before the conversation; none recalled means no message at all.
pub fn chat_context(session: &Session, recalled: &[(Fact, f64)]) -> Vec<ChatMessage> {
    let mut messages = Vec::with_capacity(1 + 2 * session.turns().len());
    if !recalled.is_empty() {
        let lines: Vec<String> = recalled.iter().map(|(f, _)| format!("- {}", f.text)).collect();
        messages.push(ChatMessage::new(Role::System, format!("Things the user has told you before:\n{}", lines.join("\n"))));
    }
    for turn in session.turns() {
        messages.push(ChatMessage::new(Role::User, turn.record.user_text.clone()));
        messages.push(ChatMessage::new(Role::Assistant, turn.record.reply_text.clone()));
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{Store, TurnRecord};
    use std::sync::Arc;

    #[test]
    fn facts_then_the_window_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let mut session = Session::start(store.clone(), 2).unwrap();
        for i in 0..3 {
            session.record(TurnRecord { user_text: format!("q{i}"), reply_text: format!("a{i}"), ..Default::default() }).unwrap();
        }
        assert_eq!(chat_context(&session, &[]).len(), 4, "no facts, no system message");
        let fact = store.facts().remember("My sister is Anna").unwrap().fact;
        let messages = chat_context(&session, &[(fact, 1.0)]);
        let shown: Vec<(Role, &str)> = messages.iter().map(|m| (m.role, m.content.as_str())).collect();
        assert_eq!(
            shown,
            [
                (Role::System, "Things the user has told you before:\n- My sister is Anna"),
                (Role::User, "q1"),
                (Role::Assistant, "a1"),
                (Role::User, "q2"),
                (Role::Assistant, "a2"),
            ]
        );
    }
}
