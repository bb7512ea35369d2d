//! CTranslate2 Whisper export (faster-whisper's `model.bin` + `vocabulary.txt`) → whisper.cpp's
//! ggml file, in Rust so a first run needs no Python or numpy. Same bytes as
//! `models/convert_whisper_ct2.py` (the manifest pins the output's sha256): magic, hparams, mel
//! filters, vocabulary, then the tensors in the order of Whisper's PyTorch state_dict.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

const GGML_MAGIC: i32 = 0x6767_6D6C;
const GGML_FTYPE_F32: i32 = 0;
const GGML_FTYPE_F16: i32 = 1;
const CT2_BINARY_VERSION: u32 = 6;
const CT2_SPEC_NAME: &str = "WhisperSpec";
const SAMPLE_RATE: f64 = 16000.0;
const N_FFT: usize = 400;
/// whisper.cpp numbers the special tokens from the first one not in the file, so the file
/// carries exactly the byte-level tokens before `<|endoftext|>`, which sits at a fixed id.
const EOT_TOKEN: &str = "<|endoftext|>";
const EOT_ID_ENGLISH: usize = 50256;
const EOT_ID_MULTILINGUAL: usize = 50257;
const N_VOCAB_ENGLISH: usize = 51864;

/// Scalars a WhisperSpec carries, with the value plain Whisper needs (`None`: any).
const WHISPER_SCALARS: &[(&str, Option<i64>)] = &[
    ("decoder/activation", Some(3)), // GELU
    ("decoder/alibi", Some(0)),
    ("decoder/alignment_heads", None),
    ("decoder/alignment_layer", None),
    ("decoder/num_heads", None),
    ("decoder/pre_norm", Some(1)),
    ("decoder/scale_embeddings", Some(0)),
    ("decoder/start_from_zero_embedding", Some(0)),
    ("encoder/num_heads", None),
];

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{path}: {message}. Fix: reinstall the source model with `roxy models fetch --force`")]
    Source { path: PathBuf, message: String },
    #[error("the model in {dir} cannot be converted for whisper.cpp: {message}. Fix: use a plain float16/float32 CTranslate2 Whisper export")]
    Unsupported { dir: PathBuf, message: String },
    #[error("the conversion was cancelled")]
    Cancelled,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl DType {
    fn from_id(id: u8) -> Option<DType> {
        // CTranslate2's DataType enum order (include/ctranslate2/types.h).
        [DType::F32, DType::I8, DType::I16, DType::I32, DType::F16, DType::Bf16].get(usize::from(id)).copied()
    }
    fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::Bf16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }
}

/// A view of one variable's bytes in `model.bin`.
#[derive(Clone)]
struct Tensor<'a> {
    shape: Vec<usize>,
    dtype: DType,
    data: &'a [u8],
}

impl<'a> Tensor<'a> {
    fn values(&self) -> impl Iterator<Item = f32> + '_ {
        let step = self.dtype.size();
        self.data.chunks_exact(step).map(move |b| match self.dtype {
            DType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            DType::F16 => half::f16::from_le_bytes([b[0], b[1]]).to_f32(),
            DType::Bf16 => f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16),
            DType::I8 => f32::from(b[0] as i8),
            DType::I16 => f32::from(i16::from_le_bytes([b[0], b[1]])),
            DType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32,
        })
    }

    fn scalar(&self) -> i64 {
        let b = self.data;
        match self.dtype {
            DType::I8 => i64::from(b[0] as i8),
            DType::I16 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            DType::I32 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => self.values().next().unwrap_or(0.0) as i64,
        }
    }

    /// Splits along the first axis into `parts` equal views (CT2 fuses q/k/v by rows).
    fn split_rows(&self, parts: usize, what: &str) -> Result<Vec<Tensor<'a>>, String> {
        let rows = self.shape.first().copied().unwrap_or(0);
        if parts == 0 || rows % parts != 0 {
            return Err(format!("{what}: {rows} rows cannot be split in {parts}"));
        }
        let chunk = self.data.len() / parts;
        let mut shape = self.shape.clone();
        shape[0] = rows / parts;
        Ok(self.data.chunks_exact(chunk).map(|data| Tensor { shape: shape.clone(), dtype: self.dtype, data }).collect())
    }
}

/// Parses CTranslate2's model.bin (binary version 6), aliases resolved.
fn read_ct2(blob: &[u8]) -> Result<HashMap<String, Tensor<'_>>, String> {
    let mut pos = 0usize;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let end = pos.checked_add(n).filter(|&e| e <= blob.len()).ok_or_else(|| format!("truncated at byte {pos} (wanted {n} more bytes)"))?;
        let chunk = &blob[pos..end];
        pos = end;
        Ok(chunk)
    };
    fn u32_at(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    macro_rules! u32 {
        () => {
            u32_at(take(4)?)
        };
    }
    macro_rules! string {
        () => {{
            let len = u16::from_le_bytes(take(2)?.try_into().unwrap()) as usize;
            let raw = take(len)?;
            // Stored NUL-terminated; the length counts the NUL.
            let text = raw.strip_suffix(b"\0").ok_or("malformed string")?;
            std::str::from_utf8(text).map_err(|_| "a name is not UTF-8".to_string())?.to_string()
        }};
    }
    if blob.len() < 4 {
        return Err("too small to be a CTranslate2 model".into());
    }
    let version = u32!();
    if version != CT2_BINARY_VERSION {
        return Err(format!("not a CTranslate2 model.bin (binary version field is {version}, expected {CT2_BINARY_VERSION})"));
    }
    let spec = string!();
    if spec != CT2_SPEC_NAME {
        return Err(format!("model spec is {spec:?}, expected {CT2_SPEC_NAME:?}"));
    }
    let _revision = u32!();
    let mut variables = HashMap::new();
    for _ in 0..u32!() {
        let name = string!();
        let rank = take(1)?[0] as usize;
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(u32!() as usize);
        }
        let dtype_id = take(1)?[0];
        let dtype = DType::from_id(dtype_id).ok_or_else(|| format!("variable {name} has unknown dtype id {dtype_id}"))?;
        let n_bytes = u32!() as usize;
        let data = take(n_bytes)?;
        let expected = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).and_then(|n| n.checked_mul(dtype.size()));
        if expected != Some(n_bytes) {
            return Err(format!("variable {name} has {n_bytes} bytes, shape {shape:?} of {dtype:?} needs {expected:?}"));
        }
        variables.insert(name, Tensor { shape, dtype, data });
    }
    for _ in 0..u32!() {
        let alias = string!();
        let target = string!();
        let tensor = variables.get(&target).cloned().ok_or_else(|| format!("alias {alias} points to missing variable {target}"))?;
        variables.insert(alias, tensor);
    }
    if pos != blob.len() {
        return Err(format!("{} unexpected trailing bytes", blob.len() - pos));
    }
    Ok(variables)
}

fn count_layers(vars: &HashMap<String, Tensor>, stack: &str) -> Result<usize, String> {
    let prefix = format!("{stack}/layer_");
    let indices: BTreeSet<usize> = vars
        .keys()
        .filter_map(|n| n.strip_prefix(&prefix)?.split_once('/')?.0.parse().ok())
        .collect();
    if indices.is_empty() {
        return Err(format!("model has no {stack} layers"));
    }
    if indices.iter().copied().ne(0..indices.len()) {
        return Err(format!("{stack} layer indices are not contiguous: {indices:?}"));
    }
    Ok(indices.len())
}

/// The ggml tensors in the order whisper's state_dict uses; every CT2 variable must be used,
/// or the model is not plain Whisper and the output would silently be wrong.
fn whisper_tensors<'a>(vars: &HashMap<String, Tensor<'a>>, n_audio: usize, n_text: usize) -> Result<Vec<(String, Tensor<'a>)>, String> {
    let mut consumed: BTreeSet<String> = WHISPER_SCALARS.iter().map(|(n, _)| n.to_string()).collect();
    consumed.insert("decoder/projection/weight".into());
    let mut out = Vec::new();
    let mut take = |name: &str| -> Result<Tensor<'a>, String> {
        consumed.insert(name.to_string());
        vars.get(name).cloned().ok_or_else(|| format!("model has no variable {name}"))
    };
    let mut emit = |name: String, t: Tensor<'a>| out.push((name, t));

    macro_rules! linear {
        ($g:expr, $c:expr) => {{
            emit(format!("{}.weight", $g), take(&format!("{}/weight", $c))?);
            emit(format!("{}.bias", $g), take(&format!("{}/bias", $c))?);
        }};
    }
    macro_rules! layer_norm {
        ($g:expr, $c:expr) => {{
            emit(format!("{}.weight", $g), take(&format!("{}/gamma", $c))?);
            emit(format!("{}.bias", $g), take(&format!("{}/beta", $c))?);
        }};
    }
    // Whisper's key projection has no bias (CT2 fuses zeros in) and whisper.cpp has no slot
    // for one; a key bias shifts all of a query's scores equally, which softmax ignores.
    macro_rules! qkv {
        ($g:expr, $qw:expr, $qb:expr, $kw:expr, $vw:expr, $vb:expr) => {{
            emit(format!("{}.query.weight", $g), $qw);
            emit(format!("{}.query.bias", $g), $qb);
            emit(format!("{}.key.weight", $g), $kw);
            emit(format!("{}.value.weight", $g), $vw);
            emit(format!("{}.value.bias", $g), $vb);
        }};
    }
    macro_rules! self_attention {
        ($g:expr, $c:expr) => {{
            let what = format!("{}/linear_0", $c);
            let w = take(&format!("{what}/weight"))?.split_rows(3, &what)?;
            let b = take(&format!("{what}/bias"))?.split_rows(3, &what)?;
            qkv!($g, w[0].clone(), b[0].clone(), w[1].clone(), w[2].clone(), b[2].clone());
            linear!(format!("{}.out", $g), format!("{}/linear_1", $c));
        }};
    }
    macro_rules! cross_attention {
        ($g:expr, $c:expr) => {{
            let what = format!("{}/linear_1", $c);
            let kv_w = take(&format!("{what}/weight"))?.split_rows(2, &what)?;
            let kv_b = take(&format!("{what}/bias"))?.split_rows(2, &what)?;
            let q_w = take(&format!("{}/linear_0/weight", $c))?;
            let q_b = take(&format!("{}/linear_0/bias", $c))?;
            qkv!($g, q_w, q_b, kv_w[0].clone(), kv_w[1].clone(), kv_b[1].clone());
            linear!(format!("{}.out", $g), format!("{}/linear_2", $c));
        }};
    }
    macro_rules! mlp {
        ($g:expr, $c:expr) => {{
            linear!(format!("{}.mlp.0", $g), format!("{}/linear_0", $c));
            linear!(format!("{}.mlp.2", $g), format!("{}/linear_1", $c));
            layer_norm!(format!("{}.mlp_ln", $g), format!("{}/layer_norm", $c));
        }};
    }

    emit("encoder.positional_embedding".into(), take("encoder/position_encodings/encodings")?);
    linear!("encoder.conv1", "encoder/conv1");
    linear!("encoder.conv2", "encoder/conv2");
    for i in 0..n_audio {
        let (block, layer) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        self_attention!(format!("{block}.attn"), format!("{layer}/self_attention"));
        layer_norm!(format!("{block}.attn_ln"), format!("{layer}/self_attention/layer_norm"));
        mlp!(block, format!("{layer}/ffn"));
    }
    layer_norm!("encoder.ln_post", "encoder/layer_norm");

    emit("decoder.positional_embedding".into(), take("decoder/position_encodings/encodings")?);
    let embedding = take("decoder/embeddings/weight")?;
    emit("decoder.token_embedding.weight".into(), embedding.clone());
    for i in 0..n_text {
        let (block, layer) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        self_attention!(format!("{block}.attn"), format!("{layer}/self_attention"));
        layer_norm!(format!("{block}.attn_ln"), format!("{layer}/self_attention/layer_norm"));
        cross_attention!(format!("{block}.cross_attn"), format!("{layer}/attention"));
        layer_norm!(format!("{block}.cross_attn_ln"), format!("{layer}/attention/layer_norm"));
        mlp!(block, format!("{layer}/ffn"));
    }
    layer_norm!("decoder.ln", "decoder/layer_norm");

    // whisper.cpp computes logits with the token embedding: an untied output layer has no slot.
    if let Some(projection) = vars.get("decoder/projection/weight") {
        if projection.shape != embedding.shape || projection.values().ne(embedding.values()) {
            return Err("decoder/projection/weight differs from decoder/embeddings/weight (untied output layer)".into());
        }
    }
    if vars.contains_key("decoder/projection/bias") {
        return Err("unexpected variable decoder/projection/bias (whisper has no output bias)".into());
    }
    let mut unexpected: Vec<&String> = vars.keys().filter(|k| !consumed.contains(*k)).collect();
    if !unexpected.is_empty() {
        unexpected.sort();
        return Err(format!("unexpected variable(s) in model.bin: {}", unexpected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
    }
    Ok(out)
}

fn check_scalars(vars: &HashMap<String, Tensor>) -> Result<(), String> {
    for (name, required) in WHISPER_SCALARS {
        let t = vars.get(*name).ok_or_else(|| format!("model has no variable {name}"))?;
        if !t.shape.is_empty() {
            return Err(format!("{name} should be a scalar, has shape {:?}", t.shape));
        }
        if let Some(required) = required {
            if t.scalar() != *required {
                return Err(format!("{name} = {}, Whisper requires {required}", t.scalar()));
            }
        }
    }
    Ok(())
}

struct Hparams([i32; 10]);

fn hparams(vars: &HashMap<String, Tensor>, n_audio: usize, n_text: usize) -> Result<Hparams, String> {
    let dim = |name: &str, axis: usize| vars.get(name).and_then(|t| t.shape.get(axis).copied()).ok_or_else(|| format!("model has no {name}"));
    let scalar = |name: &str| vars.get(name).map(|t| t.scalar()).ok_or_else(|| format!("model has no {name}"));
    let n_audio_state = dim("encoder/conv1/weight", 0)?;
    let n_text_state = dim("decoder/embeddings/weight", 1)?;
    if n_audio_state != n_text_state {
        return Err("encoder and decoder widths differ; whisper.cpp requires them equal".into());
    }
    let values = [
        dim("decoder/embeddings/weight", 0)? as i64,
        dim("encoder/position_encodings/encodings", 0)? as i64,
        n_audio_state as i64,
        scalar("encoder/num_heads")?,
        n_audio as i64,
        dim("decoder/position_encodings/encodings", 0)? as i64,
        n_text_state as i64,
        scalar("decoder/num_heads")?,
        n_text as i64,
        dim("encoder/conv1/weight", 1)? as i64,
    ];
    let mut out = [0i32; 10];
    for (o, v) in out.iter_mut().zip(values) {
        *o = i32::try_from(v).map_err(|_| format!("hyperparameter {v} is out of range"))?;
    }
    Ok(Hparams(out))
}

impl Hparams {
    fn n_vocab(&self) -> usize {
        self.0[0] as usize
    }
    fn n_mels(&self) -> usize {
        self.0[9] as usize
    }
}

// Slaney's mel scale (librosa htk=False), in f64 like numpy, in numpy's order of operations.
const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz >= MIN_LOG_HZ {
        MIN_LOG_HZ / F_SP + (hz / MIN_LOG_HZ).ln() / logstep()
    } else {
        hz / F_SP
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    let min_log_mel = MIN_LOG_HZ / F_SP;
    if mel >= min_log_mel {
        MIN_LOG_HZ * (logstep() * (mel - min_log_mel)).exp()
    } else {
        F_SP * mel
    }
}

/// numpy's `linspace(start, stop, num)`: `i * step + start`, the last point exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// librosa.filters.mel(sr=16000, n_fft=400, n_mels) with area normalisation: whisper's
/// `mel_filters.npz`, row-major `[n_mels, n_fft / 2 + 1]`.
fn mel_filters(n_mels: usize) -> Vec<f32> {
    let n_freqs = N_FFT / 2 + 1;
    let fft_freqs = linspace(0.0, SAMPLE_RATE / 2.0, n_freqs);
    let mel_edges = linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0), n_mels + 2);
    let hz: Vec<f64> = mel_edges.iter().map(|&m| mel_to_hz(m)).collect();
    let widths: Vec<f64> = hz.windows(2).map(|w| w[1] - w[0]).collect();
    let mut weights = Vec::with_capacity(n_mels * n_freqs);
    for i in 0..n_mels {
        let norm = 2.0 / (hz[i + 2] - hz[i]);
        for &f in &fft_freqs {
            let rising = -(hz[i] - f) / widths[i];
            let falling = (hz[i + 2] - f) / widths[i + 1];
            // Stored as f32, then scaled in f64 and stored again (numpy's in-place `*=`).
            // np.maximum(0.0, x) is x where x is -0.0 (as x86's maxpd), and so is the file.
            let m = rising.min(falling);
            let w = if m < 0.0 { 0.0 } else { m } as f32;
            weights.push((f64::from(w) * norm) as f32);
        }
    }
    weights
}

/// GPT-2's printable stand-in character → the byte it stands for.
fn gpt2_unicode_to_byte() -> HashMap<char, u8> {
    let printable: Vec<u32> = (u32::from('!')..=u32::from('~')).chain(0xA1..=0xAC).chain(0xAE..=0xFF).collect();
    let mut map: HashMap<char, u8> = printable.iter().map(|&c| (char::from_u32(c).unwrap(), c as u8)).collect();
    let mut extra = 0;
    for b in 0..=255u32 {
        if !printable.contains(&b) {
            map.insert(char::from_u32(256 + extra).unwrap(), b as u8);
            extra += 1;
        }
    }
    map
}

/// The raw bytes of every token before `<|endoftext|>`.
fn base_tokens(text: &str, n_vocab: usize) -> Result<Vec<Vec<u8>>, String> {
    let mut tokens: Vec<&str> = text.split('\n').collect();
    if tokens.last() == Some(&"") {
        tokens.pop();
    }
    if tokens.len() != n_vocab {
        return Err(format!("{} tokens but the model embeds {n_vocab}", tokens.len()));
    }
    let eot = tokens.iter().position(|t| *t == EOT_TOKEN).ok_or_else(|| format!("no {EOT_TOKEN} token"))?;
    let expected = if n_vocab == N_VOCAB_ENGLISH { EOT_ID_ENGLISH } else { EOT_ID_MULTILINGUAL };
    if eot != expected {
        return Err(format!("{EOT_TOKEN} is token {eot}, whisper.cpp expects {expected}"));
    }
    let decoder = gpt2_unicode_to_byte();
    tokens[..eot]
        .iter()
        .enumerate()
        .map(|(i, t)| t.chars().map(|c| decoder.get(&c).copied().ok_or_else(|| format!("token {i} {t:?} has non byte-level character {c:?}"))).collect())
        .collect()
}

/// convert-pt-to-ggml.py's storage rules: conv biases as `[n, 1]`; biases, norms, conv biases
/// and positional embeddings as f32; every other matrix as f16.
fn write_tensor(out: &mut impl Write, name: &str, t: &Tensor) -> std::io::Result<()> {
    let conv_bias = name == "encoder.conv1.bias" || name == "encoder.conv2.bias";
    let shape: Vec<usize> = if conv_bias { vec![t.shape[0], 1] } else { t.shape.clone() };
    let f32_kept = shape.len() < 2 || conv_bias || name.ends_with("positional_embedding");
    let ftype = if f32_kept { GGML_FTYPE_F32 } else { GGML_FTYPE_F16 };
    for v in [shape.len() as i32, name.len() as i32, ftype] {
        out.write_all(&v.to_le_bytes())?;
    }
    // ggml lists dimensions fastest-varying first, the reverse of row-major shape order.
    for &d in shape.iter().rev() {
        out.write_all(&(d as i32).to_le_bytes())?;
    }
    out.write_all(name.as_bytes())?;
    match (f32_kept, t.dtype) {
        (false, DType::F16) | (true, DType::F32) => out.write_all(t.data),
        (true, _) => {
            let bytes: Vec<u8> = t.values().flat_map(f32::to_le_bytes).collect();
            out.write_all(&bytes)
        }
        (false, _) => {
            let bytes: Vec<u8> = t.values().flat_map(|v| half::f16::from_f32(v).to_le_bytes()).collect();
            out.write_all(&bytes)
        }
    }
}

/// What a conversion wrote.
#[derive(Debug)]
pub struct Converted {
    pub tensors: usize,
    pub tokens: usize,
    pub bytes: u64,
}

/// Converts the CTranslate2 Whisper export in `src_dir` to `dest` (written to `dest.partial`,
/// synced, then renamed, so a killed conversion never leaves half a model under its name).
pub fn convert_whisper_ct2(src_dir: &Path, dest: &Path, cancel: Option<&AtomicBool>) -> Result<Converted, ConvertError> {
    let model_bin = src_dir.join("model.bin");
    let vocabulary = src_dir.join("vocabulary.txt");
    for required in [&model_bin, &vocabulary] {
        if !required.is_file() {
            return Err(ConvertError::Source { path: required.clone(), message: "missing (is this a CTranslate2 Whisper export?)".into() });
        }
    }
    let unsupported = |message: String| ConvertError::Unsupported { dir: src_dir.into(), message };
    let blob = std::fs::read(&model_bin).map_err(|source| ConvertError::Io { path: model_bin.clone(), source })?;
    let vars = read_ct2(&blob).map_err(|message| ConvertError::Source { path: model_bin.clone(), message })?;
    if vars.keys().any(|n| n.ends_with("_scale")) {
        return Err(unsupported("quantized (int8/int16) CTranslate2 models are not supported".into()));
    }
    check_scalars(&vars).map_err(unsupported)?;
    let n_audio = count_layers(&vars, "encoder").map_err(unsupported)?;
    let n_text = count_layers(&vars, "decoder").map_err(unsupported)?;
    let tensors = whisper_tensors(&vars, n_audio, n_text).map_err(unsupported)?;
    if let Some((name, _)) = tensors.iter().find(|(_, t)| !matches!(t.dtype, DType::F32 | DType::F16 | DType::Bf16)) {
        return Err(unsupported(format!("{name} is not a float tensor")));
    }
    let hp = hparams(&vars, n_audio, n_text).map_err(unsupported)?;
    let text = std::fs::read_to_string(&vocabulary).map_err(|e| ConvertError::Source { path: vocabulary.clone(), message: format!("unreadable or not UTF-8 ({e})") })?;
    let tokens = base_tokens(&text, hp.n_vocab()).map_err(|message| ConvertError::Source { path: vocabulary.clone(), message })?;
    let filters = mel_filters(hp.n_mels());

    let partial = PathBuf::from(format!("{}.partial", dest.display()));
    let io = |source| ConvertError::Io { path: partial.clone(), source };
    let write = || -> Result<(), ConvertError> {
        let file = std::fs::File::create(&partial).map_err(io)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut header = Vec::new();
        header.extend(GGML_MAGIC.to_le_bytes());
        hp.0.iter().for_each(|v| header.extend(v.to_le_bytes()));
        header.extend(GGML_FTYPE_F16.to_le_bytes());
        header.extend((hp.n_mels() as i32).to_le_bytes());
        header.extend(((N_FFT / 2 + 1) as i32).to_le_bytes());
        filters.iter().for_each(|v| header.extend(v.to_le_bytes()));
        header.extend((tokens.len() as i32).to_le_bytes());
        for token in &tokens {
            header.extend((token.len() as i32).to_le_bytes());
            header.extend(token);
        }
        out.write_all(&header).map_err(io)?;
        for (name, tensor) in &tensors {
            if cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return Err(ConvertError::Cancelled);
            }
            write_tensor(&mut out, name, tensor).map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)
    };
    if let Err(e) = write() {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, dest).map_err(|source| ConvertError::Io { path: dest.into(), source })?;
    let bytes = std::fs::metadata(dest).map(|m| m.len()).unwrap_or(0);
    Ok(Converted { tensors: tensors.len(), tokens: tokens.len(), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_byte_map_covers_every_byte_once() {
        let map = gpt2_unicode_to_byte();
        assert_eq!(map.len(), 256);
        let bytes: BTreeSet<u8> = map.values().copied().collect();
        assert_eq!(bytes.len(), 256);
        assert_eq!(map[&'Ġ'], b' ', "GPT-2 writes a space as Ġ");
        assert_eq!(map[&'a'], b'a');
    }

    #[test]
    fn mel_filters_are_unit_area_triangles() {
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        assert!(f.iter().all(|&w| w >= 0.0));
        // Every band has weight, and bands are in rising frequency order.
        let peak = |row: usize| (0..201).max_by(|&a, &b| f[row * 201 + a].total_cmp(&f[row * 201 + b])).unwrap();
        assert!((1..80).all(|r| peak(r) >= peak(r - 1)));
        assert!((0..80).all(|r| f[r * 201..(r + 1) * 201].iter().any(|&w| w > 0.0)));
    }

    #[test]
    fn malformed_model_bins_are_errors_not_panics() {
        let mut good = Vec::new();
        good.extend(6u32.to_le_bytes());
        good.extend(12u16.to_le_bytes());
        good.extend(b"WhisperSpec\0");
        good.extend(1u32.to_le_bytes());
        good.extend(1u32.to_le_bytes());
        good.extend(2u16.to_le_bytes());
        good.extend(b"x\0");
        good.push(1); // rank
        good.extend(2u32.to_le_bytes());
        good.push(0); // f32
        good.extend(8u32.to_le_bytes());
        good.extend([0u8; 8]);
        good.extend(0u32.to_le_bytes());
        assert!(read_ct2(&good).is_ok());
        for cut in 0..good.len() {
            assert!(read_ct2(&good[..cut]).is_err(), "a model.bin cut at {cut} bytes is refused");
        }
        let mut huge = good.clone();
        huge[good.len() - 16..good.len() - 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(read_ct2(&huge).err().unwrap().contains("bytes"));
    }
}
