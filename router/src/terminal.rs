//! Text from clients or upstreams on its way to a terminal: task and route names in
//! `triage ledger summary`, a request's task in `triage route explain`. A name written before
//! task names were validated (or by another writer of the ledger) may hold ANSI escape sequences
//! that recolour, move the cursor or rewrite the title of the operator's terminal, so every
//! control character (C0, DEL, C1) and every bidirectional-override character is shown escaped
//! (`\u{1b}`), never sent.

use std::borrow::Cow;

/// Whether a character could act on a terminal or reorder the text around it.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with control and bidirectional-override characters written as `\u{…}` escapes;
/// borrowed unchanged when there are none.
pub fn safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_are_shown_not_sent() {
        assert!(matches!(
            safe("support-intent"),
            Cow::Borrowed("support-intent")
        ));
        assert_eq!(safe("naïve 中文"), "naïve 中文");
        assert_eq!(safe("\u{1b}[31mred\u{1b}[0m"), "\\u{1b}[31mred\\u{1b}[0m");
        assert_eq!(
            safe("a\nb\rc\td\u{7f}\u{9b}"),
            "a\\u{a}b\\u{d}c\\u{9}d\\u{7f}\\u{9b}"
        );
        assert_eq!(safe("abc\u{202e}def"), "abc\\u{202e}def");
        assert!(!safe("\u{1b}]0;title\u{7}").chars().any(char::is_control));
    }
}
