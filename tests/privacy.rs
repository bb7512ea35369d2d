//! Recall and false redactions of the privacy gateway, measured on `tests/data/pii/`:
//! `heldout.tsv` (written before any tuning, never tuned on), `dev.tsv` (looked at while
//! tuning) and `ordinary.tsv` (sentences that must pass unchanged). Figures per kind:
//! `cargo test --workspace --test privacy -- --nocapture`.
//!
//! A row is kind, text, then the substrings that must not survive. One "survives" if it is in
//! the output, or if any of its words with a digit (three characters or more) still is, so a
//! half-redacted phone number counts as leaked. Rows of kind `fact` are a stored fact: the
//! gateway is built with `names_in` over it and the fact itself is redacted (it goes to the
//! cloud in the system prompt). Rows of kind `none` must come out unchanged.

use roxy::brain::privacy::{names_in, Gateway, Redactions};
use std::collections::BTreeMap;
use std::time::Instant;

struct Row {
    kind: String,
    text: String,
    secrets: Vec<String>,
}

fn load(tsv: &str) -> Vec<Row> {
    tsv.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut fields = l.split('\t');
            let kind = fields.next().unwrap_or_default().to_string();
            let text = fields.next().unwrap_or_default().to_string();
            let secrets = fields
                .filter(|f| !f.is_empty())
                .map(str::to_string)
                .collect();
            Row {
                kind,
                text,
                secrets,
            }
        })
        .collect()
}

fn leaked(out: &str, secret: &str) -> bool {
    if out.contains(secret) {
        return true;
    }
    let words: Vec<&str> = out.split(|c: char| !c.is_alphanumeric()).collect();
    secret
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 3 && t.chars().any(|c| c.is_ascii_digit()))
        .any(|t| words.contains(&t))
}

fn redact(row: &Row) -> String {
    let names = if row.kind == "fact" {
        names_in(std::iter::once(row.text.as_str()))
    } else {
        Vec::new()
    };
    Gateway::new(&names).redact(&row.text, &mut Redactions::default())
}

#[derive(Default)]
struct Tally {
    rows: usize,
    passed: usize,
}

/// Recall per kind (rows with nothing leaked), false redactions of `none` rows, and the
/// failures (shown only when `show`).
fn measure(name: &str, rows: &[Row], show: bool) -> (BTreeMap<String, Tally>, usize, usize) {
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let (mut none_rows, mut changed) = (0, 0);
    for row in rows {
        let out = redact(row);
        if row.kind == "none" {
            none_rows += 1;
            if out != row.text {
                changed += 1;
                if show {
                    println!("  {name}: false redaction: {:?} -> {:?}", row.text, out);
                }
            }
            continue;
        }
        let tally = by_kind.entry(row.kind.clone()).or_default();
        tally.rows += 1;
        let leaks: Vec<&String> = row.secrets.iter().filter(|s| leaked(&out, s)).collect();
        if leaks.is_empty() {
            tally.passed += 1;
        } else if show {
            println!(
                "  {name}: {} leaked {:?}: {:?} -> {:?}",
                row.kind, leaks, row.text, out
            );
        }
    }
    (by_kind, none_rows, changed)
}

fn report(name: &str, by_kind: &BTreeMap<String, Tally>) -> f64 {
    let (mut rows, mut passed) = (0, 0);
    for (kind, t) in by_kind {
        println!(
            "{name:>8} {kind:>12}: {:>3}/{:<3} = {:5.1} %",
            t.passed,
            t.rows,
            100.0 * t.passed as f64 / t.rows as f64
        );
        rows += t.rows;
        passed += t.passed;
    }
    let recall = passed as f64 / rows as f64;
    println!(
        "{name:>8} {:>12}: {passed:>3}/{rows:<3} = {:5.1} %",
        "all",
        100.0 * recall
    );
    recall
}

/// Set ROXY_PII_SHOW=1 to list the held-out and ordinary failures too (the dev ones always are).
fn show_all() -> bool {
    std::env::var("ROXY_PII_SHOW").is_ok_and(|v| v == "1")
}

#[test]
fn recall_on_the_dev_set() {
    let rows = load(include_str!("data/pii/dev.tsv"));
    let (by_kind, none_rows, changed) = measure("dev", &rows, true);
    let recall = report("dev", &by_kind);
    println!(
        "{:>8} {:>12}: {changed}/{none_rows} ordinary rows changed",
        "dev", "false"
    );
    assert!(rows.len() >= 150, "{}", rows.len());
    assert!(recall >= 0.99, "dev recall {recall:.3}");
    assert!(changed <= 2, "{changed} dev ordinary rows changed");
}

#[test]
fn recall_on_the_heldout_set_is_at_least_99_percent() {
    let rows = load(include_str!("data/pii/heldout.tsv"));
    let (by_kind, _, _) = measure("heldout", &rows, show_all());
    let recall = report("heldout", &by_kind);
    assert!(rows.len() >= 300, "{}", rows.len());
    assert!(recall >= 0.99, "held-out recall {recall:.3}");
}

#[test]
fn ordinary_sentences_pass_unchanged() {
    let rows: Vec<Row> = include_str!("data/pii/ordinary.tsv")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| Row {
            kind: "none".into(),
            text: l.to_string(),
            secrets: Vec::new(),
        })
        .collect();
    let (_, none_rows, changed) = measure("ordinary", &rows, show_all());
    println!("ordinary false redactions: {changed}/{none_rows} sentences changed");
    assert!(none_rows >= 100);
    assert!(
        changed <= 3,
        "{changed} of {none_rows} ordinary sentences were changed"
    );
}

/// Milliseconds per KB for `prompt`: with numbers never seen before (the last digit of every
/// digit group shifted: same countries and area codes, new numbers), as in a new conversation,
/// and for the same text again (the history is re-sent every turn; phone verdicts are kept).
fn ms_per_kb(gateway: &Gateway, prompt: &str) -> (f64, f64) {
    let kb = prompt.len() as f64 / 1024.0;
    let variants: Vec<String> = (1..=9u8)
        .map(|k| {
            let chars: Vec<char> = prompt.chars().collect();
            (0..chars.len())
                .map(|i| {
                    let c = chars[i];
                    let last =
                        c.is_ascii_digit() && !chars.get(i + 1).is_some_and(char::is_ascii_digit);
                    if last {
                        (b'0' + (c as u8 - b'0' + k) % 10) as char
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect();
    let t = Instant::now();
    for v in &variants {
        std::hint::black_box(gateway.redact(v, &mut Redactions::default()));
    }
    let cold = t.elapsed().as_secs_f64() * 1000.0 / variants.len() as f64 / kb;
    let runs = 20;
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(gateway.redact(prompt, &mut Redactions::default()));
    }
    (cold, t.elapsed().as_secs_f64() * 1000.0 / runs as f64 / kb)
}

#[test]
fn the_system_prompt_and_the_facts_header_pass_unchanged() {
    let facts = ["Anna is my sister", "the alarm code is 4471"];
    let gateway = Gateway::new(&names_in(facts.iter().copied()));
    let prompt = format!(
        "{}\nThings the user has told you before:\n- {}\n- {}",
        roxy::llm::SYSTEM_PROMPT,
        facts[0],
        facts[1]
    );
    let out = gateway.redact(&prompt, &mut Redactions::default());
    assert!(
        out.starts_with(&format!(
            "{}\nThings the user has told you before:\n- ",
            roxy::llm::SYSTEM_PROMPT
        )),
        "{out}"
    );
    assert!(!out.contains("Anna") && !out.contains("4471"), "{out}");
}

#[test]
fn redaction_is_fast() {
    let dev = load(include_str!("data/pii/dev.tsv"));
    let ordinary: Vec<&str> = include_str!("data/pii/ordinary.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    let fill = |texts: &mut dyn Iterator<Item = String>| {
        let mut prompt = String::new();
        for t in texts {
            if prompt.len() >= 1024 {
                break;
            }
            prompt.push_str(&t);
            prompt.push_str(". ");
        }
        prompt
    };
    // Dense: the dev set's rows back to back (some 30 phone numbers from 15 countries per KB).
    let dense = fill(&mut dev.iter().map(|r| r.text.clone()).cycle());
    // Typical: ordinary sentences with a piece of personal data every fourth sentence.
    let mut pii = dev
        .iter()
        .filter(|r| r.kind != "none")
        .map(|r| r.text.clone())
        .cycle();
    let typical = fill(&mut ordinary.iter().enumerate().flat_map(|(i, s)| {
        let mut v = vec![s.to_string()];
        if i % 4 == 3 {
            v.push(pii.next().unwrap_or_default());
        }
        v
    }));
    let gateway = Gateway::new(&["Anna".into(), "Bob Miller".into(), "Will".into()]);
    gateway.redact(&dense, &mut Redactions::default()); // patterns, lists, phone metadata
    let (dense_cold, dense_warm) = ms_per_kb(&gateway, &dense);
    let (typical_cold, typical_warm) = ms_per_kb(&gateway, &typical);
    println!("redaction, typical prompt: {typical_cold:.2} ms per KB with unseen numbers, {typical_warm:.2} ms per KB again");
    println!("redaction, dense prompt:   {dense_cold:.2} ms per KB with unseen numbers, {dense_warm:.2} ms per KB again");
    // Generous bounds: test builds of this crate are unoptimised, and CI shares the CPU.
    assert!(
        typical_cold < 30.0 && dense_cold < 100.0,
        "{typical_cold:.1} / {dense_cold:.1} ms per KB"
    );
}

/// A second author's probe (`probe.tsv`), written after the patterns were done without reading
/// them: the figure that says how the gateway does on phrasings nobody tuned for.
#[test]
fn recall_on_a_second_authors_probe() {
    let rows = load(include_str!("data/pii/probe.tsv"));
    let (by_kind, _, _) = measure("probe", &rows, true);
    let recall = report("probe", &by_kind);
    assert!(rows.len() >= 35, "{}", rows.len());
    assert!(recall >= 0.85, "probe recall {recall:.3}");
}
