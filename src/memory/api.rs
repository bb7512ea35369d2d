//! [`Memory`]: what the brain calls once per turn.

use super::{chat_context, embed_text, CachedEmbedder, Embedder, Fact, MemoryError, MiniLm, Remembered, SearchFilter, SearchHit, Session, Store, Turn, TurnRecord, DB_FILE_NAME};
use crate::config::MemoryConfig;
use crate::llm::ChatMessage;
use crate::paths::Paths;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Facts put into the LLM context per question.
pub const RECALLED_FACTS: usize = 5;
/// Facts a cloud request may carry: fewer than the local LLM gets, as each is personal.
pub const CLOUD_FACTS: usize = 2;
/// Question vectors kept by the query cache (384 floats each: ~400 KB in all).
const QUERY_CACHE_ENTRIES: usize = 256;

/// The memory store, the sentence embedder and the current conversation, as the brain uses
/// them: [`Memory::context_for`] before asking the LLM, [`Memory::record_turn`] after answering.
///
/// Cheap to share: every method takes `&self` (`Memory` is `Send + Sync`).
///
/// ```no_run
/// use roxy::config::Config;
/// use roxy::memory::Memory;
/// use roxy::paths::Paths;
/// use roxy::presets::MemoryInfo;
/// use std::collections::BTreeMap;
///
/// let paths = Paths::from_env();
/// let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
/// // Opens `<data dir>/memory.sqlite3` (a corrupt file is moved aside and a fresh store
/// // started), loads MiniLM from the models dir (missing: facts are matched by words) and
/// // resumes the last conversation, bounded by the preset's `memory.session_turns`.
/// let memory = Memory::open(&paths, &config.memory)?;
///
/// let heard = "when is my sister's birthday?";
/// // Recalled facts (one system message) then the session's turns, oldest first: put them
/// // between the system prompt and the new user message.
/// let context = memory.context_for(heard)?;
/// # let reply = "June 3rd.";
/// // After replying: saved to the history with its timings and vector, and to the session.
/// let timings = BTreeMap::from([("stt".to_string(), 180), ("llm".to_string(), 420)]);
/// memory.record_turn(heard, reply, "llm", None, &timings)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Memory {
    store: Arc<Store>,
    embedder: Option<Arc<CachedEmbedder>>,
    embedder_problem: Option<String>,
    session: Mutex<Session>,
    moved_aside: Option<PathBuf>,
}

impl Memory {
    /// Opens the user's memory: the database in `paths.data_dir`, MiniLM from
    /// `paths.models_dir`. Only a database that cannot be opened at all is an error.
    pub fn open(paths: &Paths, config: &MemoryConfig) -> Result<Memory, MemoryError> {
        let embedder = MiniLm::load(&paths.models_dir).map(|m| Arc::new(m) as Arc<dyn Embedder>);
        let problem = embedder.as_ref().err().map(ToString::to_string);
        if let Some(problem) = &problem {
            tracing::warn!(%problem, "memory: no sentence embedder; facts are recalled by their words only");
        }
        let mut memory = Self::open_with(&paths.data_dir.join(DB_FILE_NAME), embedder.ok(), config)?;
        memory.embedder_problem = problem;
        Ok(memory)
    }

    /// Like [`Memory::open`] with a database file and an embedder of the caller's choosing
    /// (`None`: recall by words only).
    pub fn open_with(db: &Path, embedder: Option<Arc<dyn Embedder>>, config: &MemoryConfig) -> Result<Memory, MemoryError> {
        let opened = Store::open_or_recover(db)?;
        let store = Arc::new(opened.store);
        let session = Session::resume(store.clone(), config.session_turns)?;
        Ok(Memory {
            store,
            embedder: embedder.map(|e| Arc::new(CachedEmbedder::new(e, QUERY_CACHE_ENTRIES))),
            embedder_problem: None,
            session: Mutex::new(session),
            moved_aside: opened.moved_aside,
        })
    }

    /// The messages memory adds for `question`: the current conversation as user/assistant
    /// pairs (at most `memory.session_turns` turns, oldest first), then the facts recalled for
    /// it as one system message (none: no message).
    pub fn context_for(&self, question: &str) -> Result<Vec<ChatMessage>, MemoryError> {
        let recalled = self.recall(question, RECALLED_FACTS)?;
        Ok(chat_context(self.session().turns(), &recalled))
    }

    /// The `limit` facts most related to `question` as one system message, without the
    /// conversation (for an API client, which brings its own).
    pub fn facts_for(&self, question: &str, limit: usize) -> Result<Option<ChatMessage>, MemoryError> {
        Ok(super::context::facts_message(&self.recall(question, limit)?))
    }

    /// What a cloud LLM is shown for `question`: the conversation without the turns skills
    /// answered (timers, facts, the battery: the cloud needs none of them), then only the
    /// [`CLOUD_FACTS`] facts most related to the question.
    pub fn cloud_context(&self, question: &str) -> Result<Vec<ChatMessage>, MemoryError> {
        let recalled = self.recall(question, CLOUD_FACTS)?;
        Ok(chat_context(self.session().turns().filter(|t| t.record.route != "skill"), &recalled))
    }

    /// The conversation alone: what every next question's context begins with.
    pub fn session_context(&self) -> Vec<ChatMessage> {
        chat_context(self.session().turns(), &[])
    }

    /// Records an answered turn: committed to the history (with its vector, so searches re-rank
    /// it by meaning at once) and added to the session window. An embedder failure only costs
    /// the vector (`embed_backlog` fills it in later).
    pub fn record_turn(&self, heard: &str, reply: &str, route: &str, skill: Option<&str>, timings: &BTreeMap<String, u64>) -> Result<Turn, MemoryError> {
        let vector = self.embedder.as_ref().and_then(|e| match e.embed(&embed_text(heard, reply)) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "memory: turn stored without its vector");
                None
            }
        });
        let record = TurnRecord { user_text: heard.into(), reply_text: reply.into(), route: route.into(), skill: skill.map(Into::into), timings: timings.clone() };
        let mut session = self.session();
        Ok(session.record_with_vector(record, vector.as_deref())?.clone())
    }

    /// Remembers a fact ("my sister's birthday is June 3rd"); a repeat or rewording merges.
    pub fn remember(&self, text: &str) -> Result<Remembered, MemoryError> {
        match &self.embedder {
            Some(e) => self.store.facts_by_meaning(e.as_ref()).remember(text),
            None => self.store.facts().remember(text),
        }
    }

    /// Facts related to `question`, most relevant first; by meaning when the embedder is loaded.
    pub fn recall(&self, question: &str, limit: usize) -> Result<Vec<(Fact, f64)>, MemoryError> {
        match &self.embedder {
            Some(e) => match self.store.facts_by_meaning(e.as_ref()).recall(question, limit) {
                Err(MemoryError::Embedder(problem)) => {
                    tracing::warn!(%problem, "memory: recalling by words only");
                    self.store.facts().recall(question, limit)
                }
                other => other,
            },
            None => self.store.facts().recall(question, limit),
        }
    }

    /// The history by words, re-ranked by meaning when the embedder is loaded.
    pub fn search(&self, query: &str, filter: &SearchFilter) -> Result<Vec<SearchHit>, MemoryError> {
        match &self.embedder {
            Some(e) => self.store.history().search_by_meaning(query, filter, e.as_ref()),
            None => self.store.history().search(query, filter),
        }
    }

    /// Idle-time upkeep: vectors for up to `max` turns and every fact stored without one
    /// (written before the model was installed). Returns how many were computed.
    pub fn embed_backlog(&self, max: usize) -> Result<usize, MemoryError> {
        let Some(e) = &self.embedder else { return Ok(0) };
        Ok(self.store.history().embed_missing(e.as_ref(), max)? + self.store.facts_by_meaning(e.as_ref()).embed_missing()?)
    }

    /// Starts a new conversation: the window empties, the history keeps everything.
    pub fn new_conversation(&self) -> Result<(), MemoryError> {
        self.session().reset()
    }

    /// The current conversation (held locked while the guard lives: keep it short).
    pub fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Why recall is by words only, if it is.
    pub fn embedder_problem(&self) -> Option<&str> {
        self.embedder_problem.as_deref()
    }

    /// Where an unreadable database was moved when this store was opened.
    pub fn moved_aside(&self) -> Option<&Path> {
        self.moved_aside.as_deref()
    }

    /// Query-vector cache (hits, misses).
    pub fn query_cache_counts(&self) -> (u64, u64) {
        self.embedder.as_ref().map_or((0, 0), |e| e.counts())
    }
}
