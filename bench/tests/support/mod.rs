//! Test doubles for the harness's integration tests.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Now on tokio's clock (the system clock, or the paused test clock), as the std instant that
/// stream events carry.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

use backends::{
    collect_stream, Backend, ChatEvent, ChatRequest, ChatResponse, EventStream, FinishReason, Usage,
};
use futures::channel::mpsc;

type AnswerFn = dyn Fn(&ChatRequest) -> String + Send + Sync;

/// A test double standing in for a model server: answers with `answer(request)`, streamed word
/// by word with `token_delay` between words and a fixed log-probability per word. It serves one
/// request at a time (like a single-slot engine), and request number `stall_at` (0-based)
/// first sleeps for `stall` — a known artificial stall. Its delays and timestamps follow
/// tokio's clock, so tests on paused time see exact, instant schedules.
pub struct TestBackend {
    pub answer: Arc<AnswerFn>,
    pub token_delay: Duration,
    pub service_time: Duration,
    pub stall_at: Option<usize>,
    pub stall: Duration,
    pub logprob: f32,
    pub served: AtomicUsize,
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl TestBackend {
    pub fn new(answer: impl Fn(&ChatRequest) -> String + Send + Sync + 'static) -> Self {
        Self {
            answer: Arc::new(answer),
            token_delay: Duration::ZERO,
            service_time: Duration::ZERO,
            stall_at: None,
            stall: Duration::ZERO,
            logprob: -0.1,
            served: AtomicUsize::new(0),
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Answers with the last user message (an echo).
    pub fn echo() -> Self {
        Self::new(|r| r.messages.last().map(|m| m.text()).unwrap_or_default())
    }
}

impl Backend for TestBackend {
    async fn chat(&self, request: ChatRequest) -> backends::Result<ChatResponse> {
        let s = self.chat_stream(request).await?;
        collect_stream(s, "test").await
    }

    async fn chat_stream(&self, request: ChatRequest) -> backends::Result<EventStream> {
        let n = self.served.fetch_add(1, Ordering::SeqCst);
        let text = (self.answer)(&request);
        let (tx, rx) = mpsc::unbounded();
        let gate = self.gate.clone();
        let (token_delay, service, logprob) = (self.token_delay, self.service_time, self.logprob);
        let stall = (self.stall_at == Some(n)).then_some(self.stall);
        let prompt_tokens = request.all_text().split_whitespace().count() as u32;
        tokio::spawn(async move {
            // One request at a time: the next waits for this one's whole stream.
            let _slot = gate.lock_owned().await;
            if let Some(d) = stall {
                tokio::time::sleep(d).await;
            }
            if !service.is_zero() {
                tokio::time::sleep(service).await;
            }
            let _ = tx.unbounded_send(Ok(ChatEvent::FirstByte { at: now() }));
            let words: Vec<String> = text.split_inclusive(' ').map(str::to_string).collect();
            let count = words.len() as u32;
            for (i, w) in words.into_iter().enumerate() {
                if i > 0 && !token_delay.is_zero() {
                    tokio::time::sleep(token_delay).await;
                }
                let _ = tx.unbounded_send(Ok(ChatEvent::Token {
                    choice: 0,
                    text: w,
                    logprobs: vec![logprob],
                    at: now(),
                }));
            }
            let _ = tx.unbounded_send(Ok(ChatEvent::Usage {
                usage: Usage::new(prompt_tokens, count),
                at: now(),
            }));
            let _ = tx.unbounded_send(Ok(ChatEvent::Done {
                choice: 0,
                finish_reason: FinishReason::Stop,
                at: now(),
            }));
        });
        Ok(Box::pin(rx))
    }
}
