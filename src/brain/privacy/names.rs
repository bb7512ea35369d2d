//! People's names: those the user told Roxy about (from stored facts) and those found in the
//! request itself with a first-name list, cues ("my sister …", "tell …", "Dr …") and the
//! shapes of surnames (McDonald, O'Brien, DiMaggio). See WORDLISTS.md for the lists.

use super::{Kind, Span};
use regex::Regex;
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

fn lines(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// Given names, lower case.
static FIRST_NAMES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    lines(include_str!("first_names.txt"))
        .map(str::to_lowercase)
        .collect()
});
/// Frequent surnames, lower case.
static SURNAMES: LazyLock<HashSet<String>> = LazyLock::new(|| {
    lines(include_str!("surnames.txt"))
        .map(str::to_lowercase)
        .collect()
});
/// Common lower-case English words.
static COMMON: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| lines(include_str!("common_words.txt")).collect());

/// Capitalised words that are never names: function words, pronouns, days, months, greetings,
/// titles and kinship words (those are cues, handled apart).
const STOP: &[&str] = &[
    "i",
    "i'm",
    "i've",
    "i'll",
    "i'd",
    "a",
    "an",
    "the",
    "this",
    "that",
    "these",
    "those",
    "my",
    "your",
    "his",
    "her",
    "our",
    "their",
    "its",
    "we",
    "you",
    "he",
    "she",
    "they",
    "it",
    "me",
    "us",
    "him",
    "them",
    "and",
    "or",
    "but",
    "if",
    "so",
    "then",
    "when",
    "what",
    "who",
    "whom",
    "why",
    "where",
    "how",
    "which",
    "is",
    "are",
    "was",
    "were",
    "be",
    "do",
    "does",
    "did",
    "can",
    "could",
    "would",
    "should",
    "shall",
    "must",
    "might",
    "may",
    "will",
    "have",
    "has",
    "had",
    "not",
    "no",
    "yes",
    "ok",
    "okay",
    "please",
    "thanks",
    "thank",
    "hi",
    "hey",
    "hello",
    "dear",
    "yo",
    "bye",
    "goodbye",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "today",
    "tomorrow",
    "tonight",
    "yesterday",
    "christmas",
    "easter",
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "prof",
    "sir",
    "madam",
    "roxy",
    "in",
    "on",
    "at",
    "to",
    "for",
    "from",
    "with",
    "by",
    "of",
    "about",
    "after",
    "before",
    "also",
    "just",
    "there",
    "here",
    "all",
    "some",
    "any",
    "every",
    "each",
    "let",
    "let's",
    "set",
    "add",
    "play",
    "turn",
    "open",
    "remind",
    "god",
    "lord",
    "jesus",
    "english",
    "french",
    "german",
    "spanish",
    "italian",
];

/// Titles: the capitalised word after one is a name.
const TITLES: &[&str] = &[
    "mr",
    "mrs",
    "ms",
    "miss",
    "mx",
    "dr",
    "doctor",
    "prof",
    "professor",
    "sir",
    "dame",
    "lady",
    "lord",
    "aunt",
    "auntie",
    "uncle",
    "cousin",
    "grandma",
    "grandpa",
    "nana",
    "granny",
    "father",
    "sister",
    "brother",
    "rev",
    "reverend",
    "captain",
    "officer",
    "coach",
    "judge",
    "señor",
    "señora",
    "herr",
    "frau",
    "madame",
    "monsieur",
    "mme",
    "mlle",
    "signor",
    "signora",
];

/// "my sister Anna", "our neighbour Kwame", "colleague Ngozi".
const KIN: &[&str] = &[
    "sister",
    "brother",
    "mom",
    "mum",
    "mother",
    "mommy",
    "mummy",
    "dad",
    "father",
    "daddy",
    "wife",
    "husband",
    "son",
    "daughter",
    "friend",
    "boss",
    "colleague",
    "partner",
    "girlfriend",
    "boyfriend",
    "aunt",
    "auntie",
    "uncle",
    "cousin",
    "niece",
    "nephew",
    "grandma",
    "granny",
    "grandmother",
    "grandpa",
    "grandfather",
    "grandson",
    "granddaughter",
    "neighbour",
    "neighbor",
    "roommate",
    "flatmate",
    "housemate",
    "teacher",
    "tutor",
    "doctor",
    "dentist",
    "manager",
    "coworker",
    "co-worker",
    "fiancé",
    "fiancée",
    "fiance",
    "fiancee",
    "kid",
    "child",
    "baby",
    "stepmom",
    "stepmum",
    "stepdad",
    "stepson",
    "stepdaughter",
    "landlord",
    "landlady",
    "lawyer",
    "accountant",
    "therapist",
    "mate",
    "pal",
    "buddy",
    "bestie",
    "classmate",
    "nanny",
    "babysitter",
    "cleaner",
    "plumber",
    "assistant",
    "client",
    "employee",
    "supervisor",
    "ex",
    "spouse",
    "twin",
    "godmother",
    "godfather",
    "in-law",
    "sibling",
    "parents",
    "kids",
    "children",
    "mentor",
    "gp",
    "named",
    "called",
    "nicknamed",
    "dear",
];

/// Verbs whose object is usually a person: "tell Priya", "call Oluwaseun", "ask Zoë".
const VERB_CUES: &[&str] = &[
    "tell",
    "told",
    "ask",
    "asked",
    "text",
    "texted",
    "email",
    "emailed",
    "message",
    "messaged",
    "call",
    "ring",
    "phone",
    "remind",
    "invite",
    "invited",
    "meet",
    "met",
    "meeting",
    "thank",
    "thanked",
    "send",
    "sent",
    "ping",
    "pinged",
    "visit",
    "visited",
    "congratulate",
    "wish",
    "greet",
    "pay",
    "paid",
    "introduce",
    "owe",
    "forward",
    "cc",
    "dm",
    "fetch",
    "pick",
    "hug",
    "kiss",
    "marry",
    "married",
    "dating",
    "date",
    "love",
    "miss",
    "see",
    "saw",
    "contact",
    "reply",
    "answer",
    "for",
    "with",
    "to",
    "from",
];
/// Cues that are too weak alone ("with", "to", "for", "from", "see"): they count for listed
/// first names that are also ordinary words, not for unknown words.
const WEAK_VERB_CUES: &[&str] = &[
    "for", "with", "to", "from", "see", "saw", "love", "miss", "date", "answer", "pick", "fetch",
];

/// Verbs after an unknown sentence-initial word that make it a person: "Jürgen wants …".
const PERSON_VERBS: &[&str] = &[
    "said",
    "says",
    "told",
    "tells",
    "asked",
    "asks",
    "wants",
    "wanted",
    "called",
    "calls",
    "texted",
    "emailed",
    "messaged",
    "replied",
    "thinks",
    "thought",
    "sent",
    "sends",
    "mentioned",
    "promised",
    "invited",
    "owes",
    "lent",
    "needs",
    "booked",
    "moved",
    "left",
    "arrived",
    "wrote",
    "writes",
    "rang",
    "phoned",
    "cancelled",
    "canceled",
    "confirmed",
    "agreed",
    "suggested",
    "recommended",
    "loves",
    "likes",
    "hates",
    "works",
    "lives",
    "studies",
    "plays",
];

/// Listed first names that are also places: treated like ordinary words (they need a cue).
const PLACES: &[&str] = &[
    "paris",
    "sydney",
    "florence",
    "victoria",
    "charlotte",
    "jordan",
    "georgia",
    "virginia",
    "carolina",
    "austin",
    "dallas",
    "houston",
    "denver",
    "phoenix",
    "orlando",
    "savannah",
    "madison",
    "regina",
    "adelaide",
    "alexandria",
    "lincoln",
    "chelsea",
    "devon",
    "chester",
    "india",
    "kenya",
    "israel",
    "chad",
    "sierra",
    "salem",
    "troy",
    "eugene",
    "valencia",
    "verona",
    "vienna",
    "lorraine",
    "brittany",
    "siena",
    "roma",
    "milan",
    "washington",
    "jackson",
    "cleveland",
    "memphis",
    "nashville",
    "aurora",
    "augusta",
    "hamilton",
    "camden",
    "kingston",
    "preston",
    "darwin",
    "perth",
    "brisbane",
    "wellington",
    "nelson",
    "raleigh",
    "tyler",
    "marion",
    "asia",
    "africa",
    "america",
    "europe",
    "china",
    "jersey",
    "york",
    "hampton",
    "berkeley",
    "stanford",
    "harvard",
    "oxford",
    "cambridge",
    "yale",
    "princeton",
    "columbia",
    "trinity",
    "lourdes",
    "genesis",
    "exodus",
    "christian",
    "king",
    "queen",
    "prince",
    "princess",
    "duke",
    "earl",
    "baron",
    "bishop",
];

/// Capitalised words after which a name is part of a place: "Santa Monica", "Lake Louise".
const PLACE_PREFIXES: &[&str] = &[
    "san",
    "santa",
    "santo",
    "saint",
    "st",
    "ste",
    "lake",
    "mount",
    "mt",
    "port",
    "fort",
    "cape",
    "los",
    "las",
    "el",
    "new",
    "north",
    "south",
    "east",
    "west",
    "upper",
    "lower",
    "great",
    "little",
    "royal",
    "university",
    "college",
    "hotel",
    "hospital",
    "school",
    "church",
    "bank",
    "club",
    "street",
    "road",
    "avenue",
    "river",
    "bay",
    "isle",
];

/// Brands shaped like surnames.
const NOT_SURNAMES: &[&str] = &[
    "macbook",
    "macos",
    "mcafee",
    "macintosh",
    "maclaren",
    "mcflurry",
    "mcmuffin",
    "mcnugget",
    "mcnuggets",
    "mcchicken",
];

static WORDS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[\p{L}\p{M}](?:[\p{L}\p{M}'’-]*[\p{L}\p{M}])?").expect("valid pattern")
});

#[derive(Debug, Clone)]
struct Word<'a> {
    start: usize,
    /// Without a possessive "'s".
    end: usize,
    text: &'a str,
    lower: String,
    shape: Shape,
    sentence_start: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Lower,
    /// "Anna", "Anne-Marie", "Zoë".
    Capitalised,
    /// "McDonald", "MacLeod", "O'Brien", "D'Angelo".
    Clan,
    /// "DiMaggio", "LeBlanc", "VanDyke".
    InnerCapital,
    Other,
}

fn capitalised_part(part: &str) -> bool {
    let mut chars = part.chars();
    chars.next().is_some_and(char::is_uppercase)
        && chars.all(|c| c.is_lowercase() || c == '\u{0308}' || !c.is_alphabetic())
}

fn shape(word: &str) -> Shape {
    if word.chars().all(|c| !c.is_uppercase()) {
        return Shape::Lower;
    }
    if word.split('-').all(capitalised_part) {
        return Shape::Capitalised;
    }
    for prefix in ["Mc", "Mac", "O'", "O’", "D'", "D’"] {
        if let Some(rest) = word.strip_prefix(prefix) {
            if rest.chars().count() >= 2 && rest.split('-').all(capitalised_part) {
                return Shape::Clan;
            }
        }
    }
    for prefix in ["Di", "De", "Da", "La", "Le", "Van", "Von", "Fitz", "Du"] {
        if let Some(rest) = word.strip_prefix(prefix) {
            if rest.chars().count() >= 3 && capitalised_part(rest) {
                return Shape::InnerCapital;
            }
        }
    }
    Shape::Other
}

fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    for m in WORDS.find_iter(text) {
        let mut end = m.end();
        let mut t = m.as_str();
        for possessive in ["'s", "’s", "'", "’"] {
            if let Some(stem) = t.strip_suffix(possessive) {
                if !stem.is_empty() {
                    t = stem;
                    end = m.start() + t.len();
                    break;
                }
            }
        }
        let before = text[..m.start()].trim_end_matches(|c: char| {
            c.is_whitespace() || matches!(c, '"' | '“' | '‘' | '(' | '\'' | '*' | '-')
        });
        let sentence_start = before.is_empty() || before.ends_with(['.', '!', '?', ':', ';', '\n']);
        out.push(Word {
            start: m.start(),
            end,
            text: t,
            lower: t.to_lowercase(),
            shape: shape(t),
            sentence_start,
        });
    }
    out
}

/// Whether `lower` (lower case) is an ordinary English word.
/// Inflected forms count ("downloads", "booked", "settings").
pub(super) fn is_common_word(lower: &str) -> bool {
    COMMON.contains(lower)
        || ["s", "es", "ed", "d", "ing", "er", "ers", "ings"]
            .iter()
            .any(|suffix| {
                lower
                    .strip_suffix(suffix)
                    .is_some_and(|stem| stem.len() >= 3 && COMMON.contains(stem))
            })
}

fn is_common(lower: &str) -> bool {
    COMMON.contains(lower) || STOP.contains(&lower)
}

fn is_first_name(lower: &str) -> bool {
    FIRST_NAMES.contains(lower)
        || (lower.contains('-') && lower.split('-').all(|p| FIRST_NAMES.contains(p)))
}

/// A first name that is also an ordinary word or a place ("May", "Will", "Paris").
fn ambiguous(lower: &str) -> bool {
    is_common(lower) || PLACES.contains(&lower)
}

fn name_like(w: &Word) -> bool {
    matches!(
        w.shape,
        Shape::Capitalised | Shape::Clan | Shape::InnerCapital
    ) && w.text.chars().count() >= 2
}

/// What comes before word `i` that says a person follows.
fn cue_before(ws: &[Word], i: usize, text: &str) -> (bool, bool) {
    if i == 0 {
        return (false, false);
    }
    let prev = &ws[i - 1];
    // Only a space (or a title's full stop) between the two.
    let gap = &text[prev.end..ws[i].start];
    if !gap
        .trim_matches(|c: char| c.is_whitespace() || c == '.' || c == ',')
        .is_empty()
        || gap.len() > 3
    {
        return (false, false);
    }
    let p = prev.lower.as_str();
    let strong = TITLES.contains(&p)
        || (KIN.contains(&p) && !gap.contains(','))
        || (VERB_CUES.contains(&p) && !WEAK_VERB_CUES.contains(&p));
    let weak = WEAK_VERB_CUES.contains(&p) || p == "and" || p == "or" || p == "&";
    (strong, weak || strong)
}

fn blocked_before(ws: &[Word], i: usize, text: &str) -> bool {
    if i == 0 {
        return false;
    }
    let prev = &ws[i - 1];
    let gap = &text[prev.end..ws[i].start];
    if !gap.trim().is_empty() {
        return false;
    }
    let p = prev.lower.as_str();
    // "the Red Cross", "a Rose", "Santa Monica", "Victoria Station".
    matches!(p, "the" | "a" | "an" | "this" | "that") || PLACE_PREFIXES.contains(&p)
        // A capitalised word mid-sentence that is not itself a name or a title: part of a
        // longer proper noun ("Golden Gate", "Premier League").
        || (prev.shape == Shape::Capitalised && !prev.sentence_start && !TITLES.contains(&p) && !is_first_name(p) && !VERB_CUES.contains(&p))
}

/// A surname after a first name: capitalised, and a name or at least not an ordinary word.
fn surname_after(ws: &[Word], i: usize, text: &str) -> bool {
    let Some(next) = ws.get(i + 1) else {
        return false;
    };
    let gap = &text[ws[i].end..next.start];
    if gap != " " || ws[i].end != ws[i].start + ws[i].text.len() {
        return false;
    }
    let lower = next.lower.as_str();
    if STOP.contains(&lower) || NOT_SURNAMES.contains(&lower) || KIN.contains(&lower) {
        return false;
    }
    match next.shape {
        Shape::Clan | Shape::InnerCapital => true,
        Shape::Capitalised => {
            SURNAMES.contains(lower)
                || !is_common(lower)
                || (is_first_name(lower) && !ambiguous(lower))
        }
        _ => false,
    }
}

/// Known names (from facts), lower case → whether only the capitalised form counts.
pub(super) type Known = HashMap<String, bool>;

pub(super) fn known_from(names: &[String]) -> Known {
    let mut known = Known::new();
    for name in names {
        for part in name.split_whitespace() {
            let part = part.trim_matches(|c: char| !c.is_alphanumeric());
            let part = part
                .strip_suffix("'s")
                .or_else(|| part.strip_suffix("’s"))
                .unwrap_or(part);
            if part.chars().count() < 2 {
                continue;
            }
            let lower = part.to_lowercase();
            let case_sensitive = ambiguous(&lower);
            known.insert(lower, case_sensitive);
        }
    }
    known
}

/// Finds names in `text`; `taken` are spans other detectors found (their words are skipped).
pub(super) fn find(text: &str, known: &Known, taken: &[Span], spans: &mut Vec<Span>) {
    let ws = words(text);
    let inside = |w: &Word| taken.iter().any(|s| s.start < w.end && w.start < s.end);
    let mut is_name = vec![false; ws.len()];
    for (i, w) in ws.iter().enumerate() {
        if inside(w) {
            continue;
        }
        let lower = w.lower.as_str();
        if let Some(&case_sensitive) = known.get(lower) {
            // A known name that is also a stop word ("Will", "May") opening a sentence counts
            // only before a person's verb, a surname or "and": "Will said …", not "Will it rain?".
            let opening_stop_word = STOP.contains(&lower) && w.sentence_start;
            let next = ws
                .get(i + 1)
                .filter(|n| text[w.end..n.start].trim().is_empty());
            let person_follows = next.is_some_and(|n| {
                PERSON_VERBS.contains(&n.lower.as_str())
                    || n.lower == "and"
                    || (n.shape != Shape::Lower && !STOP.contains(&n.lower.as_str()))
            }) || text[w.end..].starts_with(['\'', '’'])
                || (next.is_some_and(|n| matches!(n.lower.as_str(), "is" | "was"))
                    && ws.get(i + 2).is_some_and(|n| {
                        matches!(n.lower.as_str(), "my" | "our" | "his" | "her" | "their")
                    }));
            if !case_sensitive || (name_like(w) && (!opening_stop_word || person_follows)) {
                is_name[i] = true;
                continue;
            }
        }
        if !name_like(w) || KIN.contains(&lower) || blocked_before(&ws, i, text) {
            continue;
        }
        // "Santa Monica", "Lake Louise": the first word of a place is no name either.
        let next_capitalised = ws
            .get(i + 1)
            .is_some_and(|n| n.shape == Shape::Capitalised && text[w.end..n.start] == *" ");
        if PLACE_PREFIXES.contains(&lower) && next_capitalised {
            continue;
        }
        if STOP.contains(&lower) {
            // "Will Turner", "May Chen": a listed first name that is also a stop word, with a
            // known surname after it.
            let surname = ws.get(i + 1).is_some_and(|n| {
                text[w.end..n.start] == *" "
                    && n.shape != Shape::Lower
                    && (SURNAMES.contains(&n.lower) || n.shape == Shape::Clan)
            });
            is_name[i] = is_first_name(lower) && surname && lower != "i";
            continue;
        }
        let (strong_cue, any_cue) = cue_before(&ws, i, text);
        let listed = is_first_name(lower);
        let common = is_common(lower);
        let place = PLACES.contains(&lower);
        is_name[i] = match w.shape {
            Shape::Clan => !NOT_SURNAMES.contains(&lower),
            _ if listed && !common && !place => true,
            // "May", "Will", "Rose", "Paris": a cue before or a surname after.
            _ if listed => strong_cue || (any_cue && !place) || surname_after(&ws, i, text),
            // Not listed: a strong cue ("tell Oluwaseun", "Dr Nakamura"), or a person's verb
            // after a word that is no ordinary word ("Jürgen wants the slides").
            _ if !common => {
                strong_cue
                    || (w.sentence_start
                        && ws.get(i + 1).is_some_and(|n| {
                            PERSON_VERBS.contains(&n.lower.as_str())
                                && text[w.end..n.start].trim().is_empty()
                        }))
            }
            _ => false,
        };
    }
    // Surnames after names, and "X and Y" where one of the two is a name.
    for i in 0..ws.len() {
        if is_name[i]
            && i + 1 < ws.len()
            && !is_name[i + 1]
            && !inside(&ws[i + 1])
            && surname_after(&ws, i, text)
        {
            is_name[i + 1] = true;
        }
    }
    for i in 1..ws.len().saturating_sub(1) {
        if matches!(ws[i].lower.as_str(), "and" | "&" | "or")
            && !inside(&ws[i - 1])
            && !inside(&ws[i + 1])
        {
            let (a, b) = (i - 1, i + 1);
            let plausible =
                |w: &Word| name_like(w) && !ambiguous(&w.lower) && !KIN.contains(&w.lower.as_str());
            if is_name[a] && !is_name[b] && plausible(&ws[b]) {
                is_name[b] = true;
            } else if is_name[b] && !is_name[a] && plausible(&ws[a]) {
                is_name[a] = true;
            }
        }
    }
    // Adjacent name words make one name ("Bob Miller", "Anne Marie").
    let mut i = 0;
    while i < ws.len() {
        if !is_name[i] {
            i += 1;
            continue;
        }
        let start = ws[i].start;
        let mut end = ws[i].end;
        while i + 1 < ws.len() && is_name[i + 1] && text[end..ws[i + 1].start] == *" " {
            i += 1;
            end = ws[i].end;
        }
        spans.push(Span {
            start,
            end,
            kind: Kind::Name,
        });
        i += 1;
    }
}

/// Names in stored facts ("Anna is my sister", "my sister Ngozi lives in Leeds" → Anna; Ngozi,
/// Leeds). A fact's first word counts when it is a listed first name, shaped like a surname,
/// or no ordinary word; ambiguous first words ("Will is my son") need "is my …" after them.
pub fn names_in<'a>(facts: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for fact in facts {
        let ws = words(fact);
        for (i, w) in ws.iter().enumerate() {
            let lower = w.lower.as_str();
            if !name_like(w) || TITLES.contains(&lower) || KIN.contains(&lower) {
                continue;
            }
            let listed = is_first_name(lower);
            let common = ambiguous(lower);
            // "Will is my son", "Rose was our nanny".
            let is_my = ws
                .get(i + 1)
                .is_some_and(|n| matches!(n.lower.as_str(), "is" | "was"))
                && ws.get(i + 2).is_some_and(|n| {
                    matches!(n.lower.as_str(), "my" | "our" | "his" | "her" | "their")
                });
            // "my son Will": a cue before a stop word that is a first name.
            let cued = cue_before(&ws, i, fact).0
                && i > 0
                && (KIN.contains(&ws[i - 1].lower.as_str())
                    || TITLES.contains(&ws[i - 1].lower.as_str()));
            if STOP.contains(&lower) && !(listed && (is_my || cued)) {
                continue;
            }
            let take = if !w.sentence_start {
                // Mid-fact: a name unless an ordinary word with no cue ("Station", "Premium");
                // "the dog is called Biscuit" has one.
                let (strong_cue, _) = cue_before(&ws, i, fact);
                w.shape != Shape::Capitalised || !common || listed || strong_cue
            } else {
                let possessive = fact[w.end..].starts_with(['\'', '’']);
                w.shape != Shape::Capitalised || !common || is_my || (listed && possessive)
            };
            if take && !names.iter().any(|n| n == w.text) {
                names.push(w.text.to_string());
            }
        }
    }
    names
}
