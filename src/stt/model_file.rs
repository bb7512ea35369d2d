//! A structural check of a ggml Whisper model file before whisper.cpp sees it.
//!
//! whisper.cpp trusts the file: a truncated one loads as an "empty model" and aborts the
//! process at the first transcription, and a damaged length field makes it allocate gigabytes
//! or read out of bounds. This walks the same layout (magic, hyper-parameters, mel filters,
//! vocabulary, tensor headers) without reading the weights, and checks that every length fits
//! and that the tensors end exactly at the end of the file. It takes milliseconds; the
//! manifest's checksum (see `Stt::from_config`) is what catches damaged weights.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

const GGML_MAGIC: u32 = 0x6767_6d6c; // "ggml", little-endian
/// Bounds with room above the largest Whisper (large-v3: 51 866 tokens, 1 280 wide, 20 heads,
/// 32 layers, 128 mel bands, 1 500 audio and 448 text positions). whisper.cpp allocates the
/// weights from these before it compares them with the tensors, so a damaged one that is
/// merely large costs gigabytes or minutes.
/// Every Whisper has one of these (English-only, multilingual, large-v3); whisper.cpp derives
/// the special tokens' ids from it and throws (aborting the process) when it is anything else.
const WHISPER_VOCAB_SIZES: [i32; 3] = [51864, 51865, 51866];
const MAX_STATE: i32 = 4096;
const MAX_HEADS_OR_LAYERS: i32 = 128;
const MAX_MELS: i32 = 512;
const MAX_CTX: i32 = 4096;
const MAX_FFT: i32 = 1 << 12;
const MAX_TOKEN_BYTES: u32 = 1 << 10;
const MAX_NAME_BYTES: i32 = 1 << 10;

/// What the check learnt about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLayout {
    pub n_vocab: i32,
    pub n_audio_layer: i32,
    pub tensors: usize,
}

/// Checks the file's structure; `Err` says what is wrong, in words for a user.
pub fn check(path: &Path) -> Result<ModelLayout, String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut r = Cursor { inner: BufReader::new(file), pos: 0, len };

    if r.u32("the magic number")? != GGML_MAGIC {
        return Err("not a ggml file: wrong magic number".into());
    }
    let mut hparams = [0i32; 11];
    for value in &mut hparams {
        *value = r.i32("the hyper-parameters")?;
    }
    let [n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype] =
        hparams;
    // Head counts and the weight type shape no tensor, so whisper.cpp cannot cross-check them
    // and aborts mid-transcription when they are off: check them here.
    let within = |v: i32, max: i32| (1..=max).contains(&v);
    if !WHISPER_VOCAB_SIZES.contains(&n_vocab)
        || !within(n_audio_ctx, MAX_CTX)
        || !within(n_text_ctx, MAX_CTX)
        || !within(n_audio_state, MAX_STATE)
        || ![n_audio_head, n_audio_layer, n_text_head, n_text_layer].iter().all(|&v| within(v, MAX_HEADS_OR_LAYERS))
        || !within(n_mels, MAX_MELS)
        || n_audio_state != n_text_state
        || n_audio_state % n_audio_head != 0
        || n_text_state % n_text_head != 0
        || !known_file_type(ftype)
    {
        return Err(format!("implausible hyper-parameters {hparams:?}"));
    }

    let n_mel = r.i32("the mel filters")?;
    let n_fft = r.i32("the mel filters")?;
    if !within(n_mel, MAX_MELS) || !within(n_fft, MAX_FFT) {
        return Err(format!("implausible mel filter size {n_mel} x {n_fft}"));
    }
    r.skip(n_mel as u64 * n_fft as u64 * 4, "the mel filters")?;

    let n_tokens = r.i32("the vocabulary")?;
    if !(0..=n_vocab).contains(&n_tokens) {
        return Err(format!("vocabulary of {n_tokens} tokens for a model of {n_vocab}"));
    }
    for _ in 0..n_tokens {
        let token_len = r.u32("the vocabulary")?;
        if token_len > MAX_TOKEN_BYTES {
            return Err(format!("a {token_len}-byte token in the vocabulary"));
        }
        r.skip(token_len.into(), "the vocabulary")?;
    }

    let mut tensors = 0;
    while r.pos < r.len {
        let n_dims = r.i32("a tensor header")?;
        let name_len = r.i32("a tensor header")?;
        let ttype = r.i32("a tensor header")?;
        if !(1..=4).contains(&n_dims) || !(1..=MAX_NAME_BYTES).contains(&name_len) {
            return Err(format!("tensor {tensors}: damaged header ({n_dims} dims, {name_len}-byte name)"));
        }
        let Some((block, block_bytes)) = block_layout(ttype) else {
            return Err(format!("tensor {tensors}: unknown data type {ttype}"));
        };
        let mut elements = 1u64;
        for _ in 0..n_dims {
            let ne = r.i32("a tensor header")?;
            if ne < 1 {
                return Err(format!("tensor {tensors}: dimension {ne}"));
            }
            elements = elements.saturating_mul(ne as u64);
        }
        if !elements.is_multiple_of(block) {
            return Err(format!("tensor {tensors}: {elements} elements do not fill whole blocks of {block}"));
        }
        r.skip(name_len as u64, "a tensor name")?;
        r.skip((elements / block).saturating_mul(block_bytes), "the weights")?;
        tensors += 1;
    }
    if tensors == 0 {
        return Err("no weights: the file ends after the vocabulary".into());
    }
    Ok(ModelLayout { n_vocab, n_audio_layer, tensors })
}

/// ggml's `ftype`: a quantisation version (x 1000) plus the weights' type, one Whisper uses.
fn known_file_type(ftype: i32) -> bool {
    let (version, kind) = (ftype / 1000, ftype % 1000);
    (0..=2).contains(&version) && matches!(kind, 0..=3 | 7..=14 | 24) && ftype >= 0
}

/// (elements per block, bytes per block) of the ggml data types Whisper files use.
fn block_layout(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (1, 4),       // F32
        1 => (1, 2),       // F16
        2 => (32, 18),     // Q4_0
        3 => (32, 20),     // Q4_1
        6 => (32, 22),     // Q5_0
        7 => (32, 24),     // Q5_1
        8 => (32, 34),     // Q8_0
        10 => (256, 84),   // Q2_K
        11 => (256, 110),  // Q3_K
        12 => (256, 144),  // Q4_K
        13 => (256, 176),  // Q5_K
        14 => (256, 210),  // Q6_K
        30 => (1, 2),      // BF16
        _ => return None,
    })
}

/// A reader that knows the file length, so every read and skip is checked against it.
struct Cursor {
    inner: BufReader<File>,
    pos: u64,
    len: u64,
}

impl Cursor {
    fn truncated(&self, what: &str) -> String {
        format!("truncated: the file ends ({} bytes) inside {what}", self.len)
    }

    fn bytes4(&mut self, what: &str) -> Result<[u8; 4], String> {
        let mut b = [0u8; 4];
        if self.pos + 4 > self.len {
            return Err(self.truncated(what));
        }
        self.inner.read_exact(&mut b).map_err(|e| format!("reading {what}: {e}"))?;
        self.pos += 4;
        Ok(b)
    }

    fn u32(&mut self, what: &str) -> Result<u32, String> {
        self.bytes4(what).map(u32::from_le_bytes)
    }

    fn i32(&mut self, what: &str) -> Result<i32, String> {
        self.bytes4(what).map(i32::from_le_bytes)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if n > self.len - self.pos {
            return Err(self.truncated(what));
        }
        let offset = i64::try_from(n).map_err(|_| self.truncated(what))?;
        self.inner.seek_relative(offset).map_err(|e| format!("reading {what}: {e}"))?;
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A miniature file in the real layout: 2 tokens, one F32 and one Q8_0 tensor.
    fn tiny_model() -> Vec<u8> {
        let mut f = Vec::new();
        let i32s = |f: &mut Vec<u8>, values: &[i32]| values.iter().for_each(|v| f.extend(v.to_le_bytes()));
        f.extend(GGML_MAGIC.to_le_bytes());
        i32s(&mut f, &[51864, 1500, 4, 1, 1, 8, 4, 1, 1, 2, 1]);
        i32s(&mut f, &[2, 3]); // mel 2 x 3
        f.extend([0u8; 24]);
        i32s(&mut f, &[2]);
        for token in [&b"hi"[..], b""] {
            f.extend((token.len() as u32).to_le_bytes());
            f.extend(token);
        }
        i32s(&mut f, &[2, 1, 0, 2, 3]); // 2-d F32 [2, 3], name "a"
        f.push(b'a');
        f.extend([0u8; 24]);
        i32s(&mut f, &[1, 1, 8, 64]); // Q8_0 [64]: 2 blocks of 34 bytes
        f.push(b'b');
        f.extend([0u8; 68]);
        f
    }

    fn check_bytes(bytes: &[u8]) -> Result<ModelLayout, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.bin");
        std::fs::write(&path, bytes).unwrap();
        check(&path)
    }

    #[test]
    fn a_well_formed_file_passes() {
        assert_eq!(check_bytes(&tiny_model()).unwrap(), ModelLayout { n_vocab: 51864, n_audio_layer: 1, tensors: 2 });
    }

    #[test]
    fn every_truncation_inside_a_section_is_caught() {
        let model = tiny_model();
        // Cut exactly between two tensors the layout is whole; whisper.cpp then finds a tensor
        // missing from its list and fails cleanly.
        let after_first_tensor = 139;
        for keep in (0..model.len()).filter(|&k| k != after_first_tensor) {
            assert!(check_bytes(&model[..keep]).is_err(), "{keep} of {} bytes passed", model.len());
        }
        assert_eq!(check_bytes(&model[..after_first_tensor]).unwrap().tensors, 1);
    }

    #[test]
    fn damaged_lengths_are_caught() {
        let mut huge_mel = tiny_model();
        huge_mel[48..52].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(check_bytes(&huge_mel).unwrap_err().contains("mel"));

        for bad_vocab in [-5i32, 51863, 51992] {
            let mut model = tiny_model();
            model[4..8].copy_from_slice(&bad_vocab.to_le_bytes());
            assert!(check_bytes(&model).unwrap_err().contains("hyper-parameters"));
        }

        let mut wrong_magic = tiny_model();
        wrong_magic[0] = b'G';
        assert!(check_bytes(&wrong_magic).unwrap_err().contains("magic"));

        let mut trailing = tiny_model();
        trailing.extend([1, 2, 3]);
        assert!(check_bytes(&trailing).is_err());
    }
}
