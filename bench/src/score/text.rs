//! Text scorers: normalisation, containment and label extraction.

use unicode_normalization::UnicodeNormalization;

use crate::error::ScorerError;

/// SQuAD-style normalisation, Unicode-aware: NFKC, lower case, punctuation removed, the English
/// articles a/an/the removed, whitespace collapsed.
pub fn normalize(text: &str) -> String {
    tokens(text).join(" ")
}

/// Normalised tokens (see [`normalize`]).
pub fn tokens(text: &str) -> Vec<String> {
    let folded: String = text
        .nfkc()
        .flat_map(char::to_lowercase)
        .map(|c| if is_punctuation(c) { ' ' } else { c })
        .collect();
    folded
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .map(str::to_string)
        .collect()
}

/// ASCII punctuation plus the common Unicode punctuation and symbol marks (quotes, dashes,
/// ellipsis, CJK full stops, inverted marks).
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{3000}'..='\u{303F}'
                | '\u{FF01}'..='\u{FF0F}' | '¡' | '¿' | '«' | '»' | '·'
        )
}

/// Whether `output` contains `expected` (whitespace-collapsed; case-folded unless asked not to).
/// An empty expected answer is contained in nothing (it would pass every output).
pub fn contains(output: &str, expected: &str, case_sensitive: bool) -> bool {
    let squash = |s: &str| {
        let s: String = s.nfkc().collect();
        let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if case_sensitive {
            s
        } else {
            s.to_lowercase()
        }
    };
    let e = squash(expected);
    !e.is_empty() && squash(output).contains(&e)
}

/// Finds which of a fixed set of labels a model chose, even when the label sits in a sentence
/// ("The sentiment of this review is **positive**."), is negated ("not negative, it is
/// positive"), or is a longer label containing a shorter one ("very positive" vs "positive").
#[derive(Debug, Clone)]
pub struct ChoiceExtractor {
    choices: Vec<String>,
    /// Lower-cased NFKC forms, aligned with `choices`.
    folded: Vec<String>,
}

impl ChoiceExtractor {
    /// An extractor for `choices`; fails when the list is empty or has an empty or repeated label
    /// (compared case- and Unicode-insensitively).
    pub fn new(choices: &[String]) -> Result<Self, ScorerError> {
        if choices.is_empty() {
            return Err(ScorerError::NoChoices);
        }
        let folded: Vec<String> = choices.iter().map(|c| fold(c)).collect();
        for (i, f) in folded.iter().enumerate() {
            if f.is_empty() {
                return Err(ScorerError::EmptyChoice(i));
            }
            if folded[..i].contains(f) {
                return Err(ScorerError::DuplicateChoice(choices[i].clone()));
            }
        }
        Ok(Self {
            choices: choices.to_vec(),
            folded,
        })
    }

    /// The labels as given, in their original spelling.
    pub fn choices(&self) -> &[String] {
        &self.choices
    }

    /// The choice a whole answer names (case- and punctuation-insensitive), if it is exactly one.
    pub fn canonical(&self, answer: &str) -> Option<String> {
        let f = fold(answer);
        let f = f.trim_matches(|c: char| is_punctuation(c) || c.is_whitespace());
        self.folded
            .iter()
            .position(|c| c == f)
            .map(|i| self.choices[i].clone())
    }

    /// The chosen label, or `None` when no label is named (or only negated ones).
    pub fn extract(&self, output: &str) -> Option<String> {
        if let Some(c) = self.canonical(output) {
            return Some(c);
        }
        let text = fold(output);
        // Every whole-word occurrence of every choice: (start, end, choice index).
        let mut hits: Vec<(usize, usize, usize)> = Vec::new();
        for (i, choice) in self.folded.iter().enumerate() {
            let single_letter = choice.chars().count() == 1;
            for (start, _) in text.match_indices(choice.as_str()) {
                let end = start + choice.len();
                if !is_boundary(&text, start, end) {
                    continue;
                }
                // A one-letter label ("a", "b"…) counts only when written upper case in the
                // original, so the article "a" is not read as choice A.
                if single_letter && !upper_at(output, &text, start) {
                    continue;
                }
                hits.push((start, end, i));
            }
        }
        // Drop hits inside a longer hit ("positive" inside "very positive").
        let spans = hits.clone();
        hits.retain(|&(s, e, _)| {
            !spans
                .iter()
                .any(|&(s2, e2, _)| s2 <= s && e <= e2 && (e2 - s2) > (e - s))
        });
        // Drop negated hits ("not negative", "isn't positive").
        hits.retain(|&(s, _, _)| !negated_before(&text[..s]));
        hits.sort();
        hits.first().map(|&(_, _, i)| self.choices[i].clone())
    }
}

fn fold(s: &str) -> String {
    s.nfkc().flat_map(char::to_lowercase).collect()
}

fn is_boundary(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    !word(before) && !word(after)
}

/// Whether the one-letter label at byte `start` of the folded text reads as a label in the
/// original: written upper case, and not used as a word ("A good movie" is the article).
/// Folding changes byte offsets only for some non-ASCII text; when the lengths differ the
/// check falls back to "some letter is upper case".
fn upper_at(original: &str, folded: &str, start: usize) -> bool {
    let original_nfkc: String = original.nfkc().collect();
    if original_nfkc.len() != folded.len() {
        return original.chars().any(char::is_uppercase);
    }
    let mut rest = original_nfkc[start..].chars();
    if !rest.next().is_some_and(char::is_uppercase) {
        return false;
    }
    let next = rest.next();
    let after = rest.next();
    !(next.is_some_and(char::is_whitespace) && after.is_some_and(char::is_lowercase))
}

fn negated_before(prefix: &str) -> bool {
    let words: Vec<&str> = prefix
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .collect();
    matches!(
        words.last(),
        Some(&("not" | "no" | "isn't" | "isnt" | "wasn't" | "never" | "nor"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(choices: &[&str]) -> ChoiceExtractor {
        ChoiceExtractor::new(&choices.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn normalizes_unicode_punctuation_and_articles() {
        assert_eq!(normalize("  The  Eiffel\u{00A0}Tower!! "), "eiffel tower");
        assert_eq!(
            normalize("ＰＡＲＩＳ。"),
            "paris",
            "full-width folded by NFKC"
        );
        assert_eq!(normalize("Ça va — très bien…"), "ça va très bien");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn contains_is_case_insensitive_by_default_and_empty_never_matches() {
        assert!(contains("The answer is PARIS.", "paris", false));
        assert!(!contains("The answer is PARIS.", "paris", true));
        assert!(!contains("anything", "", false));
        assert!(contains("Zürich  ist schön", "zürich ist", false));
    }

    #[test]
    fn choice_label_in_a_sentence() {
        let c = ex(&["positive", "negative"]);
        assert_eq!(c.extract("positive").as_deref(), Some("positive"));
        assert_eq!(c.extract("  Negative.\n").as_deref(), Some("negative"));
        assert_eq!(
            c.extract("The sentiment of this review is **Positive**.")
                .as_deref(),
            Some("positive")
        );
        assert_eq!(
            c.extract("It is not negative; overall it is positive.")
                .as_deref(),
            Some("positive")
        );
        assert_eq!(c.extract("").as_deref(), None, "empty output");
        assert_eq!(c.extract("I cannot tell.").as_deref(), None);
        assert_eq!(
            c.extract("positively great").as_deref(),
            None,
            "whole words only"
        );
    }

    #[test]
    fn choice_longer_label_wins_and_letters_need_upper_case() {
        let c = ex(&["positive", "very positive", "neutral"]);
        assert_eq!(
            c.extract("I'd say very positive").as_deref(),
            Some("very positive")
        );
        let letters = ex(&["A", "B", "C", "D"]);
        assert_eq!(
            letters
                .extract("A good question. The answer is C.")
                .as_deref(),
            Some("C")
        );
        assert_eq!(letters.extract("(B) because ...").as_deref(), Some("B"));
        assert_eq!(
            letters.extract("b").as_deref(),
            Some("B"),
            "whole answer, any case"
        );
        let unicode = ex(&["très bien", "mal"]);
        assert_eq!(
            unicode.extract("C'est TRÈS BIEN !").as_deref(),
            Some("très bien")
        );
    }

    #[test]
    fn bad_choice_lists_are_rejected() {
        assert!(ChoiceExtractor::new(&[]).is_err());
        assert!(ChoiceExtractor::new(&["Yes".into(), "yes".into()]).is_err());
    }
}
