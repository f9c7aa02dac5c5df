//! A whole (non-streaming) Messages API body → an OpenAI-shaped response, plus what the stream
//! decoder shares with it: stop reasons in OpenAI's words, Anthropic's usage object and the
//! refusal explanation.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::remote::snippet;
use crate::{
    unix_now, BackendError, ChatResponse, Choice, FinishReason, FunctionCall, ResponseMessage,
    Result, Role, ToolCall, Usage,
};

/// Anthropic stop reasons in OpenAI's words.
pub fn finish_reason(stop_reason: &str) -> FinishReason {
    match stop_reason {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "refusal" => FinishReason::ContentFilter,
        other => FinishReason::Other(other.to_string()),
    }
}

/// The stop string an Anthropic answer reports (`stop_sequence`), kept only when its
/// `stop_reason` says a stop sequence ended it.
pub(super) fn stop_sequence(stop_reason: &str, stop_sequence: Option<&Value>) -> Option<String> {
    (stop_reason == "stop_sequence")
        .then(|| stop_sequence?.as_str().map(str::to_string))
        .flatten()
}

/// Anthropic's usage object; fields absent in some events default to zero.
#[derive(Clone, Debug, Default, Deserialize)]
pub(super) struct AnthropicUsage {
    #[serde(default, deserialize_with = "crate::types::count::deserialize_option")]
    input_tokens: Option<u32>,
    #[serde(default, deserialize_with = "crate::types::count::deserialize_option")]
    output_tokens: Option<u32>,
    #[serde(default, deserialize_with = "crate::types::count::deserialize_option")]
    cache_creation_input_tokens: Option<u32>,
    #[serde(default, deserialize_with = "crate::types::count::deserialize_option")]
    cache_read_input_tokens: Option<u32>,
}

impl AnthropicUsage {
    /// Later counts (from `message_delta`) replace earlier ones field by field.
    pub(super) fn merge(&mut self, later: AnthropicUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    pub(super) fn to_openai(&self) -> Usage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_creation = self.cache_creation_input_tokens.unwrap_or(0);
        let mut usage = Usage::new(
            self.input_tokens
                .unwrap_or(0)
                .saturating_add(cache_read)
                .saturating_add(cache_creation),
            self.output_tokens.unwrap_or(0),
        );
        if cache_read > 0 {
            usage = usage.with_cached_tokens(cache_read);
        }
        if cache_creation > 0 {
            usage
                .extra
                .insert("cache_creation_input_tokens".into(), json!(cache_creation));
        }
        usage
    }
}

#[derive(Deserialize)]
struct MessagesResponse {
    #[serde(default)]
    id: String,
    #[serde(default)]
    model: String,
    content: Vec<Value>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    stop_sequence: Option<Value>,
    #[serde(default)]
    stop_details: Option<Value>,
    #[serde(default)]
    usage: AnthropicUsage,
}

/// Parse a non-streaming Messages API body into an OpenAI-shaped response.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse> {
    let parsed: MessagesResponse = serde_json::from_slice(body).map_err(|e| {
        BackendError::Protocol(format!(
            "malformed Anthropic message body ({e}); body starts: {}",
            snippet(&String::from_utf8_lossy(body), 200)
        ))
    })?;
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in &parsed.content {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.get_or_insert_with(String::new).push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            Some("tool_use") => tool_calls.push(ToolCall {
                id: block
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .into(),
                kind: "function".into(),
                function: FunctionCall {
                    name: block
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .into(),
                    arguments: block
                        .get("input")
                        .map(Value::to_string)
                        .unwrap_or_else(|| "{}".into()),
                },
            }),
            _ => {}
        }
    }
    let refusal = (parsed.stop_reason.as_deref() == Some("refusal"))
        .then(|| refusal_explanation(parsed.stop_details.as_ref()))
        .flatten();
    Ok(ChatResponse {
        id: parsed.id,
        object: "chat.completion".into(),
        created: unix_now(),
        model: parsed.model,
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: Role::Assistant,
                content: text,
                refusal,
                tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
                extra: Map::new(),
            },
            finish_reason: parsed.stop_reason.as_deref().map(finish_reason),
            logprobs: None,
            stop_sequence: parsed
                .stop_reason
                .as_deref()
                .and_then(|reason| stop_sequence(reason, parsed.stop_sequence.as_ref())),
        }],
        usage: Some(parsed.usage.to_openai()),
        ..ChatResponse::default()
    })
}

pub(super) fn refusal_explanation(stop_details: Option<&Value>) -> Option<String> {
    stop_details?
        .get("explanation")?
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_map_to_openai_finish_reasons() {
        assert_eq!(finish_reason("end_turn"), FinishReason::Stop);
        assert_eq!(finish_reason("stop_sequence"), FinishReason::Stop);
        assert_eq!(finish_reason("max_tokens"), FinishReason::Length);
        assert_eq!(finish_reason("tool_use"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("refusal"), FinishReason::ContentFilter);
        assert_eq!(
            finish_reason("pause_turn"),
            FinishReason::Other("pause_turn".into())
        );
    }

    #[tokio::test]
    async fn the_stop_sequence_that_ended_an_answer_is_kept_whole_and_streamed() {
        let body = |reason: &str, sequence: Value| {
            json!({"id": "msg_1", "model": "m", "content": [{"type": "text", "text": "one"}],
                "stop_reason": reason, "stop_sequence": sequence,
                "usage": {"input_tokens": 3, "output_tokens": 1}})
            .to_string()
        };
        let whole = parse_response(body("stop_sequence", json!("\n\n")).as_bytes()).unwrap();
        assert_eq!(whole.finish_reason(), Some(&FinishReason::Stop));
        assert_eq!(whole.choices[0].stop_sequence.as_deref(), Some("\n\n"));
        // Only a `stop_sequence` stop names one, whatever else the field holds.
        let ended = parse_response(body("end_turn", json!("x")).as_bytes()).unwrap();
        assert_eq!(ended.choices[0].stop_sequence, None);
        let null = parse_response(body("stop_sequence", Value::Null).as_bytes()).unwrap();
        assert_eq!(null.choices[0].stop_sequence, None);

        let sse = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",",
            "\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":3,\"output_tokens\":0}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,",
            "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,",
            "\"delta\":{\"type\":\"text_delta\",\"text\":\"one\"}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":",
            "\"stop_sequence\",\"stop_sequence\":\"END\"},\"usage\":{\"output_tokens\":1}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let chunks = futures::stream::iter([Ok(bytes::Bytes::from(sse))]);
        let collected =
            crate::collect_stream(Box::pin(crate::anthropic::decode_stream(chunks)), "m")
                .await
                .unwrap();
        assert_eq!(collected.text(), "one");
        assert_eq!(collected.choices[0].stop_sequence.as_deref(), Some("END"));
    }

    #[test]
    fn upstream_usage_saturates() {
        let usage: AnthropicUsage = serde_json::from_str(
            r#"{"input_tokens": 4294967295, "output_tokens": -3,
                "cache_read_input_tokens": 1e30, "cache_creation_input_tokens": null}"#,
        )
        .unwrap();
        let openai = usage.to_openai();
        assert_eq!(openai.prompt_tokens, u32::MAX);
        assert_eq!(openai.completion_tokens, 0);
        assert_eq!(openai.total_tokens, u32::MAX);
    }
}
