//! Remember, recall and forget facts the user tells Roxy, in the memory store (found by
//! meaning, so "where did I park" finds "my car is on level 3").

use super::words::second_person;
use super::{Plan, Skill, SkillReply};
use crate::memory::Memory;
use regex::Regex;
use std::sync::{Arc, LazyLock};

/// Cosine (plus word bonus) at or above which a recalled fact answers the question.
const ANSWERS: f64 = 0.45;

/// Each skill goes through [`Memory`], whose question-vector cache means the recall skill's cue
/// and its plan embed the question once between them.
pub struct Remember(Arc<Memory>);
pub struct Recall(Arc<Memory>);
pub struct Forget(Arc<Memory>);

impl Remember {
    pub fn new(memory: Arc<Memory>) -> Remember {
        Remember(memory)
    }
}

impl Recall {
    pub fn new(memory: Arc<Memory>) -> Recall {
        Recall(memory)
    }
}

impl Forget {
    pub fn new(memory: Arc<Memory>) -> Forget {
        Forget(memory)
    }
}

fn strip_lead(text: &str, lead: &Regex) -> Option<String> {
    let m = lead.find(text)?;
    let rest = text[m.end()..].trim().trim_end_matches(['.', '!', '?']).trim();
    (!rest.is_empty()).then(|| rest.to_string())
}

/// "remember that my code is 4512" → "my code is 4512"; not "remember when we met?" (a question).
fn fact_to_remember(utterance: &str) -> Option<String> {
    static LEAD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\s*(hey roxy,?\s*)?(please\s+)?(remember|note|don't forget|do not forget|keep in mind|make a note)( that)?\b[,:]?").unwrap()
    });
    static QUESTION: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)^(when|what|where|who|how|why|if|whether)\b").unwrap());
    let fact = strip_lead(utterance, &LEAD)?;
    (!QUESTION.is_match(&fact) && !utterance.trim_end().ends_with('?')).then_some(fact)
}

impl Skill for Remember {
    fn name(&self) -> &'static str {
        "remember"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "remember that my sister's birthday is june 5rd",
            "remember my car is parked on level 5",
            "please remember that the wifi password is hunter5",
            "note that my dentist appointment is on friday",
            "don't forget that i'm allergic to peanuts",
            "keep in mind that my favourite colour is blue",
            // Where things are: nothing like the personal details above to MiniLM.
            "remember that the spare key is under the mat",
            "remember that i left my glasses in the kitchen",
        ]
    }

    fn cue(&self, utterance: &str) -> bool {
        fact_to_remember(utterance).is_some()
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        let fact = fact_to_remember(utterance)?;
        let facts = self.0.clone();
        Some(Box::new(move || match facts.remember(&fact) {
            Ok(r) if r.merged => match &r.replaced {
                // Say which fact changed, so a wrong merge is heard at once.
                Some(before) => SkillReply::say(format!("Updated: I had {}; now {}.", second_person(before), second_person(&r.fact.text))),
                None => SkillReply::say(format!("I already knew that: {}.", second_person(&r.fact.text))),
            },
            Ok(r) => SkillReply::say(format!("Got it: {}.", second_person(&r.fact.text))),
            Err(e) => SkillReply::failed(format!("I couldn't save that: {e}")),
        }))
    }
}

impl Recall {
    /// The stored fact that answers `question`, if one does.
    fn best_fact(&self, question: &str) -> Result<Option<crate::memory::Fact>, crate::memory::MemoryError> {
        let found = self.0.recall(question, 1)?;
        Ok(found.into_iter().next().filter(|(_, score)| *score >= ANSWERS).map(|(fact, _)| fact))
    }
}

impl Skill for Recall {
    fn name(&self) -> &'static str {
        "recall"
    }

    fn templates(&self) -> &'static [&'static str] {
        &[
            "what do you know about me",
            "what did i tell you about my car",
            "do you remember my sister's birthday",
            "what's my wifi password",
            "where did i park my car",
            "when is my sister's birthday",
            "what am i allergic to",
            "what did i ask you to remember",
        ]
    }

    fn cue(&self, utterance: &str) -> bool {
        self.best_fact(utterance).is_ok_and(|f| f.is_some())
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        static EVERYTHING: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)\bwhat (do you know about me|did i ask you to remember|have i told you)\b").unwrap());
        static OPENER: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r"(?i)^\s*(what|when|where|who|which|do you remember|what's|whats|how)\b").unwrap());
        let facts = self.0.clone();
        if EVERYTHING.is_match(utterance) {
            return Some(Box::new(move || match facts.store().facts().list() {
                Ok(list) if list.is_empty() => SkillReply::say("You haven't asked me to remember anything yet."),
                Ok(list) => {
                    let shown: Vec<String> = list.iter().take(5).map(|f| second_person(&f.text)).collect();
                    let more = if list.len() > 5 { format!(", and {} more", list.len() - 5) } else { String::new() };
                    SkillReply::say(format!("You told me: {}{more}.", shown.join("; ")))
                }
                Err(e) => SkillReply::failed(format!("I couldn't read my memory: {e}")),
            }));
        }
        if !OPENER.is_match(utterance) {
            return None;
        }
        let best = match self.best_fact(utterance) {
            Ok(best) => best,
            Err(e) => return Some(Box::new(move || SkillReply::failed(format!("I couldn't search my memory: {e}")))),
        };
        // Nothing stored about it: the LLM may know ("what's the capital of France").
        let fact = best?;
        Some(Box::new(move || SkillReply::say(format!("You told me {}.", second_person(&fact.text)))))
    }
}

impl Skill for Forget {
    fn name(&self) -> &'static str {
        "forget"
    }

    fn templates(&self) -> &'static [&'static str] {
        &["forget that my car is on level 5", "forget my wifi password", "delete the fact about my sister", "forget what i told you about my dentist"]
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        static LEAD: LazyLock<Regex> = LazyLock::new(|| {
            Regex::new(r"(?i)^\s*(please\s+)?(forget|delete|remove|erase)( that| what i told you about| the fact about| about)?\b").unwrap()
        });
        let what = strip_lead(utterance, &LEAD)?;
        let facts = self.0.clone();
        Some(Box::new(move || {
            let view = facts.store().facts();
            let exact = view.forget_matching(&what);
            match exact {
                Ok(gone) if !gone.is_empty() => return SkillReply::say(format!("Forgotten: {}.", second_person(&gone[0].text))),
                Err(e) => return SkillReply::failed(format!("I couldn't change my memory: {e}")),
                Ok(_) => {}
            }
            match facts.recall(&what, 1) {
                Ok(found) => match found.into_iter().next().filter(|(_, s)| *s >= ANSWERS) {
                    Some((fact, _)) => match view.forget_id(fact.id) {
                        Ok(_) => SkillReply::say(format!("Forgotten: {}.", second_person(&fact.text))),
                        Err(e) => SkillReply::failed(format!("I couldn't change my memory: {e}")),
                    },
                    None => SkillReply::say("I don't have anything like that to forget."),
                },
                Err(e) => SkillReply::failed(format!("I couldn't search my memory: {e}")),
            }
        }))
    }
}
