//! The current conversation: the last N turns, served from memory (no query on the hot path),
//! written through to the history so nothing is lost when Roxy quits.

use super::{now_ms, MemoryError, Store, Turn, TurnRecord};
use std::collections::VecDeque;
use std::sync::Arc;

pub struct Session {
    store: Arc<Store>,
    id: i64,
    max_turns: usize,
    turns: VecDeque<Turn>,
}

impl Session {
    /// Starts a new conversation keeping at most `max_turns` (`memory.session_turns`).
    pub fn start(store: Arc<Store>, max_turns: u32) -> Result<Session, MemoryError> {
        let id = store.history().start_session(now_ms())?;
        Ok(Session { store, id, max_turns: max_turns.max(1) as usize, turns: VecDeque::new() })
    }

    /// Continues the most recent conversation (its last `max_turns` turns), or starts one.
    pub fn resume(store: Arc<Store>, max_turns: u32) -> Result<Session, MemoryError> {
        let Some(id) = store.history().latest_session()? else { return Self::start(store, max_turns) };
        let max_turns = max_turns.max(1) as usize;
        let turns = store.history().recent(Some(id), max_turns)?.into();
        Ok(Session { store, id, max_turns, turns })
    }

    /// The most turns the window keeps.
    pub fn max_turns(&self) -> usize {
        self.max_turns
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    /// Records a turn: committed to the history, then kept in the window (the oldest drops out).
    pub fn record(&mut self, record: TurnRecord) -> Result<&Turn, MemoryError> {
        self.record_with_vector(record, None)
    }

    /// [`Session::record`], storing the turn's vector with it (one transaction).
    pub fn record_with_vector(&mut self, record: TurnRecord, vector: Option<&[f32]>) -> Result<&Turn, MemoryError> {
        let at_ms = now_ms();
        let id = self.store.history().append_with_vector(self.id, at_ms, &record, vector)?;
        if self.turns.len() == self.max_turns {
            self.turns.pop_front();
        }
        self.turns.push_back(Turn { id, session_id: self.id, at_ms, record });
        Ok(self.turns.back().expect("just pushed"))
    }

    /// The window, oldest first: what goes into the LLM context.
    pub fn turns(&self) -> impl ExactSizeIterator<Item = &Turn> {
        self.turns.iter()
    }

    /// Empties the window; the turns stay in the history.
    pub fn reset(&mut self) -> Result<(), MemoryError> {
        self.id = self.store.history().start_session(now_ms())?;
        self.turns.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(i: usize) -> TurnRecord {
        TurnRecord { user_text: format!("question {i}"), reply_text: format!("answer {i}"), ..Default::default() }
    }

    #[test]
    fn the_window_is_bounded_and_the_history_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let mut session = Session::start(store.clone(), 20).unwrap();
        for i in 0..25 {
            session.record(said(i)).unwrap();
        }
        let window: Vec<_> = session.turns().map(|t| t.record.user_text.clone()).collect();
        assert_eq!(window.len(), 20);
        assert_eq!(window.first().unwrap(), "question 5");
        assert_eq!(window.last().unwrap(), "question 24");
        assert_eq!(store.history().count().unwrap(), 25);

        // Resuming after a restart gives the same window.
        drop(session);
        let resumed = Session::resume(store.clone(), 20).unwrap();
        let again: Vec<_> = resumed.turns().map(|t| t.record.user_text.clone()).collect();
        assert_eq!(again, window);

        let mut resumed = resumed;
        resumed.reset().unwrap();
        assert_eq!(resumed.turns().len(), 0);
        assert_eq!(store.history().count().unwrap(), 25);
    }
}
