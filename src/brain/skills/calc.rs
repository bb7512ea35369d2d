//! Arithmetic said out loud: "what's 12 times 7", "square root of 144", "15 percent of 80".
//! Spoken operators become symbols, then a small recursive-descent parser evaluates them; any
//! word left over means it was not arithmetic, and the LLM gets the question instead.

use super::words::{capitalise, format_number, numbers_to_digits};
use super::{Plan, Skill, SkillReply};
use regex::Regex;
use std::sync::LazyLock;

pub struct Calculator;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalcError {
    #[error("that is not arithmetic I can read")]
    NotArithmetic,
    #[error("you can't divide by zero")]
    DivideByZero,
    #[error("the answer is not a real number")]
    NotReal,
}

impl Skill for Calculator {
    fn name(&self) -> &'static str {
        "calculator"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "what is 5 plus 5",
            "what's 5 times 5",
            "calculate 5 divided by 5",
            "what is 5 minus 5",
            "how much is 5 multiplied by 5",
            "what is the square root of 5",
            "what is 5 percent of 5",
            "5 squared",
            "what's 5 to the power of 5",
            "add 5 and 5",
        ]
    }

    fn cue(&self, utterance: &str) -> bool {
        to_expression(utterance).is_some()
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        let expression = to_expression(utterance)?;
        let result = evaluate(&expression);
        let spoken = spoken_expression(&expression);
        Some(Box::new(move || match result {
            Ok(value) => SkillReply::say(format!("{spoken} is {}.", format_number(round_sig(value)))),
            Err(e) => SkillReply::failed(format!("{}: {e}.", capitalise(&spoken))),
        }))
    }
}

/// 10 significant digits: hides float noise like 0.30000000000000004.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let digits = 10 - v.abs().log10().ceil() as i32;
    let scale = 10f64.powi(digits.clamp(-300, 300));
    (v * scale).round() / scale
}

/// The utterance as a symbolic expression ("12 * 7"), or `None` when words remain that are
/// not arithmetic.
fn to_expression(utterance: &str) -> Option<String> {
    static FILLER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(hey roxy,?\s*)?(please\s+)?(what is|what's|whats|calculate|compute|how much is|tell me|what does|what do|can you (calculate|tell me))\s+").unwrap()
    });
    static REPLACEMENTS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
        [
            (r"\bsquare root of\b", " sqrt "),
            (r"\bto the power of\b", " ^ "),
            (r"\bthe\b", " "),
            (r"\bmultiplied by\b", " * "),
            (r"\btimes\b", " * "),
            (r"(\d)\s*x\s*(\d)", "$1 * $2"),
            (r"\bdivided by\b", " / "),
            (r"\bover\b", " / "),
            (r"\bplus\b", " + "),
            (r"\bminus\b", " - "),
            (r"\bsquared\b", " ^ 2 "),
            (r"\bcubed\b", " ^ 3 "),
            (r"(\d)\s*(percent|%)\s+of\b", "$1 % "),
            (r"\bequals?\b|\bis\b|\bequal\b|=", " "),
            (r"^\s*add\s+(.+?)\s+and\s+(.+)$", "$1 + $2"),
            (r"^\s*subtract\s+(.+?)\s+from\s+(.+)$", "$2 - $1"),
            (r"^\s*multiply\s+(.+?)\s+(?:and|by)\s+(.+)$", "$1 * $2"),
            (r"^\s*divide\s+(.+?)\s+by\s+(.+)$", "$1 / $2"),
        ]
        .into_iter()
        .map(|(p, r)| (Regex::new(p).unwrap(), r))
        .collect()
    });
    let mut text = numbers_to_digits(&utterance.to_lowercase());
    text = text.trim().trim_end_matches(['?', '.', '!']).replace(',', "").to_string();
    text = FILLER.replace(&text, "").into_owned();
    for (pattern, with) in REPLACEMENTS.iter() {
        text = pattern.replace_all(&text, *with).into_owned();
    }
    let expression = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let ok = !expression.is_empty()
        && expression.chars().any(|c| c.is_ascii_digit())
        && expression.chars().any(|c| "+-*/^%".contains(c) || expression.contains("sqrt"))
        && expression.replace("sqrt", "").chars().all(|c| c.is_ascii_digit() || " .+-*/^%()".contains(c));
    ok.then_some(expression)
}

/// The expression read back: "12 * 7" → "12 times 7".
fn spoken_expression(expression: &str) -> String {
    let spoken = expression
        .replace(" * ", " times ")
        .replace(" / ", " divided by ")
        .replace(" + ", " plus ")
        .replace(" - ", " minus ")
        .replace(" ^ 2", " squared")
        .replace(" ^ 3", " cubed")
        .replace(" ^ ", " to the power of ")
        .replace(" % ", " percent of ")
        .replace("sqrt ", "the square root of ");
    spoken.trim().to_string()
}

/// Evaluates `+ - * / ^ %` (x % y = x percent of y), `sqrt`, parentheses and unary minus.
pub fn evaluate(expression: &str) -> Result<f64, CalcError> {
    let tokens = tokenize(expression)?;
    let mut parser = Parser { tokens, at: 0 };
    let value = parser.sum()?;
    if parser.at != parser.tokens.len() {
        return Err(CalcError::NotArithmetic);
    }
    if value.is_nan() || value.is_infinite() {
        return Err(CalcError::NotReal);
    }
    Ok(value)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Op(char),
    Sqrt,
    Open,
    Close,
}

fn tokenize(text: &str) -> Result<Vec<Token>, CalcError> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' => i += 1,
            '0'..='9' | '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let number: String = chars[start..i].iter().collect();
                tokens.push(Token::Number(number.parse().map_err(|_| CalcError::NotArithmetic)?));
            }
            '+' | '-' | '*' | '/' | '^' | '%' => {
                tokens.push(Token::Op(c));
                i += 1;
            }
            '(' => {
                tokens.push(Token::Open);
                i += 1;
            }
            ')' => {
                tokens.push(Token::Close);
                i += 1;
            }
            's' if text[i..].starts_with("sqrt") => {
                tokens.push(Token::Sqrt);
                i += 4;
            }
            _ => return Err(CalcError::NotArithmetic),
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn sum(&mut self) -> Result<f64, CalcError> {
        let mut value = self.product()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            let rhs = self.product()?;
            value = if op == '+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<f64, CalcError> {
        let mut value = self.power()?;
        while let Some(Token::Op(op @ ('*' | '/' | '%'))) = self.peek().cloned() {
            self.at += 1;
            let rhs = self.power()?;
            value = match op {
                '*' => value * rhs,
                '%' => value / 100.0 * rhs,
                _ if rhs == 0.0 => return Err(CalcError::DivideByZero),
                _ => value / rhs,
            };
        }
        Ok(value)
    }

    fn power(&mut self) -> Result<f64, CalcError> {
        let base = self.unary()?;
        if let Some(Token::Op('^')) = self.peek() {
            self.at += 1;
            let exponent = self.power()?; // right-associative
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, CalcError> {
        match self.peek().cloned() {
            Some(Token::Op('-')) => {
                self.at += 1;
                Ok(-self.unary()?)
            }
            Some(Token::Sqrt) => {
                self.at += 1;
                let v = self.unary()?;
                if v < 0.0 {
                    return Err(CalcError::NotReal);
                }
                Ok(v.sqrt())
            }
            Some(Token::Number(n)) => {
                self.at += 1;
                Ok(n)
            }
            Some(Token::Open) => {
                self.at += 1;
                let v = self.sum()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(CalcError::NotArithmetic);
                }
                self.at += 1;
                Ok(v)
            }
            _ => Err(CalcError::NotArithmetic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(q: &str) -> Option<String> {
        Calculator.plan(q).map(|plan| plan().text)
    }

    #[test]
    fn spoken_arithmetic() {
        assert_eq!(answer("What's 12 times 7?").as_deref(), Some("12 times 7 is 84."));
        assert_eq!(answer("what is twenty five divided by four").as_deref(), Some("25 divided by 4 is 6.25."));
        assert_eq!(answer("square root of 144").as_deref(), Some("the square root of 144 is 12."));
        assert_eq!(answer("what is 15 percent of 80").as_deref(), Some("15 percent of 80 is 12."));
        assert_eq!(answer("3 squared plus 4 squared").as_deref(), Some("3 squared plus 4 squared is 25."));
        assert_eq!(answer("add 2 and 3").as_deref(), Some("2 plus 3 is 5."));
        assert_eq!(answer("what is 0.1 plus 0.2").as_deref(), Some("0.1 plus 0.2 is 0.3."));
        assert_eq!(answer("2 to the power of 10").as_deref(), Some("2 to the power of 10 is 1024."));
    }

    #[test]
    fn errors_are_said_not_panicked() {
        assert_eq!(answer("what is 5 divided by 0").as_deref(), Some("5 divided by 0: you can't divide by zero."));
        let reply = Calculator.plan("square root of -4").map(|p| p());
        assert!(reply.is_some_and(|r| r.failed));
    }

    #[test]
    fn words_that_are_not_arithmetic_decline() {
        for q in ["what is the meaning of life", "what's the capital of France", "what is 5", "times square", "plus"] {
            assert!(Calculator.plan(q).is_none(), "{q}");
        }
    }

    #[test]
    fn precedence_and_parentheses() {
        assert_eq!(evaluate("2 + 3 * 4"), Ok(14.0));
        assert_eq!(evaluate("(2 + 3) * 4"), Ok(20.0));
        assert_eq!(evaluate("2 ^ 3 ^ 2"), Ok(512.0));
        assert_eq!(evaluate("-3 + 5"), Ok(2.0));
        assert_eq!(evaluate("2 +"), Err(CalcError::NotArithmetic));
    }
}
