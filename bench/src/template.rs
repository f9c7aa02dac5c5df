//! `{{field}}` templates for prompts and expected answers.
//!
//! Hand-written rather than a template engine: the only syntax is `{{name}}` (spaces inside the
//! braces allowed), a missing field is an error naming it, and there is nothing to escape —
//! prompts are plain text, so an engine's HTML escaping, loops and filters would only get in the
//! way.

use serde_json::{Map, Value};

use crate::error::{BenchError, Result};

/// One dataset item: field name → value (strings, numbers, lists, objects).
pub type Item = Map<String, Value>;

/// A parsed template: literal text and field references, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Field(String),
}

impl Template {
    /// Parse `text`. An unclosed `{{` is kept as literal text.
    pub fn parse(text: &str) -> Template {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open + 2..].find("}}") else {
                break;
            };
            let name = rest[open + 2..open + 2 + close].trim();
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.');
            if !valid {
                // Not a placeholder (e.g. `{{ }}` or JSON braces): keep as text.
                parts.push(Part::Text(rest[..open + 2].to_string()));
                rest = &rest[open + 2..];
                continue;
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            parts.push(Part::Field(name.to_string()));
            rest = &rest[open + 2 + close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Template { parts }
    }

    /// The field names this template refers to.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Render with the item's fields. Strings are inserted as they are, other values as JSON.
    pub fn render(&self, item: &Item) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(f) => {
                    let value = item.get(f).ok_or_else(|| BenchError::MissingField {
                        field: f.clone(),
                        available: item.keys().cloned().collect::<Vec<_>>().join(", "),
                    })?;
                    out.push_str(&value_text(value));
                }
            }
        }
        Ok(out)
    }
}

/// A value as prompt text: strings verbatim, null as empty, the rest as compact JSON.
pub fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Item {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn renders_fields_and_keeps_other_braces() {
        let t = Template::parse("Review: {{ text }}\nJSON like {\"a\": 1} and {{}} stay; n={{n}}");
        let out = t
            .render(&item(json!({"text": "très bien", "n": 3})))
            .unwrap();
        assert_eq!(
            out,
            "Review: très bien\nJSON like {\"a\": 1} and {{}} stay; n=3"
        );
        assert_eq!(t.fields().collect::<Vec<_>>(), vec!["text", "n"]);
    }

    #[test]
    fn missing_field_is_named() {
        let t = Template::parse("{{label}}");
        let err = t
            .render(&item(json!({"text": "x"})))
            .unwrap_err()
            .to_string();
        assert!(err.contains("{{label}}"), "{err}");
        assert!(err.contains("text"), "{err}");
    }
}
