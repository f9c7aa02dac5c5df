//! Constrained output for small models: JSON schemas become GBNF grammars that llama.cpp's
//! grammar sampler enforces token by token, so the output always parses.
//!
//! `choices` are scored by the engine instead (`super::choices`); their grammar, a plain
//! alternation, is kept for models that cannot score (recurrent and hybrid ones) and for
//! comparisons. The validation of `choices` lives here for both paths.

use serde_json::Value;

use crate::types::{ChatRequest, ResponseFormat};
use crate::{BackendError, Result};

/// A generic JSON value, for `response_format: {type: json_object}` (after llama.cpp's
/// grammars/json.gbnf, restricted to an object at the root).
const JSON_OBJECT_GBNF: &str = r#"root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
"#;

/// The grammar a request asks for, if any. `choices` are validated either way and become a
/// grammar only when `choices_by_grammar` (the engine cannot score them).
pub fn grammar_for(request: &ChatRequest, choices_by_grammar: bool) -> Result<Option<String>> {
    if let Some(choices) = &request.choices {
        if request.response_format.is_some() {
            return Err(BackendError::InvalidRequest(
                "`choices` and `response_format` cannot be combined".into(),
            ));
        }
        check_choices(choices)?;
        return Ok(choices_by_grammar.then(|| choices_grammar_unchecked(choices)));
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => Ok(None),
        Some(ResponseFormat::JsonObject) => Ok(Some(JSON_OBJECT_GBNF.to_string())),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            json_schema_grammar(&json_schema.schema).map(Some)
        }
    }
}

/// `root ::= "a" | "b"`: the answer is exactly one of the choices.
pub fn choices_grammar(choices: &[String]) -> Result<String> {
    check_choices(choices)?;
    Ok(choices_grammar_unchecked(choices))
}

fn choices_grammar_unchecked(choices: &[String]) -> String {
    let alternatives: Vec<String> = choices.iter().map(|c| gbnf_literal(c)).collect();
    format!("root ::= {}\n", alternatives.join(" | "))
}

/// At least one choice, none empty.
pub fn check_choices(choices: &[String]) -> Result<()> {
    if choices.is_empty() {
        return Err(BackendError::InvalidRequest(
            "`choices` must list at least one string".into(),
        ));
    }
    if choices.iter().any(String::is_empty) {
        return Err(BackendError::InvalidRequest(
            "`choices` must not contain an empty string".into(),
        ));
    }
    Ok(())
}

/// A JSON schema converted by llama.cpp's own `json_schema_to_grammar`.
pub fn json_schema_grammar(schema: &Value) -> Result<String> {
    let text = if schema.is_null() {
        "{}".to_string()
    } else {
        schema.to_string()
    };
    llama_cpp_2::json_schema_to_grammar(&text)
        .map_err(|e| BackendError::InvalidRequest(format!("response_format.json_schema: {e}")))
}

fn gbnf_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_escaped_alternatives() {
        let g = choices_grammar(&["yes".into(), "say \"no\"".into()]).unwrap();
        assert_eq!(g, "root ::= \"yes\" | \"say \\\"no\\\"\"\n");
    }

    #[test]
    fn empty_choices_are_rejected() {
        assert!(choices_grammar(&[]).is_err());
        assert!(choices_grammar(&[String::new()]).is_err());
    }

    #[test]
    fn scored_choices_are_validated_but_get_no_grammar() {
        let mut request = ChatRequest::user("local", "hi");
        request.choices = Some(vec!["a".into(), "b".into()]);
        assert_eq!(grammar_for(&request, false).unwrap(), None);
        assert_eq!(
            grammar_for(&request, true).unwrap().as_deref(),
            Some("root ::= \"a\" | \"b\"\n")
        );
        request.choices = Some(vec!["a".into(), String::new()]);
        let err = grammar_for(&request, false).unwrap_err().to_string();
        assert!(err.contains("must not contain an empty string"), "{err}");
        request.choices = Some(vec!["a".into()]);
        request.response_format = Some(ResponseFormat::JsonObject);
        let err = grammar_for(&request, false).unwrap_err().to_string();
        assert!(err.contains("cannot be combined"), "{err}");
    }
}
