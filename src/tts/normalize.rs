//! Text normalisation: what is written → what is said, before phonemisation.
//!
//! LLM answers and skill templates are full of digits, times, prices, units and abbreviations;
//! espeak reads some of them oddly (and Kokoro reads none), so they become words here. Each rule
//! is a regex pass, applied in an order where earlier rules see the raw form ("$12.50" is money
//! before "12.50" is a decimal). Anything no rule knows is left for the phonemiser.

use super::numbers;
use regex::{Captures, Regex};
use std::sync::LazyLock;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("normalisation regexes are valid")
}

/// Titles and Latin abbreviations whose period does not end a sentence.
static ABBREVIATIONS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    [
        (r"\bMr\.", "Mister"),
        (r"\bMrs\.", "Missus"),
        (r"\bMs\.", "Miz"),
        (r"\bDr\.", "Doctor"),
        (r"\bProf\.", "Professor"),
        (r"\bJr\.", "Junior"),
        (r"\bSr\.", "Senior"),
        (r"\bMt\.", "Mount"),
        (r"\bSt\.(\s+[A-Z])", "Saint$1"),
        (r"\bAve\.", "Avenue"),
        (r"\bvs\.?(\s)", "versus$1"),
        (r"\b[eE]\.g\.", "for example"),
        (r"\b[iI]\.e\.", "that is"),
        (r"\bapprox\.", "approximately"),
        (r"\b[Nn]o\.(\s*\d)", "number$1"),
        (r"\betc\.", "et cetera."),
        (r"\bmins\b", "minutes"),
        (r"\bhrs\b", "hours"),
    ]
    .into_iter()
    .map(|(p, r)| (re(p), r))
    .collect()
});

/// A number as written: thousands separated by commas (or not), an optional decimal part.
const NUMBER: &str = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?";

static MONEY: LazyLock<Regex> = LazyLock::new(|| {
    re(r"([$€£])\s?((?:\d{1,3}(?:,\d{3})+|\d+))(?:\.(\d{1,2}))?(?:\s?(thousand|million|billion|trillion|[kKmMbB]n?)\b)?")
});
static TIME: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{1,2}):(\d{2})(?:\s?([aApP])\.?[mM]\b)?"));
static HOUR_AM_PM: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d{1,2})\s?([aApP])\.?[mM]\b"));
static PERCENT: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"(-?{NUMBER})\s?%")));
static DEGREES: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"(-?{NUMBER})\s?°(?:\s?([CF])\b)?")));
/// Units that are also words ("in", "m", "s") only count when written against the number.
static UNITS: LazyLock<Regex> = LazyLock::new(|| {
    re(&format!(
        r"({NUMBER})(?:\s?(km/h|kph|mph|km|cm|mm|kg|mg|lbs|lb|oz|ft|mi|ml|GB|MB|KB|TB|kW|kHz|MHz|GHz|Hz|sec|min|ms)|(m|g|s|h|l|L|W|V|in))\b"
    ))
});
static FRACTION: LazyLock<Regex> = LazyLock::new(|| re(r"\b([1-9])/([2-4])\b"));
static HASH_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(r"#(\d)"));
static ORDINAL: LazyLock<Regex> = LazyLock::new(|| re(r"\b(\d+)(st|nd|rd|th)\b"));
/// Four digits after a word that introduces a year.
static YEAR: LazyLock<Regex> = LazyLock::new(|| re(r"(?i)\b(in|since|from|until|till|by|of|year|before|after|circa|around)\s+(1[1-9]\d\d|20\d\d)\b"));
static DECADE: LazyLock<Regex> = LazyLock::new(|| re(r"\b(1[1-9]|20)([1-9]0)s\b"));
/// A minus sign only counts at the start or after a space or bracket ("5-3" is a range).
static PLAIN_NUMBER: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"(^|[\s(\[])?([-−])?({NUMBER})")));
static RANGE: LazyLock<Regex> = LazyLock::new(|| re(&format!(r"({NUMBER})\s?[-–]\s?({NUMBER})\b")));
static MARKDOWN: LazyLock<Regex> = LazyLock::new(|| re(r"[*_`#~|<>]+"));
static SPACES: LazyLock<Regex> = LazyLock::new(|| re(r"\s+"));

/// Spoken form of `text`. Empty in, empty out.
pub fn normalize(text: &str) -> String {
    let mut s = text.to_string();
    for (pattern, replacement) in ABBREVIATIONS.iter() {
        s = pattern.replace_all(&s, *replacement).into_owned();
    }
    s = MONEY.replace_all(&s, money).into_owned();
    s = TIME.replace_all(&s, time).into_owned();
    s = HOUR_AM_PM.replace_all(&s, |c: &Captures| match c[1].parse::<u64>() {
        Ok(h @ 1..=12) => format!("{} {}", numbers::cardinal(h), am_pm(&c[2])),
        _ => c[0].to_string(),
    })
    .into_owned();
    s = PERCENT.replace_all(&s, |c: &Captures| format!("{} percent", number_words(&c[1]))).into_owned();
    s = DEGREES
        .replace_all(&s, |c: &Captures| {
            let scale = match c.get(2).map(|m| m.as_str()) {
                Some("C") => " Celsius",
                Some("F") => " Fahrenheit",
                _ => "",
            };
            format!("{} {}{scale}", number_words(&c[1]), plural(&c[1], "degree", "degrees"))
        })
        .into_owned();
    s = DECADE
        .replace_all(&s, |c: &Captures| {
            let decade = numbers::cardinal(c[2].parse().unwrap_or(0));
            format!("{} {}ies", numbers::cardinal(c[1].parse().unwrap_or(0)), decade.trim_end_matches('y'))
        })
        .into_owned();
    s = UNITS.replace_all(&s, unit).into_owned();
    s = HASH_NUMBER.replace_all(&s, "number $1").into_owned();
    s = FRACTION.replace_all(&s, fraction).into_owned();
    s = ORDINAL.replace_all(&s, |c: &Captures| c[1].parse().map(numbers::ordinal).unwrap_or_else(|_| c[0].to_string())).into_owned();
    s = YEAR.replace_all(&s, |c: &Captures| format!("{} {}", &c[1], numbers::year(c[2].parse().unwrap_or(0)))).into_owned();
    s = RANGE.replace_all(&s, |c: &Captures| format!("{} to {}", number_words(&c[1]), number_words(&c[2]))).into_owned();
    s = PLAIN_NUMBER
        .replace_all(&s, |c: &Captures| {
            let lead = c.get(1).map_or("", |m| m.as_str());
            let sign = if c.get(2).is_some() && (c.get(1).is_some() || c.get(0).unwrap().start() == 0) { "minus " } else { "" };
            let dash = if c.get(2).is_some() && sign.is_empty() { " " } else { "" };
            format!("{lead}{dash}{sign}{}", number_words(&c[3]))
        })
        .into_owned();
    s = s.replace('&', " and ").replace('@', " at ").replace('+', " plus ").replace('=', " equals ");
    s = MARKDOWN.replace_all(&s, " ").into_owned();
    SPACES.replace_all(&s, " ").trim().to_string()
}

fn number_words(written: &str) -> String {
    numbers::decimal(written).unwrap_or_else(|| written.to_string())
}

fn plural(written: &str, one: &'static str, many: &'static str) -> &'static str {
    if written.trim_start_matches(['-', '−']) == "1" { one } else { many }
}

fn am_pm(letter: &str) -> &'static str {
    if letter.eq_ignore_ascii_case("a") { "A M" } else { "P M" }
}

fn money(c: &Captures) -> String {
    let (one, many, cent, cents) = match &c[1] {
        "€" => ("euro", "euros", "cent", "cents"),
        "£" => ("pound", "pounds", "penny", "pence"),
        _ => ("dollar", "dollars", "cent", "cents"),
    };
    let whole = &c[2];
    let fraction = c.get(3).map(|m| m.as_str());
    if let Some(scale) = c.get(4).map(|m| m.as_str()) {
        let scale = match scale.to_ascii_lowercase().as_str() {
            "k" => "thousand",
            "m" | "mn" => "million",
            "b" | "bn" => "billion",
            other => return format!("{} {other} {many}", number_words(&join_fraction(whole, fraction))),
        };
        return format!("{} {scale} {many}", number_words(&join_fraction(whole, fraction)));
    }
    let units: u64 = whole.replace(',', "").parse().unwrap_or(0);
    // "$12.5" means fifty cents, not five.
    let hundredths: u64 = fraction.map(|f| format!("{f:0<2}").parse().unwrap_or(0)).unwrap_or(0);
    let units_words = format!("{} {}", numbers::cardinal(units), if units == 1 { one } else { many });
    let cents_words = format!("{} {}", numbers::cardinal(hundredths), if hundredths == 1 { cent } else { cents });
    match (units, hundredths) {
        (_, 0) => units_words,
        (0, _) => cents_words,
        _ => format!("{units_words} and {cents_words}"),
    }
}

fn join_fraction(whole: &str, fraction: Option<&str>) -> String {
    match fraction {
        Some(f) => format!("{whole}.{f}"),
        None => whole.to_string(),
    }
}

fn time(c: &Captures) -> String {
    let (Ok(hour), Ok(minute)) = (c[1].parse::<u64>(), c[2].parse::<u64>()) else { return c[0].to_string() };
    if hour > 24 || minute > 59 {
        return c[0].to_string();
    }
    let suffix = c.get(3).map(|m| am_pm(m.as_str()));
    let hour_words = numbers::cardinal(hour);
    let minute_words = match minute {
        0 if suffix.is_some() => String::new(),
        0 if hour == 0 => "hundred".to_string(),
        0 => "o'clock".to_string(),
        1..=9 => format!("oh {}", numbers::cardinal(minute)),
        _ => numbers::cardinal(minute),
    };
    [hour_words.as_str(), minute_words.as_str(), suffix.unwrap_or("")].iter().filter(|w| !w.is_empty()).copied().collect::<Vec<_>>().join(" ")
}

/// Halves, thirds and quarters; other slashes (24/7, and/or) stay slashes.
fn fraction(c: &Captures) -> String {
    let (n, d): (u64, u64) = (c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0));
    if n >= d {
        return c[0].to_string();
    }
    let name = match (d, n) {
        (2, _) => "half",
        (3, 1) => "third",
        (3, _) => "thirds",
        (4, 1) => "quarter",
        _ => "quarters",
    };
    format!("{} {name}", numbers::cardinal(n))
}

fn unit(c: &Captures) -> String {
    let number = &c[1];
    let symbol = c.get(2).or(c.get(3)).map_or("", |m| m.as_str());
    let (one, many) = match symbol {
        "km/h" | "kph" => ("kilometer per hour", "kilometers per hour"),
        "mph" => ("mile per hour", "miles per hour"),
        "km" => ("kilometer", "kilometers"),
        "m" => ("meter", "meters"),
        "cm" => ("centimeter", "centimeters"),
        "mm" => ("millimeter", "millimeters"),
        "kg" => ("kilogram", "kilograms"),
        "g" => ("gram", "grams"),
        "mg" => ("milligram", "milligrams"),
        "lb" | "lbs" => ("pound", "pounds"),
        "oz" => ("ounce", "ounces"),
        "ft" => ("foot", "feet"),
        "in" => ("inch", "inches"),
        "mi" => ("mile", "miles"),
        "l" | "L" => ("liter", "liters"),
        "ml" => ("milliliter", "milliliters"),
        "GB" => ("gigabyte", "gigabytes"),
        "MB" => ("megabyte", "megabytes"),
        "KB" => ("kilobyte", "kilobytes"),
        "TB" => ("terabyte", "terabytes"),
        "kW" => ("kilowatt", "kilowatts"),
        "W" => ("watt", "watts"),
        "V" => ("volt", "volts"),
        "Hz" => ("hertz", "hertz"),
        "kHz" => ("kilohertz", "kilohertz"),
        "MHz" => ("megahertz", "megahertz"),
        "GHz" => ("gigahertz", "gigahertz"),
        "h" => ("hour", "hours"),
        "min" => ("minute", "minutes"),
        "s" | "sec" => ("second", "seconds"),
        "ms" => ("millisecond", "milliseconds"),
        _ => return c[0].to_string(),
    };
    format!("{} {}", number_words(number), if number == "1" { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[track_caller]
    fn says(written: &str, spoken: &str) {
        assert_eq!(normalize(written), spoken, "normalize({written:?})");
    }

    #[test]
    fn times() {
        says("It's 5:30", "It's five thirty");
        says("Meet me at 5:05 pm.", "Meet me at five oh five P M.");
        says("The shop opens at 9:00.", "The shop opens at nine o'clock.");
        says("at 7:00 AM", "at seven A M");
        says("at 3pm", "at three P M");
        says("The score was 99:99", "The score was ninety-nine:ninety-nine");
    }

    #[test]
    fn money() {
        says("$12.50", "twelve dollars and fifty cents");
        says("It costs $1.", "It costs one dollar.");
        says("$0.99", "ninety-nine cents");
        says("$1,250", "one thousand two hundred fifty dollars");
        says("€5 or £3.20", "five euros or three pounds and twenty pence");
        says("$2.5 million", "two point five million dollars");
        says("$12.5", "twelve dollars and fifty cents");
    }

    #[test]
    fn units_and_percent() {
        says("3 km", "three kilometers");
        says("1 km", "one kilometer");
        says("It is 20°C outside", "It is twenty degrees Celsius outside");
        says("Drive at 60 mph", "Drive at sixty miles per hour");
        says("a 5m rope", "a five meters rope");
        says("50% off", "fifty percent off");
        says("2.5 kg", "two point five kilograms");
        // "in" and "s" are words unless written against the number.
        says("3 in the morning", "three in the morning");
        says("wait 10s", "wait ten seconds");
    }

    #[test]
    fn numbers_ordinals_years() {
        says("I have 3 cats", "I have three cats");
        says("It was -5 today", "It was minus five today");
        says("pi is 3.14", "pi is three point one four");
        says("1,000,000 people", "one million people");
        says("the 21st of May", "the twenty-first of May");
        says("born in 1984", "born in nineteen eighty-four");
        says("since 2025", "since twenty twenty-five");
        says("the 1990s", "the nineteen nineties");
        says("pages 5-10", "pages five to ten");
        says("2000 people", "two thousand people");
        says("1/2 cup and 3/4 of it", "one half cup and three quarters of it");
        says("open 24/7", "open twenty-four/seven");
    }

    #[test]
    fn abbreviations() {
        says("Dr. Smith and Mr. Jones", "Doctor Smith and Mister Jones");
        says("Fruit, e.g. apples", "Fruit, for example apples");
        says("apples, pears, etc. Then more.", "apples, pears, et cetera. Then more.");
        says("No. 5", "number five");
        says("You are #1", "You are number one");
        says("cats vs. dogs", "cats versus dogs");
        says("Tom & Jerry", "Tom and Jerry");
    }

    #[test]
    fn markdown_and_spacing() {
        says("**Bold** and `code`", "Bold and code");
        says("  many   spaces\n\nhere ", "many spaces here");
        says("", "");
    }
}
