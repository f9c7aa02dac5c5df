//! Replay: answering from recorded responses, so routing policies can be evaluated offline on
//! real model outputs.
//!
//! - [`ReplayBackend`] is a [`backends::Backend`] that looks up the request's last user message
//!   in a table of recorded answers (from a JSONL file of `{"prompt", "response"}` lines, or
//!   built in code) and streams the answer back word by word, with recorded token
//!   log-probabilities when there are some. A prompt with no recording is an error, never a
//!   made-up answer.
//! - [`routellm`] reads RouteLLM's recorded Mixtral-8x7B vs GPT-4 correctness for GSM8K and
//!   MMLU and evaluates routers on it the way RouteLLM's `evaluate.py` does.

pub mod routellm;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{
    collect_stream, Backend, BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream,
    FinishReason, Role, Usage,
};
use serde::{Deserialize, Serialize};

use crate::error::{BenchError, Result};

/// One recorded answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recorded {
    /// The last user message this answer belongs to (matched exactly).
    pub prompt: String,
    /// The recorded answer text, streamed back word by word.
    pub response: String,
    /// Log-probability of each word of `response` as streamed (optional).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logprobs: Vec<f32>,
}

/// A backend answering from recordings, keyed by the last user message.
#[derive(Clone, Debug, Default)]
pub struct ReplayBackend {
    answers: Arc<HashMap<String, Recorded>>,
    /// Pause between streamed words (zero by default: recorded answers carry no timing).
    pub token_delay: Duration,
}

impl ReplayBackend {
    /// A backend answering from `recordings`; a later recording of the same prompt replaces an
    /// earlier one.
    pub fn new(recordings: impl IntoIterator<Item = Recorded>) -> Self {
        let answers = recordings
            .into_iter()
            .map(|r| (r.prompt.clone(), r))
            .collect();
        Self {
            answers: Arc::new(answers),
            token_delay: Duration::ZERO,
        }
    }

    /// Read a JSONL file of [`Recorded`] lines.
    pub fn from_jsonl(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
        let mut recs = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let r: Recorded = serde_json::from_str(line).map_err(|e| BenchError::Dataset {
                path: path.to_path_buf(),
                row: i + 1,
                message: format!("expected {{\"prompt\": ..., \"response\": ...}}: {e}"),
            })?;
            recs.push(r);
        }
        Ok(Self::new(recs))
    }

    /// Number of distinct recorded prompts.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether there are no recordings.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    fn lookup(&self, request: &ChatRequest) -> std::result::Result<Recorded, BackendError> {
        let prompt = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text())
            .unwrap_or_default();
        self.answers.get(&prompt).cloned().ok_or_else(|| {
            let shown: String = prompt.chars().take(80).collect();
            BackendError::InvalidRequest(format!("no recorded response for prompt {shown:?}"))
        })
    }
}

/// Split into words keeping their leading whitespace, so the pieces concatenate back.
fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_whitespace() && in_word {
            out.push(std::mem::take(&mut current));
            in_word = false;
        } else if !c.is_whitespace() {
            in_word = true;
        }
        current.push(c);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

impl Backend for ReplayBackend {
    async fn chat(&self, request: ChatRequest) -> backends::Result<ChatResponse> {
        let stream = self.chat_stream(request).await?;
        collect_stream(stream, "replay").await
    }

    async fn chat_stream(&self, request: ChatRequest) -> backends::Result<EventStream> {
        let recorded = self.lookup(&request)?;
        let delay = self.token_delay;
        let words = pieces(&recorded.response);
        let prompt_tokens = recorded.prompt.split_whitespace().count() as u32;
        let completion_tokens = words.len() as u32;
        let logprobs = recorded.logprobs;
        let stream = async_stream(words, logprobs, delay, prompt_tokens, completion_tokens);
        Ok(stream)
    }
}

fn async_stream(
    words: Vec<String>,
    logprobs: Vec<f32>,
    delay: Duration,
    prompt_tokens: u32,
    completion_tokens: u32,
) -> EventStream {
    use futures::StreamExt;
    let first = futures::stream::once(async { Ok(ChatEvent::FirstByte { at: Instant::now() }) });
    let tokens = futures::stream::iter(words.into_iter().enumerate()).then(move |(i, text)| {
        let lp = logprobs.get(i).copied();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(ChatEvent::Token {
                choice: 0,
                logprobs: lp
                    .map(|lp| backends::TokenLogprob::of_text(&text, lp))
                    .into_iter()
                    .collect(),
                text,
                at: Instant::now(),
            })
        }
    });
    let tail = futures::stream::iter([
        Ok(ChatEvent::Usage {
            usage: Usage::new(prompt_tokens, completion_tokens),
            at: Instant::now(),
        }),
        Ok(ChatEvent::Done {
            choice: 0,
            finish_reason: FinishReason::Stop,
            stop_sequence: None,
            at: Instant::now(),
        }),
    ]);
    Box::pin(first.chain(tokens).chain(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replays_recorded_answers_and_refuses_unknown_prompts() {
        let b = ReplayBackend::new([Recorded {
            prompt: "2+2?".into(),
            response: "It is  4.\nDone".into(),
            logprobs: vec![-0.1, -0.2, -0.3, -0.4],
        }]);
        let r = b.chat(ChatRequest::user("m", "2+2?")).await.unwrap();
        assert_eq!(r.text(), "It is  4.\nDone");
        assert_eq!(r.token_logprobs, vec![-0.1, -0.2, -0.3, -0.4]);
        assert_eq!(r.usage.unwrap().completion_tokens, 4);
        let err = b.chat(ChatRequest::user("m", "3+3?")).await.unwrap_err();
        assert!(err.to_string().contains("no recorded response"));
    }
}
