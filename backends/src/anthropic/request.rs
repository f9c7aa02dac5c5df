//! OpenAI Chat Completions request → Anthropic Messages body: system and developer messages,
//! turns and their content blocks, tools and `tool_choice`, sampling fields, JSON-schema output
//! and emulated `choices`. Kept apart because it is the largest translation and the only one
//! that can reject a client's request before anything is sent.

use serde_json::{json, Map, Value};

use super::DEFAULT_MAX_TOKENS;
use crate::remote;
use crate::{
    choice_schema, BackendError, ChatMessage, ChatRequest, MessageContent, ResponseFormat, Result,
    Role,
};

/// OpenAI request fields that the Messages API does not know and would reject.
const OPENAI_ONLY_FIELDS: &[&str] = &[
    "logit_bias",
    "frequency_penalty",
    "presence_penalty",
    "store",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
    "web_search_options",
    "service_tier",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
    "functions",
    "function_call",
    "parallel_tool_calls",
    "user",
    "tools",
    "tool_choice",
];

/// Translate an OpenAI-shaped request into a Messages API body for `model`.
pub fn to_messages_request(request: &ChatRequest, model: &str, stream: bool) -> Result<Value> {
    if let Some(n) = request.n.filter(|n| *n > 1) {
        return Err(BackendError::InvalidRequest(format!(
            "the Anthropic Messages API returns one choice per request; n={n} is not supported"
        )));
    }
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    for (i, message) in request.messages.iter().enumerate() {
        match message.role {
            Role::System | Role::Developer => system.push(message.text()),
            Role::User => push_turn(&mut messages, "user", user_content(message, i)?),
            Role::Assistant => {
                push_turn(&mut messages, "assistant", assistant_content(message, i)?)
            }
            Role::Tool | Role::Function => push_turn(
                &mut messages,
                "user",
                Value::Array(vec![tool_result(message, i)?]),
            ),
        }
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "max_tokens".into(),
        json!(request.max_output_tokens().unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), remote::f32_json(t));
    }
    if let Some(p) = request.top_p {
        body.insert("top_p".into(), remote::f32_json(p));
    }
    if let Some(k) = request.top_k {
        body.insert("top_k".into(), json!(k));
    }
    let stops = request.stop_sequences();
    if !stops.is_empty() {
        body.insert("stop_sequences".into(), json!(stops));
    }
    if stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(tools) = request.extra.get("tools").and_then(Value::as_array) {
        if !tools.is_empty() {
            body.insert("tools".into(), Value::Array(translate_tools(tools)?));
        }
    }
    let parallel = request
        .extra
        .get("parallel_tool_calls")
        .and_then(Value::as_bool);
    if let Some(choice) = translate_tool_choice(request.extra.get("tool_choice"), parallel)? {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(user) = request.extra.get("user").and_then(Value::as_str) {
        body.insert("metadata".into(), json!({ "user_id": user }));
    }
    if let Some(ResponseFormat::JsonSchema { json_schema }) = &request.response_format {
        body.insert(
            "output_config".into(),
            json!({ "format": { "type": "json_schema", "schema": json_schema.schema } }),
        );
    }
    if let Some(choices) = choice_schema::emulated_choices(request)? {
        body.insert(
            "output_config".into(),
            json!({ "format": { "type": "json_schema", "schema": choice_schema::schema(choices) } }),
        );
    }
    for (key, value) in &request.extra {
        if !OPENAI_ONLY_FIELDS.contains(&key.as_str()) && !body.contains_key(key) {
            body.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(body))
}

/// Append a turn. Consecutive turns of one role (tool results, then a user message) stay
/// separate messages: the Messages API combines consecutive same-role turns itself.
fn push_turn(messages: &mut Vec<Value>, role: &str, content: Value) {
    messages.push(json!({ "role": role, "content": content }));
}

fn user_content(message: &ChatMessage, i: usize) -> Result<Value> {
    match &message.content {
        None => Ok(json!("")),
        Some(MessageContent::Text(text)) => Ok(json!(text)),
        Some(MessageContent::Parts(parts)) => parts
            .iter()
            .map(|part| translate_part(part, i))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array),
    }
}

/// OpenAI content parts → Anthropic blocks; blocks already in Anthropic shape pass through.
fn translate_part(part: &Value, i: usize) -> Result<Value> {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => Ok(json!({
            "type": "text",
            "text": part.get("text").and_then(Value::as_str).unwrap_or_default()
        })),
        Some("image_url") => {
            let url = part
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    BackendError::InvalidRequest(format!(
                        "messages[{i}]: image_url part without a url"
                    ))
                })?;
            if let Some(rest) = url.strip_prefix("data:") {
                let (media_type, data) = rest.split_once(";base64,").ok_or_else(|| {
                    BackendError::InvalidRequest(format!(
                        "messages[{i}]: image data URL is not base64 (data:<type>;base64,<data>)"
                    ))
                })?;
                Ok(json!({
                    "type": "image",
                    "source": { "type": "base64", "media_type": media_type, "data": data }
                }))
            } else {
                Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }))
            }
        }
        Some(kind @ ("input_audio" | "file")) => Err(BackendError::InvalidRequest(format!(
            "messages[{i}]: content part type {kind:?} is not supported by the Anthropic backend"
        ))),
        _ => Ok(part.clone()),
    }
}

fn assistant_content(message: &ChatMessage, i: usize) -> Result<Value> {
    let calls = message
        .extra
        .get("tool_calls")
        .and_then(Value::as_array)
        .filter(|calls| !calls.is_empty());
    let Some(calls) = calls else {
        return user_content(message, i);
    };
    let mut blocks = Vec::new();
    let text = message.text();
    if !text.is_empty() {
        blocks.push(json!({ "type": "text", "text": text }));
    }
    for (j, call) in calls.iter().enumerate() {
        let function = call.get("function").cloned().unwrap_or(Value::Null);
        let arguments = function
            .get("arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        let input: Value = if arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments).map_err(|e| {
                BackendError::InvalidRequest(format!(
                    "messages[{i}].tool_calls[{j}].function.arguments is not JSON: {e}"
                ))
            })?
        };
        blocks.push(json!({
            "type": "tool_use",
            "id": call.get("id").and_then(Value::as_str).unwrap_or_default(),
            "name": function.get("name").and_then(Value::as_str).unwrap_or_default(),
            "input": input,
        }));
    }
    Ok(Value::Array(blocks))
}

fn tool_result(message: &ChatMessage, i: usize) -> Result<Value> {
    let id = message
        .extra
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            BackendError::InvalidRequest(format!(
                "messages[{i}]: tool message without tool_call_id"
            ))
        })?;
    Ok(json!({ "type": "tool_result", "tool_use_id": id, "content": message.text() }))
}

fn translate_tools(tools: &[Value]) -> Result<Vec<Value>> {
    tools
        .iter()
        .enumerate()
        .map(|(j, tool)| {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                // Already an Anthropic tool (custom or server tool): forward as is.
                return Ok(tool.clone());
            }
            let function = tool.get("function").ok_or_else(|| {
                BackendError::InvalidRequest(format!(
                    "tools[{j}]: function tool without `function`"
                ))
            })?;
            let name = function
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    BackendError::InvalidRequest(format!("tools[{j}].function has no name"))
                })?;
            let mut out = json!({
                "name": name,
                "input_schema": function
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| json!({ "type": "object", "properties": {} })),
            });
            if let Some(description) = function.get("description") {
                out["description"] = description.clone();
            }
            Ok(out)
        })
        .collect()
}

fn translate_tool_choice(choice: Option<&Value>, parallel: Option<bool>) -> Result<Option<Value>> {
    let mut out = match choice {
        None => {
            if parallel == Some(false) {
                json!({ "type": "auto" })
            } else {
                return Ok(None);
            }
        }
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({ "type": "auto" }),
            "required" => json!({ "type": "any" }),
            "none" => json!({ "type": "none" }),
            other => {
                return Err(BackendError::InvalidRequest(format!(
                    "tool_choice {other:?} is not one of auto, required, none"
                )))
            }
        },
        Some(object) => match object
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
        {
            Some(name) => json!({ "type": "tool", "name": name }),
            // Already Anthropic-shaped.
            None => object.clone(),
        },
    };
    if parallel == Some(false) && out.get("type").and_then(Value::as_str) != Some("none") {
        out["disable_parallel_tool_use"] = json!(true);
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StopSequences;

    #[test]
    fn translates_system_stop_tools_and_defaults() {
        let mut request = ChatRequest::user("auto", "What's the weather in SF?");
        request
            .messages
            .insert(0, ChatMessage::new(Role::System, "Be brief."));
        request
            .messages
            .insert(1, ChatMessage::new(Role::Developer, "Use Celsius."));
        request.stop = Some(StopSequences::One("\n\n".into()));
        request.temperature = Some(0.5);
        request.top_p = Some(0.9);
        request.choices = Some(vec!["a".into()]);
        request.extra.insert("logit_bias".into(), json!({"1": 2}));
        request
            .extra
            .insert("thinking".into(), json!({"type": "disabled"}));
        request.extra.insert("user".into(), json!("u-7"));
        request.extra.insert(
            "tools".into(),
            json!([{ "type": "function", "function": {
                "name": "get_weather", "description": "Weather lookup",
                "parameters": { "type": "object", "properties": { "city": { "type": "string" } } }
            }}]),
        );
        request
            .extra
            .insert("tool_choice".into(), json!("required"));
        let body = to_messages_request(&request, "claude-haiku-4-5", true).unwrap();
        assert_eq!(
            body,
            json!({
                "model": "claude-haiku-4-5",
                "max_tokens": 1024,
                "system": "Be brief.\n\nUse Celsius.",
                "messages": [{ "role": "user", "content": "What's the weather in SF?" }],
                "temperature": 0.5,
                "top_p": 0.9,
                "stop_sequences": ["\n\n"],
                "stream": true,
                "tools": [{ "name": "get_weather", "description": "Weather lookup",
                    "input_schema": { "type": "object", "properties": { "city": { "type": "string" } } } }],
                "tool_choice": { "type": "any" },
                "metadata": { "user_id": "u-7" },
                "thinking": { "type": "disabled" },
                // `choices` has no Messages API field: emulated with a strict schema.
                "output_config": { "format": { "type": "json_schema", "schema": {
                    "type": "object",
                    "properties": { "answer": { "type": "string", "enum": ["a"] } },
                    "required": ["answer"],
                    "additionalProperties": false
                } } }
            })
        );
    }

    #[test]
    fn translates_tool_turns() {
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "x",
            "max_tokens": 50,
            "messages": [
                { "role": "user", "content": "Weather in SF?" },
                { "role": "assistant", "content": null, "tool_calls": [
                    { "id": "call_1", "type": "function",
                      "function": { "name": "get_weather", "arguments": "{\"city\":\"SF\"}" } } ] },
                { "role": "tool", "tool_call_id": "call_1", "content": "20C, sunny" },
                { "role": "user", "content": [{ "type": "text", "text": "And tomorrow?" }] }
            ]
        }))
        .unwrap();
        let body = to_messages_request(&request, "m", false).unwrap();
        assert_eq!(body["max_tokens"], 50);
        assert!(body.get("stream").is_none());
        assert_eq!(
            body["messages"],
            json!([
                { "role": "user", "content": "Weather in SF?" },
                { "role": "assistant", "content": [
                    { "type": "tool_use", "id": "call_1", "name": "get_weather", "input": { "city": "SF" } } ] },
                { "role": "user", "content": [
                    { "type": "tool_result", "tool_use_id": "call_1", "content": "20C, sunny" } ] },
                { "role": "user", "content": [ { "type": "text", "text": "And tomorrow?" } ] }
            ])
        );
    }

    #[test]
    fn rejects_what_cannot_be_translated() {
        let mut request = ChatRequest::user("x", "hi");
        request.n = Some(3);
        let err = to_messages_request(&request, "m", false).unwrap_err();
        assert!(err.to_string().contains("n=3"), "{err}");
        let request: ChatRequest = serde_json::from_value(json!({
            "messages": [{ "role": "tool", "content": "orphan" }]
        }))
        .unwrap();
        let err = to_messages_request(&request, "m", false).unwrap_err();
        assert!(err.to_string().contains("messages[0]"), "{err}");
    }
}
