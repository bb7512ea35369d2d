//! Text to IPA phonemes with espeak-ng's C library (the phonemes Piper voices were trained on).
//!
//! espeak-ng keeps its state in globals and is not thread-safe, so every call goes through one
//! process-wide mutex. It is initialised once, on first use; a process never pays for more than
//! one `espeak_Initialize`. Linked from `build.rs` (apt `libespeak-ng-dev`, brew `espeak-ng`).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::Mutex;

/// `AUDIO_OUTPUT_SYNCHRONOUS`: no audio thread; we only ask for phonemes.
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;
/// Without it a missing data dir makes espeak call `exit(1)`, taking the whole app with it.
const INITIALIZE_DONT_EXIT: c_int = 0x8000;
const CHARS_UTF8: c_int = 1;
/// `espeakPHONEMES_IPA`: phonemes as IPA characters, the symbols in a Piper voice's id map.
const PHONEMES_IPA: c_int = 0x02;
const EE_OK: c_int = 0;

extern "C" {
    fn espeak_Initialize(output: c_int, buflength: c_int, path: *const c_char, options: c_int) -> c_int;
    fn espeak_SetVoiceByName(name: *const c_char) -> c_int;
    fn espeak_TextToPhonemes(textptr: *mut *const c_void, textmode: c_int, phonememode: c_int) -> *const c_char;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EspeakError {
    #[error("espeak-ng could not start (its data dir was not found). Fix: install espeak-ng (`apt-get install espeak-ng libespeak-ng-dev`, `brew install espeak-ng`), or set ESPEAK_DATA_PATH to the dir holding espeak-ng-data")]
    Init,
    #[error("espeak-ng has no voice `{voice}` (named by the voice's .onnx.json `espeak.voice`). Fix: install the full espeak-ng data (`apt-get install espeak-ng-data`), or use a voice for a language espeak-ng knows")]
    Voice { voice: String },
}

struct State {
    /// The voice last selected, so switching costs nothing when it does not change.
    voice: Option<String>,
}

/// `None` until the first call; `Some(Err)` remembers a failed start instead of retrying it.
static ESPEAK: Mutex<Option<Result<State, EspeakError>>> = Mutex::new(None);

/// One clause's phonemes and the punctuation that ended it (espeak drops the punctuation, but
/// Piper voices were trained with it: it shapes intonation and pauses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub phonemes: String,
    pub terminator: Option<char>,
}

/// Phonemises `text` (one or more clauses) with the espeak voice `voice` (e.g. `en-us`).
pub fn phonemize(text: &str, voice: &str) -> Result<Vec<Clause>, EspeakError> {
    // Interior NULs cannot reach C; they are not speech anyway.
    let c_text = CString::new(text.replace('\0', " ")).expect("NULs were replaced");
    let mut guard = ESPEAK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let state = guard.get_or_insert_with(initialize).as_mut().map_err(|e| e.clone())?;
    if state.voice.as_deref() != Some(voice) {
        let name = CString::new(voice).map_err(|_| EspeakError::Voice { voice: voice.into() })?;
        // SAFETY: espeak is initialised and we hold the lock that serialises every espeak call.
        if unsafe { espeak_SetVoiceByName(name.as_ptr()) } != EE_OK {
            state.voice = None;
            return Err(EspeakError::Voice { voice: voice.into() });
        }
        state.voice = Some(voice.to_string());
    }

    let bytes = c_text.as_bytes();
    let start = c_text.as_ptr();
    let mut cursor: *const c_void = start.cast();
    let mut clauses = Vec::new();
    while !cursor.is_null() {
        let before = cursor as usize - start as usize;
        // SAFETY: `cursor` points into `c_text` (NUL-terminated, alive for the loop); espeak
        // advances it within the string or sets it to NULL at the end. The returned string is
        // espeak's static buffer, copied out before the next call, all under the lock.
        let phonemes = unsafe {
            let out = espeak_TextToPhonemes(&mut cursor, CHARS_UTF8, PHONEMES_IPA);
            if out.is_null() { String::new() } else { CStr::from_ptr(out).to_string_lossy().into_owned() }
        };
        let after = if cursor.is_null() { bytes.len() } else { cursor as usize - start as usize };
        let consumed = String::from_utf8_lossy(&bytes[before.min(after)..after]);
        // espeak reads one character past the clause before it stops (the cursor lands after
        // it), so the clause's own text ends one character early.
        let mut clause_text = consumed.as_ref();
        if !cursor.is_null() {
            clause_text = clause_text.char_indices().last().map_or("", |(i, _)| &clause_text[..i]);
        }
        let terminator = clause_text
            .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '”' | '’'))
            .chars()
            .last()
            .filter(|c| matches!(c, '.' | ',' | '?' | '!' | ';' | ':'));
        let phonemes = strip_language_flags(phonemes.trim());
        if !phonemes.is_empty() || terminator.is_some() {
            clauses.push(Clause { phonemes, terminator });
        }
    }
    Ok(clauses)
}

/// Phonemises `text` into one string in Piper's form: clauses joined by a space, each followed
/// by its punctuation.
pub fn phonemize_joined(text: &str, voice: &str) -> Result<String, EspeakError> {
    let mut out = String::new();
    for clause in phonemize(text, voice)? {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(&clause.phonemes);
        if let Some(t) = clause.terminator {
            out.push(t);
        }
    }
    Ok(out.trim().to_string())
}

fn initialize() -> Result<State, EspeakError> {
    use std::os::unix::ffi::OsStrExt;
    // An app bundle carries its own espeak-ng-data; ESPEAK_DATA_PATH still wins.
    let bundled = std::env::var_os("ESPEAK_DATA_PATH")
        .is_none()
        .then(crate::platform::bundled_espeak_data_parent)
        .flatten()
        .and_then(|dir| std::ffi::CString::new(dir.as_os_str().as_bytes()).ok());
    let path = bundled.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: called once, under the lock; `path` outlives the call. A NULL path means espeak's
    // built-in data dir (or ESPEAK_DATA_PATH); it returns the sample rate, or a negative error.
    let rate = unsafe { espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, path, INITIALIZE_DONT_EXIT) };
    if rate <= 0 {
        return Err(EspeakError::Init);
    }
    Ok(State { voice: None })
}

/// espeak marks words it reads in another language as `(fr)...(en)`; Piper drops the markers.
fn strip_language_flags(phonemes: &str) -> String {
    let mut out = String::with_capacity(phonemes.len());
    let mut depth = 0usize;
    for c in phonemes.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phonemises_english_with_punctuation() {
        let clauses = phonemize("Hello, world. How are you?", "en-us").unwrap();
        let terminators: Vec<_> = clauses.iter().map(|c| c.terminator).collect();
        assert_eq!(terminators, [Some(','), Some('.'), Some('?')]);
        // IPA, not espeak's ASCII names: stress marks and IPA vowels.
        assert!(clauses[0].phonemes.contains('ˈ'), "{clauses:?}");
        assert!(clauses[1].phonemes.contains('w'), "{clauses:?}");
    }

    #[test]
    fn joined_form_matches_piper() {
        let joined = phonemize_joined("Hello, world.", "en-us").unwrap();
        assert!(joined.ends_with('.'), "{joined}");
        assert!(joined.contains(", "), "{joined}");
    }

    #[test]
    fn unknown_voice_is_an_error() {
        let err = phonemize("hi", "no-such-voice-xx").unwrap_err();
        assert!(err.to_string().contains("no-such-voice-xx"));
        // A failed switch must not break the next call with a good voice.
        assert!(!phonemize_joined("hi", "en-us").unwrap().is_empty());
    }

    #[test]
    fn empty_text_gives_nothing() {
        assert!(phonemize("", "en-us").unwrap().is_empty());
        assert!(phonemize("   ", "en-us").unwrap().is_empty());
    }

    #[test]
    fn concurrent_callers_get_the_same_phonemes() {
        // espeak keeps global state; the mutex must make parallel callers safe and consistent.
        let expected = phonemize_joined("The quick brown fox, at five thirty.", "en-us").unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..25).map(|_| phonemize_joined("The quick brown fox, at five thirty.", "en-us").unwrap()).collect::<Vec<_>>()))
            .collect();
        for t in threads {
            assert!(t.join().unwrap().iter().all(|p| *p == expected));
        }
    }

    #[test]
    fn language_flags_are_removed() {
        assert_eq!(strip_language_flags("(fr)bɔ̃ʒuʁ(en)"), "bɔ̃ʒuʁ");
    }
}
