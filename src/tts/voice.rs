//! A Piper voice's `.onnx.json`: sample rate, espeak voice, default scales and the phoneme → id
//! map, and turning phonemes into the model's input ids.

use super::TtsError;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Piper's special symbols: start and end of an utterance, and the pad between phonemes.
const BOS: char = '^';
const EOS: char = '$';
const PAD: char = '_';

#[derive(Debug, Clone)]
pub struct VoiceConfig {
    pub path: PathBuf,
    pub sample_rate: u32,
    /// espeak-ng voice for phonemisation, e.g. `en-us`.
    pub espeak_voice: String,
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    pub num_speakers: u32,
    ids: HashMap<char, Vec<i64>>,
    bos: Vec<i64>,
    eos: Vec<i64>,
    pad: Vec<i64>,
}

#[derive(Deserialize)]
struct Raw {
    audio: RawAudio,
    #[serde(default)]
    espeak: Option<RawEspeak>,
    #[serde(default)]
    inference: RawInference,
    #[serde(default)]
    phoneme_type: Option<String>,
    #[serde(default)]
    num_speakers: Option<u32>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

/// Piper's defaults, used where a voice file leaves them out.
#[derive(Deserialize)]
#[serde(default)]
struct RawInference {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl Default for RawInference {
    fn default() -> Self {
        RawInference { noise_scale: 0.667, length_scale: 1.0, noise_w: 0.8 }
    }
}

/// Where a voice's config lives: next to the model, `<model>.onnx.json`.
pub fn config_path(model: &Path) -> PathBuf {
    let mut name = model.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    model.with_file_name(name)
}

impl VoiceConfig {
    pub fn load(path: &Path) -> Result<VoiceConfig, TtsError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(TtsError::ConfigMissing { path: path.into() }),
            Err(e) => return Err(TtsError::ConfigInvalid { path: path.into(), detail: e.to_string() }),
        };
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<VoiceConfig, TtsError> {
        let invalid = |detail: String| TtsError::ConfigInvalid { path: path.into(), detail };
        let raw: Raw = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if let Some(kind) = raw.phoneme_type.as_deref().filter(|k| *k != "espeak") {
            return Err(invalid(format!("phoneme_type `{kind}` is not supported (only espeak voices are)")));
        }
        if !(8_000..=96_000).contains(&raw.audio.sample_rate) {
            return Err(invalid(format!("implausible sample rate {}", raw.audio.sample_rate)));
        }
        let mut ids = HashMap::new();
        for (symbol, id) in raw.phoneme_id_map {
            let mut chars = symbol.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !id.is_empty() => {
                    ids.insert(c, id);
                }
                _ => return Err(invalid(format!("phoneme_id_map entry {symbol:?} → {id:?} is not one symbol → ids"))),
            }
        }
        let special = |c: char| ids.get(&c).cloned().ok_or_else(|| invalid(format!("phoneme_id_map has no {c:?}")));
        let (bos, eos, pad) = (special(BOS)?, special(EOS)?, special(PAD)?);
        Ok(VoiceConfig {
            path: path.into(),
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw.espeak.map(|e| e.voice).unwrap_or_else(|| "en-us".into()),
            noise_scale: raw.inference.noise_scale,
            length_scale: raw.inference.length_scale,
            noise_w: raw.inference.noise_w,
            num_speakers: raw.num_speakers.unwrap_or(1),
            ids,
            bos,
            eos,
            pad,
        })
    }

    /// Piper's input: BOS, pad, then each known phoneme followed by a pad, then EOS. Symbols the
    /// voice was not trained on are dropped (and counted in the second value).
    pub fn phoneme_ids(&self, phonemes: &str) -> (Vec<i64>, usize) {
        let mut out = Vec::with_capacity(phonemes.chars().count() * 2 + 3);
        out.extend(&self.bos);
        out.extend(&self.pad);
        let mut unknown = 0;
        for c in phonemes.chars() {
            match self.ids.get(&c) {
                Some(id) => {
                    out.extend(id);
                    out.extend(&self.pad);
                }
                None => unknown += 1,
            }
        }
        out.extend(&self.eos);
        (out, unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},
        "inference":{"noise_scale":0.5,"length_scale":1.1,"noise_w":0.7},
        "phoneme_type":"espeak","num_speakers":1,
        "phoneme_id_map":{"_":[0],"^":[1],"$":[2]," ":[3],"a":[14],"b":[15]}}"#;

    #[test]
    fn ids_follow_piper_convention() {
        let v = VoiceConfig::parse(JSON, Path::new("v.onnx.json")).unwrap();
        assert_eq!(v.sample_rate, 22050);
        assert_eq!((v.noise_scale, v.length_scale, v.noise_w), (0.5, 1.1, 0.7));
        assert_eq!(v.phoneme_ids("ab a"), (vec![1, 0, 14, 0, 15, 0, 3, 0, 14, 0, 2], 0));
        // Unknown symbols are skipped, not fatal.
        assert_eq!(v.phoneme_ids("aZ"), (vec![1, 0, 14, 0, 2], 1));
    }

    #[test]
    fn bad_configs_name_the_file_and_problem() {
        let path = Path::new("/models/tts/x.onnx.json");
        let err = VoiceConfig::parse("{not json", path).unwrap_err().to_string();
        assert!(err.contains("x.onnx.json"), "{err}");
        let no_pad = JSON.replace(r#""_":[0],"#, "");
        let err = VoiceConfig::parse(&no_pad, path).unwrap_err().to_string();
        assert!(err.contains("'_'"), "{err}");
        let err = VoiceConfig::load(Path::new("/nonexistent/v.onnx.json")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/v.onnx.json") && err.contains("roxy models fetch"), "{err}");
    }

    #[test]
    fn config_sits_next_to_the_model() {
        assert_eq!(config_path(Path::new("/m/tts/en.onnx")), Path::new("/m/tts/en.onnx.json"));
    }
}
