//! Shape checks of the request fields triage forwards without modelling them: content parts,
//! `tools` and assistant `tool_calls`. They are kept as JSON so a new part type or tool field
//! passes through to upstreams that know it, but a value that no API accepts (a part without a
//! `type`, `tools: "all"`, a tool call without a function name) is a 400 naming the field here,
//! not an upstream error later or a request the local engine silently misreads.

use backends::{ChatRequest, MessageContent};
use serde_json::Value;

use crate::gateway::error::ApiError;

/// Check the unmodelled fields' shapes; the error names the first bad field.
pub(super) fn check(request: &ChatRequest) -> Result<(), ApiError> {
    for (i, message) in request.messages.iter().enumerate() {
        if let Some(MessageContent::Parts(parts)) = &message.content {
            for (j, part) in parts.iter().enumerate() {
                check_part(part, &format!("messages[{i}].content[{j}]"))?;
            }
        }
        if let Some(calls) = message.extra.get("tool_calls") {
            check_tool_calls(calls, &format!("messages[{i}].tool_calls"))?;
        }
    }
    if let Some(tools) = request.extra.get("tools") {
        check_tools(tools)?;
    }
    Ok(())
}

fn bad(param: &str, what: &str) -> ApiError {
    ApiError::bad_request(
        format!("Invalid `{param}`: {what}"),
        Some(param.to_string()),
    )
}

fn check_part(part: &Value, param: &str) -> Result<(), ApiError> {
    let Some(kind) = part.get("type").and_then(Value::as_str) else {
        return Err(bad(
            param,
            "a content part must be an object with a string `type`",
        ));
    };
    match kind {
        "text" if !part.get("text").is_some_and(Value::is_string) => Err(bad(
            &format!("{param}.text"),
            "a text part needs a string `text`",
        )),
        "image_url" => {
            let url = part.get("image_url").and_then(|u| match u {
                Value::String(s) => Some(s.as_str()),
                other => other.get("url").and_then(Value::as_str),
            });
            if url.is_some() {
                Ok(())
            } else {
                Err(bad(
                    &format!("{param}.image_url"),
                    "an image part needs `image_url.url`",
                ))
            }
        }
        _ => Ok(()),
    }
}

fn check_tools(tools: &Value) -> Result<(), ApiError> {
    let Some(list) = tools.as_array() else {
        return Err(bad("tools", "must be an array of tool objects"));
    };
    for (i, tool) in list.iter().enumerate() {
        let param = format!("tools[{i}]");
        let Some(kind) = tool.get("type").and_then(Value::as_str) else {
            return Err(bad(&param, "a tool must be an object with a string `type`"));
        };
        if kind == "function" {
            let named = tool
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                return Err(bad(
                    &format!("{param}.function"),
                    "a function tool needs `function.name`",
                ));
            }
        }
    }
    Ok(())
}

fn check_tool_calls(calls: &Value, param: &str) -> Result<(), ApiError> {
    let Some(list) = calls.as_array() else {
        return Err(bad(param, "must be an array of tool calls"));
    };
    for (i, call) in list.iter().enumerate() {
        let function = call.get("function");
        let named = function
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .is_some();
        let args = function
            .and_then(|f| f.get("arguments"))
            .is_none_or(Value::is_string);
        if !named || !args {
            return Err(bad(
                &format!("{param}[{i}].function"),
                "a tool call needs `function.name` and string `function.arguments`",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn bad_shapes_are_named_and_good_ones_pass() {
        let ok = request(serde_json::json!({"model": "auto", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"},
                {"type": "image_url", "image_url": {"url": "data:,x"}}, {"type": "input_audio"}]},
            {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                "function": {"name": "f", "arguments": "{}"}}]}],
            "tools": [{"type": "function", "function": {"name": "f"}}]}));
        assert!(check(&ok).is_ok());
        for (body, param) in [
            (
                serde_json::json!({"model": "a", "messages": [{"role": "user", "content": [{"text": "x"}]}]}),
                "messages[0].content[0]",
            ),
            (
                serde_json::json!({"model": "a", "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "messages[0].content[0].text",
            ),
            (
                serde_json::json!({"model": "a", "messages": [{"role": "user", "content": "x"}], "tools": "all"}),
                "tools",
            ),
            (
                serde_json::json!({"model": "a", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}),
                "tools[0].function",
            ),
            (
                serde_json::json!({"model": "a", "messages": [{"role": "assistant", "tool_calls": "x"}]}),
                "messages[0].tool_calls",
            ),
            (
                serde_json::json!({"model": "a", "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]}),
                "messages[0].tool_calls[0].function",
            ),
        ] {
            let e = check(&request(body)).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
            assert_eq!(e.param.as_deref(), Some(param));
        }
    }
}
