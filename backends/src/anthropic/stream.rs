//! Messages API server-sent events → chat events: text and tool-use deltas, stop reason and
//! usage from `message_delta`, `message_stop` as the end, in-stream `error` events as typed
//! errors. Separate from `response` because the stream carries state across events (usage
//! merged, content block → tool-call index).

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use futures::Stream;
use serde_json::Value;
use sse_stream::Sse;

use super::response::{finish_reason, refusal_explanation, stop_sequence, AnthropicUsage};
use crate::remote::{self, snippet, status_error, status_for_error_type, SseDecoder};
use crate::{BackendError, ChatEvent, Result};

/// Decode an Anthropic SSE body (chunks cut anywhere) into chat events.
pub fn decode_stream<S>(chunks: S) -> impl Stream<Item = Result<ChatEvent>> + Send
where
    S: Stream<Item = Result<Bytes>> + Send + 'static,
{
    remote::decode_sse(chunks, AnthropicDecoder::default())
}

/// Reads Messages API stream events; `message_stop` is the terminal event.
#[derive(Default)]
pub(super) struct AnthropicDecoder {
    usage: AnthropicUsage,
    /// Content block index → tool-call index, for `tool_use` blocks.
    tool_of_block: HashMap<u64, u32>,
    next_tool: u32,
}

impl SseDecoder for AnthropicDecoder {
    fn decode(&mut self, event: Sse, at: Instant, out: &mut Vec<ChatEvent>) -> Result<bool> {
        let Some(data) = event.data else {
            return Ok(false);
        };
        let data = data.trim();
        if data.is_empty() {
            return Ok(false);
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            BackendError::Protocol(format!(
                "malformed JSON in an Anthropic stream data line ({e}): {}",
                snippet(data, 200)
            ))
        })?;
        let kind = value
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => {
                if let Some(usage) = value.get("message").and_then(|m| m.get("usage")) {
                    self.usage.merge(usage_from(usage, data)?);
                }
            }
            "content_block_start" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = value.get("content_block").cloned().unwrap_or(Value::Null);
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        let text = block
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !text.is_empty() {
                            out.push(token(text, at));
                        }
                    }
                    Some("tool_use") => {
                        let tool = self.next_tool;
                        self.next_tool += 1;
                        self.tool_of_block.insert(index, tool);
                        let arguments = match block.get("input") {
                            Some(Value::Object(map)) if !map.is_empty() => {
                                Value::Object(map.clone()).to_string()
                            }
                            _ => String::new(),
                        };
                        out.push(ChatEvent::ToolCallDelta {
                            choice: 0,
                            index: tool,
                            id: block.get("id").and_then(Value::as_str).map(str::to_string),
                            name: block
                                .get("name")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                            arguments,
                            at,
                        });
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = value.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = value.get("delta").cloned().unwrap_or(Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        if !text.is_empty() {
                            out.push(token(text, at));
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(tool) = self.tool_of_block.get(&index) {
                            let partial = delta
                                .get("partial_json")
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            out.push(ChatEvent::ToolCallDelta {
                                choice: 0,
                                index: *tool,
                                id: None,
                                name: None,
                                arguments: partial.to_string(),
                                at,
                            });
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(usage) = value.get("usage") {
                    self.usage.merge(usage_from(usage, data)?);
                }
                let delta = value.get("delta");
                if let Some(stop) = delta
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    if stop == "refusal" {
                        if let Some(text) =
                            refusal_explanation(delta.and_then(|d| d.get("stop_details")))
                        {
                            out.push(ChatEvent::Refusal {
                                choice: 0,
                                text,
                                at,
                            });
                        }
                    }
                    out.push(ChatEvent::Done {
                        choice: 0,
                        finish_reason: finish_reason(stop),
                        stop_sequence: stop_sequence(
                            stop,
                            delta.and_then(|d| d.get("stop_sequence")),
                        ),
                        at,
                    });
                }
                out.push(ChatEvent::Usage {
                    usage: self.usage.to_openai(),
                    at,
                });
            }
            "message_stop" => return Ok(true),
            "error" => {
                let error_type = value
                    .get("error")
                    .and_then(|e| e.get("type"))
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                return Err(status_error(
                    status_for_error_type(error_type),
                    None,
                    data.to_string(),
                ));
            }
            // `ping`, `content_block_stop`, and event types added after this was written.
            _ => {}
        }
        Ok(false)
    }

    fn truncated(&self) -> String {
        "Anthropic stream ended before its terminal `message_stop` event".into()
    }
}

fn token(text: &str, at: Instant) -> ChatEvent {
    ChatEvent::Token {
        choice: 0,
        text: text.to_string(),
        logprobs: Vec::new(),
        at,
    }
}

fn usage_from(value: &Value, data: &str) -> Result<AnthropicUsage> {
    serde_json::from_value(value.clone()).map_err(|e| {
        BackendError::Protocol(format!(
            "malformed usage in an Anthropic stream event ({e}): {}",
            snippet(data, 200)
        ))
    })
}
