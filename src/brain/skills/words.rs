//! Small text helpers the skills share: numbers said as words, durations, and turning the
//! user's "my" into Roxy's "your".

use regex::Regex;
use std::sync::LazyLock;
use std::time::Duration;

/// The text as the intent matcher sees it: lower case, every number the same ("5"), so
/// "set a timer for 17 minutes" and the template "set a timer for 5 minutes" match exactly.
pub fn shape(text: &str) -> String {
    static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+(?:[.,:]\d+)*").unwrap());
    let lower = text.trim().to_lowercase();
    NUMBER.replace_all(&lower, "5").into_owned()
}

const UNITS: [&str; 20] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
];
const TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];

/// Replaces number words ("twenty five", "a hundred", "three point five") by digits, so the
/// parsers only deal with digits. Whisper mostly writes digits already.
pub fn numbers_to_digits(text: &str) -> String {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        match read_number_words(&tokens[i..]) {
            Some((value, used)) => {
                let (_, trailing) = split_punct(tokens[i + used - 1]);
                out.push(format!("{}{trailing}", format_number(value)));
                i += used;
            }
            None => {
                out.push(tokens[i].to_string());
                i += 1;
            }
        }
    }
    out.join(" ")
}

fn split_punct(token: &str) -> (&str, &str) {
    let end = token.trim_end_matches(|c: char| c.is_ascii_punctuation()).len();
    token.split_at(end)
}

fn word_value(word: &str) -> Option<(f64, bool)> {
    let w = word.to_lowercase();
    if let Some(n) = UNITS.iter().position(|u| *u == w) {
        return Some((n as f64, false));
    }
    if let Some(n) = TENS.iter().position(|t| *t == w) {
        return Some(((n as f64 + 2.0) * 10.0, true));
    }
    None
}

/// Reads "twenty five", "twenty-five", "a hundred and five", "three point five"; returns the
/// value and how many tokens it used.
fn read_number_words(tokens: &[&str]) -> Option<(f64, usize)> {
    let is_scale = |t: &str| matches!(split_punct(t).0.to_lowercase().as_str(), "hundred" | "thousand");
    let is_number = |t: &str| is_scale(t) || single_value(split_punct(t).0).is_some();
    let (mut total, mut current, mut used, mut any) = (0.0, 0.0, 0, false);
    while used < tokens.len() {
        let (word, trailing) = split_punct(tokens[used]);
        let lower = word.to_lowercase();
        let next = tokens.get(used + 1).copied();
        if let Some(v) = single_value(&lower) {
            current += v;
        } else if (lower == "a" || lower == "an") && !any && next.is_some_and(is_scale) {
            current = 1.0;
        } else if lower == "hundred" || lower == "thousand" {
            let base = if any { current } else { 1.0 };
            if lower == "hundred" {
                current = base * 100.0;
            } else {
                total += base * 1000.0;
                current = 0.0;
            }
        } else if lower == "and" && any && trailing.is_empty() && next.is_some_and(is_number) {
            // "a hundred and five"
        } else if lower == "point" && any && trailing.is_empty() {
            match next.map(|t| single_value(split_punct(t).0)) {
                Some(Some(d)) if d < 10.0 => {
                    current += d / 10.0;
                    used += 2;
                    if !split_punct(next.unwrap()).1.is_empty() {
                        break;
                    }
                    continue;
                }
                _ => break,
            }
        } else {
            break;
        }
        any = true;
        used += 1;
        if !trailing.is_empty() {
            break;
        }
    }
    (any && used > 0).then_some((total + current, used))
}

/// "seven" → 7, "twenty-five" → 25.
fn single_value(word: &str) -> Option<f64> {
    let lower = word.to_lowercase();
    let parts: Vec<&str> = lower.split('-').collect();
    match parts.as_slice() {
        [tens, unit] => match (word_value(tens), word_value(unit)) {
            (Some((t, true)), Some((u, false))) if (1.0..10.0).contains(&u) => Some(t + u),
            _ => None,
        },
        [single] => word_value(single).map(|(v, _)| v),
        _ => None,
    }
}

/// The text with its first letter in upper case ("the battery…" → "The battery…").
pub fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

pub fn format_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        let s = format!("{value:.6}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The first duration in `text` ("10 minutes", "1 hour and 30 minutes", "half an hour",
/// "a minute", "90 s"), after number words became digits.
pub fn duration(text: &str) -> Option<Duration> {
    static PART: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)\b(\d+(?:\.\d+)?|an?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)\b").unwrap()
    });
    static HALF_HOUR: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)\bhalf an? hour\b").unwrap());
    let mut text = numbers_to_digits(text);
    let mut seconds = 0.0;
    if HALF_HOUR.is_match(&text) {
        seconds += 1800.0;
        text = HALF_HOUR.replace_all(&text, " ").into_owned();
    }
    for caps in PART.captures_iter(&text) {
        let n: f64 = match caps[1].to_lowercase().as_str() {
            "a" | "an" => 1.0,
            digits => digits.parse().ok()?,
        };
        let unit = caps[2].to_lowercase();
        seconds += n * match unit.chars().next() {
            Some('s') => 1.0,
            Some('m') => 60.0,
            _ => 3600.0,
        };
    }
    (seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// "10 minutes", "1 hour 30 minutes", "45 seconds".
pub fn say_duration(d: Duration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, total % 3600 / 60, total % 60);
    let mut parts = Vec::new();
    for (n, unit) in [(h, "hour"), (m, "minute"), (s, "second")] {
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    if parts.is_empty() {
        "0 seconds".into()
    } else {
        parts.join(" ")
    }
}

/// The user's words as Roxy says them back: "my car is on level 3" → "your car is on level 3".
pub fn second_person(text: &str) -> String {
    text.split_whitespace()
        .map(|token| {
            let (word, trailing) = split_punct(token);
            let swapped = match word.to_lowercase().as_str() {
                "my" => "your",
                "i" => "you",
                "me" => "you",
                "mine" => "yours",
                "myself" => "yourself",
                "i'm" => "you're",
                "i've" => "you've",
                "i'll" => "you'll",
                "am" => "are",
                "our" => "your",
                _ => return token.to_string(),
            };
            format!("{swapped}{trailing}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_words_become_digits() {
        assert_eq!(numbers_to_digits("set a timer for five minutes"), "set a timer for 5 minutes");
        assert_eq!(numbers_to_digits("twenty five times four"), "25 times 4");
        assert_eq!(numbers_to_digits("twenty-five plus a hundred and five"), "25 plus 105");
        assert_eq!(numbers_to_digits("three point five squared?"), "3.5 squared?");
        assert_eq!(numbers_to_digits("which one is it"), "which 1 is it");
        assert_eq!(numbers_to_digits("no numbers here"), "no numbers here");
    }

    #[test]
    fn durations_in_many_shapes() {
        assert_eq!(duration("set a timer for 10 minutes"), Some(Duration::from_secs(600)));
        assert_eq!(duration("one hour and 30 minutes"), Some(Duration::from_secs(5400)));
        assert_eq!(duration("remind me in half an hour"), Some(Duration::from_secs(1800)));
        assert_eq!(duration("a minute"), Some(Duration::from_secs(60)));
        assert_eq!(duration("timer for ninety seconds"), Some(Duration::from_secs(90)));
        assert_eq!(duration("set a timer"), None);
        assert_eq!(say_duration(Duration::from_secs(5400)), "1 hour 30 minutes");
        assert_eq!(say_duration(Duration::from_secs(1)), "1 second");
    }

    #[test]
    fn shapes_hide_the_numbers_and_case() {
        assert_eq!(shape("Set a timer for 17 minutes"), "set a timer for 5 minutes");
        assert_eq!(shape("What's 3.25 times 12?"), "what's 5 times 5?");
    }

    #[test]
    fn my_becomes_your() {
        assert_eq!(second_person("my sister's birthday is June 3rd, and I am happy."), "your sister's birthday is June 3rd, and you are happy.");
    }
}
