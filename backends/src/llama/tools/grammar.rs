//! The grammar of a tool call: `{"name": <one of the tools>, "arguments": <that tool's
//! parameters>}`, as one JSON schema (a `oneOf` over the callable tools, the name a `const`, name
//! before arguments so the name can be streamed first) converted by llama.cpp's own
//! `json_schema_to_grammar`. Under `tool_choice: auto` the call is one alternative and free text
//! that does not start with `{` the other.

use serde_json::Value;

use super::{Tool, ToolChoice, ToolSet};
use crate::{BackendError, Result};

/// Free text for `auto`: empty, or anything whose first character is not `{`.
const FREE_TEXT_RULE: &str = "free-text ::= ([^{] [^\\x00]*)?\n";

/// The GBNF grammar the answer must match.
pub fn grammar(tools: &ToolSet) -> Result<String> {
    let call = call_grammar(&tools.callable())?;
    Ok(match tools.choice {
        ToolChoice::Required | ToolChoice::Named(_) => call,
        ToolChoice::Auto => either_call_or_text(&call),
    })
}

/// The grammar of exactly one call of one of `tools`.
pub fn call_grammar(tools: &[&Tool]) -> Result<String> {
    let schemas: Vec<String> = tools.iter().map(|t| call_schema(t)).collect();
    let schema = match schemas.as_slice() {
        [one] => one.clone(),
        many => format!("{{\"oneOf\":[{}]}}", many.join(",")),
    };
    llama_cpp_2::json_schema_to_grammar(&schema).map_err(|e| {
        BackendError::InvalidRequest(format!(
            "`tools`: a function's `parameters` is not a JSON schema the local engine can \
             enforce ({e})"
        ))
    })
}

/// One tool's call as a JSON schema, written by hand so `name` precedes `arguments`
/// (serde_json's maps sort keys).
fn call_schema(tool: &Tool) -> String {
    let name = Value::String(tool.name.clone());
    format!(
        "{{\"type\":\"object\",\"properties\":{{\"name\":{{\"const\":{name}}},\"arguments\":{}}},\
         \"required\":[\"name\",\"arguments\"],\"additionalProperties\":false}}",
        tool.parameters
    )
}

/// `root ::= tool-call | free-text`: the call grammar's root renamed.
fn either_call_or_text(call: &str) -> String {
    let mut out = String::from("root ::= tool-call | free-text\n");
    out.push_str(FREE_TEXT_RULE);
    for line in call.lines() {
        match line.strip_prefix("root ::=") {
            Some(rest) => {
                out.push_str("tool-call ::=");
                out.push_str(rest);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}
