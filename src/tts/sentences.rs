//! Splitting normalised text into sentences, the unit of synthesis and streaming.
//!
//! Each sentence is synthesised on its own, so the first one can play while the rest are made,
//! and a long answer never waits for its last word. Runs after [`super::normalize`], so digits,
//! decimals and abbreviations are already words and a period here really ends a sentence.

/// A sentence longer than this is cut at a clause boundary (or a space): one very long sentence
/// would otherwise hold back the first audio by its whole length.
pub const MAX_CHARS: usize = 240;

/// Words either side of a clause mark for [`split_first_clause`] to cut there: a lone "Well,"
/// is fine to say first, but a cut that leaves a one-word tail sounds clipped.
const MIN_CLAUSE_WORDS: usize = 1;
const MIN_TAIL_WORDS: usize = 3;

/// Cuts a sentence after its first clause mark (`,` `;` `:`), so a first audio chunk can be made
/// from a few words while the rest is synthesised: "Sure, I set a timer for ten minutes." →
/// ("Sure,", "I set a timer for ten minutes."). `None` when there is no good place.
pub fn split_first_clause(sentence: &str) -> Option<(String, String)> {
    let mut words = 0;
    for (i, c) in sentence.char_indices() {
        if c.is_whitespace() {
            continue;
        }
        let word_start = i == 0 || sentence[..i].ends_with(char::is_whitespace);
        if word_start {
            words += 1;
        }
        let at_word_end = sentence[i + c.len_utf8()..].starts_with(char::is_whitespace);
        if matches!(c, ',' | ';' | ':') && at_word_end && words >= MIN_CLAUSE_WORDS {
            let (head, tail) = sentence.split_at(i + c.len_utf8());
            if tail.split_whitespace().count() >= MIN_TAIL_WORDS {
                return Some((head.trim().to_string(), tail.trim().to_string()));
            }
            return None;
        }
    }
    None
}

/// Splits `text` into trimmed, non-empty sentences, each keeping its closing punctuation.
pub fn split(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut sentences = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let mut end = None;
        if c == '\n' && chars.get(i + 1) == Some(&'\n') {
            end = Some(i);
        } else if matches!(c, '.' | '!' | '?' | '…') {
            // Take the whole run of terminators and closing quotes: `?!`, `..."`.
            let mut j = i + 1;
            while j < chars.len() && matches!(chars[j], '.' | '!' | '?' | '…' | '"' | '\'' | ')' | '”' | '’') {
                j += 1;
            }
            let next_word = chars[j..].iter().find(|c| !c.is_whitespace());
            let spaced = j == chars.len() || chars[j].is_whitespace();
            // A lower-case word after the period means it did not end the sentence ("et cetera. and").
            if spaced && next_word.is_none_or(|w| !w.is_lowercase()) {
                end = Some(j - 1);
                i = j - 1;
            }
        }
        if let Some(e) = end {
            push(&mut sentences, chars[start..=e].iter().collect());
            start = e + 1;
        }
        i += 1;
    }
    if start < chars.len() {
        push(&mut sentences, chars[start..].iter().collect());
    }
    sentences
}

fn push(out: &mut Vec<String>, sentence: String) {
    let mut rest = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
    // Nothing to say: punctuation alone would only make a click.
    if !rest.chars().any(char::is_alphanumeric) {
        return;
    }
    while rest.chars().count() > MAX_CHARS {
        let cut = cut_point(&rest);
        let (head, tail) = rest.split_at(cut);
        out.push(head.trim().to_string());
        rest = tail.trim().to_string();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
}

/// Byte index to cut an over-long sentence at: after the last clause mark within the limit,
/// else after the last space, else at the limit.
fn cut_point(s: &str) -> usize {
    let limit = s.char_indices().nth(MAX_CHARS).map_or(s.len(), |(i, _)| i);
    let window = &s[..limit];
    let clause = window.rfind([',', ';', ':']).map(|i| i + 1).filter(|&i| i > limit / 3);
    clause.or_else(|| window.rfind(' ').filter(|&i| i > 0)).unwrap_or(limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_sentence_ends() {
        assert_eq!(split("Hello there. How are you? Great!"), ["Hello there.", "How are you?", "Great!"]);
        assert_eq!(split("Wait... What?! \"Yes.\" Done"), ["Wait...", "What?!", "\"Yes.\"", "Done"]);
    }

    #[test]
    fn keeps_lower_case_continuations_and_unspaced_dots() {
        assert_eq!(split("apples, et cetera. and pears."), ["apples, et cetera. and pears."]);
        assert_eq!(split("see example.com now."), ["see example.com now."]);
    }

    #[test]
    fn paragraphs_split_and_whitespace_collapses() {
        assert_eq!(split("First line\n\nSecond   line"), ["First line", "Second line"]);
    }

    #[test]
    fn empty_and_punctuation_only_give_nothing() {
        assert!(split("").is_empty());
        assert!(split("   ").is_empty());
        assert!(split("... ?!").is_empty());
    }

    #[test]
    fn first_clause_is_cut_where_it_helps() {
        let cut = split_first_clause;
        assert_eq!(cut("Sure, I set a timer for ten minutes."), Some(("Sure,".into(), "I set a timer for ten minutes.".into())));
        assert_eq!(cut("In London today: sunny and warm."), Some(("In London today:".into(), "sunny and warm.".into())));
        // Tail too short, or no clause mark.
        assert_eq!(cut("Yes, of course."), None);
        assert_eq!(cut("I set a timer for ten minutes."), None);
        assert_eq!(cut(""), None);
    }

    #[test]
    fn long_sentences_are_cut_at_clauses() {
        let clause = "this clause has a handful of words in it";
        let long = [clause; 12].join(", ") + ".";
        let parts = split(&long);
        assert!(parts.len() > 1, "{parts:?}");
        for p in &parts {
            assert!(p.chars().count() <= MAX_CHARS, "{p}");
        }
        assert!(parts[0].ends_with(','), "{parts:?}");
        assert_eq!(parts.join(" "), long);
    }
}
