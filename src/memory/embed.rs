//! Sentence embeddings for recall by meaning: all-MiniLM-L6-v2 (int8 ONNX) with its BERT
//! WordPiece tokenizer, mean-pooled and L2-normalised, so a dot product is the cosine.
//!
//! The tokenizer is the BERT uncased one, implemented here from `tokenizer.json`'s vocabulary:
//! lowercase, control characters dropped, CJK characters and punctuation split off, greedy
//! longest-match WordPiece. Accents are stripped for Latin-1 letters (é → e) by a table rather
//! than Unicode decomposition, so other scripts' accented letters may split differently from the
//! reference tokenizer. `tests/memory.rs` checks the ids against the reference on sample text.

use super::MemoryError;
use ort::session::Session;
use ort::value::TensorRef;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Turns text into a unit-length vector. A seam: tests use a fake, Roxy uses [`MiniLm`].
pub trait Embedder: Send + Sync {
    fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError>;
}

pub const MODEL_FILE: &str = "embed/all-MiniLM-L6-v2-int8.onnx";
pub const TOKENIZER_FILE: &str = "embed/tokenizer.json";
/// The model was trained on at most 128 tokens (with [CLS] and [SEP]).
const MAX_TOKENS: usize = 128;
pub const DIMENSIONS: usize = 384;

struct WordPiece {
    vocab: HashMap<String, i64>,
    unk: i64,
    cls: i64,
    sep: i64,
}

impl WordPiece {
    fn from_tokenizer_json(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let vocab: HashMap<String, i64> = serde_json::from_value(json["model"]["vocab"].clone()).map_err(|e| format!("model.vocab: {e}"))?;
        let id = |t: &str| vocab.get(t).copied().ok_or_else(|| format!("the vocabulary has no {t}"));
        Ok(WordPiece { unk: id("[UNK]")?, cls: id("[CLS]")?, sep: id("[SEP]")?, vocab })
    }

    /// Words as BERT's basic tokenizer splits them.
    fn words(text: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut current = String::new();
        for c in text.chars() {
            if c == '\0' || c == '\u{FFFD}' || (c.is_control() && !c.is_whitespace()) {
                continue;
            }
            let cjk = matches!(c as u32, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F);
            let punct = c.is_ascii_punctuation() || (!c.is_ascii() && !c.is_alphanumeric() && !c.is_whitespace());
            if c.is_whitespace() || cjk || punct {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                if cjk || punct {
                    words.push(c.to_string());
                }
            } else {
                current.extend(c.to_lowercase().map(strip_accent));
            }
        }
        if !current.is_empty() {
            words.push(current);
        }
        words
    }

    fn encode(&self, text: &str) -> Vec<i64> {
        let mut ids = vec![self.cls];
        'words: for word in Self::words(text) {
            let chars: Vec<char> = word.chars().collect();
            if chars.len() > 100 {
                ids.push(self.unk);
                continue;
            }
            let mut pieces = Vec::new();
            let mut start = 0;
            while start < chars.len() {
                let mut end = chars.len();
                let found = loop {
                    let piece: String = chars[start..end].iter().collect();
                    let piece = if start > 0 { format!("##{piece}") } else { piece };
                    if let Some(&id) = self.vocab.get(&piece) {
                        break Some(id);
                    }
                    end -= 1;
                    if end == start {
                        break None;
                    }
                };
                match found {
                    Some(id) => pieces.push(id),
                    None => {
                        ids.push(self.unk);
                        continue 'words;
                    }
                }
                start = end;
            }
            ids.extend(pieces);
        }
        ids.truncate(MAX_TOKENS - 1);
        ids.push(self.sep);
        ids
    }
}

/// Remembers the vectors of recent texts: the same question asked again (or recalled and then
/// searched) skips the model. Least recently used entries are dropped beyond `capacity`.
pub struct CachedEmbedder {
    inner: std::sync::Arc<dyn Embedder>,
    capacity: usize,
    state: Mutex<LruState>,
}

#[derive(Default)]
struct LruState {
    tick: u64,
    entries: HashMap<String, (std::sync::Arc<[f32]>, u64)>,
    hits: u64,
    misses: u64,
}

impl CachedEmbedder {
    pub fn new(inner: std::sync::Arc<dyn Embedder>, capacity: usize) -> CachedEmbedder {
        CachedEmbedder { inner, capacity: capacity.max(1), state: Mutex::new(LruState::default()) }
    }

    /// (hits, misses) so far.
    pub fn counts(&self) -> (u64, u64) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.hits, s.misses)
    }
}

impl Embedder for CachedEmbedder {
    fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.tick += 1;
            let tick = s.tick;
            if let Some((v, used)) = s.entries.get_mut(text) {
                *used = tick;
                let v = v.to_vec();
                s.hits += 1;
                return Ok(v);
            }
            s.misses += 1;
        }
        // The model runs outside the lock: other texts are served meanwhile.
        let v = self.inner.embed(text)?;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.entries.len() >= self.capacity {
            // A linear scan over a few hundred entries costs less than the bookkeeping of a list.
            if let Some(oldest) = s.entries.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone()) {
                s.entries.remove(&oldest);
            }
        }
        let tick = s.tick;
        s.entries.insert(text.to_string(), (v.as_slice().into(), tick));
        Ok(v)
    }
}

/// all-MiniLM-L6-v2 on ONNX Runtime.
pub struct MiniLm {
    tokenizer: WordPiece,
    // `Session::run` needs `&mut`; one sentence takes a few ms, so callers take turns.
    session: Mutex<Session>,
}

impl MiniLm {
    /// Loads the model and tokenizer from the models dir (`roxy models fetch` installs them).
    pub fn load(models_dir: &Path) -> Result<MiniLm, MemoryError> {
        let (model, tokenizer) = (models_dir.join(MODEL_FILE), models_dir.join(TOKENIZER_FILE));
        let missing = |p: PathBuf| MemoryError::Embedder(format!("{} is missing. Fix: run `roxy models fetch`", p.display()));
        if !model.is_file() {
            return Err(missing(model));
        }
        if !tokenizer.is_file() {
            return Err(missing(tokenizer));
        }
        crate::models::verify::before_use(&crate::models::Manifest::builtin(), models_dir, &model)
            .map_err(|bad| MemoryError::Embedder(bad.to_string()))?;
        let tokenizer = WordPiece::from_tokenizer_json(&tokenizer)
            .map_err(|e| MemoryError::Embedder(format!("{} is unreadable ({e}). Fix: run `roxy models verify` and `roxy models fetch`", tokenizer.display())))?;
        let env = crate::onnx::environment(models_dir).map_err(|e| MemoryError::Embedder(e.to_string()))?;
        let fail = |e: ort::Error| MemoryError::Embedder(format!("loading {}: {e}. Fix: run `roxy models verify` and `roxy models fetch`", model.display()));
        // One thread: a spoken sentence is ~10-30 tokens, too little to share, and spinning
        // worker threads would take cores from Whisper and the LLM.
        let setup = |e: String| MemoryError::Embedder(format!("setting up the ONNX session for {}: {e}", model.display()));
        let session = crate::onnx::single_threaded_builder(&env)
            .map_err(|e| setup(e.to_string()))?
            .commit_from_file(&model)
            .map_err(fail)?;
        Ok(MiniLm { tokenizer, session: Mutex::new(session) })
    }
}

impl MiniLm {
    /// The token ids the model sees for `text`, with [CLS] and [SEP].
    pub fn token_ids(&self, text: &str) -> Vec<i64> {
        self.tokenizer.encode(text)
    }
}

impl Embedder for MiniLm {
    fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
        let ids = self.tokenizer.encode(text);
        let n = ids.len();
        let mask = vec![1i64; n];
        let types = vec![0i64; n];
        let fail = |e: ort::Error| MemoryError::Embedder(format!("embedding failed: {e}"));
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let inputs = ort::inputs![
            "input_ids" => TensorRef::from_array_view(([1usize, n], &ids[..])).map_err(fail)?,
            "attention_mask" => TensorRef::from_array_view(([1usize, n], &mask[..])).map_err(fail)?,
            "token_type_ids" => TensorRef::from_array_view(([1usize, n], &types[..])).map_err(fail)?,
        ];
        let outputs = session.run(inputs).map_err(fail)?;
        let (_, hidden) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        if hidden.len() != n * DIMENSIONS {
            return Err(MemoryError::Embedder(format!("the model returned {} values for {n} tokens; expected {n} x {DIMENSIONS}", hidden.len())));
        }
        // Mean over tokens (all attended), then unit length.
        let mut v = vec![0f32; DIMENSIONS];
        for token in hidden.chunks_exact(DIMENSIONS) {
            v.iter_mut().zip(token).for_each(|(a, b)| *a += b);
        }
        normalise(&mut v);
        Ok(v)
    }
}

/// The base letter of a lowercase Latin-1 accented letter (what BERT uncased's NFD + drop
/// combining marks gives for these).
fn strip_accent(c: char) -> char {
    match c {
        'à'..='å' => 'a',
        'ç' => 'c',
        'è'..='ë' => 'e',
        'ì'..='ï' => 'i',
        'ñ' => 'n',
        'ò'..='ö' => 'o',
        'ù'..='ü' => 'u',
        'ý' | 'ÿ' => 'y',
        _ => c,
    }
}

pub(crate) fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

#[cfg(test)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Vectors are stored as little-endian f32 blobs.
pub(crate) fn to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// `dot(a, from_blob(blob))` without decoding into a vector: the recall scan's inner loop.
pub(crate) fn dot_blob(a: &[f32], blob: &[u8]) -> f32 {
    a.iter().zip(blob.chunks_exact(4)).map(|(x, c)| x * f32::from_le_bytes([c[0], c[1], c[2], c[3]])).sum()
}

pub(crate) fn from_blob(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> WordPiece {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "my", "sister", "'", "s", "birth", "##day", "is", "june", "3", "##rd", ".", "你", "好"];
        WordPiece { vocab: vocab.iter().enumerate().map(|(i, t)| (t.to_string(), i as i64)).collect(), unk: 1, cls: 2, sep: 3 }
    }

    #[test]
    fn wordpiece_splits_like_bert() {
        let t = tiny();
        assert_eq!(t.encode("My sister's Birthday is June 3rd."), vec![2, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3]);
        assert_eq!(t.encode("你好 zebra"), vec![2, 15, 16, 1, 3], "CJK split per character, unknown word is [UNK]");
        assert_eq!(t.encode(&"is ".repeat(500)).len(), MAX_TOKENS);
    }

    struct Counting(std::sync::atomic::AtomicUsize);
    impl Embedder for Counting {
        fn embed(&self, text: &str) -> Result<Vec<f32>, MemoryError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(vec![text.len() as f32, 1.0])
        }
    }

    #[test]
    fn the_query_cache_skips_the_model_for_repeats_and_drops_the_least_recent() {
        let inner = std::sync::Arc::new(Counting(Default::default()));
        let cached = CachedEmbedder::new(inner.clone(), 2);
        let calls = || inner.0.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(cached.embed("a").unwrap(), vec![1.0, 1.0]);
        cached.embed("bb").unwrap();
        assert_eq!(cached.embed("a").unwrap(), vec![1.0, 1.0]);
        assert_eq!(calls(), 2, "the repeat came from the cache");
        cached.embed("ccc").unwrap(); // evicts "bb", the least recently used
        cached.embed("a").unwrap();
        assert_eq!(calls(), 3);
        cached.embed("bb").unwrap();
        assert_eq!(calls(), 4);
        assert_eq!(cached.counts(), (2, 4));
    }

    #[test]
    fn blobs_round_trip() {
        let v = vec![0.25f32, -1.5, 3.0];
        assert_eq!(from_blob(&to_blob(&v)), v);
        assert_eq!(dot_blob(&v, &to_blob(&v)), dot(&v, &v));
    }
}
