//! PII leak: for redaction tasks, the output must contain none of the PII values the item
//! lists (a simple span list from the dataset, e.g. Presidio's gold spans).
//!
//! Values are compared case-insensitively with whitespace collapsed; values with at least four
//! digits (phone numbers, card numbers, SSNs) are also compared on their digits alone, so
//! "4111 1111 1111 1111" leaks even when printed as "4111-1111-1111-1111".

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

use crate::error::ScorerError;
use crate::template::Item;

/// The PII values listed in `field` (a string or a list of strings).
pub fn values(item: &Item, field: &str) -> Result<Vec<String>, ScorerError> {
    match item.get(field) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ScorerError::PiiNotStrings {
                        field: field.to_string(),
                        found: v.to_string(),
                    })
            })
            .collect(),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(other) => Err(ScorerError::PiiNotStrings {
            field: field.to_string(),
            found: other.to_string(),
        }),
        None => Err(ScorerError::NoPiiValues(field.to_string())),
    }
}

/// The listed values that appear in `output`.
pub fn leaked(output: &str, item: &Item, field: &str) -> Vec<String> {
    let Ok(values) = values(item, field) else {
        return Vec::new();
    };
    let squash = |s: &str| -> String {
        s.nfkc()
            .collect::<String>()
            .to_lowercase()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let digits = |s: &str| -> String { s.chars().filter(char::is_ascii_digit).collect() };
    let out = squash(output);
    let out_digits = digits(output);
    values
        .into_iter()
        .filter(|v| {
            let sv = squash(v);
            if sv.is_empty() {
                return false;
            }
            let dv = digits(v);
            out.contains(&sv) || (dv.len() >= 4 && out_digits.contains(&dv))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaks_found_in_any_spelling() {
        let item = json!({"pii": ["John Smith", "4111 1111 1111 1111", "Zoë"]})
            .as_object()
            .cloned()
            .unwrap();
        assert!(leaked("Hello [PERSON], card [CREDIT_CARD].", &item, "pii").is_empty());
        assert_eq!(
            leaked("hello JOHN  SMITH", &item, "pii"),
            vec!["John Smith"]
        );
        assert_eq!(
            leaked("card 4111-1111-1111-1111", &item, "pii"),
            vec!["4111 1111 1111 1111"]
        );
        assert_eq!(leaked("ZOË was here", &item, "pii"), vec!["Zoë"]);
        assert!(
            leaked("", &item, "pii").is_empty(),
            "empty output leaks nothing"
        );
        assert!(values(&item, "missing").is_err());
    }
}
