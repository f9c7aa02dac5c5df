//! A scripted mock ([`Script`]): the answer comes from a closure and the pacing is set
//! field by field, for tests of the harness's load generator and scorers that need a known
//! answer, known delays and a known artificial stall. It serves one request at a time, like a
//! single-slot engine, so queueing behind a slow request is part of what a test sees.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;

use super::now;
use crate::{ChatEvent, ChatRequest, EventStream, FinishReason, TokenLogprob, Usage};

/// Computes a scripted mock's answer from the request.
pub type AnswerFn = dyn Fn(&ChatRequest) -> String + Send + Sync;

/// How a scripted [`MockBackend`](super::MockBackend) answers and paces itself. Built with
/// [`Script::answering`] or [`Script::echo`] and the setters below; the defaults are no delay,
/// no stall and log-probability -0.1 per token.
#[derive(Clone)]
pub struct Script {
    answer: Arc<AnswerFn>,
    token_delay: Duration,
    service_time: Duration,
    stall: Option<(usize, Duration)>,
    logprob: f32,
    /// Held for a request's whole stream: one request at a time.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Script")
            .field("token_delay", &self.token_delay)
            .field("service_time", &self.service_time)
            .field("stall", &self.stall)
            .field("logprob", &self.logprob)
            .finish_non_exhaustive()
    }
}

impl Script {
    /// Answer with `answer(request)`.
    pub fn answering(answer: impl Fn(&ChatRequest) -> String + Send + Sync + 'static) -> Self {
        Self {
            answer: Arc::new(answer),
            token_delay: Duration::ZERO,
            service_time: Duration::ZERO,
            stall: None,
            logprob: -0.1,
            gate: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Answer with the text of the last message, whatever its role.
    pub fn echo() -> Self {
        Self::answering(|r| r.messages.last().map(|m| m.text()).unwrap_or_default())
    }

    /// Wait `delay` between consecutive tokens (not before the first).
    pub fn token_delay(mut self, delay: Duration) -> Self {
        self.token_delay = delay;
        self
    }

    /// Wait `time` before the first byte of every request (its service time).
    pub fn service_time(mut self, time: Duration) -> Self {
        self.service_time = time;
        self
    }

    /// Request number `n` (0-based, counting every call) first sleeps for `stall`, before its
    /// service time.
    pub fn stall_at(mut self, n: usize, stall: Duration) -> Self {
        self.stall = Some((n, stall));
        self
    }

    /// The log-probability every token carries.
    pub fn logprob(mut self, logprob: f32) -> Self {
        self.logprob = logprob;
        self
    }

    /// The events of call number `call` (0-based): first byte, the answer split after each
    /// space (one token per word), usage (prompt and answer words), done. A spawned task
    /// produces them once the previous request's stream has ended.
    pub(super) fn stream(&self, request: &ChatRequest, call: u64) -> EventStream {
        let text = (self.answer)(request);
        let (tx, rx) = mpsc::unbounded();
        let gate = self.gate.clone();
        let (token_delay, service, logprob) = (self.token_delay, self.service_time, self.logprob);
        let stall = self
            .stall
            .filter(|(n, _)| *n as u64 == call)
            .map(|(_, d)| d);
        let prompt_words = request.all_text().split_whitespace().count() as u32;
        tokio::spawn(async move {
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
            for (i, text) in words.into_iter().enumerate() {
                if i > 0 && !token_delay.is_zero() {
                    tokio::time::sleep(token_delay).await;
                }
                let _ = tx.unbounded_send(Ok(ChatEvent::Token {
                    choice: 0,
                    logprobs: vec![TokenLogprob::of_text(&text, logprob)],
                    text,
                    at: now(),
                }));
            }
            let _ = tx.unbounded_send(Ok(ChatEvent::Usage {
                usage: Usage::new(prompt_words, count),
                at: now(),
            }));
            let _ = tx.unbounded_send(Ok(ChatEvent::Done {
                choice: 0,
                finish_reason: FinishReason::Stop,
                stop_sequence: None,
                at: now(),
            }));
        });
        Box::pin(rx)
    }
}
