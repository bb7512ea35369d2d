//! Numbers as English words: cardinals, ordinals, years and digit strings.
//!
//! espeak-ng reads digits itself, but differently per voice and backend (Kokoro reads none), so
//! the engine spells them out once, the same for every voice.

const ONES: [&str; 20] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "thirteen", "fourteen",
    "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
];
const TENS: [&str; 10] = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
const SCALES: [(u64, &str); 5] = [
    (1_000_000_000_000_000, "quadrillion"),
    (1_000_000_000_000, "trillion"),
    (1_000_000_000, "billion"),
    (1_000_000, "million"),
    (1_000, "thousand"),
];

/// `42` → "forty-two", `1_005` → "one thousand five".
pub fn cardinal(n: u64) -> String {
    if n < 1000 {
        return below_thousand(n);
    }
    let mut parts = Vec::new();
    let mut rest = n;
    for (scale, name) in SCALES {
        if rest >= scale {
            parts.push(format!("{} {name}", cardinal(rest / scale)));
            rest %= scale;
        }
    }
    if rest > 0 {
        parts.push(below_thousand(rest));
    }
    parts.join(" ")
}

fn below_thousand(n: u64) -> String {
    debug_assert!(n < 1000);
    match n {
        0..=19 => ONES[n as usize].to_string(),
        20..=99 => {
            let tens = TENS[(n / 10) as usize];
            match n % 10 {
                0 => tens.to_string(),
                units => format!("{tens}-{}", ONES[units as usize]),
            }
        }
        _ => {
            let hundreds = format!("{} hundred", ONES[(n / 100) as usize]);
            match n % 100 {
                0 => hundreds,
                rest => format!("{hundreds} {}", below_thousand(rest)),
            }
        }
    }
}

/// `1` → "first", `22` → "twenty-second", `100` → "one hundredth".
pub fn ordinal(n: u64) -> String {
    let words = cardinal(n);
    // Only the last word changes: "twenty-one" → "twenty-first".
    let split = words.rfind([' ', '-']).map_or(0, |i| i + 1);
    let (head, last) = words.split_at(split);
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".to_string(),
        "three" => "third".to_string(),
        "five" => "fifth".to_string(),
        "eight" => "eighth".to_string(),
        "nine" => "ninth".to_string(),
        "twelve" => "twelfth".to_string(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    format!("{head}{last}")
}

/// A year as people say it: 1984 → "nineteen eighty-four", 2005 → "two thousand five",
/// 2025 → "twenty twenty-five", 1900 → "nineteen hundred".
pub fn year(n: u64) -> String {
    let (century, rest) = (n / 100, n % 100);
    if !(1000..10_000).contains(&n) || (2000..2010).contains(&n) || century % 10 == 0 && rest < 10 {
        return cardinal(n);
    }
    match rest {
        0 => format!("{} hundred", cardinal(century)),
        1..=9 => format!("{} oh {}", cardinal(century), cardinal(rest)),
        _ => format!("{} {}", cardinal(century), cardinal(rest)),
    }
}

/// Each digit on its own: "0042" → "zero zero four two" (decimal places, codes).
pub fn digits(s: &str) -> String {
    s.chars().filter_map(|c| c.to_digit(10)).map(|d| ONES[d as usize]).collect::<Vec<_>>().join(" ")
}

/// A decimal number as written (`"3.14"`, `"-2"`, `"1,234.5"`) → words; `None` when `s` is not one.
pub fn decimal(s: &str) -> Option<String> {
    let (negative, s) = match s.strip_prefix(['-', '−']) {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let int_digits: String = int.chars().filter(|&c| c != ',').collect();
    if int_digits.is_empty() && frac.is_none() || !int_digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut words = if int_digits.is_empty() { "zero".to_string() } else { cardinal(int_digits.parse().ok()?) };
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        words = format!("{words} point {}", digits(frac));
    }
    Some(if negative { format!("minus {words}") } else { words })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cardinals() {
        let cases = [
            (0, "zero"),
            (7, "seven"),
            (13, "thirteen"),
            (40, "forty"),
            (42, "forty-two"),
            (100, "one hundred"),
            (101, "one hundred one"),
            (999, "nine hundred ninety-nine"),
            (1_005, "one thousand five"),
            (12_345, "twelve thousand three hundred forty-five"),
            (2_000_000, "two million"),
            (1_000_001, "one million one"),
        ];
        for (n, words) in cases {
            assert_eq!(cardinal(n), words, "{n}");
        }
        assert!(cardinal(u64::MAX).starts_with("eighteen thousand four hundred forty-six quadrillion"), "{}", cardinal(u64::MAX));
    }

    #[test]
    fn ordinals() {
        let cases = [(1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (12, "twelfth"), (20, "twentieth"), (21, "twenty-first"), (100, "one hundredth"), (103, "one hundred third")];
        for (n, words) in cases {
            assert_eq!(ordinal(n), words, "{n}");
        }
    }

    #[test]
    fn years() {
        assert_eq!(year(1984), "nineteen eighty-four");
        assert_eq!(year(1900), "nineteen hundred");
        assert_eq!(year(1905), "nineteen oh five");
        assert_eq!(year(2000), "two thousand");
        assert_eq!(year(2005), "two thousand five");
        assert_eq!(year(2025), "twenty twenty-five");
    }

    #[test]
    fn decimals() {
        assert_eq!(decimal("3.14").as_deref(), Some("three point one four"));
        assert_eq!(decimal("-2").as_deref(), Some("minus two"));
        assert_eq!(decimal("1,234").as_deref(), Some("one thousand two hundred thirty-four"));
        assert_eq!(decimal(".5").as_deref(), Some("zero point five"));
        assert_eq!(decimal("abc"), None);
        assert_eq!(decimal("3."), None);
    }
}
