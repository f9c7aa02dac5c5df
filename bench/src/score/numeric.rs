//! The final number of an answer, GSM8K style.
//!
//! Where the answer marks it (`#### 18`, `The answer is 18`), the first number after the last
//! marker is taken; otherwise the last number in the text. Thousands separators (`1,234`),
//! currency signs, the Unicode minus, full-width digits (via NFKC) and trailing units or full
//! stops are handled.

use std::sync::LazyLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// 1,234,567.89 | 1234.5 | .5, with an optional sign; commas only in groups of three.
static NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\b").ok()
});
static MARKER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)####|answer\s*(?:is|:|=)\s*:?").ok());

/// The answer's final number, if any.
pub fn final_number(text: &str) -> Option<f64> {
    let number = NUMBER.as_ref()?;
    let marker = MARKER.as_ref()?;
    let text: String = text
        .nfkc()
        .map(|c| {
            if matches!(c, '\u{2212}' | '\u{2013}') {
                '-'
            } else {
                c
            }
        })
        .collect();
    if let Some(m) = marker.find_iter(&text).last() {
        if let Some(n) = number.find(&text[m.end()..]) {
            return parse(n.as_str());
        }
    }
    parse(number.find_iter(&text).last()?.as_str())
}

fn parse(s: &str) -> Option<f64> {
    s.replace(',', "")
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_compile() {
        assert!(NUMBER.is_some() && MARKER.is_some());
    }

    #[test]
    fn gsm8k_cases() {
        assert_eq!(
            final_number("She makes 9 * $2 = $<<9*2=18>>18.\n#### 18"),
            Some(18.0)
        );
        assert_eq!(
            final_number("so the total is $1,234,567.50."),
            Some(1234567.5)
        );
        assert_eq!(final_number("The answer is 42 apples, not 7."), Some(42.0));
        assert_eq!(final_number("Answer: −5 degrees"), Some(-5.0));
        assert_eq!(final_number("2 + 3 = 5"), Some(5.0));
        assert_eq!(final_number("We need 3.5 hours."), Some(3.5));
        assert_eq!(final_number("答案是 ７２"), Some(72.0), "full-width digits");
        assert_eq!(final_number("no number here"), None);
        assert_eq!(final_number(""), None);
    }
}
