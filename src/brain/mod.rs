//! Roxy's brain: the router between skills (instant, local), the local LLM and, only when
//! the user turned it on, a cloud LLM behind the privacy gateway.
//!
//! Routing, per utterance:
//! 1. The intent matcher scores every skill (cosine to its template phrases, plus `CUE_BONUS`
//!    when the skill's own sure sign is there, e.g. "remember that …"). Skills at or
//!    above `router.intent_threshold` are tried best first; the first that understands the
//!    utterance (its parameters parse) answers. Timed as `intent` and `skill`.
//! 2. Otherwise the LLM answers, with the conversation and recalled facts as context.
//! 3. The cloud is used only when `cloud.enabled` and a key is set, and then only when:
//!    - the user asks for it ("ask the cloud …", "search online for …"), or
//!    - the request is long-form work a small local model does badly: it starts with
//!      explain / write / draft / summarize / compare / translate / plan, or has over 30 words, or
//!    - the local LLM is unavailable (no model, worker failed) or answered nothing.
//!
//!    Everything sent passes the privacy gateway first (unless `cloud.privacy_gateway` is off).

pub mod cloud;
pub mod intent;
pub mod privacy;
pub mod skills;

use crate::config::Config;
use crate::llm::{ChatMessage, GenerateOptions, LlmError, LlmSettings, LlmSupervisor, Priority, Role, StopReason, SYSTEM_PROMPT};
use crate::memory::{Embedder, Memory, MemoryError};
use crate::metrics::{ms_since, round_ms, Registry, Stage};
use crate::models::Manifest;
use cloud::{CloudClient, CloudError};
use intent::IntentMatcher;
use privacy::{Gateway, Kind, Redactions};
use regex::Regex;
use serde::Serialize;
use skills::{Action, Launcher, Plan, Skill, TimerFired, Timers, CUE_BONUS};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum BrainError {
    #[error("the intent model could not be loaded: {0}")]
    Intent(#[source] MemoryError),
    #[error("{0}")]
    NoLlm(String),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Cloud(#[from] CloudError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    Skill,
    Local,
    Cloud,
}

/// The router's choice for one utterance, before anything runs.
pub enum Decision {
    Skill { skill: &'static str, confidence: f32, plan: Plan },
    Llm { confidence: f32, cloud: bool, question: String },
}

impl Decision {
    pub fn route(&self) -> Route {
        match self {
            Decision::Skill { .. } => Route::Skill,
            Decision::Llm { cloud: true, .. } => Route::Cloud,
            Decision::Llm { .. } => Route::Local,
        }
    }

    pub fn skill(&self) -> Option<&'static str> {
        match self {
            Decision::Skill { skill, .. } => Some(skill),
            Decision::Llm { .. } => None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BrainTimes {
    pub intent: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_first_token: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub llm_total: Option<f64>,
}

/// One cache's use so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheRate {
    pub name: String,
    pub hits: u64,
    pub lookups: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reply {
    pub route: Route,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skill: Option<&'static str>,
    /// The best skill's similarity (also when the LLM answered).
    pub confidence: f32,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// A skill understood but could not do it; the text says why.
    pub failed: bool,
    /// What the privacy gateway replaced before the cloud saw it, by kind.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub redacted: BTreeMap<Kind, usize>,
    pub ms: BrainTimes,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    /// The local LLM's prompt, and how much of it came from its KV cache (see [`Brain::prime`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_tokens: Option<u32>,
}

/// What the brain needs from the rest of Roxy.
pub struct BrainDeps {
    pub embedder: Arc<dyn Embedder>,
    /// The conversation, history and facts (remember/recall, LLM context, names for the
    /// privacy gateway); `None` runs without memory.
    pub memory: Option<Arc<Memory>>,
    pub metrics: Arc<Registry>,
    pub launcher: Arc<dyn Launcher>,
}

pub struct Brain {
    skills: Vec<Arc<dyn Skill>>,
    intents: IntentMatcher,
    threshold: f32,
    llm: Result<LlmSupervisor, String>,
    options: GenerateOptions,
    cloud: Option<Result<CloudClient, String>>,
    privacy_gateway: bool,
    memory: Option<Arc<Memory>>,
    metrics: Arc<Registry>,
}

/// The question after "ask the cloud", "search online for" and the like, when the user asked
/// for the cloud by name.
fn cloud_asked(utterance: &str) -> Option<&str> {
    static ASKED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\s*(hey roxy,?\s*)?(ask (the )?cloud|ask online|search online( for)?|use the cloud( to)?)\b[,:]?\s*").unwrap()
    });
    ASKED.find(utterance).map(|m| &utterance[m.end()..])
}

/// Whose question it is: the voice user's (their conversation, recorded) or an API client's
/// (its own messages, not recorded).
#[derive(Clone, Copy)]
enum Asker<'a> {
    Voice,
    Client(&'a [ChatMessage]),
}

impl Brain {
    /// Builds every skill and embeds their templates (once). Timers that come due arrive on
    /// the returned channel, for the coordinator to speak.
    pub fn new(config: &Config, models_dir: &Path, manifest: &Manifest, deps: BrainDeps) -> Result<(Brain, Receiver<TimerFired>), BrainError> {
        let (timers, fired) = Timers::start();
        let mut list: Vec<Arc<dyn Skill>> = vec![
            Arc::new(skills::Clock::default()),
            Arc::new(skills::Timer::new(timers)),
            Arc::new(skills::Calculator),
            Arc::new(skills::SystemInfo),
            Arc::new(skills::Open::new(config.skills.clone(), deps.launcher)),
            Arc::new(skills::Stats::new(deps.metrics.clone())),
            Arc::new(skills::Stop),
        ];
        if let Some(memory) = &deps.memory {
            list.push(Arc::new(skills::Remember::new(memory.clone())));
            list.push(Arc::new(skills::Recall::new(memory.clone())));
            list.push(Arc::new(skills::Forget::new(memory.clone())));
        }
        let intents = IntentMatcher::new(&list, deps.embedder).map_err(BrainError::Intent)?;
        let llm = LlmSettings::from_config(&config.llm, models_dir, manifest).map(LlmSupervisor::new).map_err(|e| e.to_string());
        let cloud = config.cloud.enabled.then(|| CloudClient::from_config(&config.cloud).map_err(|e| e.to_string()));
        Ok((
            Brain {
                skills: list,
                intents,
                threshold: config.router.intent_threshold,
                llm,
                options: GenerateOptions::from_config(&config.llm),
                cloud,
                privacy_gateway: config.cloud.privacy_gateway,
                memory: deps.memory,
                metrics: deps.metrics,
            },
            fired,
        ))
    }

    pub fn skill_names(&self) -> Vec<&'static str> {
        self.skills.iter().map(|s| s.name()).collect()
    }

    pub fn memory(&self) -> Option<&Arc<Memory>> {
        self.memory.as_ref()
    }

    pub fn intents(&self) -> &IntentMatcher {
        &self.intents
    }

    /// Hits and lookups of every cache a turn goes through, for the statistics pane: the
    /// intent and recall question vectors (this session) and the response cache by kind (on disk).
    pub fn cache_rates(&self) -> Vec<CacheRate> {
        let rate = |name: &str, hits: u64, misses: u64| CacheRate { name: name.to_string(), hits, lookups: hits + misses };
        let intents = self.intents.cache_counts();
        let mut rates = vec![rate("intent question vectors", intents.hits, intents.misses)];
        if let Some(memory) = &self.memory {
            let (hits, misses) = memory.query_cache_counts();
            rates.push(rate("recall question vectors", hits, misses));
            let cache = crate::memory::ResponseCache::new(memory.store().clone(), &crate::config::MemoryConfig::default());
            match cache.stats() {
                Ok(stats) => rates.extend(stats.kinds.iter().map(|k| rate(&format!("response cache: {}", k.kind.as_str().replace('_', " ")), k.hits, k.misses))),
                Err(e) => tracing::warn!("response cache statistics: {e}"),
            }
        }
        rates
    }

    /// The local LLM, when a model is installed.
    pub fn llm(&self) -> Option<&LlmSupervisor> {
        self.llm.as_ref().ok()
    }

    /// Loads the local LLM now instead of at the first question.
    pub fn warm_up(&self) -> Result<(), BrainError> {
        let llm = self.llm.as_ref().map_err(|e| BrainError::NoLlm(e.clone()))?;
        llm.load()?;
        Ok(())
    }

    /// Puts what every next LLM prompt begins with (the system prompt and the conversation so
    /// far) into the LLM's KV cache while nobody waits, so the next question prefills only its
    /// own tokens. Only when the LLM is already loaded: priming never loads a model.
    pub fn prime(&self) {
        let Ok(llm) = &self.llm else { return };
        if !llm.status().running {
            return;
        }
        let mut messages = vec![ChatMessage::new(Role::System, SYSTEM_PROMPT)];
        if let Some(memory) = &self.memory {
            messages.extend(memory.session_context());
        }
        let options = GenerateOptions { max_tokens: 0, ..self.options.clone() };
        let t = Instant::now();
        match llm.generate(&messages, &options, |_| {}) {
            Ok(c) => tracing::debug!(prompt = c.stats.prompt_tokens, cached = c.stats.cached_tokens, ms = ms_since(t), "LLM primed with the conversation"),
            Err(e) => tracing::debug!("LLM priming failed: {e}"),
        }
    }

    /// Whether the local LLM (not a skill, not the cloud) would answer `utterance`. Nothing runs.
    pub fn local_llm_would_answer(&self, utterance: &str) -> bool {
        self.llm.is_ok() && matches!(self.decide(utterance), Ok(Decision::Llm { cloud: false, .. }))
    }

    /// The prompt for `question`: the system prompt, the context, then the question. The
    /// context is the voice user's conversation, or an API client's own earlier messages, then
    /// the facts recalled for the question; one going to the cloud leaves out the turns skills
    /// answered and carries fewer facts (the privacy gateway then redacts it).
    fn prompt(&self, asker: Asker, question: String, cloud: bool) -> Vec<ChatMessage> {
        use crate::memory::{CLOUD_FACTS, RECALLED_FACTS};
        let context = match (asker, &self.memory) {
            (Asker::Voice, Some(memory)) if cloud => memory.cloud_context(&question),
            (Asker::Voice, Some(memory)) => memory.context_for(&question),
            (Asker::Client(earlier), Some(memory)) => {
                let limit = if cloud { CLOUD_FACTS } else { RECALLED_FACTS };
                memory.facts_for(&question, limit).map(|facts| earlier.iter().cloned().chain(facts).collect())
            }
            (Asker::Client(earlier), None) => Ok(earlier.to_vec()),
            (Asker::Voice, None) => Ok(Vec::new()),
        };
        let context = context.unwrap_or_else(|e| {
            tracing::warn!("answering without memory context: {e}");
            Vec::new()
        });
        let mut messages = Vec::with_capacity(context.len() + 2);
        messages.push(ChatMessage::new(Role::System, SYSTEM_PROMPT));
        messages.extend(context);
        messages.push(ChatMessage::new(Role::User, question));
        messages
    }

    /// Routes `utterance` without running anything (the plan is ready to run).
    pub fn decide(&self, utterance: &str) -> Result<Decision, BrainError> {
        // Asked for by name, the cloud answers even what a skill would have taken ("ask the
        // cloud: what is the alarm code?" is not a timer).
        if let Some(question) = self.cloud_ready().then(|| cloud_asked(utterance)).flatten() {
            return Ok(Decision::Llm { confidence: 0.0, cloud: true, question: question.to_string() });
        }
        let raw = self.intents.scores(utterance).map_err(BrainError::Intent)?;
        let nearest = raw.first().map_or(0.0, |s| s.similarity);
        let mut scores: Vec<(usize, f32)> = raw
            .into_iter()
            .filter(|s| s.similarity + CUE_BONUS >= self.threshold)
            .map(|s| {
                let cue = self.skills[s.skill].cue(utterance);
                (s.skill, (s.similarity + if cue { CUE_BONUS } else { 0.0 }).min(1.0))
            })
            .collect();
        scores.sort_by(|a, b| b.1.total_cmp(&a.1));
        let best = scores.first().map_or(nearest, |s| s.1.max(nearest));
        for &(index, confidence) in scores.iter().take_while(|s| s.1 >= self.threshold) {
            let skill = &self.skills[index];
            if let Some(plan) = skill.plan(utterance) {
                return Ok(Decision::Skill { skill: skill.name(), confidence, plan });
            }
        }
        let (cloud, question) = self.cloud_rule(utterance);
        Ok(Decision::Llm { confidence: best, cloud, question })
    }

    fn cloud_ready(&self) -> bool {
        matches!(self.cloud, Some(Ok(_)))
    }

    /// Whether the cloud should answer before the local LLM is tried, and the question to ask.
    fn cloud_rule(&self, utterance: &str) -> (bool, String) {
        static LONG_FORM: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)^\s*(please\s+)?(explain|write|draft|summari[sz]e|compare|translate|plan)\b").unwrap());
        if !self.cloud_ready() {
            return (false, utterance.to_string());
        }
        if let Some(question) = cloud_asked(utterance) {
            return (true, question.to_string());
        }
        let long = LONG_FORM.is_match(utterance) || utterance.split_whitespace().count() > 30;
        (long, utterance.to_string())
    }

    /// Answers `utterance`; `on_text` gets the answer as it is produced. The LLM sees the
    /// conversation so far and the facts recalled for the question; every answered turn is
    /// recorded in memory.
    pub fn answer(&self, utterance: &str, on_text: &mut dyn FnMut(&str)) -> Result<Reply, BrainError> {
        self.answer_if(utterance, on_text, &|| true)
    }

    /// [`Brain::answer`], recording the turn only if `keep()` says so once the answer is done
    /// (it may wait): an answer begun before the user was known to have finished is kept only
    /// if they had.
    pub fn answer_if(&self, utterance: &str, on_text: &mut dyn FnMut(&str), keep: &dyn Fn() -> bool) -> Result<Reply, BrainError> {
        let reply = self.route_and_answer(utterance, on_text)?;
        if let Some(memory) = &self.memory {
            if !reply.text.is_empty() && keep() {
                let route = match reply.route {
                    Route::Skill => "skill",
                    Route::Local => "llm",
                    Route::Cloud => "cloud",
                };
                let ms = &reply.ms;
                let timings: BTreeMap<String, u64> = [("intent", Some(ms.intent)), ("skill", ms.skill), ("llm_first_token", ms.llm_first_token), ("llm_total", ms.llm_total)]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| (k.to_string(), v.round() as u64)))
                    .collect();
                if let Err(e) = memory.record_turn(utterance, &reply.text, route, reply.skill, &timings) {
                    tracing::warn!("the turn was answered but not saved to memory: {e}");
                }
            }
        }
        Ok(reply)
    }

    /// Answers an API client: its last user message is routed like a spoken one; the LLM sees
    /// the client's own earlier messages and the facts recalled for the question, never the
    /// voice conversation, and nothing is recorded in it. The voice loop keeps the local LLM
    /// first ([`Priority::Background`]).
    pub fn answer_client(&self, messages: &[ChatMessage], on_text: &mut dyn FnMut(&str)) -> Result<Reply, BrainError> {
        let Some(last) = messages.iter().rposition(|m| m.role == Role::User) else {
            return Err(BrainError::NoLlm("the request has no user message to answer".into()));
        };
        let earlier: Vec<ChatMessage> = messages[..last].iter().filter(|m| m.role != Role::System).cloned().collect();
        self.route_and_answer_for(&messages[last].content, Asker::Client(&earlier), on_text)
    }

    fn route_and_answer(&self, utterance: &str, on_text: &mut dyn FnMut(&str)) -> Result<Reply, BrainError> {
        self.route_and_answer_for(utterance, Asker::Voice, on_text)
    }

    fn route_and_answer_for(&self, utterance: &str, asker: Asker, on_text: &mut dyn FnMut(&str)) -> Result<Reply, BrainError> {
        let started = Instant::now();
        let decision = self.decide(utterance)?;
        let intent_ms = ms_since(started);
        self.metrics.record_ms(Stage::Intent, intent_ms);
        let mut reply = Reply {
            route: decision.route(),
            skill: decision.skill(),
            confidence: 0.0,
            text: String::new(),
            action: None,
            failed: false,
            redacted: BTreeMap::new(),
            ms: BrainTimes { intent: intent_ms, ..Default::default() },
            tokens: None,
            tokens_per_s: None,
            prompt_tokens: None,
            cached_tokens: None,
        };
        match decision {
            Decision::Skill { confidence, plan, .. } => {
                let t = Instant::now();
                let done = plan();
                let skill_ms = ms_since(t);
                self.metrics.record_ms(Stage::Skill, skill_ms);
                if !done.text.is_empty() {
                    on_text(&done.text);
                }
                reply.confidence = confidence;
                reply.ms.skill = Some(skill_ms);
                reply.text = done.text;
                reply.action = done.action;
                reply.failed = done.failed;
            }
            Decision::Llm { confidence, cloud, question } => {
                reply.confidence = confidence;
                let local = if cloud {
                    None
                } else {
                    let t = Instant::now();
                    let messages = self.prompt(asker, question.clone(), false);
                    self.metrics.record_ms(Stage::MemorySearch, ms_since(t));
                    let priority = match asker {
                        Asker::Voice => Priority::Voice,
                        Asker::Client(_) => Priority::Background,
                    };
                    Some(self.local(&messages, priority, on_text, &mut reply))
                };
                let fall_back = match &local {
                    None => true,
                    Some(Ok(())) => reply.text.trim().is_empty() && self.cloud_ready(),
                    Some(Err(e)) if self.cloud_ready() => {
                        tracing::warn!("local LLM failed ({e}); asking the cloud");
                        true
                    }
                    Some(Err(_)) => false,
                };
                if fall_back && self.cloud_ready() {
                    reply.route = Route::Cloud;
                    self.cloud(&self.prompt(asker, question, true), on_text, &mut reply)?;
                } else if let Some(result) = local {
                    result?;
                }
            }
        }
        Ok(reply)
    }

    fn local(&self, messages: &[ChatMessage], priority: Priority, on_text: &mut dyn FnMut(&str), reply: &mut Reply) -> Result<(), BrainError> {
        let llm = self.llm.as_ref().map_err(|e| BrainError::NoLlm(e.clone()))?;
        let t = Instant::now();
        let mut first = None;
        let completion = llm.generate_as(priority, messages, &self.options, |piece| {
            first.get_or_insert_with(|| ms_since(t));
            on_text(piece);
        })?;
        let total = ms_since(t);
        first.inspect(|ms| self.metrics.record_ms(Stage::LlmFirstToken, *ms));
        self.metrics.record_ms(Stage::LlmTotal, total);
        let stats = &completion.stats;
        let decode_ms = stats.total_ms.saturating_sub(stats.first_token_ms) as f64;
        reply.tokens = Some(stats.completion_tokens);
        (reply.prompt_tokens, reply.cached_tokens) = (Some(stats.prompt_tokens), Some(stats.cached_tokens));
        if stats.completion_tokens > 1 && decode_ms > 0.0 {
            reply.tokens_per_s = Some(round_ms((stats.completion_tokens - 1) as f64 / (decode_ms / 1000.0)));
        }
        reply.ms.llm_first_token = first;
        reply.ms.llm_total = Some(total);
        reply.text = completion.text.trim().to_string();
        if stats.stop_reason == StopReason::Cancelled {
            reply.action = Some(Action::Stop);
        }
        Ok(())
    }

    fn cloud(&self, messages: &[ChatMessage], on_text: &mut dyn FnMut(&str), reply: &mut Reply) -> Result<(), BrainError> {
        let Some(Ok(client)) = &self.cloud else { return Err(BrainError::NoLlm("the cloud is not configured".into())) };
        let mut redactions = Redactions::default();
        let outgoing: Vec<ChatMessage> = if self.privacy_gateway {
            let gateway = Gateway::new(&self.known_names());
            messages.iter().map(|m| ChatMessage::new(m.role, gateway.redact(&m.content, &mut redactions))).collect()
        } else {
            messages.to_vec()
        };
        if !redactions.is_empty() {
            tracing::info!(redacted = ?redactions.counts(), "privacy gateway redacted personal data before the cloud request");
        }
        let mut restorer = redactions.restorer();
        let t = Instant::now();
        let mut first = None;
        let mut text = String::new();
        let mut emit = |piece: &str| {
            if !piece.is_empty() {
                first.get_or_insert_with(|| ms_since(t));
                text.push_str(piece);
                on_text(piece);
            }
        };
        client.chat(&outgoing, self.options.max_tokens, self.options.temperature, &mut |piece| emit(&restorer.push(piece)))?;
        emit(&restorer.finish());
        reply.ms.llm_first_token = first;
        reply.ms.llm_total = Some(ms_since(t));
        reply.text = text.trim().to_string();
        reply.redacted = redactions.counts().clone();
        Ok(())
    }

    /// People's names the user mentioned in stored facts, for the gateway to hide.
    fn known_names(&self) -> Vec<String> {
        let Some(memory) = &self.memory else { return Vec::new() };
        match memory.store().facts().list() {
            Ok(facts) => privacy::names_in(facts.iter().map(|f| f.text.as_str())),
            Err(e) => {
                tracing::warn!("could not read facts for the privacy gateway: {e}");
                Vec::new()
            }
        }
    }

    /// Stops an API client's generation in progress (the client went away).
    pub fn cancel_background(&self) -> bool {
        self.llm.as_ref().is_ok_and(|llm| llm.cancel_background())
    }

    /// Stops a local generation in progress (barge-in).
    pub fn cancel(&self) -> bool {
        self.llm.as_ref().is_ok_and(|llm| llm.cancel())
    }

    /// Stops the LLM worker now, freeing the model (the next question starts it again).
    /// Returns the worker's resident memory just before, when it was running.
    pub fn unload_llm(&self) -> Option<u64> {
        let llm = self.llm.as_ref().ok()?;
        let rss = llm.status().rss_bytes;
        llm.stop();
        rss
    }

    pub fn shutdown(&self) {
        if let Ok(llm) = &self.llm {
            llm.stop();
        }
    }
}


impl BrainDeps {
    /// The usual dependencies: memory in `data_dir` (run without it, with a warning, if it
    /// cannot be opened), MiniLM from `models_dir` (shared by intents and memory), and the OS
    /// launcher.
    pub fn open(data_dir: &Path, models_dir: &Path, config: &Config, metrics: Arc<Registry>) -> Result<BrainDeps, BrainError> {
        let embedder: Arc<dyn Embedder> = Arc::new(crate::memory::MiniLm::load(models_dir).map_err(BrainError::Intent)?);
        let db = data_dir.join(crate::memory::DB_FILE_NAME);
        let memory = match Memory::open_with(&db, Some(embedder.clone()), &config.memory) {
            Ok(memory) => Some(Arc::new(memory)),
            Err(e) => {
                tracing::warn!("memory is unavailable, so the conversation and facts are not kept: {e}");
                None
            }
        };
        Ok(BrainDeps { embedder, memory, metrics, launcher: Arc::new(skills::SystemLauncher) })
    }
}
