//! Anthropic Messages ⇄ the internal (OpenAI-shaped) chat types: a Messages request becomes a
//! [`ChatRequest`], so routing, PII, budgets and every backend see exactly what the chat
//! endpoint would give them; a [`ChatResponse`] becomes a Messages API `message`.
//!
//! The inverse of `backends::anthropic`'s translation (OpenAI → Messages for an Anthropic
//! upstream), so a request that goes through both arrives as the client sent it: `system` →
//! a system message, `tool_use` blocks → assistant `tool_calls`, `tool_result` blocks → `tool`
//! messages (before the turn's other blocks, as the Messages API requires them first), images
//! → `image_url` parts (base64 as a data URL), `stop_sequences` → `stop`, custom tools →
//! function tools, `tool_choice` `any` → `required`, `disable_parallel_tool_use` →
//! `parallel_tool_calls: false`, `metadata.user_id` → `user`.

use backends::{
    ChatMessage, ChatRequest, ChatResponse, FinishReason, MessageContent, Role, StopSequences,
    Usage,
};
use serde_json::{json, Map, Value};

use super::wire::{
    Block, ImageSource, InputRole, MessagesRequest, TextBlock, TextOrBlocks, ToolChoice,
};
use crate::gateway::error::ApiError;

/// A Messages request as the internal chat request; a request no backend could be given
/// (a server tool, an image inside a tool result) is a 400 naming the field.
pub(crate) fn to_chat_request(request: MessagesRequest) -> Result<ChatRequest, ApiError> {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        let text = match system {
            TextOrBlocks::Text(text) => text.clone(),
            TextOrBlocks::Blocks(blocks) => blocks
                .iter()
                .map(TextBlock::text)
                .collect::<Vec<_>>()
                .join("\n\n"),
        };
        if !text.is_empty() {
            messages.push(ChatMessage::new(Role::System, text));
        }
    }
    for (i, message) in request.messages.iter().enumerate() {
        match (&message.role, &message.content) {
            (InputRole::User, TextOrBlocks::Text(text)) => {
                messages.push(ChatMessage::new(Role::User, text.clone()));
            }
            (InputRole::Assistant, TextOrBlocks::Text(text)) => {
                messages.push(ChatMessage::new(Role::Assistant, text.clone()));
            }
            (InputRole::User, TextOrBlocks::Blocks(blocks)) => user_turn(blocks, i, &mut messages)?,
            (InputRole::Assistant, TextOrBlocks::Blocks(blocks)) => {
                messages.push(assistant_turn(blocks, i)?);
            }
        }
    }
    let mut extra = request.extra;
    if let Some(tools) = &request.tools {
        let mut out = Vec::with_capacity(tools.len());
        for (j, tool) in tools.iter().enumerate() {
            if let Some(kind) = tool.kind.as_deref().filter(|k| *k != "custom") {
                return Err(bad(
                    &format!("tools[{j}]"),
                    &format!(
                        "server tool type `{kind}` is not supported: triage forwards only client \
                         (custom) tools, which every backend can call"
                    ),
                ));
            }
            let Some(schema) = &tool.input_schema else {
                return Err(bad(
                    &format!("tools[{j}].input_schema"),
                    "a custom tool needs an `input_schema`",
                ));
            };
            let mut function = json!({"name": tool.name, "parameters": schema});
            if let Some(d) = &tool.description {
                function["description"] = json!(d);
            }
            out.push(json!({"type": "function", "function": function}));
        }
        extra.insert("tools".into(), Value::Array(out));
    }
    if let Some(choice) = &request.tool_choice {
        let (value, parallel) = match choice {
            ToolChoice::Auto {
                disable_parallel_tool_use,
            } => (json!("auto"), disable_parallel_tool_use),
            ToolChoice::Any {
                disable_parallel_tool_use,
            } => (json!("required"), disable_parallel_tool_use),
            ToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (
                json!({"type": "function", "function": {"name": name}}),
                disable_parallel_tool_use,
            ),
            ToolChoice::None => (json!("none"), &None),
        };
        extra.insert("tool_choice".into(), value);
        if *parallel == Some(true) {
            extra.insert("parallel_tool_calls".into(), json!(false));
        }
    }
    let mut metadata = request.metadata.unwrap_or_default();
    if let Some(user) = metadata.remove("user_id") {
        if !user.is_null() {
            extra.insert("user".into(), user);
        }
    }
    Ok(ChatRequest {
        model: request.model,
        messages,
        max_tokens: Some(request.max_tokens),
        temperature: request.temperature,
        top_p: request.top_p,
        top_k: request.top_k,
        stop: request
            .stop_sequences
            .filter(|s| !s.is_empty())
            .map(StopSequences::Many),
        stream: request.stream,
        metadata: (!metadata.is_empty()).then_some(metadata),
        extra,
        ..ChatRequest::default()
    })
}

fn bad(param: &str, what: &str) -> ApiError {
    ApiError::bad_request(
        format!("Invalid `{param}`: {what}"),
        Some(param.to_string()),
    )
}

/// A user turn's blocks: each `tool_result` as a `tool` message (first, in order), the rest as
/// one user message of content parts.
fn user_turn(blocks: &[Block], i: usize, out: &mut Vec<ChatMessage>) -> Result<(), ApiError> {
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block {
            Block::Text { text } => parts.push(json!({"type": "text", "text": text})),
            Block::Image { source } => parts.push(image_part(source)),
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut text = match content {
                    None => String::new(),
                    Some(TextOrBlocks::Text(t)) => t.clone(),
                    Some(TextOrBlocks::Blocks(b)) => {
                        b.iter().map(TextBlock::text).collect::<Vec<_>>().join("")
                    }
                };
                if *is_error {
                    text = format!("Error: {text}");
                }
                let mut message = ChatMessage::new(Role::Tool, text);
                message
                    .extra
                    .insert("tool_call_id".into(), json!(tool_use_id));
                out.push(message);
            }
            Block::ToolUse { .. } => {
                return Err(bad(
                    &format!("messages[{i}].content[{j}]"),
                    "`tool_use` blocks belong in assistant turns",
                ))
            }
        }
    }
    if !parts.is_empty() {
        out.push(ChatMessage {
            role: Role::User,
            content: Some(MessageContent::Parts(parts)),
            extra: Map::new(),
        });
    }
    Ok(())
}

fn image_part(source: &ImageSource) -> Value {
    let url = match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url.clone(),
    };
    json!({"type": "image_url", "image_url": {"url": url}})
}

/// An assistant turn: its text, and its `tool_use` blocks as `tool_calls`.
fn assistant_turn(blocks: &[Block], i: usize) -> Result<ChatMessage, ApiError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        match block {
            Block::Text { text: t } => text.push_str(t),
            Block::ToolUse { id, name, input } => calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            Block::Image { .. } | Block::ToolResult { .. } => {
                return Err(bad(
                    &format!("messages[{i}].content[{j}]"),
                    "assistant turns hold only `text` and `tool_use` blocks",
                ))
            }
        }
    }
    let mut message = ChatMessage {
        role: Role::Assistant,
        content: (!text.is_empty() || calls.is_empty()).then_some(MessageContent::Text(text)),
        extra: Map::new(),
    };
    if !calls.is_empty() {
        message
            .extra
            .insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(message)
}

/// The Messages API `stop_reason` and `stop_sequence` of a finish reason and the stop string a
/// backend said ended the answer: `stop_sequence` and that string when there is one, else an
/// ordinary stop is `end_turn` (and every other reason has no stop sequence).
pub(crate) fn stop_reason<'a>(
    reason: &'a FinishReason,
    stop_sequence: Option<&str>,
) -> (&'a str, Value) {
    match (reason, stop_sequence) {
        (FinishReason::Stop, Some(sequence)) => ("stop_sequence", json!(sequence)),
        _ => (finish_stop_reason(reason), Value::Null),
    }
}

/// The `stop_reason` of a finish reason alone.
fn finish_stop_reason(reason: &FinishReason) -> &str {
    match reason {
        FinishReason::Stop => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls | FinishReason::FunctionCall => "tool_use",
        FinishReason::ContentFilter => "refusal",
        FinishReason::Other(other) => other,
    }
}

/// Anthropic's usage object for internal counts.
pub(crate) fn usage_json(usage: &Usage) -> Value {
    json!({"input_tokens": usage.prompt_tokens, "output_tokens": usage.completion_tokens})
}

/// The `input` of a `tool_use` block: the call's JSON arguments (an empty object when the
/// model wrote none). Arguments that are not JSON are an upstream fault, reported as such.
pub(crate) fn tool_input(name: &str, arguments: &str) -> Result<Value, ApiError> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(arguments).map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "api_error",
            format!("the backend's call of tool `{name}` has arguments that are not JSON ({e})"),
        )
        .with_code("invalid_tool_arguments")
    })
}

/// A whole answer as a Messages API `message` with this `id` and `model`.
pub(crate) fn to_message(
    response: &ChatResponse,
    id: &str,
    model: &str,
) -> Result<Value, ApiError> {
    let mut content = Vec::new();
    let choice = response.choices.first();
    if let Some(message) = choice.map(|c| &c.message) {
        let text = message.content.as_deref().or(message.refusal.as_deref());
        if let Some(text) = text.filter(|t| !t.is_empty()) {
            content.push(json!({"type": "text", "text": text}));
        }
        for call in message.tool_calls.iter().flatten() {
            content.push(json!({
                "type": "tool_use",
                "id": call.id,
                "name": call.function.name,
                "input": tool_input(&call.function.name, &call.function.arguments)?,
            }));
        }
    }
    let (reason, sequence) = choice
        .and_then(|c| {
            let reason = c.finish_reason.as_ref()?;
            Some(stop_reason(reason, c.stop_sequence.as_deref()))
        })
        .unwrap_or(("end_turn", Value::Null));
    Ok(json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": model,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_json(&response.usage.clone().unwrap_or_default()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(v: Value) -> Result<ChatRequest, ApiError> {
        to_chat_request(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn a_messages_request_becomes_the_chat_request_of_the_same_conversation() {
        let chat = convert(json!({
            "model": "auto", "max_tokens": 64, "system": "Be brief.",
            "stop_sequences": ["\n\n"], "temperature": 0.2, "top_k": 5,
            "metadata": {"user_id": "u-1", "task": "qa"},
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "messages": [
                {"role": "user", "content": "Weather in SF?"},
                {"role": "assistant", "content": [{"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "SF"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "20C"}]},
                    {"type": "text", "text": "Thanks"}]}
            ]
        }))
        .unwrap();
        let v = serde_json::to_value(&chat).unwrap();
        assert_eq!(
            v["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in SF?"},
                {"role": "assistant", "content": "Looking.", "tool_calls": [{"id": "toolu_1",
                    "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"SF\"}"}}]},
                {"role": "tool", "content": "20C", "tool_call_id": "toolu_1"},
                {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}
            ])
        );
        assert_eq!(v["max_tokens"], 64);
        assert_eq!(v["stop"], json!(["\n\n"]));
        assert_eq!(v["top_k"], 5);
        assert_eq!(v["user"], "u-1");
        assert_eq!(v["metadata"], json!({"task": "qa"}));
        assert_eq!(v["tool_choice"], "required");
        assert_eq!(v["parallel_tool_calls"], false);
        assert_eq!(
            v["tools"][0],
            json!({"type": "function", "function": {"name": "get_weather",
                "description": "Weather", "parameters": {"type": "object"}}})
        );
    }

    #[test]
    fn what_no_backend_could_take_is_a_named_400() {
        let server_tool = convert(json!({"model": "auto", "max_tokens": 5,
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}))
        .unwrap_err();
        assert_eq!(server_tool.param.as_deref(), Some("tools[0]"));
        assert!(server_tool.message.contains("web_search_20250305"));
        let misplaced = convert(json!({"model": "auto", "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "f", "input": {}}]}]}))
        .unwrap_err();
        assert_eq!(misplaced.param.as_deref(), Some("messages[0].content[0]"));
    }

    #[test]
    fn a_chat_response_becomes_a_message() {
        let response: ChatResponse = serde_json::from_value(json!({
            "id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "Let me check.",
                "tool_calls": [{"id": "call_1", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"SF\"}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
        }))
        .unwrap();
        let m = to_message(&response, "msg_1", "llm").unwrap();
        assert_eq!(m["type"], "message");
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"][0],
            json!({"type": "text", "text": "Let me check."})
        );
        assert_eq!(m["content"][1]["input"], json!({"city": "SF"}));
        assert_eq!(m["usage"], json!({"input_tokens": 10, "output_tokens": 4}));
        assert_eq!(m["stop_sequence"], Value::Null);
        assert_eq!(
            stop_reason(&FinishReason::Length, None),
            ("max_tokens", Value::Null)
        );
    }

    #[test]
    fn a_stop_string_the_backend_named_is_reported_as_the_stop_sequence() {
        let mut response = ChatResponse {
            choices: vec![backends::Choice {
                finish_reason: Some(FinishReason::Stop),
                stop_sequence: Some("\n\n".into()),
                ..backends::Choice::default()
            }],
            ..ChatResponse::default()
        };
        let m = to_message(&response, "msg_1", "slm").unwrap();
        assert_eq!(m["stop_reason"], "stop_sequence");
        assert_eq!(m["stop_sequence"], "\n\n");
        // Without a named string an ordinary stop is the end of the turn.
        response.choices[0].stop_sequence = None;
        let m = to_message(&response, "msg_1", "slm").unwrap();
        assert_eq!(m["stop_reason"], "end_turn");
        assert_eq!(m["stop_sequence"], Value::Null);
        // A length cut is never a stop sequence.
        assert_eq!(
            stop_reason(&FinishReason::Length, Some("x")),
            ("max_tokens", Value::Null)
        );
    }
}
