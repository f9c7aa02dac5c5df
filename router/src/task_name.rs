//! Task names a client sends (`x-triage-task`, `metadata.task`): they go into the ledger, events,
//! metrics labels and `triage ledger summary`'s terminal output, so the gateway accepts only
//! short names of `[a-z0-9_.-]` (uppercase letters are folded to lowercase), and refuses anything
//! else with 400.

use thiserror::Error;

/// The longest task name accepted, in characters.
pub const MAX_TASK_NAME_LEN: usize = 64;

/// Why a client's task name was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TaskNameError {
    /// Longer than [`MAX_TASK_NAME_LEN`] characters.
    #[error("is {len} characters long; at most {MAX_TASK_NAME_LEN} are allowed")]
    TooLong {
        /// Its length in characters.
        len: usize,
    },
    /// Holds a character outside `[a-z0-9_.-]` (after folding uppercase ASCII).
    #[error("holds {found:?}; only a-z, 0-9, `_`, `.` and `-` are allowed")]
    BadCharacter {
        /// The first character refused.
        found: char,
    },
}

/// A name as the router uses it: trimmed, ASCII uppercase folded to lowercase. Not validated
/// (`triage route explain` shows whatever it is given); see [`validate`].
pub fn normalize(raw: &str) -> String {
    raw.trim().to_ascii_lowercase()
}

/// A client's task name, normalized ([`normalize`]) and checked: 1 to [`MAX_TASK_NAME_LEN`]
/// characters of `[a-z0-9_.-]`. An empty (or all-blank) name is `Ok("")`: no task given.
pub fn validate(raw: &str) -> Result<String, TaskNameError> {
    let name = normalize(raw);
    let len = name.chars().count();
    if len > MAX_TASK_NAME_LEN {
        return Err(TaskNameError::TooLong { len });
    }
    if let Some(found) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')))
    {
        return Err(TaskNameError::BadCharacter { found });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lowercase_names_pass_and_uppercase_folds() {
        assert_eq!(validate("sentiment").as_deref(), Ok("sentiment"));
        assert_eq!(
            validate(" Support-Intent_v2.1 ").as_deref(),
            Ok("support-intent_v2.1")
        );
        assert_eq!(validate("").as_deref(), Ok(""));
        assert_eq!(validate(&"a".repeat(64)).map(|n| n.len()), Ok(64));
    }

    #[test]
    fn long_names_control_characters_and_unicode_are_refused() {
        assert_eq!(
            validate(&"a".repeat(65)),
            Err(TaskNameError::TooLong { len: 65 })
        );
        assert_eq!(
            validate("\u{1b}[31mred"),
            Err(TaskNameError::BadCharacter { found: '\u{1b}' })
        );
        assert_eq!(
            validate("two words"),
            Err(TaskNameError::BadCharacter { found: ' ' })
        );
        assert_eq!(
            validate("résumé"),
            Err(TaskNameError::BadCharacter { found: 'é' })
        );
        assert_eq!(
            validate("a/b"),
            Err(TaskNameError::BadCharacter { found: '/' })
        );
        assert!(validate("x\ny").is_err());
        assert!(validate(&"é".repeat(40)).is_err());
    }
}
