//! Token counts as an upstream writes them, read saturating: any JSON number becomes the nearest
//! `u32` (negative and NaN are 0, fractions are cut, anything above `u32::MAX` is `u32::MAX`), so
//! a hostile or buggy upstream can neither fail a whole answer over its usage nor wrap a sum.

use serde::{Deserialize, Deserializer};

/// A JSON number as a count.
#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

impl Number {
    fn saturate(self) -> u32 {
        match self {
            Number::Unsigned(n) => u32::try_from(n).unwrap_or(u32::MAX),
            Number::Signed(n) => u32::try_from(n.max(0)).unwrap_or(u32::MAX),
            // `as` from a float saturates and maps NaN to 0.
            Number::Float(f) => f as u32,
        }
    }
}

/// Read a count (see the module's documentation).
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    Number::deserialize(deserializer).map(Number::saturate)
}

/// Read an optional count: `null` is `None`.
pub(crate) fn deserialize_option<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    Ok(Option::<Number>::deserialize(deserializer)?.map(Number::saturate))
}

#[cfg(test)]
mod tests {
    use crate::Usage;

    fn usage(prompt: &str) -> Usage {
        serde_json::from_str(&format!(
            r#"{{"prompt_tokens": {prompt}, "completion_tokens": 2, "total_tokens": 1e30}}"#
        ))
        .unwrap()
    }

    #[test]
    fn counts_saturate_instead_of_failing() {
        assert_eq!(usage("5").prompt_tokens, 5);
        assert_eq!(usage("-5").prompt_tokens, 0);
        assert_eq!(usage("7.9").prompt_tokens, 7);
        assert_eq!(usage("1e30").prompt_tokens, u32::MAX);
        assert_eq!(usage("-1e30").prompt_tokens, 0);
        assert_eq!(usage("18446744073709551615").prompt_tokens, u32::MAX);
        assert_eq!(usage("99999999999999999999999").prompt_tokens, u32::MAX);
        assert_eq!(usage("-9223372036854775808").prompt_tokens, 0);
        assert_eq!(usage("4294967296").total_tokens, u32::MAX);
        assert!(serde_json::from_str::<Usage>(
            r#"{"prompt_tokens": "5", "completion_tokens": 2, "total_tokens": 7}"#
        )
        .is_err());
        assert_eq!(Usage::new(u32::MAX, 5).total_tokens, u32::MAX);
    }
}
