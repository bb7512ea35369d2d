//! Turning what a user typed or said into an FTS5 query. Every word is quoted, so text such as
//! `what's "NEAR" (x OR y)*` is always searched for literally and is never an FTS syntax error.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Every word must appear (search).
    All,
    /// Any content word may appear, ranked by BM25 (recall from a question).
    Any,
}

/// Words that carry no meaning for recall; in `Any` mode they would match nearly every row.
const STOP_WORDS: &[&str] = &[
    "a", "about", "am", "an", "and", "are", "as", "at", "be", "by", "can", "did", "do", "does", "for", "from", "had",
    "has", "have", "how", "i", "in", "is", "it", "its", "me", "my", "of", "on", "or", "our", "please", "s", "tell",
    "that", "the", "their", "this", "to", "was", "what", "when", "where", "which", "who", "why", "will", "with",
    "you", "your",
];

pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// The MATCH expression for `text`, or `None` when nothing searchable is left.
pub(crate) fn match_expr(text: &str, mode: Mode) -> Option<String> {
    let mut terms: Vec<String> = words(text);
    if mode == Mode::Any {
        let content: Vec<String> = terms.iter().filter(|w| !STOP_WORDS.contains(&w.as_str())).cloned().collect();
        // A question made only of stop words still searches for them.
        if !content.is_empty() {
            terms = content;
        }
    }
    terms.dedup();
    if terms.is_empty() {
        return None;
    }
    let quoted: Vec<String> = terms.iter().map(|w| format!("\"{w}\"")).collect();
    Some(quoted.join(if mode == Mode::All { " AND " } else { " OR " }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_text_is_quoted_word_by_word() {
        assert_eq!(match_expr("What's the Weather?", Mode::All).unwrap(), "\"what\" AND \"s\" AND \"the\" AND \"weather\"");
        assert_eq!(match_expr("when is my sister's birthday", Mode::Any).unwrap(), "\"sister\" OR \"birthday\"");
        assert_eq!(match_expr("NEAR(\"x\" y)*", Mode::All).unwrap(), "\"near\" AND \"x\" AND \"y\"");
        assert_eq!(match_expr("who are you", Mode::Any).unwrap(), "\"who\" OR \"are\" OR \"you\"");
        assert_eq!(match_expr(" ?! ", Mode::All), None);
    }
}
