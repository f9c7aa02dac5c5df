//! Config rules: a task named by keywords (whole words, any case) or a regex, checked before the
//! learned model so an operator can pin what they know.

use regex::Regex;

use super::ClassifierError;

/// A config rule: the task is `task` when any keyword (whole word, any case) or the regex hits.
#[derive(Clone, Debug)]
pub struct TaskRule {
    /// The rule's name in explanations (`TASK#N` when the config gives none).
    pub name: String,
    /// The task a hit assigns.
    pub task: String,
    matcher: Regex,
}

impl TaskRule {
    /// A rule for `task` matching any of `keywords` (whole words, any case) or `regex`; at least
    /// one is needed, and the regex must compile.
    pub fn new(
        name: &str,
        task: &str,
        keywords: &[String],
        regex: Option<&str>,
    ) -> Result<TaskRule, ClassifierError> {
        let mut alternatives: Vec<String> = keywords
            .iter()
            .map(|k| format!(r"\b{}\b", regex::escape(k)))
            .collect();
        if let Some(r) = regex {
            Regex::new(r).map_err(|e| ClassifierError::BadRule {
                rule: name.into(),
                message: e.to_string(),
            })?;
            alternatives.push(format!("(?:{r})"));
        }
        if alternatives.is_empty() {
            return Err(ClassifierError::BadRule {
                rule: name.into(),
                message: "needs keywords or a regex".into(),
            });
        }
        let matcher = Regex::new(&format!("(?i){}", alternatives.join("|"))).map_err(|e| {
            ClassifierError::BadRule {
                rule: name.into(),
                message: e.to_string(),
            }
        })?;
        Ok(TaskRule {
            name: name.into(),
            task: task.into(),
            matcher,
        })
    }

    /// The text the rule matched in `text`, if any.
    pub fn find<'t>(&self, text: &'t str) -> Option<&'t str> {
        self.matcher.find(text).map(|m| m.as_str())
    }
}
