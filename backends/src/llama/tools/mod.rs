//! Tool calls on the local engine: OpenAI `tools` / `tool_choice` made into a prompt, a grammar
//! and `tool_calls` events.
//!
//! llama.cpp's `llama_chat_apply_template` renders no tools (it pattern-matches a fixed set of
//! templates and never runs a template's Jinja), and the shipped models' templates (SmolLM2,
//! Gemma 3) have no tool syntax anyway. So every chat model gets one **generic tool prompt**
//! ([`ToolSet::instructions`]): the tools' names, descriptions and parameter schemas, and the
//! call syntax `{"name": …, "arguments": {…}}`, added to the system message. Earlier turns are
//! rewritten in the same syntax ([`conversation`]): an assistant's `tool_calls` become that JSON,
//! a `tool` message becomes a user turn naming the tool whose result it carries.
//!
//! The output is constrained by a grammar ([`grammar`]): with `tool_choice: required` (or a
//! named function) the answer must be exactly one valid call — one of the tools, its arguments
//! matching that tool's `parameters` schema; with `auto` the answer is either a valid call
//! (when it starts with `{`) or free text (anything else). `none` sends no tools and no
//! grammar. The generated call is turned into OpenAI tool-call deltas as it is written
//! ([`stream`]): the name first, then the arguments in chunks, finish reason `tool_calls`.
//!
//! Limits: one call per answer (`parallel_tool_calls` is accepted and has no effect); only
//! `function` tools; not combined with `response_format` or `choices`. A base model prompted with
//! completion text has no turns to put tools in: a request that may call tools is
//! [`BackendError::ToolsUnsupported`] (400 `tools_unsupported`, or the next backend of the
//! route's chain answers it).

pub mod grammar;
pub mod stream;

use serde_json::Value;

use crate::types::{ChatMessage, ChatRequest, Role};
use crate::{BackendError, Result};

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// The function's name.
    pub name: String,
    /// What it does, for the model (may be empty).
    pub description: String,
    /// The JSON schema of its arguments (`{"type": "object"}` when the tool gave none).
    pub parameters: Value,
}

/// Whether and which tool the model must call (`tool_choice`).
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    /// The model may answer in text or call a tool (the default when tools are given).
    Auto,
    /// The model must call one of the tools.
    Required,
    /// The model must call this tool.
    Named(String),
}

/// The tools of a request that may call them.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSet {
    /// The tools, in request order (non-empty).
    pub tools: Vec<Tool>,
    /// What the model must do with them.
    pub choice: ToolChoice,
}

impl ToolSet {
    /// The request's tools, validated; `None` when it sends none or `tool_choice: none`.
    pub fn of(request: &ChatRequest) -> Result<Option<ToolSet>> {
        let tools = match request.extra.get("tools") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .enumerate()
                .map(|(i, t)| parse_tool(i, t))
                .collect::<Result<_>>()?,
            Some(_) => return Err(invalid("`tools` must be an array of tool objects")),
        };
        let choice = match request.extra.get("tool_choice") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match s.as_str() {
                "none" => return Ok(None),
                "auto" => Some(ToolChoice::Auto),
                "required" => Some(ToolChoice::Required),
                other => {
                    return Err(invalid(format!(
                        "`tool_choice` must be `none`, `auto`, `required` or \
                         {{\"type\": \"function\", \"function\": {{\"name\": …}}}}, got `{other}`"
                    )))
                }
            },
            Some(v) => {
                let name = v
                    .get("function")
                    .and_then(|f| f.get("name"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid("`tool_choice` must name a function: `function.name` is missing")
                    })?;
                if !tools.iter().any(|t| t.name == name) {
                    return Err(invalid(format!(
                        "`tool_choice` names function `{name}`, which is not among `tools`"
                    )));
                }
                Some(ToolChoice::Named(name.to_string()))
            }
        };
        if tools.is_empty() {
            return match choice {
                None => Ok(None),
                Some(_) => Err(invalid("`tool_choice` needs `tools`")),
            };
        }
        Ok(Some(ToolSet {
            tools,
            choice: choice.unwrap_or(ToolChoice::Auto),
        }))
    }

    /// The tools the model may call under its `tool_choice` (the named one, or all).
    pub fn callable(&self) -> Vec<&Tool> {
        match &self.choice {
            ToolChoice::Named(name) => self.tools.iter().filter(|t| &t.name == name).collect(),
            ToolChoice::Auto | ToolChoice::Required => self.tools.iter().collect(),
        }
    }

    /// The generic tool prompt, added to the system message.
    pub fn instructions(&self) -> String {
        let mut out = String::from(
            "You can call tools. To call a tool, answer with only a JSON object of the form \
             {\"name\": \"<tool name>\", \"arguments\": {<arguments>}} and nothing else.\n",
        );
        match &self.choice {
            ToolChoice::Auto => out.push_str(
                "If no tool is needed, answer in plain text and do not start with `{`.\n",
            ),
            ToolChoice::Required => out.push_str("You must call one of the tools.\n"),
            ToolChoice::Named(name) => {
                out.push_str(&format!("You must call the tool `{name}`.\n"));
            }
        }
        out.push_str("\nTools:\n");
        for tool in self.callable() {
            out.push_str(&format!("- {}", tool.name));
            if !tool.description.is_empty() {
                out.push_str(&format!(": {}", tool.description.trim()));
            }
            out.push_str(&format!(
                "\n  arguments (JSON schema): {}\n",
                tool.parameters
            ));
        }
        out
    }
}

fn invalid(message: impl Into<String>) -> BackendError {
    BackendError::InvalidRequest(message.into())
}

fn parse_tool(i: usize, tool: &Value) -> Result<Tool> {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind != "function" {
        return Err(invalid(format!(
            "`tools[{i}]`: the local engine calls only `function` tools, got type `{kind}`"
        )));
    }
    let function = tool.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| invalid(format!("`tools[{i}].function.name` is missing")))?;
    let description = function
        .and_then(|f| f.get("description"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parameters = match function.and_then(|f| f.get("parameters")) {
        None | Some(Value::Null) => serde_json::json!({"type": "object"}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => {
            return Err(invalid(format!(
                "`tools[{i}].function.parameters` must be a JSON schema object"
            )))
        }
    };
    Ok(Tool {
        name: name.to_string(),
        description: description.to_string(),
        parameters,
    })
}

/// The conversation as the model sees it: the tool prompt in the system message (when `tools`
/// may be called), earlier tool calls written in the call syntax, tool results as user turns.
/// A request without tools and without tool turns is returned unchanged.
pub fn conversation(request: &ChatRequest, tools: Option<&ToolSet>) -> Vec<ChatMessage> {
    let has_tool_turns = request.messages.iter().any(|m| {
        matches!(m.role, Role::Tool | Role::Function) || m.extra.contains_key("tool_calls")
    });
    if tools.is_none() && !has_tool_turns {
        return request.messages.clone();
    }
    let mut out: Vec<ChatMessage> = Vec::with_capacity(request.messages.len() + 1);
    for message in &request.messages {
        out.push(match message.role {
            Role::Tool | Role::Function => {
                let name = message
                    .extra
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| called_name(&request.messages, message));
                let text = match name {
                    Some(name) => format!("Tool `{name}` returned: {}", message.text()),
                    None => format!("Tool result: {}", message.text()),
                };
                ChatMessage::new(Role::User, text)
            }
            Role::Assistant if message.extra.contains_key("tool_calls") => {
                let mut text = message.text();
                for call in message
                    .extra
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&call_text(call));
                }
                ChatMessage::new(Role::Assistant, text)
            }
            _ => message.clone(),
        });
    }
    if let Some(tools) = tools {
        let instructions = tools.instructions();
        match out.first_mut() {
            Some(first) if matches!(first.role, Role::System | Role::Developer) => {
                let text = first.text();
                let joined = if text.trim().is_empty() {
                    instructions
                } else {
                    format!("{text}\n\n{instructions}")
                };
                *first = ChatMessage::new(Role::System, joined);
            }
            _ => out.insert(0, ChatMessage::new(Role::System, instructions)),
        }
    }
    out
}

/// An earlier call in the call syntax: `{"name": …, "arguments": …}` (arguments as sent when
/// they are JSON, else as a JSON string).
fn call_text(call: &Value) -> String {
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let arguments = function
        .and_then(|f| f.get("arguments"))
        .and_then(Value::as_str)
        .unwrap_or("{}");
    let arguments = serde_json::from_str::<Value>(arguments)
        .unwrap_or_else(|_| Value::String(arguments.to_string()));
    // Name first, as the model writes calls (serde_json's maps would sort the keys).
    format!(
        "{{\"name\": {}, \"arguments\": {arguments}}}",
        Value::String(name.to_string())
    )
}

/// The name of the function whose call `result` answers (by `tool_call_id`).
fn called_name(messages: &[ChatMessage], result: &ChatMessage) -> Option<String> {
    let id = result.extra.get("tool_call_id").and_then(Value::as_str)?;
    messages
        .iter()
        .filter_map(|m| m.extra.get("tool_calls").and_then(Value::as_array))
        .flatten()
        .find(|c| c.get("id").and_then(Value::as_str) == Some(id))
        .and_then(|c| c.get("function")?.get("name")?.as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests;
