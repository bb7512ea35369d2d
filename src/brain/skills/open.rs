//! Opens an app or a website, but only one on the user's allow-list (`[skills]` in the
//! config). The command line is built from the allow-list entry, never from the user's words.

use super::{Plan, Skill, SkillReply};
use crate::config::SkillsConfig;
use regex::Regex;
use std::sync::{Arc, LazyLock};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenTarget {
    App(String),
    Url(String),
}

/// Hands a target to the OS. A seam: tests record instead of launching.
pub trait Launcher: Send + Sync {
    fn launch(&self, target: &OpenTarget) -> std::io::Result<()>;
}

/// `open -a APP` / `open URL` on macOS; `xdg-open URL` or the app's command elsewhere.
pub struct SystemLauncher;

impl Launcher for SystemLauncher {
    fn launch(&self, target: &OpenTarget) -> std::io::Result<()> {
        use std::process::Stdio;
        let mut command = match target {
            OpenTarget::App(app) => crate::platform::open_app_command(app),
            OpenTarget::Url(url) => crate::platform::open_url_command(url),
        };
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map(drop)
    }
}

pub struct Open {
    allowed: Arc<SkillsConfig>,
    launcher: Arc<dyn Launcher>,
}

impl Open {
    pub fn new(allowed: SkillsConfig, launcher: Arc<dyn Launcher>) -> Open {
        Open { allowed: Arc::new(allowed), launcher }
    }

    fn find(&self, name: &str) -> Option<OpenTarget> {
        let wanted = name.to_lowercase();
        if let Some(app) = self.allowed.apps.iter().find(|a| a.to_lowercase() == wanted) {
            return Some(OpenTarget::App(app.clone()));
        }
        self.allowed.sites.iter().find(|(site, _)| site.to_lowercase() == wanted).map(|(_, url)| OpenTarget::Url(url.clone()))
    }
}

/// "open the Calendar app" → "Calendar".
fn target_name(utterance: &str) -> Option<String> {
    static LEAD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(?i)^\s*(hey roxy,?\s*)?(please\s+)?(open|launch|start|go to|bring up|show me|run)\s+(up\s+)?(the\s+|my\s+)?(.+?)(\s+app)?[.!?]*\s*$").unwrap()
    });
    Some(LEAD.captures(utterance)?.get(6)?.as_str().trim().to_string())
}

impl Skill for Open {
    fn name(&self) -> &'static str {
        "open"
    }

    fn templates(&self) -> &'static [&'static str] {
        &["open safari", "launch the calendar app", "open youtube", "go to wikipedia", "start spotify", "open my email", "bring up notes"]
    }

    fn cue(&self, utterance: &str) -> bool {
        target_name(utterance).is_some_and(|name| self.find(&name).is_some())
    }

    fn plan(&self, utterance: &str) -> Option<Plan> {
        let name = target_name(utterance)?;
        let target = self.find(&name);
        let launcher = self.launcher.clone();
        Some(Box::new(move || match target {
            None => SkillReply::failed(format!(
                "{name} isn't on my list of apps and sites I may open. Add it under [skills] in the settings."
            )),
            Some(target) => {
                let shown = match &target {
                    OpenTarget::App(app) => app.clone(),
                    OpenTarget::Url(url) => url.clone(),
                };
                match launcher.launch(&target) {
                    Ok(()) => SkillReply::say(format!("Opening {shown}.")),
                    Err(e) => SkillReply::failed(format!("I couldn't open {shown}: {e}.")),
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<OpenTarget>>);

    impl Launcher for Recorder {
        fn launch(&self, target: &OpenTarget) -> std::io::Result<()> {
            self.0.lock().unwrap().push(target.clone());
            Ok(())
        }
    }

    #[test]
    fn only_allowed_targets_are_launched() {
        let recorder = Arc::new(Recorder::default());
        let open = Open::new(SkillsConfig::default(), recorder.clone());
        assert_eq!(open.plan("Open Safari.").unwrap()().text, "Opening Safari.");
        assert_eq!(open.plan("go to youtube").unwrap()().text, "Opening https://www.youtube.com.");
        let refused = open.plan("open rm -rf / app").unwrap()();
        assert!(refused.failed && refused.text.contains("isn't on my list"), "{refused:?}");
        assert_eq!(*recorder.0.lock().unwrap(), vec![OpenTarget::App("Safari".into()), OpenTarget::Url("https://www.youtube.com".into())]);
        assert!(open.plan("what is the weather").is_none());
    }

    #[test]
    fn a_failed_launch_is_said() {
        struct Broken;
        impl Launcher for Broken {
            fn launch(&self, _: &OpenTarget) -> std::io::Result<()> {
                Err(std::io::Error::new(std::io::ErrorKind::NotFound, "no such program"))
            }
        }
        let reply = Open::new(SkillsConfig::default(), Arc::new(Broken)).plan("open notes").unwrap()();
        assert!(reply.failed && reply.text == "I couldn't open Notes: no such program.", "{reply:?}");
    }
}
