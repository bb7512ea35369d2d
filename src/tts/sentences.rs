//! Splitting normalised text into sentences, the unit of synthesis and streaming.
//!
//! Each sentence is synthesised on its own, so the first one can play while the rest are made,
//! and a long answer never waits for its last word. Runs after [`super::normalize`], so digits,
//! decimals and abbreviations are already words and a period here really ends a sentence.

/// A sentence longer than this is cut at a clause boundary (or a space): one very long sentence
/// would otherwise hold back the first audio by its whole length.
pub const MAX_CHARS: usize = 240;

/// Words after a cut in a whole sentence: a one-word tail sounds clipped (a lone "Well," before
/// a clause mark is fine to say first).
const MIN_TAIL_WORDS: usize = 3;
/// Words before a phrase opener for [`first_cut`] to cut there: shorter heads sound chopped.
const MIN_PHRASE_WORDS: usize = 4;

/// Subordinators and relatives: a speaker may pause before them ("The sky looks blue | because
/// sunlight scatters").
const PHRASE_OPENERS: [&str; 15] =
    ["because", "which", "who", "whose", "whom", "where", "when", "while", "although", "though", "unless", "until", "since", "whereas", "whether"];
/// Words before a late opener for [`first_cut`] to cut there: only a long head is worth a cut
/// before a looser boundary.
const MIN_LATE_WORDS: usize = 8;
/// Looser phrase boundaries, for long heads: a verb after a long subject ("One of the best ways
/// to sleep well | is to"), a preposition that opens an adverbial ("scattering of sunlight | by
/// tiny molecules"). Not "of" or "to", which bind to the words before them.
const LATE_OPENERS: [&str; 16] =
    ["is", "are", "was", "were", "by", "with", "for", "from", "through", "during", "in", "on", "at", "into", "without", "like"];
/// Words after which [`first_cut`] also cuts before a loose boundary (measured: a 25-word first
/// sentence with none of the boundaries above kept the first audio waiting ~600 ms).
const MAX_OPENING_WORDS: usize = 10;
/// Loose boundaries, for heads past [`MAX_OPENING_WORDS`]: where a speaker may take a breath
/// ("…their whole lives | sleeping peacefully"), besides joiners and -ly / -ing words.
const LOOSE_OPENERS: [&str; 12] = ["as", "after", "before", "then", "about", "over", "under", "around", "across", "between", "among", "within"];
/// Words that lean on the next one, so no loose cut comes right after them ("very | happily").
const LEANS_FORWARD: [&str; 40] = [
    "a", "an", "the", "my", "your", "his", "her", "its", "our", "their", "this", "that", "these", "those", "some", "any", "no",
    "every", "each", "of", "to", "very", "so", "too", "more", "most", "less", "than", "not", "be", "been", "being", "will", "would",
    "can", "could", "should", "must", "may", "might",
];
/// Prepositions that can come before a relative ("by which", "in whose").
const PREPOSITIONS: [&str; 20] =
    ["by", "in", "on", "of", "to", "for", "with", "from", "at", "through", "during", "under", "about", "into", "upon", "within", "without", "between", "among", "across"];
/// Words that open a phrase only when a clause follows: "and they", "that the sky", but not
/// "healthy and happy" or "I like that song".
const JOINERS: [&str; 5] = ["and", "but", "or", "so", "that"];
/// Pronouns and determiners: what makes a joiner open a clause.
const CLAUSE_STARTS: [&str; 40] = [
    "i", "you", "he", "she", "it", "we", "they", "this", "that", "these", "those", "there", "the", "a", "an", "my", "your", "his", "her",
    "its", "our", "their", "i'm", "you're", "he's", "she's", "it's", "we're", "they're", "there's", "that's", "i've", "you've", "we've",
    "they've", "i'll", "you'll", "it'll", "we'll", "they'll",
];

/// Where the first piece of a text to speak ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Byte index the tail starts at; the head is everything before it.
    pub tail_start: usize,
    /// The head ends with its own clause mark; otherwise it was cut before a phrase opener.
    pub at_clause_mark: bool,
}

impl Cut {
    /// The head to speak: a head cut before a phrase opener gets a comma, so the voice's
    /// intonation stays unfinished and a short pause joins it to the tail.
    pub fn head(&self, text: &str) -> String {
        let head = text[..self.tail_start].trim();
        if self.at_clause_mark { head.to_string() } else { format!("{head},") }
    }
}

/// The first place to cut `text` so its opening can be spoken while the rest is made: after a
/// clause mark ("Sure, | I set a timer"), or, before any mark, in front of a phrase opener once
/// [`MIN_PHRASE_WORDS`] words precede it ("The sky looks blue | because sunlight scatters"), or
/// of a late opener once [`MIN_LATE_WORDS`] do, or of a loose one once [`MAX_OPENING_WORDS`] do.
/// A mark right after a digit may be a number's ("1,000"), so it is not one.
///
/// With `whole` false, `text` is the unfinished start of a stream: a word counts only once
/// whitespace follows it ("and" may still become "android"), and `None` may mean "not yet".
pub fn first_cut(text: &str, whole: bool) -> Option<Cut> {
    let words: Vec<(usize, &str)> = text.split_whitespace().map(|w| (w.as_ptr() as usize - text.as_ptr() as usize, w)).collect();
    let complete = |k: usize| words.get(k).is_some_and(|&(at, w)| whole || at + w.len() < text.len());
    for (k, &(_, word)) in words.iter().enumerate() {
        if !complete(k) {
            return None;
        }
        let bare = bare_word(word);
        let opens = PHRASE_OPENERS.contains(&bare.as_str())
            || (JOINERS.contains(&bare.as_str()) && complete(k + 1) && CLAUSE_STARTS.contains(&bare_word(words[k + 1].1).as_str()));
        let late = k >= MIN_LATE_WORDS && LATE_OPENERS.contains(&bare.as_str());
        let loose = k >= MAX_OPENING_WORDS
            && word.starts_with(|c: char| c.is_lowercase())
            && (JOINERS.contains(&bare.as_str()) || LOOSE_OPENERS.contains(&bare.as_str()) || (bare.len() > 4 && (bare.ends_with("ly") || bare.ends_with("ing"))))
            && !LEANS_FORWARD.contains(&bare_word(words[k - 1].1).as_str());
        if loose && !late && !opens {
            return (!whole || words.len() - k >= MIN_TAIL_WORDS).then_some(Cut { tail_start: words[k].0, at_clause_mark: false });
        }
        if (k >= MIN_PHRASE_WORDS && opens) || late {
            // A preposition goes with the relative after it: "the process | by which".
            let cut = if !late && PREPOSITIONS.contains(&bare_word(words[k - 1].1).as_str()) { k - 1 } else { k };
            if cut >= MIN_PHRASE_WORDS || late {
                let tail_words = words.len() - cut;
                return (!whole || tail_words >= MIN_TAIL_WORDS).then_some(Cut { tail_start: words[cut].0, at_clause_mark: false });
            }
        }
        // Whether a joiner opens a phrase shows with the next word.
        if k >= MIN_PHRASE_WORDS && JOINERS.contains(&bare.as_str()) && !complete(k + 1) {
            return None;
        }
        let mut chars = word.chars().rev();
        let mark = chars.next().is_some_and(|c| matches!(c, ',' | ';' | ':'));
        let after_digit = chars.next().is_some_and(|c| c.is_ascii_digit());
        if mark && !after_digit {
            let tail_words = words.len() - k - 1;
            let enough = if whole { tail_words >= MIN_TAIL_WORDS } else { tail_words > 0 };
            return enough.then(|| Cut { tail_start: words[k + 1].0, at_clause_mark: true });
        }
    }
    None
}

/// Lower case, without surrounding punctuation, with a plain apostrophe ("They’re," → "they're").
fn bare_word(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric()).replace('’', "'").to_lowercase()
}

/// Cuts a whole sentence where [`first_cut`] does, so a first audio chunk can be made from a few
/// words while the rest is synthesised: "Sure, I set a timer for ten minutes." → ("Sure,",
/// "I set a timer for ten minutes."). `None` when there is no good place.
pub fn split_opening(sentence: &str) -> Option<(String, String)> {
    let cut = first_cut(sentence, true)?;
    Some((cut.head(sentence), sentence[cut.tail_start..].trim().to_string()))
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
        let cut = split_opening;
        assert_eq!(cut("Sure, I set a timer for ten minutes."), Some(("Sure,".into(), "I set a timer for ten minutes.".into())));
        assert_eq!(cut("In London today: sunny and warm."), Some(("In London today:".into(), "sunny and warm.".into())));
        // Tail too short, or no clause mark.
        assert_eq!(cut("Yes, of course."), None);
        assert_eq!(cut("I set a timer for ten minutes."), None);
        assert_eq!(cut(""), None);
    }

    #[test]
    fn a_long_opening_without_a_mark_is_cut_before_a_phrase_opener() {
        let cut = split_opening;
        // The head gets a comma, so it is spoken as unfinished.
        assert_eq!(cut("The sky looks blue because sunlight scatters."), Some(("The sky looks blue,".into(), "because sunlight scatters.".into())));
        assert_eq!(cut("Fun fact: cats sleep a lot."), Some(("Fun fact:".into(), "cats sleep a lot.".into())));
        assert_eq!(cut("One famous fact about cats is that they purr when happy."), Some(("One famous fact about cats is,".into(), "that they purr when happy.".into())));
        // Joiners open a phrase only before a clause; openers need four words before them.
        assert_eq!(cut("A healthy diet is light and simple food."), None);
        assert_eq!(cut("I really like that song a lot."), None);
        assert_eq!(cut("Cats purr when happy or calm."), None);
        // The first place wins, mark or opener; a tail too short for it means no cut.
        assert_eq!(cut("Rest well, and drink water because it helps."), Some(("Rest well,".into(), "and drink water because it helps.".into())));
        assert_eq!(cut("It rains a lot when wet."), None);
        // A long head also ends before a verb or a looser preposition; a short one does not.
        assert_eq!(
            cut("One of the most effective ways to improve your sleep is to keep a routine."),
            Some(("One of the most effective ways to improve your sleep,".into(), "is to keep a routine.".into()))
        );
        assert_eq!(cut("Paris is the capital of France in Europe."), None);
        // A preposition stays with the relative it introduces.
        assert_eq!(
            cut("Photosynthesis is the process by which plants make food."),
            Some(("Photosynthesis is the process,".into(), "by which plants make food.".into()))
        );
        assert_eq!(cut("It is the way in which we work."), Some(("It is the way,".into(), "in which we work.".into())));
        assert_eq!(cut("The way in which it works matters."), None, "three words before `in which`");
    }

    #[test]
    fn a_long_opening_is_cut_at_a_looser_boundary_after_ten_words() {
        let cut = split_opening;
        assert_eq!(
            cut("Cats spend about two thirds of their whole lives sleeping peacefully somewhere warm."),
            Some(("Cats spend about two thirds of their whole lives sleeping,".into(), "peacefully somewhere warm.".into()))
        );
        // Not after a word that leans on the next.
        assert_eq!(
            cut("Cats spend about two thirds of their whole lives very happily sleeping somewhere warm."),
            Some(("Cats spend about two thirds of their whole lives very happily,".into(), "sleeping somewhere warm.".into()))
        );
        // Ten words or fewer: no loose cut ("really" is the ninth word).
        assert_eq!(cut("Many people think that cats and dogs never really get along well at all."), None);
        // Streamed: the word counts once it is whole.
        let mut text = String::from("Cats spend about two thirds of their whole lives sleeping peacefully");
        assert_eq!(first_cut(&text, false), None);
        text.push_str(" somewhere");
        assert_eq!(first_cut(&text, false).map(|c| c.head(&text)), Some("Cats spend about two thirds of their whole lives sleeping,".into()));
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
