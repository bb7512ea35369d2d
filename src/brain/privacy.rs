//! The privacy gateway: what goes to a cloud LLM has personal data replaced by placeholders
//! ("[EMAIL_1]"), and the answer has them put back before anyone hears it. Only the kinds and
//! counts of what was redacted are logged, never the values.
//!
//! Redacted, in this order (earlier kinds win where patterns overlap):
//! secrets (API keys, tokens, "password is …"), emails, card numbers (Luhn-checked),
//! IBANs and account numbers, phone numbers, street addresses, and people's names the user
//! told Roxy about (from memory).

use regex::Regex;
use std::collections::BTreeMap;
use std::sync::LazyLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Secret,
    Email,
    Card,
    Account,
    Phone,
    Address,
    Name,
}

impl Kind {
    fn tag(self) -> &'static str {
        match self {
            Kind::Secret => "SECRET",
            Kind::Email => "EMAIL",
            Kind::Card => "CARD",
            Kind::Account => "ACCOUNT",
            Kind::Phone => "PHONE",
            Kind::Address => "ADDRESS",
            Kind::Name => "NAME",
        }
    }
}

struct Pattern {
    kind: Kind,
    regex: Regex,
    /// The capture group holding the value (0 = the whole match).
    group: usize,
    check: fn(&str) -> bool,
}

static PATTERNS: LazyLock<Vec<Pattern>> = LazyLock::new(|| {
    let p = |kind, re: &str, group, check: fn(&str) -> bool| Pattern { kind, regex: Regex::new(re).expect("valid pattern"), group, check };
    let any = |_: &str| true;
    vec![
        p(Kind::Secret, r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}\b|\bAKIA[0-9A-Z]{16}\b|\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bxox[abprs]-[A-Za-z0-9-]{10,}\b|\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b|\b[0-9a-fA-F]{32,}\b", 0, any),
        p(Kind::Secret, r"(?i)\b(?:password|passcode|pin|api key|secret|token)\s*(?:is|was|=|:)\s*([^\s,;]+)", 1, any),
        p(Kind::Email, r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b", 0, any),
        p(Kind::Card, r"\b(?:\d[ -]?){12,18}\d\b", 0, luhn),
        p(Kind::Account, r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b", 0, any),
        p(Kind::Account, r"(?i)\b(?:account|acct|routing|sort code|iban)(?:\s+(?:number|no\.?|#))?\s*(?:is|:)?\s*([0-9][0-9 -]{5,20}[0-9])\b", 1, any),
        // Phones: international (+…), (415) 555-0132, 415-555-0132, or any digits after "call me on" and the like.
        p(Kind::Phone, r"\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}\b", 0, phone_digits),
        p(Kind::Phone, r"\(\d{3}\)\s?\d{3}[ .-]?\d{4}\b|\b\d{3}[.-]\d{3}[.-]\d{4}\b", 0, phone_digits),
        p(
            Kind::Phone,
            r"(?i)\b(?:call|phone|mobile|cell|tel|telephone|text|number)\b(?:\s+(?:me|him|her|them|us))?(?:\s+(?:on|at|is))?[:\s]+(\+?\d[\d ().-]{5,}\d)",
            1,
            phone_digits,
        ),
        p(
            Kind::Address,
            r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Close|Square|Sq)\b\.?",
            0,
            any,
        ),
    ]
});

fn luhn(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    let sum: u32 = digits.iter().rev().enumerate().map(|(i, &d)| if i % 2 == 1 { let d2 = d * 2; if d2 > 9 { d2 - 9 } else { d2 } } else { d }).sum();
    sum % 10 == 0
}

fn phone_digits(candidate: &str) -> bool {
    (7..=15).contains(&candidate.chars().filter(char::is_ascii_digit).count())
}

/// Placeholders and the values they stand for, shared by every message of one request so the
/// same value gets the same placeholder.
#[derive(Debug, Default, Clone)]
pub struct Redactions {
    /// placeholder → original
    values: Vec<(String, String)>,
    counts: BTreeMap<Kind, usize>,
}

impl Redactions {
    /// What was redacted, by kind (for the log and `--json`): never the values.
    pub fn counts(&self) -> &BTreeMap<Kind, usize> {
        &self.counts
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn placeholder_for(&mut self, kind: Kind, value: &str) -> String {
        if let Some((placeholder, _)) = self.values.iter().find(|(_, v)| v == value) {
            return placeholder.clone();
        }
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        let placeholder = format!("[{}_{}]", kind.tag(), n);
        self.values.push((placeholder.clone(), value.to_string()));
        placeholder
    }

    /// A streaming restorer for the answer.
    pub fn restorer(&self) -> Restorer {
        Restorer { values: self.values.clone(), pending: String::new() }
    }
}

pub struct Gateway {
    names: Vec<Regex>,
}

impl Gateway {
    /// `names`: people's names known from memory; each is redacted wherever it appears.
    pub fn new(names: &[String]) -> Gateway {
        let names = names
            .iter()
            .filter(|n| n.chars().count() >= 2)
            .filter_map(|n| Regex::new(&format!(r"(?i)\b{}\b", regex::escape(n))).ok())
            .collect();
        Gateway { names }
    }

    /// Replaces personal data in `text`, adding to `redactions`.
    pub fn redact(&self, text: &str, redactions: &mut Redactions) -> String {
        let mut out = text.to_string();
        for pattern in PATTERNS.iter() {
            out = replace_matches(&out, &pattern.regex, pattern.group, |value| {
                (pattern.check)(value).then(|| redactions.placeholder_for(pattern.kind, value))
            });
        }
        for name in &self.names {
            out = replace_matches(&out, name, 0, |value| Some(redactions.placeholder_for(Kind::Name, value)));
        }
        out
    }
}

/// Replaces group `group` of every match for which `with` gives a replacement.
fn replace_matches(text: &str, regex: &Regex, group: usize, mut with: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for caps in regex.captures_iter(text) {
        let Some(m) = caps.get(group) else { continue };
        // Never split an earlier placeholder.
        if text[..m.start()].ends_with('[') && text[m.end()..].starts_with(']') {
            continue;
        }
        if let Some(replacement) = with(m.as_str()) {
            out.push_str(&text[last..m.start()]);
            out.push_str(&replacement);
            last = m.end();
        }
    }
    out.push_str(&text[last..]);
    out
}

/// Puts the originals back into a streamed answer. A placeholder may arrive split over
/// chunks, so text from an unclosed `[` on is held back until it can be decided.
pub struct Restorer {
    values: Vec<(String, String)>,
    pending: String,
}

const LONGEST_PLACEHOLDER: usize = 16;

impl Restorer {
    /// Text that is safe to speak now.
    pub fn push(&mut self, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let hold_from = match self.pending.rfind('[') {
            Some(open) if !self.pending[open..].contains(']') && self.pending.len() - open <= LONGEST_PLACEHOLDER => open,
            _ => self.pending.len(),
        };
        let ready: String = self.pending.drain(..hold_from).collect();
        self.restore(&ready)
    }

    /// The rest, at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.restore(&rest)
    }

    fn restore(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (placeholder, original) in &self.values {
            out = out.replace(placeholder, original);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> (String, Redactions) {
        let mut r = Redactions::default();
        let out = Gateway::new(&["Anna".into(), "Bob Miller".into()]).redact(text, &mut r);
        (out, r)
    }

    #[test]
    fn personal_data_is_replaced() {
        let (out, r) = redact(
            "Email anna.k@example.com or call +1 415-555-0132. Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00. \
             I live at 221 Baker Street. My key is sk-abcdefghijklmnop1234 and the wifi password is hunter2. Tell Anna and Bob Miller.",
        );
        for secret in ["anna.k@example.com", "415-555-0132", "4111 1111 1111 1111", "DE89 3704", "221 Baker Street", "sk-abcdef", "hunter2", "Anna", "Bob Miller"] {
            assert!(!out.contains(secret), "{secret} leaked: {out}");
        }
        assert!(out.contains("[EMAIL_1]") && out.contains("[CARD_1]") && out.contains("[ADDRESS_1]") && out.contains("[NAME_1]"), "{out}");
        assert_eq!(r.counts()[&Kind::Secret], 2);
        assert_eq!(r.counts()[&Kind::Name], 2);
    }

    #[test]
    fn ordinary_text_and_numbers_pass() {
        let text = "What is 15 percent of 80? The meeting is at 3:30 on June 5th, 2026. Room 101.";
        let (out, r) = redact(text);
        assert_eq!(out, text);
        assert!(r.is_empty());
        // Not a valid card number (fails Luhn) and not a phone: left alone.
        let (out, _) = redact("order 1234 5678 9012 3456 7");
        assert!(out.contains("1234 5678"), "{out}");
    }

    #[test]
    fn the_same_value_gets_the_same_placeholder_and_comes_back_streamed() {
        let (out, r) = redact("mail a@b.io, then a@b.io again, and c@d.io");
        assert_eq!(out, "mail [EMAIL_1], then [EMAIL_1] again, and [EMAIL_2]");
        let mut restorer = r.restorer();
        let mut heard = String::new();
        for chunk in ["I'll write to [EMA", "IL_1] and [", "EMAIL_2", "] now [sic]."] {
            heard.push_str(&restorer.push(chunk));
        }
        heard.push_str(&restorer.finish());
        assert_eq!(heard, "I'll write to a@b.io and c@d.io now [sic].");
    }
}

/// Capitalised words inside facts ("my sister Anna lives in Leeds" → Anna, Leeds): names of
/// people and places the user mentioned. The first word of a fact and common capitalised
/// words (days, months, "I") are skipped.
pub fn names_in<'a>(facts: impl Iterator<Item = &'a str>) -> Vec<String> {
    const COMMON: [&str; 22] = [
        "I", "I'm", "I've", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "January", "February",
        "March", "April", "May", "June", "July", "August", "September", "October", "November", "December",
    ];
    let mut names: Vec<String> = Vec::new();
    for fact in facts {
        for word in fact.split_whitespace().skip(1) {
            let word = word.trim_matches(|c: char| !c.is_alphanumeric()).trim_end_matches("'s");
            let capitalised = word.chars().next().is_some_and(char::is_uppercase) && word.chars().skip(1).all(char::is_lowercase);
            if capitalised && word.len() >= 2 && !COMMON.contains(&word) && !names.iter().any(|n| n == word) {
                names.push(word.to_string());
            }
        }
    }
    names
}
