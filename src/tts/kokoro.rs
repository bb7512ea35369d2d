//! Kokoro v1.0 (82M, StyleTTS 2) through ONNX Runtime: IPA phoneme ids plus a style vector in,
//! 24 kHz audio out.
//!
//! A sentence goes: espeak-ng IPA (en-us, the phonemes Kokoro was trained on; kokoro-js, the
//! reference for the ONNX export, does the same) → kokoro-js's fix-ups of espeak's output
//! ([`postprocess`]) → ids through the vocab (`tokenizer.json`'s `model.vocab` for the Hugging
//! Face copy, `vocab.json`'s `vocab` for the registry copy; unknown symbols are dropped and
//! logged once each) → chunks of at most [`MAX_TOKENS`] ids → one `run` each with the ids padded
//! by a 0 at both ends, the voice's style row for that many tokens and the speed.
//!
//! Both exports are handled: onnx-community's (`input_ids`, fp32) and kokoro-onnx's int8 one
//! (`tokens`). The voice file is `[510, 1, 256]` little-endian f32: row N is the style for an
//! utterance of N tokens. Session and styles are loaded once; a mutex serialises `run`.

use super::{espeak, Tts, TtsError};
use ort::session::Session;
use ort::value::TensorElementType;
use ort::value::Tensor;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

pub const SAMPLE_RATE: u32 = 24_000;
/// Length of one style vector.
pub const STYLE_DIM: usize = 256;
/// Most phoneme ids per run (the model's context is 512 with the two pads).
pub const MAX_TOKENS: usize = 510;
/// The espeak-ng voice for American English (kokoro-js's `a` voices, af_heart among them).
const ESPEAK_VOICE: &str = "en-us";
/// "hello." run once at load so the first sentence a user waits for does not pay for set-up.
const WARM_UP: &str = "həlˈoʊ.";

pub struct Kokoro {
    session: Mutex<Session>,
    vocab: HashMap<char, i64>,
    /// Rows of [`STYLE_DIM`] floats; row N is for N tokens.
    styles: Vec<f32>,
    /// `input_ids` (onnx-community) or `tokens` (kokoro-onnx).
    ids_input: String,
    /// Some exports take the speed as an int32.
    speed_is_int: bool,
    speed: f32,
    model_path: PathBuf,
    voice_path: PathBuf,
    /// Symbols already reported as unknown (each is logged once).
    unknown: Mutex<HashSet<char>>,
    load_ms: f64,
}

impl std::fmt::Debug for Kokoro {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kokoro").field("model", &self.model_path).field("voice", &self.voice_path).field("speed", &self.speed).finish()
    }
}

impl Kokoro {
    /// Loads `model` (`.onnx`), the phoneme `vocab` (`tokenizer.json` or `vocab.json`) and one
    /// `voice` (`voices/NAME.bin`). `speed` above 1 is faster. ONNX Runtime is found through
    /// `models_dir` (see [`crate::onnx`]).
    pub fn load(model: &Path, vocab: &Path, voice: &Path, models_dir: &Path, speed: f32) -> Result<Kokoro, TtsError> {
        let started = Instant::now();
        for path in [model, vocab, voice] {
            if !path.is_file() {
                return Err(TtsError::KokoroMissing { path: path.into() });
            }
        }
        let vocab_map = load_vocab(vocab)?;
        let styles = load_styles(voice)?;
        let corrupt = |detail: String| TtsError::KokoroCorrupt { path: model.into(), detail };
        let (session, threads) = super::open_session(model, models_dir, corrupt)?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let Some(ids_input) = ["input_ids", "tokens"].into_iter().find(|n| names.contains(n)) else {
            return Err(corrupt(format!("it has no `input_ids` or `tokens` input (inputs: {names:?}); it is not a Kokoro model")));
        };
        for required in ["style", "speed"] {
            if !names.contains(&required) {
                return Err(corrupt(format!("it has no `{required}` input (inputs: {names:?}); it is not a Kokoro model")));
            }
        }
        let speed_is_int = session.inputs().iter().any(|i| i.name() == "speed" && i.dtype().tensor_type() == Some(TensorElementType::Int32));
        let mut kokoro = Kokoro {
            session: Mutex::new(session),
            vocab: vocab_map,
            styles,
            ids_input: ids_input.to_string(),
            speed_is_int,
            speed: if speed.is_finite() && speed > 0.0 { speed } else { 1.0 },
            model_path: model.into(),
            voice_path: voice.into(),
            unknown: Mutex::new(HashSet::new()),
            load_ms: 0.0,
        };
        kokoro.synthesize_phonemes(WARM_UP).map_err(|e| corrupt(format!("a test run failed: {e}")))?;
        kokoro.load_ms = started.elapsed().as_secs_f64() * 1000.0;
        tracing::info!(model = %model.display(), voice = %voice.display(), load_ms = kokoro.load_ms, threads, "Kokoro voice loaded");
        Ok(kokoro)
    }

    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    pub fn voice_path(&self) -> &Path {
        &self.voice_path
    }

    pub fn speed(&self) -> f32 {
        self.speed
    }

    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Phoneme ids for `phonemes`, unknown symbols dropped (and logged, once per symbol).
    pub fn phoneme_ids(&self, phonemes: &str) -> Vec<i64> {
        let mut ids = Vec::with_capacity(phonemes.len());
        for c in phonemes.chars() {
            match self.vocab.get(&c) {
                Some(&id) => ids.push(id),
                None => {
                    let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
                    if unknown.insert(c) {
                        tracing::warn!(symbol = %c, code = format!("U+{:04X}", c as u32), "Kokoro's vocab has no such phoneme; it is skipped");
                    }
                }
            }
        }
        ids
    }

    /// Synthesises IPA phonemes (after [`postprocess`]).
    pub fn synthesize_phonemes(&self, phonemes: &str) -> Result<Vec<f32>, TtsError> {
        let ids = self.phoneme_ids(phonemes);
        let space = self.vocab.get(&' ').copied();
        let mut audio = Vec::new();
        for chunk in split_ids(&ids, MAX_TOKENS, space) {
            audio.extend(self.run(chunk)?);
        }
        Ok(audio)
    }

    fn run(&self, ids: &[i64]) -> Result<Vec<f32>, TtsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let fail = |e: ort::Error| TtsError::Inference(e.to_string());
        let rows = self.styles.len() / STYLE_DIM;
        let row = ids.len().min(rows - 1);
        let style = self.styles[row * STYLE_DIM..(row + 1) * STYLE_DIM].to_vec();
        let mut padded = Vec::with_capacity(ids.len() + 2);
        padded.push(0);
        padded.extend_from_slice(ids);
        padded.push(0);
        let n = padded.len();
        let input = Tensor::from_array(([1usize, n], padded)).map_err(fail)?;
        let style = Tensor::from_array(([1usize, STYLE_DIM], style)).map_err(fail)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = if self.speed_is_int {
            let speed = Tensor::from_array(([1usize], vec![self.speed.round().max(1.0) as i32])).map_err(fail)?;
            session.run(ort::inputs![self.ids_input.as_str() => input, "style" => style, "speed" => speed])
        } else {
            let speed = Tensor::from_array(([1usize], vec![self.speed])).map_err(fail)?;
            session.run(ort::inputs![self.ids_input.as_str() => input, "style" => style, "speed" => speed])
        }
        .map_err(fail)?;
        let (_, audio) = outputs[0].try_extract_tensor::<f32>().map_err(fail)?;
        Ok(audio.iter().map(|s| s.clamp(-1.0, 1.0)).collect())
    }
}

impl Tts for Kokoro {
    fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    fn synthesize_sentence(&self, text: &str) -> Result<Vec<f32>, TtsError> {
        let phonemes = postprocess(&espeak::phonemize_joined(text, ESPEAK_VOICE)?);
        self.synthesize_phonemes(&phonemes)
    }
}

/// kokoro-js's corrections of espeak-ng's IPA (`phonemize` in kokoro.js, American English):
/// its own name, symbols Kokoro's vocab spells differently (`ʲ`→`j`, `r`→`ɹ`, `x`→`k`, `ɬ`→`l`),
/// a word break before "hundred", a lone plural `z` joined to its word, and the American
/// flapped "ninety".
pub fn postprocess(phonemes: &str) -> String {
    let s = phonemes
        .replace("kəkˈoːɹoʊ", "kˈoʊkəɹoʊ")
        .replace("kəkˈɔːɹəʊ", "kˈəʊkəɹəʊ")
        .replace('ʲ', "j")
        .replace('r', "ɹ")
        .replace('x', "k")
        .replace('ɬ', "l");
    // (?<=[a-zɹː])(?=hˈʌndɹɪd) → " "
    let mut out = String::with_capacity(s.len() + 8);
    let mut prev: Option<char> = None;
    for (i, c) in s.char_indices() {
        if s[i..].starts_with("hˈʌndɹɪd") && prev.is_some_and(|p| p.is_ascii_lowercase() || p == 'ɹ' || p == 'ː') {
            out.push(' ');
        }
        out.push(c);
        prev = Some(c);
    }
    // " z" before punctuation, a space or the end → "z"
    let chars: Vec<char> = out.chars().collect();
    let mut joined = String::with_capacity(out.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' && chars.get(i + 1) == Some(&'z') && chars.get(i + 2).is_none_or(|&c| c == ' ' || ";:,.!?¡¿—…\"«»“”".contains(c)) {
            i += 1;
            continue;
        }
        joined.push(chars[i]);
        i += 1;
    }
    // (?<=nˈaɪn)ti(?!ː) → di
    let mut result = String::with_capacity(joined.len());
    let mut rest = joined.as_str();
    while let Some(at) = rest.find("nˈaɪnti") {
        let after = &rest[at + "nˈaɪnti".len()..];
        result.push_str(&rest[..at]);
        if after.starts_with('ː') {
            result.push_str("nˈaɪnti");
        } else {
            result.push_str("nˈaɪndi");
        }
        rest = after;
    }
    result.push_str(rest);
    result.trim().to_string()
}

/// Cuts `ids` into runs of at most `max`, each cut after the last word break (`space`) that
/// fits, or hard at `max` in a word longer than that.
fn split_ids(ids: &[i64], max: usize, space: Option<i64>) -> Vec<&[i64]> {
    let mut chunks = Vec::new();
    let mut rest = ids;
    while rest.len() > max {
        let cut = space.and_then(|s| rest[..max].iter().rposition(|&id| id == s)).filter(|&p| p > 0).map_or(max, |p| p + 1);
        chunks.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        chunks.push(rest);
    }
    chunks
}

/// The symbol → id map of a `tokenizer.json` (`model.vocab`) or a `vocab.json` (`vocab`).
fn load_vocab(path: &Path) -> Result<HashMap<char, i64>, TtsError> {
    let corrupt = |detail: String| TtsError::KokoroCorrupt { path: path.into(), detail };
    let text = std::fs::read_to_string(path).map_err(|e| corrupt(e.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    let map = json
        .get("vocab")
        .or_else(|| json.get("model").and_then(|m| m.get("vocab")))
        .and_then(|v| v.as_object())
        .ok_or_else(|| corrupt("it has no `vocab` (nor `model.vocab`) map".into()))?;
    let mut vocab = HashMap::new();
    for (symbol, id) in map {
        let mut chars = symbol.chars();
        if let (Some(c), None, Some(id)) = (chars.next(), chars.next(), id.as_i64()) {
            vocab.insert(c, id);
        }
    }
    if vocab.len() < 50 {
        return Err(corrupt(format!("its vocab has only {} phonemes", vocab.len())));
    }
    Ok(vocab)
}

/// A voice's style rows: little-endian f32, a whole number of [`STYLE_DIM`] rows.
fn load_styles(path: &Path) -> Result<Vec<f32>, TtsError> {
    let corrupt = |detail: String| TtsError::KokoroCorrupt { path: path.into(), detail };
    let bytes = std::fs::read(path).map_err(|e| corrupt(e.to_string()))?;
    let row = STYLE_DIM * 4;
    if bytes.is_empty() || bytes.len() % row != 0 {
        return Err(corrupt(format!("{} bytes is not a whole number of {STYLE_DIM}-float style rows", bytes.len())));
    }
    let styles: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    if styles.iter().any(|v| !v.is_finite()) {
        return Err(corrupt("it holds non-finite values".into()));
    }
    Ok(styles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postprocessing_follows_kokoro_js() {
        assert_eq!(postprocess("kəkˈoːɹoʊ"), "kˈoʊkəɹoʊ");
        assert_eq!(postprocess("ɡˈʊtn mˈɔʁɡən rˈʌn"), "ɡˈʊtn mˈɔʁɡən ɹˈʌn");
        assert_eq!(postprocess("lˈɒx"), "lˈɒk");
        assert_eq!(postprocess("tˈuːhˈʌndɹɪd"), "tˈuː hˈʌndɹɪd");
        assert_eq!(postprocess("ðə kˈæt z."), "ðə kˈætz.");
        assert_eq!(postprocess("nˈaɪnti nˈaɪntiːn"), "nˈaɪndi nˈaɪntiːn");
    }

    #[test]
    fn long_inputs_are_cut_at_word_breaks() {
        let ids: Vec<i64> = (0..12).map(|i| if i % 4 == 3 { 16 } else { 50 }).collect();
        let chunks = split_ids(&ids, 6, Some(16));
        assert_eq!(chunks.iter().map(|c| c.len()).collect::<Vec<_>>(), [4, 4, 4]);
        assert!(chunks.iter().all(|c| c.len() <= 6));
        // No break in reach: a hard cut.
        let word = vec![50i64; 13];
        assert_eq!(split_ids(&word, 6, Some(16)).iter().map(|c| c.len()).collect::<Vec<_>>(), [6, 6, 1]);
        assert!(split_ids(&[], 6, Some(16)).is_empty());
    }

    #[test]
    fn vocab_and_styles_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let vocab = dir.path().join("vocab.json");
        std::fs::write(&vocab, "{\"vocab\": {\"a\": 43}}").unwrap();
        assert!(load_vocab(&vocab).unwrap_err().to_string().contains("only 1 phonemes"));
        let entries: Vec<String> = ('a'..='z').chain('A'..='Z').enumerate().map(|(i, c)| format!("\"{c}\": {i}")).collect();
        std::fs::write(&vocab, format!("{{\"model\": {{\"vocab\": {{{}}}}}}}", entries.join(","))).unwrap();
        assert_eq!(load_vocab(&vocab).unwrap().len(), 52);
        let voice = dir.path().join("v.bin");
        std::fs::write(&voice, vec![0u8; STYLE_DIM * 4 * 2 + 3]).unwrap();
        let msg = load_styles(&voice).unwrap_err().to_string();
        assert!(msg.contains("v.bin") && msg.contains("roxy models fetch --tier kokoro"), "{msg}");
        std::fs::write(&voice, vec![0u8; STYLE_DIM * 4 * 2]).unwrap();
        assert_eq!(load_styles(&voice).unwrap().len(), STYLE_DIM * 2);
    }
}
