//! Turning sampled token bytes into the text the engine sees: whole UTF-8 characters only, and
//! nothing that could turn out to be the start of a stop string.

/// Reassembles UTF-8 characters that llama.cpp splits across tokens (emoji, CJK, accents).
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Appends `bytes` and returns the text that is complete so far.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(text) => {
                let text = text.to_owned();
                self.pending.clear();
                text
            }
            // An incomplete character at the end: keep it for the next token.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                let text = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                text
            }
            // Truly invalid bytes (a model can emit them): replace rather than stall forever.
            Err(_) => {
                let text = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                text
            }
        }
    }

    /// Whatever is left when generation ends, with any broken character replaced.
    pub fn finish(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        text
    }
}

/// Watches generated text for stop strings.
#[derive(Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Text not yet released because it ends with the beginning of some stop string.
    held: String,
}

/// What [`StopMatcher::push`] decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Matched {
    /// Safe to send now.
    Continue(String),
    /// A stop string appeared: send this text (everything before it) and end the generation.
    Stop(String),
}

impl StopMatcher {
    pub fn new(stops: &[String]) -> Self {
        StopMatcher { stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(), held: String::new() }
    }

    pub fn push(&mut self, text: &str) -> Matched {
        self.held.push_str(text);
        // Any match starts inside `held`: text released earlier ended with no stop-string prefix.
        if let Some(at) = self.stops.iter().filter_map(|stop| self.held.find(stop.as_str())).min() {
            let before = self.held[..at].to_owned();
            self.held.clear();
            return Matched::Stop(before);
        }
        let keep = self.longest_suffix_starting_a_stop();
        let release = self.held.len() - keep;
        let released = self.held[..release].to_owned();
        self.held.drain(..release);
        Matched::Continue(released)
    }

    /// The held-back text, for when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    fn longest_suffix_starting_a_stop(&self) -> usize {
        let held = self.held.as_str();
        held.char_indices()
            .map(|(i, _)| &held[i..])
            .find(|suffix| self.stops.iter().any(|stop| stop.starts_with(suffix)))
            .map_or(0, str::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_are_joined() {
        let mut stream = Utf8Stream::default();
        let bytes = "é🙂".as_bytes();
        assert_eq!(stream.push(&bytes[..1]), "");
        assert_eq!(stream.push(&bytes[1..3]), "é");
        assert_eq!(stream.push(&bytes[3..5]), "");
        assert_eq!(stream.push(&bytes[5..]), "🙂");
        assert_eq!(stream.finish(), "");
    }

    #[test]
    fn invalid_bytes_are_replaced_not_held() {
        let mut stream = Utf8Stream::default();
        assert_eq!(stream.push(&[b'a', 0xff, b'b']), "a\u{fffd}b");
        assert_eq!(stream.push(&[0xe2, 0x82]), "");
        assert_eq!(stream.finish(), "\u{fffd}");
    }

    #[test]
    fn stop_string_across_tokens_is_cut_out() {
        let mut matcher = StopMatcher::new(&["\nUser:".to_owned()]);
        assert_eq!(matcher.push("Paris."), Matched::Continue("Paris.".into()));
        assert_eq!(matcher.push("\nUs"), Matched::Continue(String::new()));
        assert_eq!(matcher.push("er: hi"), Matched::Stop(String::new()));
    }

    #[test]
    fn false_alarm_is_released() {
        let mut matcher = StopMatcher::new(&["END".to_owned()]);
        assert_eq!(matcher.push("the EN"), Matched::Continue("the ".into()));
        assert_eq!(matcher.push("D"), Matched::Stop(String::new()));
        let mut matcher = StopMatcher::new(&["END".to_owned()]);
        assert_eq!(matcher.push("EN"), Matched::Continue(String::new()));
        assert_eq!(matcher.push("ds"), Matched::Continue("ENds".into()));
        assert_eq!(matcher.push("E"), Matched::Continue(String::new()));
        assert_eq!(matcher.finish(), "E");
    }

    #[test]
    fn earliest_of_several_stops_wins() {
        let mut matcher = StopMatcher::new(&["b".to_owned(), "a".to_owned(), String::new()]);
        assert_eq!(matcher.push("xxab"), Matched::Stop("xx".into()));
    }

    #[test]
    fn no_stops_releases_everything() {
        let mut matcher = StopMatcher::new(&[]);
        assert_eq!(matcher.push("all of it"), Matched::Continue("all of it".into()));
    }
}
