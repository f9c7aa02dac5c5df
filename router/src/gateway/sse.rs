//! OpenAI `chat.completion.chunk` encoding of backend events.
//!
//! The stream a client sees is: one chunk with `delta.role = "assistant"`, content (or refusal,
//! tool-call) deltas, one chunk per finished choice with its `finish_reason`, then — when the
//! request set `stream_options.include_usage` — a chunk with empty `choices` and `usage`, and
//! finally `data: [DONE]`. With `include_usage`, every other chunk carries `"usage": null`, as
//! OpenAI's do. Content chunks carry their tokens' `logprobs` object when the client asked for
//! it.

use backends::{content_object, FinishReason, TokenLogprob, Usage};
use serde_json::{json, Value};

/// The fixed part of every chunk of one response.
#[derive(Clone, Debug)]
pub struct ChunkHeader {
    /// The completion id (`chatcmpl-…`), the same in every chunk.
    pub id: String,
    /// Creation time, Unix seconds.
    pub created: u64,
    /// The `model` every chunk reports: the name of the backend that answers.
    pub model: String,
    /// Whether the client asked for a usage chunk (then every chunk carries `"usage": null`).
    pub include_usage: bool,
    /// Whether the client asked for `logprobs` (then content chunks carry their tokens').
    pub logprobs: bool,
}

impl ChunkHeader {
    fn chunk(&self, choices: Value) -> String {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": choices,
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        v.to_string()
    }

    fn delta(&self, choice: u32, delta: Value, finish: Option<&FinishReason>) -> String {
        self.delta_with(choice, delta, Value::Null, finish)
    }

    fn delta_with(
        &self,
        choice: u32,
        delta: Value,
        logprobs: Value,
        finish: Option<&FinishReason>,
    ) -> String {
        self.chunk(json!([{
            "index": choice,
            "delta": delta,
            "logprobs": logprobs,
            "finish_reason": finish.map(FinishReason::as_str),
        }]))
    }

    /// The first chunk: the assistant role with empty content.
    pub fn role(&self, choice: u32) -> String {
        self.delta(choice, json!({"role": "assistant", "content": ""}), None)
    }

    /// A content delta of `choice`, with the log-probabilities of the tokens it holds when the
    /// client asked for them (`null` otherwise, or when the backend sent none).
    pub fn content(&self, choice: u32, text: &str, logprobs: &[TokenLogprob]) -> String {
        let logprobs = if self.logprobs && !logprobs.is_empty() {
            content_object(logprobs)
        } else {
            Value::Null
        };
        self.delta_with(choice, json!({"content": text}), logprobs, None)
    }

    /// A refusal delta of `choice`.
    pub fn refusal(&self, choice: u32, text: &str) -> String {
        self.delta(choice, json!({"refusal": text}), None)
    }

    /// A tool-call delta of `choice`; `id` and `name` come only on a call's first delta.
    pub fn tool_call(
        &self,
        choice: u32,
        index: u32,
        id: Option<&str>,
        name: Option<&str>,
        arguments: &str,
    ) -> String {
        let mut call = json!({"index": index, "function": {"arguments": arguments}});
        if let Some(id) = id {
            call["id"] = json!(id);
            call["type"] = json!("function");
        }
        if let Some(name) = name {
            call["function"]["name"] = json!(name);
        }
        self.delta(choice, json!({"tool_calls": [call]}), None)
    }

    /// The chunk that ends `choice` with its finish reason (empty delta).
    pub fn finish(&self, choice: u32, reason: &FinishReason) -> String {
        self.delta(choice, json!({}), Some(reason))
    }

    /// The usage chunk; `triage` carries the gateway's own per-request facts (cost, backend),
    /// known only at the end of the stream. An upstream triage's own `triage` object (its cost,
    /// not this gateway's) is not passed on.
    pub fn usage(&self, usage: &Usage, triage: Value) -> String {
        let mut usage = usage.clone();
        usage.extra.remove(backends::openai::TRIAGE_USAGE_KEY);
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [],
            "usage": usage,
        });
        v["triage"] = triage;
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_have_the_openai_shape() {
        let h = ChunkHeader {
            id: "chatcmpl-1".into(),
            created: 1,
            model: "slm".into(),
            include_usage: true,
            logprobs: true,
        };
        let role: Value = serde_json::from_str(&h.role(0)).unwrap();
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["choices"][0]["delta"]["role"], "assistant");
        assert!(role["usage"].is_null());
        let tokens = [TokenLogprob::of_text("Hi", -0.5)];
        let content: Value = serde_json::from_str(&h.content(0, "Hi", &tokens)).unwrap();
        let entry = &content["choices"][0]["logprobs"]["content"][0];
        assert_eq!(entry["token"], "Hi");
        assert_eq!(entry["logprob"], -0.5);
        assert_eq!(entry["bytes"], json!([72, 105]));
        let quiet = ChunkHeader {
            logprobs: false,
            ..h.clone()
        };
        let content: Value = serde_json::from_str(&quiet.content(0, "Hi", &tokens)).unwrap();
        assert!(content["choices"][0]["logprobs"].is_null());
        let fin: Value = serde_json::from_str(&h.finish(0, &FinishReason::Length)).unwrap();
        assert_eq!(fin["choices"][0]["finish_reason"], "length");
        let u: Value =
            serde_json::from_str(&h.usage(&Usage::new(3, 4), json!({"cost_usd": 0.0}))).unwrap();
        assert_eq!(u["usage"]["total_tokens"], 7);
        // An upstream triage's own object does not leak into ours.
        let mut upstream = Usage::new(3, 4);
        upstream.extra.insert(
            "triage".into(),
            json!({"cost_usd": 9.0, "backend": "gemma"}),
        );
        let u: Value =
            serde_json::from_str(&h.usage(&upstream, json!({"backend": "llm"}))).unwrap();
        assert!(u["usage"].get("triage").is_none(), "{u}");
        assert_eq!(u["triage"]["backend"], "llm");
        assert_eq!(u["choices"].as_array().unwrap().len(), 0);
    }
}
