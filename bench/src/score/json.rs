//! JSON scorers: validity, schema validity (`jsonschema` crate), and field-by-field match
//! against an expected object (for extraction tasks).

use serde_json::{json, Value};

use super::text::normalize;

/// The JSON value in a model answer: the whole text, the inside of a ``` fence, or the span
/// from the first `{`/`[` to the last `}`/`]`.
pub fn extract_json(text: &str) -> Option<Value> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str(t) {
        return Some(v);
    }
    if let Some(start) = t.find("```") {
        let after = &t[start + 3..];
        let after = after.strip_prefix("json").unwrap_or(after);
        if let Some(end) = after.find("```") {
            if let Ok(v) = serde_json::from_str(after[..end].trim()) {
                return Some(v);
            }
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (t.find(open), t.rfind(close)) {
            if s < e {
                if let Ok(v) = serde_json::from_str(&t[s..=e]) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// (passed, raw): valid JSON, and valid against the schema when one is given.
pub fn json_valid(output: &str, schema: Option<&jsonschema::Validator>) -> (bool, Value) {
    let Some(value) = extract_json(output) else {
        return (false, json!({ "valid": false, "schema_errors": [] }));
    };
    let errors: Vec<String> = match schema {
        None => Vec::new(),
        Some(v) => v
            .iter_errors(&value)
            .map(|e| format!("{}: {}", e.instance_path(), e))
            .take(10)
            .collect(),
    };
    (
        errors.is_empty(),
        json!({ "valid": true, "schema_errors": errors }),
    )
}

/// (score, raw): the share of the expected object's fields (or of `fields`) that the output
/// object has with an equal value. Values compare as normalised text, so `4` equals `"4"` and
/// `"7 PM"` equals `"7 pm"`; a null expected value matches a missing or null field.
pub fn json_match(output: &str, expected: &str, fields: &[String]) -> (f64, Value) {
    let Some(Value::Object(want)) = extract_json(expected) else {
        return (
            0.0,
            json!({ "error": "expected answer is not a JSON object" }),
        );
    };
    let got = match extract_json(output) {
        Some(Value::Object(m)) => m,
        _ => {
            return (
                0.0,
                json!({ "valid": false, "matched": [], "mismatched": [] }),
            )
        }
    };
    let keys: Vec<String> = if fields.is_empty() {
        want.keys().cloned().collect()
    } else {
        fields.to_vec()
    };
    if keys.is_empty() {
        return (
            1.0,
            json!({ "valid": true, "matched": [], "mismatched": [] }),
        );
    }
    let mut matched = Vec::new();
    let mut mismatched = Vec::new();
    for k in &keys {
        if same(want.get(k), got.get(k)) {
            matched.push(k.clone());
        } else {
            mismatched.push(json!({ "field": k, "expected": want.get(k), "got": got.get(k) }));
        }
    }
    let score = matched.len() as f64 / keys.len() as f64;
    (
        score,
        json!({ "valid": true, "matched": matched, "mismatched": mismatched }),
    )
}

fn same(want: Option<&Value>, got: Option<&Value>) -> bool {
    let text = |v: Option<&Value>| -> Option<String> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(normalize(s)),
            Some(other) => Some(normalize(&other.to_string())),
        }
    };
    text(want) == text(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_from_fences_and_prose() {
        assert_eq!(extract_json("{\"a\":1}"), Some(json!({"a": 1})));
        assert_eq!(
            extract_json("Here you go:\n```json\n{\"a\": [1, 2]}\n```\nDone."),
            Some(json!({"a": [1, 2]}))
        );
        assert_eq!(
            extract_json("Sure! {\"name\": \"Zoë\"} hope it helps"),
            Some(json!({"name": "Zoë"}))
        );
        assert_eq!(extract_json(""), None);
        assert_eq!(extract_json("{not json}"), None);
    }

    #[test]
    fn schema_validity() {
        let schema = json!({"type": "object", "required": ["people"], "properties": {"people": {"type": "integer"}}});
        let v = jsonschema::validator_for(&schema).unwrap();
        assert!(json_valid("{\"people\": 4}", Some(&v)).0);
        let (ok, raw) = json_valid("{\"people\": \"four\"}", Some(&v));
        assert!(!ok);
        assert_eq!(raw["schema_errors"].as_array().unwrap().len(), 1);
        assert!(!json_valid("", None).0, "empty output is not JSON");
        assert!(json_valid("[1]", None).0);
    }

    #[test]
    fn field_match_share() {
        let expected = r#"{"people": "4", "time": "7 pm", "date": null}"#;
        let (s, raw) = json_match(r#"{"people": 4, "time": "7 PM"}"#, expected, &[]);
        assert!((s - 1.0).abs() < 1e-12, "{raw}");
        let (s, _) = json_match(
            r#"{"people": 5, "time": "7 PM", "date": "today"}"#,
            expected,
            &[],
        );
        assert!((s - 1.0 / 3.0).abs() < 1e-12);
        let (s, _) = json_match("I can't", expected, &[]);
        assert_eq!(s, 0.0);
        let (s, _) = json_match(r#"{"people": 4}"#, expected, &["people".to_string()]);
        assert_eq!(s, 1.0);
    }
}
