//! `roxy memory ...` and `roxy cache ...`: the memory store from the command line.

use anyhow::{Context, Result};
use clap::Subcommand;
use roxy::config::Config;
use roxy::memory::{self, CacheKind, ResponseCache, SearchFilter, Session, Store, TurnRecord};
use roxy::paths::Paths;
use roxy::presets::MemoryInfo;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum MemoryCommand {
    /// Search the conversation history (every word, else any word), re-ranked by meaning when
    /// the MiniLM model is installed; best match first.
    Search {
        query: String,
        /// Rank by words only (BM25), without the embedding model.
        #[arg(long)]
        words: bool,
        /// Only turns from the last N days.
        #[arg(long)]
        days: Option<u32>,
        /// Only turns on or after this day (YYYY-MM-DD, UTC).
        #[arg(long, value_parser = parse_day)]
        since: Option<i64>,
        /// Only turns on or before this day (YYYY-MM-DD, UTC).
        #[arg(long, value_parser = parse_day)]
        until: Option<i64>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// The most recent turns, oldest first.
    History {
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Remember a fact ("my sister's birthday is June 3rd"); saying it again merges it.
    Remember {
        text: String,
        #[arg(long)]
        json: bool,
    },
    /// Facts related to a question, by meaning (MiniLM) and words, most relevant first.
    Recall {
        query: String,
        #[arg(long, default_value_t = 5)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// List every remembered fact.
    Facts {
        #[arg(long)]
        json: bool,
    },
    /// Forget the facts containing all these words (or the one with --id).
    Forget {
        #[arg(required_unless_present = "id")]
        text: Option<String>,
        #[arg(long, conflicts_with = "text")]
        id: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// Delete the history and facts (the cache is `roxy cache clear`).
    Clear {
        /// Really delete; without it, only says what would go.
        #[arg(long)]
        yes: bool,
    },
    /// Write every turn and fact to a JSON file.
    Export { file: std::path::PathBuf },
    /// Where the database is, its size, schema version and row counts; checks its integrity.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Measure search, recall, insert and cache latency on throwaway stores of growing size.
    Bench {
        /// Stored turns (and facts) per run, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000, 100_000])]
        sizes: Vec<usize>,
        #[arg(long, default_value_t = 300)]
        queries: usize,
        #[arg(long)]
        json: bool,
        /// Keep the generated databases in this directory (for inspecting queries) instead of
        /// a temporary one that is removed.
        #[arg(long)]
        keep_in: Option<std::path::PathBuf>,
    },
    /// Test hook: record COUNT turns, one transaction each, printing `ack <id>` after each
    /// commit (the crash-safety test kills this mid-burst).
    #[command(hide = true)]
    WriteBurst {
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
    },
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Entries, bytes, hits, misses and hit rate per kind.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Delete expired entries.
    Purge {
        #[arg(long)]
        json: bool,
    },
    /// Delete every entry and reset the counters.
    Clear,
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    // A reader that stops early (`| head`) is not an error.
    match writeln!(std::io::stdout().lock(), "{}", serde_json::to_string_pretty(value)?) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Opens the user's store; an unreadable file is moved aside (never deleted) with a warning.
fn open(paths: &Paths) -> Result<Arc<Store>> {
    let path = paths.data_dir.join(memory::DB_FILE_NAME);
    let opened = Store::open_or_recover(&path)?;
    if let Some(aside) = &opened.moved_aside {
        eprintln!(
            "warning: {} was unreadable; it is kept as {} and a fresh memory store was started",
            path.display(),
            aside.display()
        );
    }
    Ok(Arc::new(opened.store))
}

/// The sentence embedder for recall by meaning; without it (model not installed) facts are
/// found by their words, and the reason is printed once.
fn embedder(paths: &Paths) -> Option<memory::MiniLm> {
    match memory::MiniLm::load(&paths.models_dir) {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("note: facts are matched by words only: {e}");
            None
        }
    }
}

fn day_ms(days: u32) -> i64 {
    days as i64 * 24 * 3600 * 1000
}

fn when(at_ms: i64) -> String {
    // Seconds are enough to tell turns apart; the JSON has the exact value.
    let secs = at_ms / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

/// `YYYY-MM-DD` → milliseconds at 00:00 UTC that day.
fn parse_day(text: &str) -> Result<i64, String> {
    let bad = || format!("{text:?} is not a date; write it as YYYY-MM-DD, e.g. 2024-06-03");
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [y, m, d] = parts[..] else { return Err(bad()) };
    let (y, m, d): (i64, u32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let days = days_from_civil(y, m, d);
    // Round-tripping rejects the 31st of February and friends.
    if !(1..=12).contains(&m) || civil_from_days(days) != (y, m, d) {
        return Err(bad());
    }
    Ok(days * 86_400_000)
}

/// (year, month, day) → days since 1970-01-01, proleptic Gregorian (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + (m <= 2) as i64, m, d)
}

pub fn memory_command(command: MemoryCommand, paths: &Paths) -> Result<ExitCode> {
    if let MemoryCommand::Bench { sizes, queries, json, keep_in } = command {
        let scratch = keep_in.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("roxy-memory-bench-{}", std::process::id())));
        let model = embedder(paths);
        let model = model.map(|m| Arc::new(m) as Arc<dyn memory::Embedder>);
        let report = memory::bench(&scratch, &sizes, queries.max(1), keep_in.is_some(), model, |step| {
            if !json {
                eprintln!("{step}");
            }
        });
        if keep_in.is_none() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        let report = report?;
        if json {
            print_json(&report)?;
        } else {
            print!("{}", memory::render_bench(&report));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let store = open(paths)?;
    match command {
        MemoryCommand::Search { query, words, days, since, until, limit, json } => {
            let since_ms = [days.map(|d| memory::now_ms() - day_ms(d)), since].into_iter().flatten().max();
            // `--until` names a whole day: up to its last millisecond.
            let filter = SearchFilter { since_ms, until_ms: until.map(|u| u + day_ms(1) - 1), limit };
            let model = if words { None } else { embedder(paths) };
            let hits = match &model {
                Some(model) => {
                    // Recent turns first; older ones are embedded a batch per search.
                    store.history().embed_missing(model, 200)?;
                    store.history().search_by_meaning(&query, &filter, model)?
                }
                None => store.history().search(&query, &filter)?,
            };
            if json {
                print_json(&hits)?;
            } else if hits.is_empty() {
                println!("no turn matches {query:?}");
            } else {
                for h in hits {
                    println!("#{} {}  you: {}\n{:>22}roxy: {}", h.turn.id, when(h.turn.at_ms), h.turn.record.user_text, "", h.turn.record.reply_text);
                }
            }
        }
        MemoryCommand::History { limit, json } => {
            let turns = store.history().recent(None, limit)?;
            if json {
                print_json(&turns)?;
            } else {
                for t in turns {
                    println!("#{} {}  you: {}\n{:>22}roxy: {}", t.id, when(t.at_ms), t.record.user_text, "", t.record.reply_text);
                }
            }
        }
        MemoryCommand::Remember { text, json } => {
            let embedder = embedder(paths);
            let facts = match &embedder {
                Some(e) => store.facts_by_meaning(e),
                None => store.facts(),
            };
            facts.embed_missing()?;
            let done = facts.remember(&text)?;
            if json {
                print_json(&done)?;
            } else if let (true, Some(before)) = (done.merged, &done.replaced) {
                println!("updated (fact #{}, said {} times): {before} -> {}", done.fact.id, done.fact.mentions, done.fact.text);
            } else if done.merged {
                println!("already known (fact #{}, said {} times): {}", done.fact.id, done.fact.mentions, done.fact.text);
            } else {
                println!("remembered (fact #{}): {}", done.fact.id, done.fact.text);
            }
        }
        MemoryCommand::Recall { query, limit, json } => {
            let embedder = embedder(paths);
            let facts = match &embedder {
                Some(e) => store.facts_by_meaning(e),
                None => store.facts(),
            };
            facts.embed_missing()?;
            let found = facts.recall(&query, limit)?;
            if json {
                let rows: Vec<_> = found.iter().map(|(f, score)| serde_json::json!({ "fact": f, "score": score })).collect();
                print_json(&rows)?;
            } else if found.is_empty() {
                println!("no fact relates to {query:?}");
            } else {
                for (f, _) in found {
                    println!("#{} {}", f.id, f.text);
                }
            }
        }
        MemoryCommand::Facts { json } => {
            let facts = store.facts().list()?;
            if json {
                print_json(&facts)?;
            } else {
                for f in facts {
                    println!("#{} {}  {}", f.id, when(f.updated_at_ms), f.text);
                }
            }
        }
        MemoryCommand::Forget { text, id, json } => {
            let gone = match (id, text) {
                (Some(id), _) => store.facts().forget_id(id)?.into_iter().collect(),
                (None, Some(text)) => store.facts().forget_matching(&text)?,
                (None, None) => unreachable!("clap requires text or --id"),
            };
            if json {
                print_json(&gone)?;
            } else if gone.is_empty() {
                println!("no fact matched; nothing forgotten");
            } else {
                for f in gone {
                    println!("forgot #{} {}", f.id, f.text);
                }
            }
        }
        MemoryCommand::Clear { yes } => {
            let (turns, facts) = (store.history().count()?, store.facts().count()?);
            if !yes {
                println!("would delete {turns} turns and {facts} facts from {}; run again with --yes to do it (`roxy memory export FILE` first keeps a copy)", store.path().display());
                return Ok(ExitCode::FAILURE);
            }
            store.history().clear()?;
            store.facts().clear()?;
            println!("deleted {turns} turns and {facts} facts");
        }
        MemoryCommand::Export { file } => {
            let (turns, facts) = memory::export_json(&store, &file)?;
            println!("exported {turns} turns and {facts} facts to {}", file.display());
        }
        MemoryCommand::Stats { json } => {
            let problems = store.integrity_check()?;
            let stats = serde_json::json!({
                "path": store.path(),
                "bytes": store.disk_bytes(),
                "schema_version": store.schema_version()?,
                "turns": store.history().count()?,
                "facts": store.facts().count()?,
                "integrity": if problems.is_empty() { vec!["ok".to_string()] } else { problems.clone() },
            });
            if json {
                print_json(&stats)?;
            } else {
                println!("database  {}", store.path().display());
                println!("size      {:.1} MB", store.disk_bytes() as f64 / 1e6);
                println!("schema    v{}", stats["schema_version"]);
                println!("turns     {}", stats["turns"]);
                println!("facts     {}", stats["facts"]);
                println!("integrity {}", if problems.is_empty() { "ok".to_string() } else { problems.join("; ") });
            }
            if !problems.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        MemoryCommand::WriteBurst { count } => {
            let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
            let mut session = Session::start(store, config.memory.session_turns)?;
            let mut out = std::io::stdout().lock();
            for i in 0..count {
                let turn = TurnRecord { user_text: format!("burst question {i}"), reply_text: format!("burst answer {i} {}", "x".repeat(200)), route: "test".into(), ..Default::default() };
                let id = session.record(turn)?.id;
                // Printed only after the commit returned: every `ack` line is a promise.
                writeln!(out, "ack {id}").and_then(|_| out.flush()).context("writing to stdout")?;
            }
        }
        MemoryCommand::Bench { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cache_command(command: CacheCommand, paths: &Paths) -> Result<ExitCode> {
    let config = Config::load(&paths.config_file, MemoryInfo::detect())?.config;
    let cache = ResponseCache::new(open(paths)?, &config.memory);
    match command {
        CacheCommand::Stats { json } => {
            let stats = cache.stats()?;
            if json {
                print_json(&stats)?;
            } else {
                const MIB: f64 = 1024.0 * 1024.0;
                println!("{:<10} {:>8} {:>10} {:>8} {:>8} {:>8}", "kind", "entries", "MiB", "hits", "misses", "hit rate");
                for k in &stats.kinds {
                    let name = match k.kind {
                        CacheKind::LlmText => "llm",
                        CacheKind::TtsAudio => "tts",
                        CacheKind::Skill => "skill",
                    };
                    println!("{name:<10} {:>8} {:>10.2} {:>8} {:>8} {:>7.1}%", k.entries, k.bytes as f64 / MIB, k.hits, k.misses, k.hit_rate * 100.0);
                }
                println!("total {:.2} MiB of {:.0} MiB (memory.cache_max_mb)", stats.total_bytes as f64 / MIB, stats.max_bytes as f64 / MIB);
            }
        }
        CacheCommand::Purge { json } => {
            let n = cache.purge_expired()?;
            if json {
                print_json(&serde_json::json!({ "purged": n }))?;
            } else {
                println!("purged {n} expired entries");
            }
        }
        CacheCommand::Clear => println!("deleted {} entries", cache.clear()?),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        assert_eq!(super::when(0), "1970-01-01 00:00");
        assert_eq!(super::when(1_709_210_096_000), "2024-02-29 12:34");
        assert_eq!(super::parse_day("2024-02-29"), Ok(1_709_164_800_000));
        assert_eq!(super::parse_day("1970-01-01"), Ok(0));
        assert!(super::parse_day("2023-02-29").unwrap_err().contains("YYYY-MM-DD"));
        assert!(super::parse_day("yesterday").is_err());
    }
}
