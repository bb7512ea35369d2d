//! Detectors for structured personal data: secrets, emails, cards, IBANs and account numbers,
//! national IDs, phone numbers and street addresses. Each returns byte spans of the original
//! text; `super::resolve` settles overlaps.

use super::{Kind, Span};
use regex::Regex;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("valid pattern")
}

pub(super) fn all(text: &str, spans: &mut Vec<Span>) {
    secrets(text, spans);
    emails(text, spans);
    cards(text, spans);
    ibans(text, spans);
    national_ids(text, spans);
    phones(text, spans);
    addresses(text, spans);
}

fn push(spans: &mut Vec<Span>, kind: Kind, start: usize, end: usize) {
    if start < end {
        spans.push(Span { start, end, kind });
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets

/// Well-known key and token shapes.
static KEY_PREFIXES: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        \b(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}
      | \bsk-(?:[A-Za-z0-9]+-)?[A-Za-z0-9_-]{16,}
      | \bgh[pousr]_[A-Za-z0-9]{20,}
      | \bgithub_pat_[A-Za-z0-9_]{20,}
      | \bAIza[0-9A-Za-z_-]{30,}
      | \bxox[abprse]-[A-Za-z0-9-]{10,}
      | \b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b
      | \beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*
      | \bglpat-[A-Za-z0-9_-]{20,}
      | \bnpm_[A-Za-z0-9]{30,}
      | \bhf_[A-Za-z0-9]{30,}
      | \bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}
      | \bsq0(?:atp|csp)-[A-Za-z0-9_-]{20,}
      | \bshp(?:at|ss|ca|pa)_[a-fA-F0-9]{32}
      | \b[0-9a-fA-F]{32,}\b
      | -----BEGIN[A-Z ]*PRIVATE\ KEY-----[\s\S]*?-----END[A-Z ]*PRIVATE\ KEY-----
    ")
});

/// "my password for gmail is hunter2", "PIN number is 1234", "the wifi code is blue-fish-42",
/// "passcode=0000", "api key: …". Group `v` is the value; `pp` marks a passphrase (the value
/// runs to the end of the clause).
static LABELLED_SECRET: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)
        \b(?:
            (?P<pp>pass\s?phrase)
          | pass(?:word|wd|code|key)s? | pwd | pin(?:\s+(?:number|code|no\.?))? | codes? | combination
          | (?:api|secret|access|private|licen[cs]e|product|auth|app|client)[\s_-]?(?:key|token|secret)
          | secret | token | key
        )
        (?:\s+(?:for|of|to|on|at)\s+(?:the\s+|my\s+|our\s+)?[\p{L}\p{N}'’.-]+(?:\s+[\p{L}\p{N}'’.-]+){0,3}?)?
        \s*(?:\bis\b|\bwas\b|\bwill\s+be\b|=|:)\s*
        (?P<v>[^\s,;]+)
    ")
});

/// Values after "password is" that are words about the password, not the password.
const NOT_A_SECRET: &[&str] = &[
    "a",
    "an",
    "the",
    "not",
    "too",
    "still",
    "now",
    "wrong",
    "incorrect",
    "correct",
    "right",
    "required",
    "empty",
    "missing",
    "expired",
    "invalid",
    "valid",
    "same",
    "different",
    "changed",
    "set",
    "saved",
    "stored",
    "written",
    "on",
    "in",
    "at",
    "below",
    "above",
    "here",
    "there",
    "this",
    "that",
    "it",
    "under",
    "my",
    "your",
    "his",
    "her",
    "their",
    "our",
    "what",
    "which",
    "how",
    "where",
    "when",
    "why",
    "who",
    "ok",
    "okay",
    "fine",
    "strong",
    "weak",
    "long",
    "short",
    "reset",
    "needed",
    "blank",
    "hidden",
    "also",
    "being",
    "been",
    "going",
    "printed",
    "shown",
    "sent",
    "attached",
    "case-sensitive",
    "and",
    "or",
    "if",
    "for",
    "to",
    "of",
    "no",
    "yes",
    "something",
    "easy",
    "hard",
    "secure",
    "safe",
    "broken",
    "working",
    "locked",
    "due",
    "from",
    "by",
    "with",
    "as",
    "so",
    "very",
    "just",
    "only",
    "usually",
    "always",
    "never",
    "probably",
];

/// Candidates for the entropy test: long runs of token characters.
static TOKEN_RUN: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z0-9_+/=-]{20,}"));

/// Shannon entropy (bits per character) a long letter-and-digit token needs to count as a
/// secret; it screens out repetitive strings ("aaaa…1111"). Words are screened out by the
/// dictionary. Measured by `tests::entropy_threshold_separates_keys_from_repetition`: keys
/// (base64, hex, base62) measured 3.4–5.2, repetitive ids 0.6–2.9.
pub(super) const ENTROPY_BITS: f64 = 3.2;

pub(super) fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 128];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[(b & 0x7f) as usize] += 1;
        n += 1;
    }
    let n = f64::from(n.max(1));
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A long token mixing letters and digits with high entropy: an API key, a session token.
pub(super) fn looks_random(token: &str) -> bool {
    let token =
        token.trim_matches(|c: char| c == '-' || c == '_' || c == '/' || c == '=' || c == '+');
    if token.len() < 20 {
        return false;
    }
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    let letters = token.bytes().filter(u8::is_ascii_alphabetic).count();
    if digits == 0 || letters == 0 {
        return false;
    }
    // Words joined up ("covid-19-vaccination-centre", "ThisIsMyLongName2", "hunter2hunter2")
    // are not keys: most of their letters are in ordinary words.
    if word_letters(token) * 2 >= letters {
        return false;
    }
    entropy(token) >= ENTROPY_BITS
}

/// An ordinary word, or two run together ("setup", "downloads").
fn wordy(lower: &str) -> bool {
    use super::names::is_common_word;
    is_common_word(lower)
        || (2..lower.len().saturating_sub(1)).any(|i| {
            lower.is_char_boundary(i) && is_common_word(&lower[..i]) && is_common_word(&lower[i..])
        })
}

/// How many letters of `token` are in ordinary words of three letters or more (letter runs
/// split where the case goes up: "ThisIsMy" → This, Is, My).
fn word_letters(token: &str) -> usize {
    let mut covered = 0;
    let mut run = String::new();
    let mut flush = |run: &mut String| {
        if run.len() >= 3 && wordy(&run.to_lowercase()) {
            covered += run.len();
        }
        run.clear();
    };
    let mut prev_lower = false;
    for c in token.chars() {
        if !c.is_ascii_alphabetic() {
            flush(&mut run);
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower {
            flush(&mut run);
        }
        run.push(c);
        prev_lower = c.is_ascii_lowercase();
    }
    flush(&mut run);
    covered
}

/// A key-like value right after a key word, with no "is": "aws secret wJalr…", "token 9f8a…".
static KEYWORD_THEN_KEY: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:key|secret|token|bearer|password|passwd|pwd|authorization|auth)\s*[:=]?\s+([A-Za-z0-9_+/=.-]{12,})",
    )
});

fn key_like(value: &str) -> bool {
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    let upper = value.bytes().filter(u8::is_ascii_uppercase).count();
    let lower = value.bytes().filter(u8::is_ascii_lowercase).count();
    ((digits >= 1 && upper + lower >= 1) || (upper >= 2 && lower >= 2))
        && word_letters(value) * 2 < upper + lower
}

fn secrets(text: &str, spans: &mut Vec<Span>) {
    for m in KEY_PREFIXES.find_iter(text) {
        push(spans, Kind::Secret, m.start(), m.end());
    }
    for caps in KEYWORD_THEN_KEY.captures_iter(text) {
        let v = caps.get(1).expect("group");
        let value = v.as_str().trim_end_matches(['.', '-']);
        if key_like(value) {
            push(spans, Kind::Secret, v.start(), v.start() + value.len());
        }
    }
    for caps in LABELLED_SECRET.captures_iter(text) {
        let Some(v) = caps.name("v") else { continue };
        let (start, mut end) = (v.start(), v.end());
        if caps.name("pp").is_some() {
            // A passphrase may have spaces: take the clause.
            let rest = &text[start..];
            let mut clause = rest
                .find(['.', ',', ';', '\n', '!', '?'])
                .unwrap_or(rest.len())
                .min(80);
            while !rest.is_char_boundary(clause) {
                clause -= 1;
            }
            end = start + rest[..clause].trim_end().len();
        }
        let value = text[start..end].trim_end_matches(['.', ')', '"', '\'', '”', '’', ']']);
        let end = start + value.len();
        let bare = value
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if bare.is_empty() || NOT_A_SECRET.contains(&bare.as_str()) {
            continue;
        }
        push(spans, Kind::Secret, start, end);
    }
    for m in TOKEN_RUN.find_iter(text) {
        // Not the tail of a longer token (an email, a URL host) or part of an IBAN-like run.
        if text[..m.start()].ends_with(|c: char| c.is_alphanumeric() || c == '.' || c == '@') {
            continue;
        }
        if looks_random(m.as_str()) {
            push(spans, Kind::Secret, m.start(), m.end());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Emails

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?x)
        [\p{L}\p{N}\p{M}!\#$%&'*+/=?^_~-]+(?:\.[\p{L}\p{N}\p{M}!\#$%&'*+/=?^_~-]+)*
        @
        (?:[\p{L}\p{N}\p{M}](?:[\p{L}\p{N}\p{M}-]*[\p{L}\p{N}\p{M}])?\.)+
        (?:xn--[a-zA-Z0-9-]{2,}|[\p{L}\p{M}]{2,})
    ")
});

/// "anna dot k at example dot com": an address spoken, as speech-to-text writes it.
static SPOKEN_EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?xi)
        \b[\p{L}\p{N}_-]+(?:\s+(?:dot|underscore|dash|hyphen)\s+[\p{L}\p{N}_-]+)*
        \s+at\s+
        [\p{L}\p{N}-]+(?:\s+dot\s+[\p{L}\p{N}-]+)*
        \s+dot\s+(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|ie|au|ca|in|jp|info|me|us|biz|app|dev|ai|ch|at|be|se|no|dk|fi|pl|pt|br|mx|ru|cn|kr|nz|za|eu|tv|xyz)\b
    ")
});

fn emails(text: &str, spans: &mut Vec<Span>) {
    for m in EMAIL.find_iter(text) {
        // The local part's legal punctuation should not drag in a leading quote or apostrophe.
        let value = m.as_str();
        let trimmed = value.trim_start_matches(['\'', '/', '=', '?', '^', '~', '-', '+']);
        push(
            spans,
            Kind::Email,
            m.start() + (value.len() - trimmed.len()),
            m.end(),
        );
    }
    for m in SPOKEN_EMAIL.find_iter(text) {
        push(spans, Kind::Email, m.start(), m.end());
    }
}

// ---------------------------------------------------------------------------------------------
// Cards

/// Digit groups separated by single spaces or dashes.
static DIGIT_RUN: LazyLock<Regex> = LazyLock::new(|| re(r"\b\d+(?:[ -]\d+)*\b"));

#[allow(clippy::manual_is_multiple_of)] // `is_multiple_of` needs Rust 1.87; the workspace says 1.85
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let d2 = d * 2;
                if d2 > 9 {
                    d2 - 9
                } else {
                    d2
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// The groups of a digit run: (start, end) byte offsets, relative to the run.
fn groups(run: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in run.char_indices() {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, run.len()));
    }
    out
}

static CARD_TAIL_DATE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:0?[1-9]|1[0-2])\s?[/-]\s?(?:20)?\d{2}\b"));
static CARD_TAIL_CVV: LazyLock<Regex> = LazyLock::new(|| re(r"^\d{3,4}\b"));
static CARD_TAIL_SKIP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)^(?:[\s,;:()#/-]+|(?:exp(?:iry|ires|ire|iring|ired|iration|\.)?|date|valid|thru|through|until|good|cvv2?|cvc2?|cid|csc|cvn|security|sec|verification|code|number|no\.?|and|the|is|card)\b)",
    )
});

fn cards(text: &str, spans: &mut Vec<Span>) {
    for m in DIGIT_RUN.find_iter(text) {
        let run = m.as_str();
        let gs = groups(run);
        let all: Vec<u8> = run
            .bytes()
            .filter(u8::is_ascii_digit)
            .map(|b| b - b'0')
            .collect();
        if all.len() < 13 {
            continue;
        }
        // The longest run of whole groups from the start holding 13–19 digits that passes
        // Luhn: one group, or groups of 4–6 as cards are printed (4-4-4-4, 4-6-5, 4-6-4). A
        // card followed by its CVV ("4111 1111 1111 1111 123") is found as the first 16.
        let mut best = None;
        let mut n = 0;
        for (j, g) in gs.iter().enumerate() {
            let len = g.1 - g.0;
            n += len;
            if n > 19 || (gs.len() > 1 && !(4..=6).contains(&len)) {
                break;
            }
            if n >= 13 && all[0] != 0 && luhn(&all[..n]) {
                best = Some(j);
            }
        }
        let Some(j) = best else { continue };
        let (start, end) = (m.start() + gs[0].0, m.start() + gs[j].1);
        push(spans, Kind::Card, start, end);
        card_tail(text, end, spans);
    }
}

/// Expiry dates and CVVs right after a card number.
fn card_tail(text: &str, mut at: usize, spans: &mut Vec<Span>) {
    let limit = (at + 60).min(text.len());
    let (mut date, mut cvv) = (false, false);
    while at < limit && !(date && cvv) {
        let rest = &text[at..];
        if !date {
            if let Some(m) = CARD_TAIL_DATE.find(rest) {
                push(spans, Kind::Card, at, at + m.end());
                at += m.end();
                date = true;
                continue;
            }
        }
        if !cvv {
            if let Some(m) = CARD_TAIL_CVV.find(rest) {
                push(spans, Kind::Card, at, at + m.end());
                at += m.end();
                cvv = true;
                continue;
            }
        }
        match CARD_TAIL_SKIP.find(rest) {
            Some(m) => at += m.end(),
            None => break,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IBANs and account numbers

/// IBAN lengths by country (the IBAN registry).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BI", 27),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DJ", 27),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FK", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HN", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("LY", 25),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MN", 20),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NI", 28),
    ("NL", 18),
    ("NO", 15),
    ("OM", 23),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("RU", 33),
    ("SA", 24),
    ("SC", 31),
    ("SD", 18),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("SO", 23),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
    ("YE", 30),
];

/// A country code, check digits, then alphanumerics in any grouping and case.
static IBAN_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b[a-z]{2}\d{2}(?:[ -]?[a-z0-9]){10,32}"));

static ACCOUNT_LABELLED: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:account|acct|a/c|routing|sort\s+code|bsb|iban)(?:\s+(?:number|no\.?|#))?\s*(?:is|:|=)?\s*([0-9][0-9 -]{4,30}[0-9])\b",
    )
});

fn iban_valid(chars: &[char]) -> bool {
    if !(15..=34).contains(&chars.len()) {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in chars[4..].iter().chain(&chars[..4]) {
        let Some(v) = c.to_digit(36) else {
            return false;
        };
        rem = if v < 10 {
            (rem * 10 + v) % 97
        } else {
            (rem * 100 + v) % 97
        };
    }
    rem == 1
}

fn ibans(text: &str, spans: &mut Vec<Span>) {
    for m in IBAN_CANDIDATE.find_iter(text) {
        // (offset of each alphanumeric, upper-cased)
        let chars: Vec<(usize, char)> = m
            .as_str()
            .char_indices()
            .filter(|(_, c)| c.is_ascii_alphanumeric())
            .map(|(i, c)| (m.start() + i, c.to_ascii_uppercase()))
            .collect();
        let country: String = chars[..2].iter().map(|&(_, c)| c).collect();
        let lengths: Vec<usize> = match IBAN_LENGTHS.iter().find(|(cc, _)| *cc == country) {
            Some(&(_, n)) => vec![n],
            None => (15..=chars.len().min(34)).rev().collect(),
        };
        for n in lengths {
            if n > chars.len() {
                continue;
            }
            let end = chars[n - 1].0 + 1;
            // It must end where a word ends (not halfway into "…1234abc").
            if text[end..].starts_with(|c: char| c.is_alphanumeric()) {
                continue;
            }
            let value: Vec<char> = chars[..n].iter().map(|&(_, c)| c).collect();
            if iban_valid(&value) {
                push(spans, Kind::Account, m.start(), end);
                break;
            }
        }
    }
    for caps in ACCOUNT_LABELLED.captures_iter(text) {
        let v = caps.get(1).expect("group");
        push(spans, Kind::Account, v.start(), v.end());
    }
}

// ---------------------------------------------------------------------------------------------
// National IDs

static ID_PATTERNS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    vec![
        // US SSN with dashes (distinctive enough alone).
        re(r"\b\d{3}-\d{2}-\d{4}\b"),
        // SSN labelled, with or without separators.
        re(
            r"(?i)\b(?:ssn|ss\#|social\s+security(?:\s+(?:number|no\.?|\#))?)\s*(?:is|:|=|\#)?\s*(\d{3}[ -]?\d{2}[ -]?\d{4})\b",
        ),
        // UK National Insurance number, unlabelled: upper case, the official prefix letters.
        re(r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"),
        // … and labelled, any letters (HMRC's examples use QQ).
        re(
            r"(?i)\b(?:national\s+insurance|ni|nino|nin)(?:\s+(?:number|no\.?|\#))?\s*(?:is|:|=)?\s*([A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D])\b",
        ),
        // Passport numbers after "passport".
        re(
            r"(?i)\bpassport(?:\s+(?:number|no\.?|num|\#))?\s*(?:is|:|=|\#)?\s*([A-Z0-9]*\d[A-Z0-9]*)\b",
        ),
        // Other labelled identity numbers.
        re(
            r"(?ix)\b(?:social\s+insurance|sin|aadhaar|aadhar|nhs|tax(?:payer)?(?:\s+id(?:entification)?)?|tin|tfn|ein|itin|
             national\s+id(?:entity)?(?:\s+card)?|id\s+card|identity\s+card|driver['’]?s\s+licen[cs]e|driving\s+licen[cs]e|licen[cs]e|
             medicare|medical\s+record|health\s+(?:card|insurance)|personnummer|bsn|steuer-?id|codice\s+fiscale|dni|nie|nif|cpf|curp)
             (?:\s+(?:number|no\.?|num|\#))?\s*(?:is|:|=|\#)?\s*([A-Z0-9]*\d[A-Z0-9]*(?:[\x20-]\d[A-Z0-9]*)*)\b",
        ),
    ]
});

fn national_ids(text: &str, spans: &mut Vec<Span>) {
    for regex in ID_PATTERNS.iter() {
        for caps in regex.captures_iter(text) {
            let m = caps.get(1).or_else(|| caps.get(0)).expect("match");
            let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
            if digits >= 5 && m.len() >= 6 {
                push(spans, Kind::NationalId, m.start(), m.end());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Phones

/// Loose candidates: digits with the separators numbers are written with, maybe "+" or "00".
static PHONE_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?:\+\s?\(?|\(|\b)\d[\d().\-/ \u{a0}]{4,26}\d"));
static PHONE_CUE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:call|ring|phone|mobile|cell|tel|telephone|text|sms|whatsapp|number|fax|dial|reach|contact|line|hotline|landline|handy|portable|tél|telefon|teléfono|office|desk)\b",
    )
});
static DATE_LIKE: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}[/.-]\d{1,2}[/.-]\d{1,2})$"));

use phonenumber::country::Id;
/// How national numbers are written in a region: with a trunk "0" first, never with one, or
/// either (Italian landlines keep their 0, mobiles have none; India's 0 is optional).
#[derive(Clone, Copy, PartialEq)]
enum Trunk {
    Zero,
    None,
    Any,
}

/// Regions tried for numbers written without a country code, with the digit counts of their
/// national numbers as written (trunk "0" included), checked before the costly parse.
const REGIONS: &[(Id, Trunk, usize, usize)] = &[
    (Id::US, Trunk::None, 10, 11),
    (Id::GB, Trunk::Zero, 10, 11),
    (Id::DE, Trunk::Zero, 6, 13),
    (Id::FR, Trunk::Zero, 10, 10),
    (Id::IN, Trunk::Any, 10, 11),
    (Id::AU, Trunk::Zero, 10, 10),
    (Id::IE, Trunk::Zero, 8, 10),
    (Id::NL, Trunk::Zero, 10, 10),
    (Id::IT, Trunk::Any, 6, 11),
    (Id::ES, Trunk::None, 9, 9),
    (Id::JP, Trunk::Zero, 10, 11),
    (Id::BR, Trunk::Zero, 10, 11),
    (Id::ZA, Trunk::Zero, 10, 10),
    (Id::NZ, Trunk::Zero, 8, 11),
    (Id::CH, Trunk::Zero, 10, 10),
];

/// What libphonenumber says of a number.
#[derive(Clone, Copy, PartialEq)]
enum Verdict {
    Valid,
    /// It parses (a known country code) but is not a valid number there.
    Parses,
    Invalid,
}

/// Verdicts by normalised number ("+4420…" or national digits), kept across requests: the
/// conversation history is sent again with every turn. Bounded; cleared when full.
static VERDICTS: LazyLock<Mutex<HashMap<String, Verdict>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const MAX_VERDICTS: usize = 4096;

fn parse(region: Option<Id>, number: &str) -> Verdict {
    // The crate has panicked on odd input in the past: never let that take a request down.
    let parsed = std::panic::catch_unwind(|| {
        phonenumber::parse(region, number)
            .ok()
            .map(|n| phonenumber::is_valid(&n))
    });
    match parsed {
        Ok(Some(true)) => Verdict::Valid,
        Ok(Some(false)) => Verdict::Parses,
        _ => Verdict::Invalid,
    }
}

/// International numbers: a known country code and a length that fits are enough (validating
/// each country's number plan costs a regex compile per country, see `judge`).
fn parse_only(number: &str) -> Verdict {
    let parsed = std::panic::catch_unwind(|| {
        phonenumber::parse(None, number).ok().map(|n| {
            let national = n.national().value().to_string().len();
            (4..=14).contains(&national)
        })
    });
    match parsed {
        Ok(Some(true)) => Verdict::Valid,
        Ok(Some(false)) => Verdict::Parses,
        _ => Verdict::Invalid,
    }
}

/// A stretch of a candidate to test as a phone number.
struct Piece {
    start: usize,
    end: usize,
    /// "+44207946…" for international numbers, else the digits as written.
    number: String,
    international: bool,
    cue: bool,
    formatted: bool,
    /// The whole candidate, not a stretch of it (only that may be taken on a cue alone).
    whole: bool,
}

impl Piece {
    fn new(text: &str, start: usize, end: usize, cue: bool, whole: bool) -> Option<Piece> {
        let written = &text[start..end];
        let cleaned = written.replace("(0)", "");
        let digits: String = cleaned.chars().filter(char::is_ascii_digit).collect();
        let international = cleaned.starts_with('+') || digits.starts_with("00");
        let number = if international {
            format!("+{}", digits.strip_prefix("00").unwrap_or(&digits))
        } else {
            digits
        };
        let n = number.trim_start_matches('+').len();
        let plausible = if international {
            (8..=15).contains(&n)
        } else {
            (7..=13).contains(&n) && !DATE_LIKE.is_match(written.trim())
        };
        let formatted = written.contains(['(', '-', '.', ' '])
            && written
                .split([' ', '-', '.'])
                .filter(|g| !g.is_empty())
                .count()
                <= 4;
        plausible.then_some(Piece {
            start,
            end,
            number,
            international,
            cue,
            formatted,
            whole,
        })
    }

    fn regions(&self) -> impl Iterator<Item = Id> + '_ {
        let trunk = self.number.starts_with('0');
        let n = self.number.len();
        REGIONS
            .iter()
            .filter(move |&&(region, style, min, max)| {
                !((style == Trunk::Zero && !trunk)
                    || (style == Trunk::None && trunk)
                    || !(min..=max).contains(&n))
                    && !(region == Id::US && n == 11 && !self.number.starts_with('1'))
            })
            .map(|&(region, ..)| region)
    }

    fn is_phone(&self, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Valid => true,
            // Said to be a phone and written like one ("call me on 555-0199"): trust the words.
            Verdict::Parses => self.cue,
            Verdict::Invalid => {
                self.whole
                    && !self.international
                    && self.cue
                    && self.formatted
                    && (7..=12).contains(&self.number.len())
            }
        }
    }
}

/// Judges `pieces`, going region by region (libphonenumber's regex cache holds about one
/// region's patterns at a time), with the verdicts kept from earlier requests.
fn judge(pieces: &[Piece]) -> Vec<bool> {
    let mut verdicts: Vec<Option<Verdict>> = {
        let memo = VERDICTS.lock().unwrap_or_else(|e| e.into_inner());
        pieces
            .iter()
            .map(|p| memo.get(&p.number).copied())
            .collect()
    };
    let mut fresh = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        if verdicts[i].is_none() && p.international {
            verdicts[i] = Some(parse_only(&p.number));
            fresh.push(i);
        }
    }
    let mut pending: Vec<usize> = (0..pieces.len())
        .filter(|&i| verdicts[i].is_none())
        .collect();
    for &(region, ..) in REGIONS {
        for &i in &pending {
            if verdicts[i].is_none()
                && pieces[i].regions().any(|r| r == region)
                && parse(Some(region), &pieces[i].number) == Verdict::Valid
            {
                verdicts[i] = Some(Verdict::Valid);
            }
        }
    }
    for &i in &pending {
        verdicts[i].get_or_insert(Verdict::Invalid);
    }
    fresh.append(&mut pending);
    let mut memo = VERDICTS.lock().unwrap_or_else(|e| e.into_inner());
    if memo.len() + fresh.len() > MAX_VERDICTS {
        memo.clear();
    }
    for i in fresh {
        memo.insert(
            pieces[i].number.clone(),
            verdicts[i].unwrap_or(Verdict::Invalid),
        );
    }
    pieces
        .iter()
        .zip(verdicts)
        .map(|(p, v)| p.is_phone(v.unwrap_or(Verdict::Invalid)))
        .collect()
}

/// A candidate: where it is, whether a phone word is near, and its space-separated words.
struct Candidate {
    start: usize,
    end: usize,
    cue: bool,
    words: Vec<(usize, usize)>,
}

fn phones(text: &str, spans: &mut Vec<Span>) {
    let mut candidates = Vec::new();
    for m in PHONE_CANDIDATE.find_iter(text) {
        let before = &text[..m.start()];
        // Not the middle of a longer token ("v2.3.1", "INV-2024-00123", "$1,234.56").
        if before.ends_with(|c: char| {
            c.is_alphanumeric() || matches!(c, '.' | ',' | '$' | '€' | '£' | '/' | ':')
        }) || before
            .strip_suffix('-')
            .is_some_and(|b| b.ends_with(char::is_alphanumeric))
        {
            continue;
        }
        let cue_from = before.char_indices().rev().nth(40).map_or(0, |(i, _)| i);
        let cue = PHONE_CUE.is_match(&text[cue_from..m.end()]);
        let written = m.as_str().trim_end_matches([')', '(', '-', '.', '/', ' ']);
        let (start, end) = (m.start(), m.start() + written.len());
        let mut words = Vec::new();
        let mut word_start = None;
        for (i, c) in written.char_indices() {
            match (c == ' ' || c == '\u{a0}', word_start) {
                (false, None) => word_start = Some(start + i),
                (true, Some(b)) => {
                    words.push((b, start + i));
                    word_start = None;
                }
                _ => {}
            }
        }
        if let Some(b) = word_start {
            words.push((b, end));
        }
        candidates.push(Candidate {
            start,
            end,
            cue,
            words,
        });
    }
    // Whole candidates first; the sub-runs of those that fail next (a number beside another).
    let (mut whole, mut of) = (Vec::new(), Vec::new());
    for (k, c) in candidates.iter().enumerate() {
        if let Some(p) = Piece::new(text, c.start, c.end, c.cue, true) {
            whole.push(p);
            of.push(k);
        }
    }
    let mut found = vec![false; candidates.len()];
    for ((p, k), ok) in whole.iter().zip(of).zip(judge(&whole)) {
        if ok {
            found[k] = true;
            push(spans, Kind::Phone, p.start, p.end);
        }
    }
    let failed: Vec<&Candidate> = candidates
        .iter()
        .zip(found)
        .filter(|(_, f)| !f)
        .map(|(c, _)| c)
        .collect();
    let mut pieces = Vec::new();
    let mut owner = Vec::new();
    for (k, c) in failed.iter().enumerate() {
        for len in (1..c.words.len()).rev() {
            for i in 0..=c.words.len() - len {
                let (a, b) = (c.words[i].0, c.words[i + len - 1].1);
                // A sub-run may begin with the "(" of an area code.
                let a = if text[..a].ends_with('(') { a - 1 } else { a };
                if let Some(p) = Piece::new(text, a, b, c.cue, false) {
                    pieces.push(p);
                    owner.push(k);
                }
            }
        }
    }
    let judged = judge(&pieces);
    let mut done = vec![false; failed.len()];
    for ((p, k), ok) in pieces.iter().zip(owner).zip(judged) {
        // Pieces come longest first: the first good one of a candidate wins.
        if ok && !done[k] {
            done[k] = true;
            push(spans, Kind::Phone, p.start, p.end);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Street addresses

const STREET_TYPES: &[&str] = &[
    "street",
    "st",
    "road",
    "rd",
    "avenue",
    "ave",
    "av",
    "lane",
    "ln",
    "drive",
    "dr",
    "court",
    "ct",
    "way",
    "place",
    "pl",
    "terrace",
    "terr",
    "close",
    "crescent",
    "cres",
    "grove",
    "gardens",
    "gdns",
    "parkway",
    "pkwy",
    "highway",
    "hwy",
    "boulevard",
    "blvd",
    "square",
    "sq",
    "loop",
    "circle",
    "cir",
    "trail",
    "trl",
    "mews",
    "approach",
    "plaza",
    "alley",
    "wharf",
    "quay",
    "parade",
    "row",
    "walk",
    "hill",
    "broadway",
    "expressway",
    "freeway",
    "pike",
    "turnpike",
    "path",
    "strasse",
    "straße",
    "str",
    "platz",
    "weg",
    "gasse",
    "allee",
    "passage",
    "view",
    "rise",
    "green",
    "park",
    "end",
];
/// Street types that are ordinary words often enough that they need a capitalised street name.
const WEAK_STREET_TYPES: &[&str] = &[
    "way", "row", "walk", "hill", "view", "rise", "green", "park", "end", "path", "passage",
    "place", "court", "close", "circle", "loop",
];

/// Words that never sit between a house number and a street type.
const NOT_IN_STREET: &[&str] = &[
    "a", "an", "and", "or", "of", "to", "in", "on", "at", "for", "from", "with", "by", "down",
    "up", "along", "across", "into", "my", "your", "his", "her", "our", "their", "its", "is",
    "are", "was", "were", "be", "this", "that", "these", "those", "it", "i", "you", "we", "they",
    "he", "she", "per", "percent", "minutes", "minute", "hours", "hour", "miles", "mile", "km",
    "metres", "meters", "yards", "feet", "ft", "blocks", "block", "times", "days", "day", "weeks",
    "years", "people", "more", "less", "than", "about", "around", "over", "under", "after",
    "before", "left", "right", "turn", "first", "second", "third", "next", "last", "other", "all",
    "some", "any", "no", "not", "one", "two", "three", "pounds", "dollars", "euros", "kg", "lbs",
    "cups", "items", "steps", "floors", "lanes", "pm", "am", "o'clock",
];

/// A house number (221, 221B, 12-14, 27a) at a word start.
static HOUSE_NUMBER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b\d{1,5}(?:\s?[a-z]\b)?(?:\s?[-–/]\s?\d{1,5}[a-z]?)?\b"));
static WORD: LazyLock<Regex> = LazyLock::new(|| re(r"^[\s,]*([\p{L}\p{N}][\p{L}\p{N}'’.\-]*)"));
static DIRECTION: LazyLock<Regex> = LazyLock::new(|| re(r"^\s+(?:NW|NE|SW|SE|N|S|E|W)\b"));

/// "12 rue de Rivoli", "5 avenue Anatole France" (number first, type, then the name).
static ROMANCE_NUMBER_FIRST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?x)\b\d{1,5}(?:\s?(?:bis|ter|[a-zA-Z]))?,?\s+(?i:rue|avenue|av\.|boulevard|bd|place|allée|allee|chemin|impasse|quai|cours|route|square)\s+
          (?:(?i:de|du|des|de\s+la|la|le|l'|d')\s*)?[\p{Lu}][\p{L}'’.-]*(?:\s+(?:(?i:de|du|des|la|le|et|sur|en)\s+)?[\p{Lu}][\p{L}'’.-]*){0,3}",
    )
});
/// "rue de Rivoli 12", "Via Roma 15", "Calle de Alcalá 42", "Avenida Paulista 1578".
static ROMANCE_TYPE_FIRST: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?x)\b(?i:rue|via|viale|piazza|piazzale|corso|largo|vicolo|calle|avenida|avda\.?|paseo|plaza|carrer|passeig|rua|travessa|praça|largo|ulica|ul\.|avenue|boulevard|bd|place)\s+
          (?:(?i:de|del|della|delle|dei|di|du|des|de\s+la|la|le|los|las|dos|das|da|do|d'|l')\s*)*
          [\p{Lu}][\p{L}'’.-]*(?:\s+(?:(?i:de|del|della|di|da|y|e)\s+)?[\p{Lu}][\p{L}'’.-]*){0,3}
          ,?\s+\d{1,5}[a-zA-Z]?\b",
    )
});
/// German, Dutch and Nordic compounds: "Hauptstraße 5", "Friedrichstr. 123", "Rosenweg 12", "Kungsgatan 44".
static COMPOUND_STREET: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b[\p{L}][\p{L}-]+(?:straße|strasse|str\.|weg|platz|gasse|allee|damm|chaussee|steig|pfad|markt|gracht|gatan|vägen|vej|veien|gata|laan|straat|plein|kade|ulica)\s?\d{1,4}(?:\s?[a-z]\b)?",
    )
});
/// "Berliner Platz 2", "Unter den Linden 77" is beyond this.
static GERMAN_TWO_WORD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b[\p{Lu}][\p{L}]+\s+(?:Straße|Strasse|Str\.|Weg|Platz|Gasse|Allee|Ring|Damm|Chaussee|Markt|Ufer)\s?\d{1,4}[a-z]?\b",
    )
});
/// "1200 Highway 50".
static NUMBERED_ROAD: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b\d{1,5}\s+(?:highway|hwy|state\s+route|route|county\s+road|farm\s+road|us)\s+\d{1,4}\b",
    )
});
/// UK postcodes (space optional when upper case).
static UK_POSTCODE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:[A-Z]{1,2}\d[A-Z\d]?\s+\d[ABD-HJLNP-UW-Z]{2})\b|\b(?-i:[A-Z]{1,2}\d[A-Z\d]?\d[ABD-HJLNP-UW-Z]{2})\b",
    )
});
static ORDINAL: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\d(?:st|nd|rd|th)$"));
/// US ZIP codes after a state.
static US_ZIP: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"\b(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|PR),?\s+\d{5}(?:-\d{4})?\b",
    )
});
/// A postcode or ZIP code said to be one: "my zip is 90210", "postcode: 75001".
static LABELLED_POSTCODE: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"(?i)\b(?:zip(?:\s?code)?|post\s?code|postal\s+code|plz)\s*(?:is|:|=)?\s*([A-Z0-9]{2,5}(?:[ -][A-Z0-9]{3,4})?)\b",
    )
});
/// Flat and apartment numbers: alone for flat/apt, before an address for unit/suite.
static FLAT: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?i)\b(?:flat|apt\.?|apartment)\s*#?\s*\d{1,4}[a-z]?\b"));
static UNIT_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?i)\b(?:unit|suite|ste\.?|floor|fl\.?|building|bldg\.?)\s*#?\s*\d{1,4}[a-z]?\s*,?\s*$")
});
/// A European postcode and town after an address: ", 10115 Berlin".
static EU_POSTCODE_AFTER: LazyLock<Regex> =
    LazyLock::new(|| re(r"^\s*,?\s*((?:[A-Z]{1,2}-)?\d{4,5})\s+\p{Lu}\p{L}+"));

fn english_order(text: &str, spans: &mut Vec<Span>) {
    for m in HOUSE_NUMBER.find_iter(text) {
        let before = &text[..m.start()];
        // "1.5 km", "$3", "1,250" — but a list comma ("Flat 3, 27 …") is fine.
        let digit_comma = before
            .strip_suffix(',')
            .is_some_and(|b| b.ends_with(|c: char| c.is_ascii_digit()));
        if digit_comma || before.ends_with(['.', ':', '$', '€', '£', '/', '-']) {
            continue;
        }
        let mut at = m.end();
        let mut names = 0;
        let mut capitalised = true;
        let mut first = true;
        while names <= 4 {
            let Some(w) = WORD.captures(&text[at..]) else {
                break;
            };
            let word = w.get(1).expect("group");
            let token = word.as_str().trim_end_matches('.');
            let lower = token.to_lowercase();
            let word_end = at + word.end();
            if names >= 1 && STREET_TYPES.contains(&lower.as_str()) {
                let weak = WEAK_STREET_TYPES.contains(&lower.as_str());
                let proper = token.chars().next().is_some_and(char::is_uppercase) && capitalised;
                if !weak || proper {
                    let mut end = if word.as_str().ends_with('.') && lower.len() <= 4 {
                        word_end
                    } else {
                        at + word.start() + token.len()
                    };
                    // "Harbour View Way": a second street word right after the first.
                    if let Some(next) = WORD.captures(&text[end..]) {
                        let next = next.get(1).expect("group");
                        let t = next.as_str().trim_end_matches('.');
                        if next.start() == 1
                            && STREET_TYPES.contains(&t.to_lowercase().as_str())
                            && t.starts_with(char::is_uppercase)
                        {
                            end += next.start() + t.len();
                        }
                    }
                    if let Some(d) = DIRECTION.find(&text[end..]) {
                        end += d.end();
                    }
                    push(spans, Kind::Address, m.start(), end);
                    unit_and_postcode(text, m.start(), end, spans);
                    break;
                }
            }
            if NOT_IN_STREET.contains(&lower.as_str()) && !(first && lower == "the") {
                break;
            }
            if text[at..at + word.start()].contains(',') {
                break;
            }
            if !token
                .chars()
                .next()
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit())
            {
                capitalised = false;
            }
            first = false;
            names += 1;
            at = word_end;
        }
    }
    for m in NUMBERED_ROAD.find_iter(text) {
        push(spans, Kind::Address, m.start(), m.end());
    }
}

/// Extends an address to a flat/unit number before it and a postcode after it.
fn unit_and_postcode(text: &str, start: usize, end: usize, spans: &mut Vec<Span>) {
    if let Some(u) = UNIT_BEFORE.find(&text[..start]) {
        push(
            spans,
            Kind::Address,
            u.start(),
            u.start() + text[u.start()..start].trim_end_matches([',', ' ']).len(),
        );
    }
    if let Some(c) = EU_POSTCODE_AFTER.captures(&text[end..]) {
        let p = c.get(1).expect("group");
        push(spans, Kind::Address, end + p.start(), end + p.end());
    }
}

fn addresses(text: &str, spans: &mut Vec<Span>) {
    english_order(text, spans);
    for regex in [
        &*ROMANCE_NUMBER_FIRST,
        &*ROMANCE_TYPE_FIRST,
        &*COMPOUND_STREET,
        &*GERMAN_TWO_WORD,
    ] {
        for m in regex.find_iter(text) {
            push(spans, Kind::Address, m.start(), m.end());
            unit_and_postcode(text, m.start(), m.end(), spans);
        }
    }
    for m in UK_POSTCODE.find_iter(text) {
        if !ORDINAL.is_match(m.as_str()) {
            push(spans, Kind::Address, m.start(), m.end());
        }
    }
    for m in US_ZIP.find_iter(text) {
        push(spans, Kind::Address, m.start(), m.end());
    }
    for m in FLAT.find_iter(text) {
        push(spans, Kind::Address, m.start(), m.end());
    }
    for caps in LABELLED_POSTCODE.captures_iter(text) {
        let v = caps.get(1).expect("group");
        if v.as_str().bytes().any(|b| b.is_ascii_digit()) {
            push(spans, Kind::Address, v.start(), v.end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_threshold_separates_keys_from_repetition() {
        let keys = [
            "sk_live_abcdefghij1234567890ABCD",
            "4eC39HqLyjWDarjtT1zdp7dc",
            "Kq93nVz0Lm2Xp7Rw4Ty8Ub1",
            "a8f5f167f44f4964e6c998dee827110c",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
            "c2lnbmF0dXJlc2lnbmF0dXJl",
            "AKIA1234567890ABCDEF",
        ];
        let not_keys = [
            "aaaaaaaaaaaaaaaaaaaa1111",
            "00000000000000000001ab",
            "ababababababababab12",
            "x1x1x1x1x1x1x1x1x1x1x1",
            "hunter2hunter2hunter2",
        ];
        let lowest_key = keys.iter().map(|k| entropy(k)).fold(f64::MAX, f64::min);
        let highest_other = not_keys.iter().map(|k| entropy(k)).fold(0.0, f64::max);
        println!("entropy: keys from {lowest_key:.2} bits/char, repetitive strings up to {highest_other:.2}; threshold {ENTROPY_BITS}");
        assert!(highest_other < ENTROPY_BITS && ENTROPY_BITS < lowest_key);
        for key in keys {
            assert!(looks_random(key), "{key}");
        }
        for word in [
            "ThisIsAVeryLongName2",
            "covid-19-vaccination-centre",
            "user_profile_settings_v2",
            "hunter2hunter2hunter2",
            "/downloads/setup-2024-final",
        ] {
            assert!(!looks_random(word), "{word}");
        }
    }
}
