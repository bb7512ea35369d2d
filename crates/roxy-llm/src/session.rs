//! A loaded model with its context: turns chat messages into a streamed completion, keeping the
//! KV cache of the longest common token prefix between consecutive requests.

use crate::text::{Matched, StopMatcher, Utf8Stream};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use roxy_protocol::{BenchRequest, BenchStats, ChatMessage, ErrorKind, GenerateRequest, GenerationStats, StopReason};
use std::num::NonZeroU32;
use std::time::Instant;

/// Prompt tokens evaluated per decode call.
const BATCH_TOKENS: u32 = 512;
/// More threads than this stops paying off for token-by-token decoding.
const MAX_AUTO_THREADS: usize = 8;

/// Half the logical CPUs: ggml's threads spin at each step's barrier, so one preempted thread
/// (speech recognition, audio, the UI) stalls them all; measured on 2 shared cores, 2 threads
/// were 100× slower than 1 while another process was busy.
fn auto_threads() -> i32 {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    (cpus / 2).clamp(1, MAX_AUTO_THREADS) as i32
}
/// The only sequence we use.
const SEQ: i32 = 0;

#[derive(Debug)]
pub struct GenerateError {
    pub kind: ErrorKind,
    pub message: String,
}

impl GenerateError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GenerateError { kind, message: message.into() }
    }
}

pub struct Session<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    template: Option<LlamaChatTemplate>,
    /// The tokens whose keys and values the context holds, in position order.
    cached: Vec<LlamaToken>,
    batch: LlamaBatch<'static>,
}

impl<'m> Session<'m> {
    pub fn new(backend: &LlamaBackend, model: &'m LlamaModel, n_ctx: u32, n_threads: u32) -> Result<Self, String> {
        let n_ctx_train = model.n_ctx_train();
        // Beyond the training length quality collapses and memory balloons, so cap it there.
        let n_ctx = if n_ctx == 0 || n_ctx > n_ctx_train { n_ctx_train } else { n_ctx };
        let threads = if n_threads == 0 { auto_threads() } else { n_threads.min(256) as i32 };
        let batch_tokens = BATCH_TOKENS.min(n_ctx.max(1));
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(batch_tokens)
            .with_n_ubatch(batch_tokens)
            .with_n_threads(threads)
            .with_n_threads_batch(threads);
        let ctx = model.new_context(backend, params).map_err(|e| {
            format!("llama.cpp could not create a context of {n_ctx} tokens ({e}); most likely out of memory. Fix: lower the LLM context length (n_ctx)")
        })?;
        let template = model.chat_template(None).ok();
        if template.is_none() {
            tracing::warn!("the model has no chat template; using ChatML");
        }
        Ok(Session { model, ctx, template, cached: Vec::new(), batch: LlamaBatch::new(batch_tokens as usize, 1) })
    }

    pub fn n_ctx(&self) -> u32 {
        self.ctx.n_ctx()
    }

    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// Runs one chat completion. `emit` receives text as it becomes final; `cancelled` is polled
    /// before each token. `started` is when the request arrived, for time-to-first-token.
    pub fn generate(
        &mut self,
        request: &GenerateRequest,
        started: Instant,
        cancelled: &dyn Fn() -> bool,
        emit: &mut dyn FnMut(&str) -> Result<(), GenerateError>,
    ) -> Result<GenerationStats, GenerateError> {
        let prompt = self.render(&request.messages)?;
        let tokens = self.tokenize(&prompt);
        let n_ctx = self.n_ctx() as usize;
        if tokens.is_empty() {
            return Err(GenerateError::new(ErrorKind::BadRequest, "the prompt is empty: send at least one message"));
        }
        if tokens.len() >= n_ctx {
            return Err(GenerateError::new(
                ErrorKind::ContextOverflow,
                format!(
                    "the prompt is {} tokens but the context holds {n_ctx}. Fix: shorten the conversation or raise the LLM context length (n_ctx)",
                    tokens.len()
                ),
            ));
        }

        let prefill_start = Instant::now();
        let reused = self.reuse_prefix(&tokens);
        // The last prompt token always goes through alone. Logits depend (in the last bits) on
        // how tokens were batched, so this makes a repeated prompt, served from the cache,
        // produce exactly the logits it produced cold: temperature 0 stays deterministic.
        let (body, last) = tokens.split_at(tokens.len() - 1);
        self.evaluate(&body[reused..]).and_then(|()| self.evaluate(last)).inspect_err(|_| self.forget_cache())?;
        let prefill_ms = elapsed_ms(prefill_start);

        let mut sampler = sampler_for(request);
        let mut utf8 = Utf8Stream::default();
        let mut stops = StopMatcher::new(&request.stop);
        let mut completion_tokens = 0u32;
        let mut first_token_ms = None;
        let stop_reason = loop {
            if cancelled() {
                break StopReason::Cancelled;
            }
            if completion_tokens >= request.max_tokens {
                break StopReason::MaxTokens;
            }
            if self.cached.len() >= n_ctx {
                break StopReason::ContextFull;
            }
            let token = sampler.sample(&self.ctx, -1);
            first_token_ms.get_or_insert_with(|| elapsed_ms(started));
            let vocab = self.model.vocab();
            if vocab.is_eog(token) {
                break StopReason::Eos;
            }
            completion_tokens += 1;
            // special = false: control tokens (end-of-turn markers) render as nothing.
            let bytes = vocab.token_to_piece(token, false, None);
            match stops.push(&utf8.push(&bytes)) {
                Matched::Continue(text) => emit_nonempty(emit, &text)?,
                Matched::Stop(text) => {
                    emit_nonempty(emit, &text)?;
                    break StopReason::StopString;
                }
            }
            self.evaluate(&[token]).inspect_err(|_| self.forget_cache())?;
        };
        if stop_reason != StopReason::StopString {
            let rest = stops.push(&utf8.finish());
            let rest = match rest {
                Matched::Continue(text) | Matched::Stop(text) => text,
            };
            emit_nonempty(emit, &(rest + &stops.finish()))?;
        }
        Ok(GenerationStats {
            id: request.id,
            stop_reason,
            prompt_tokens: tokens.len() as u32,
            cached_tokens: reused as u32,
            completion_tokens,
            prefill_ms,
            first_token_ms: first_token_ms.unwrap_or_else(|| elapsed_ms(started)),
            total_ms: elapsed_ms(started),
        })
    }

    /// llama.cpp's own speed, the baseline for `roxy bench`: one prefill batch of a fixed text,
    /// then greedy decoding, timed around the library calls only. Leaves the KV cache empty.
    pub fn bench(&mut self, request: &BenchRequest) -> Result<BenchStats, GenerateError> {
        const TEXT: &str = "The quick brown fox jumps over the lazy dog while the clock on the wall ticks slowly. ";
        let n_ctx = self.n_ctx() as usize;
        let decode = (request.decode_tokens as usize).min(n_ctx / 2);
        let wanted = (request.prompt_tokens as usize).clamp(1, self.batch_capacity()).min(n_ctx - decode - 1);
        let vocab = self.model.vocab();
        let mut tokens = Vec::new();
        if vocab.should_add_bos() {
            tokens.push(vocab.bos());
        }
        while tokens.len() < wanted {
            tokens.extend(vocab.tokenize(TEXT.as_bytes(), false, false));
        }
        tokens.truncate(wanted);
        self.forget_cache();
        let internal = |what: &str, e: String| GenerateError::new(ErrorKind::Internal, format!("bench {what}: {e}"));
        self.batch.clear();
        for (i, &token) in tokens.iter().enumerate() {
            self.batch.add(token, i as i32, &[SEQ], i + 1 == tokens.len()).map_err(|e| internal("batch", e.to_string()))?;
        }
        let started = Instant::now();
        self.ctx.decode(&mut self.batch).map_err(|e| internal("prefill", e.to_string()))?;
        let prefill_us = started.elapsed().as_micros() as u64;

        let mut sampler = LlamaSampler::greedy();
        let started = Instant::now();
        for n in 0..decode {
            let token = sampler.sample(&self.ctx, -1);
            self.batch.clear();
            self.batch.add(token, (tokens.len() + n) as i32, &[SEQ], true).map_err(|e| internal("batch", e.to_string()))?;
            self.ctx.decode(&mut self.batch).map_err(|e| internal("decode", e.to_string()))?;
        }
        let decode_us = started.elapsed().as_micros() as u64;
        self.forget_cache();
        Ok(BenchStats { id: request.id, prompt_tokens: tokens.len() as u32, prefill_us, decode_tokens: decode as u32, decode_us })
    }

    /// Applies the model's chat template, ending with the assistant's turn opened.
    fn render(&self, messages: &[ChatMessage]) -> Result<String, GenerateError> {
        let Some(template) = &self.template else {
            return Ok(chatml(messages));
        };
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| GenerateError::new(ErrorKind::BadRequest, format!("a message cannot be used: {e}")))?;
        match self.model.apply_chat_template(template, &chat, true) {
            Ok(prompt) => Ok(prompt),
            Err(e) => {
                // llama.cpp only knows common templates; ChatML is the most widespread fallback.
                tracing::warn!("the model's chat template is not supported by llama.cpp ({e}); using ChatML");
                Ok(chatml(messages))
            }
        }
    }

    fn tokenize(&self, prompt: &str) -> Vec<LlamaToken> {
        let vocab = self.model.vocab();
        // parse_special: the template's markers (<|im_start|>) must become their control tokens.
        let mut tokens = vocab.tokenize(prompt.as_bytes(), false, true);
        // Some templates write the BOS marker themselves; add it only when they did not.
        if vocab.should_add_bos() && tokens.first() != Some(&vocab.bos()) {
            tokens.insert(0, vocab.bos());
        }
        tokens
    }

    /// Keeps the cached KV entries shared with `tokens` and drops the rest. Returns how many
    /// leading tokens need no evaluation. At least the last prompt token is always evaluated,
    /// because sampling needs its logits.
    fn reuse_prefix(&mut self, tokens: &[LlamaToken]) -> usize {
        let common = self.cached.iter().zip(tokens).take_while(|(a, b)| a == b).count();
        let keep = common.min(tokens.len().saturating_sub(1));
        if keep < self.cached.len() {
            let removed = self.ctx.clear_kv_cache_seq(Some(SEQ as u32), Some(keep as u32), None);
            if !matches!(removed, Ok(true)) {
                // Some cache types (recurrent models) cannot drop a suffix: start over.
                self.forget_cache();
                return 0;
            }
            self.cached.truncate(keep);
        }
        keep
    }

    /// Feeds `tokens` at the next positions, in batches; logits only for the last one.
    fn evaluate(&mut self, tokens: &[LlamaToken]) -> Result<(), GenerateError> {
        let chunk_size = self.batch_capacity();
        for (chunk_index, chunk) in tokens.chunks(chunk_size).enumerate() {
            let is_last_chunk = (chunk_index + 1) * chunk_size >= tokens.len();
            self.batch.clear();
            for (i, &token) in chunk.iter().enumerate() {
                let pos = self.cached.len() + i;
                let wants_logits = is_last_chunk && i + 1 == chunk.len();
                self.batch
                    .add(token, pos as i32, &[SEQ], wants_logits)
                    .map_err(|e| GenerateError::new(ErrorKind::Internal, format!("batch: {e}")))?;
            }
            self.ctx.decode(&mut self.batch).map_err(|e| {
                GenerateError::new(ErrorKind::Internal, format!("llama.cpp failed to evaluate tokens: {e}"))
            })?;
            self.cached.extend_from_slice(chunk);
        }
        Ok(())
    }

    fn batch_capacity(&self) -> usize {
        self.ctx.n_batch().max(1) as usize
    }

    fn forget_cache(&mut self) {
        self.ctx.clear_kv_cache();
        self.cached.clear();
    }
}

/// temperature 0 → greedy (deterministic); otherwise top-p, temperature, then a seeded draw.
fn sampler_for(request: &GenerateRequest) -> LlamaSampler {
    if request.temperature <= 0.0 || !request.temperature.is_finite() {
        return LlamaSampler::greedy();
    }
    let top_p = if request.top_p > 0.0 && request.top_p <= 1.0 { request.top_p } else { 1.0 };
    LlamaSampler::chain_simple([
        LlamaSampler::top_p(top_p, 1),
        LlamaSampler::temp(request.temperature),
        LlamaSampler::dist(request.seed),
    ])
}

fn chatml(messages: &[ChatMessage]) -> String {
    let mut prompt = String::new();
    for m in messages {
        prompt.push_str(&format!("<|im_start|>{}\n{}<|im_end|>\n", m.role.as_str(), m.content));
    }
    prompt.push_str("<|im_start|>assistant\n");
    prompt
}

fn emit_nonempty(emit: &mut dyn FnMut(&str) -> Result<(), GenerateError>, text: &str) -> Result<(), GenerateError> {
    if text.is_empty() {
        Ok(())
    } else {
        emit(text)
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use roxy_protocol::Role;

    #[test]
    fn chatml_fallback_opens_the_assistant_turn() {
        let prompt = chatml(&[ChatMessage::new(Role::System, "Be brief."), ChatMessage::new(Role::User, "Hi")]);
        assert_eq!(
            prompt,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }
}
