//! TEST DOUBLE: a backend whose behaviour is chosen by its behaviour name, standing in for
//! `backends::mock::MockBackend` (branch remote-backends) until that lands.
//!
//! - `echo`: answers the last user message, word by word, each token with log-probability -0.05;
//! - `unsure`: like echo but every token has log-probability -2.0 (a cascade escalates);
//! - `slow`: like echo with 40 ms between tokens;
//! - `error_500`: fails with upstream status 500 before any token;
//! - `overloaded`: fails with the local engine's queue-full error;
//! - `disconnect_after_3`: streams 3 tokens, then the connection breaks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use backends::{
    collect_stream, BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream, FinishReason,
    Role, Usage,
};
use futures::future::BoxFuture;
use router::gateway::{DynBackend, LocalLoad};

pub struct MockBackend {
    pub behaviour: String,
    pub calls: AtomicUsize,
    pub local: Option<LocalLoad>,
}

impl MockBackend {
    pub fn new(behaviour: &str) -> Self {
        Self {
            behaviour: behaviour.to_string(),
            calls: AtomicUsize::new(0),
            local: None,
        }
    }

    pub fn local(mut self, load: LocalLoad) -> Self {
        self.local = Some(load);
        self
    }

    fn last_user(request: &ChatRequest) -> String {
        request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.text())
            .unwrap_or_default()
    }

    fn stream(&self, request: ChatRequest) -> backends::Result<EventStream> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match self.behaviour.as_str() {
            "error_500" => {
                return Err(BackendError::UpstreamStatus {
                    status: 500,
                    body: "mock error_500".into(),
                })
            }
            "overloaded" => return Err(BackendError::Overloaded { capacity: 1 }),
            _ => {}
        }
        let prompt = Self::last_user(&request);
        let words: Vec<String> = prompt.split_whitespace().map(str::to_string).collect();
        let n = words.len();
        let behaviour = self.behaviour.clone();
        let logprob = if behaviour == "unsure" { -2.0 } else { -0.05 };
        let prompt_tokens = u32::try_from(n).unwrap() + 3;
        Ok(Box::pin(async_stream::stream! {
            yield Ok(ChatEvent::FirstByte { at: Instant::now() });
            for (i, w) in words.into_iter().enumerate() {
                if behaviour == "disconnect_after_3" && i == 3 {
                    yield Err(BackendError::Connection("mock disconnect_after_3".into()));
                    return;
                }
                if behaviour == "slow" {
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
                let text = if i + 1 < n { format!("{w} ") } else { w };
                yield Ok(ChatEvent::Token { choice: 0, text, logprobs: vec![logprob], at: Instant::now() });
            }
            yield Ok(ChatEvent::Done { choice: 0, finish_reason: FinishReason::Stop, at: Instant::now() });
            yield Ok(ChatEvent::Usage {
                usage: Usage::new(prompt_tokens, u32::try_from(n).unwrap()),
                at: Instant::now(),
            });
        }))
    }
}

impl DynBackend for MockBackend {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        Box::pin(async move {
            let model = request.model.clone();
            let stream = self.stream(request)?;
            collect_stream(stream, &model).await
        })
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        Box::pin(async move { self.stream(request) })
    }

    fn local_load(&self) -> Option<LocalLoad> {
        self.local
    }
}
