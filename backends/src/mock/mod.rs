//! `MockBackend`: the one backend TEST DOUBLE (feature `mock`) of the router's, the harness's
//! and the dashboards' tests. It runs no model. Most mocks are chosen by name (the configured
//! model), so a routing config or scenario can ask for a fault without a real upstream:
//!
//! | name                   | behaviour                                                       |
//! |------------------------|-----------------------------------------------------------------|
//! | `echo`                 | answers the last user message, streamed word by word            |
//! | `unsure`               | as `echo`, with low token log-probabilities (-2.0 per token)    |
//! | `slow`                 | as `echo`, 40 ms before every token                             |
//! | `slow_<N>ms`           | as `echo`, N ms before every token                              |
//! | `error_500`            | fails with `UpstreamStatus { status: 500 }`                     |
//! | `overloaded`           | fails with `Overloaded` (a full local admission queue)          |
//! | `rate_limited`         | fails with `RateLimited { status: 429, retry_after: 1s }`       |
//! | `disconnect_after_<N>` | streams N tokens, then a `Connection` error                     |
//! | `flaky_<N>`            | the first N calls fail with `UpstreamStatus { status: 503 }`, then `echo` |
//! | `hang`                 | never answers (until the caller drops the future or stream)     |
//!
//! Echo tokens carry log-probability -0.05 (`unsure`: -2.0), so cascade thresholds can be
//! tested; usage counts whitespace-separated words.
//!
//! Two more shapes, built in code rather than by name:
//!
//! | constructor                         | behaviour                                          |
//! |-------------------------------------|----------------------------------------------------|
//! | `MockBackend::scripted(Script)`     | answers `answer(request)` word by word, one request at a time, with a token delay, a service time, a stall at request N and a fixed log-probability ([`Script`]) |
//! | `mock.with_local_compute(secs)`     | any mock, its stream followed by `ChatEvent::LocalCompute { busy_secs: secs }`, as the llama engine reports its busy share of the batched decode steps |
//!
//! Every event is stamped on tokio's clock (the system clock, or the paused test clock), so
//! tests on paused time (`#[tokio::test(start_paused = true)]`) see exact schedules.

mod scripted;

pub use scripted::{AnswerFn, Script};

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::{
    collect_stream, Backend, BackendError, ChatEvent, ChatRequest, ChatResponse, EventStream,
    FinishReason, Result, Role, TokenLogprob, Usage,
};

/// The log-probability of every `echo` token (a confident answer).
const ECHO_LOGPROB: f32 = -0.05;

/// Now on tokio's clock (the system clock, or the paused test clock), as the std instant that
/// stream events carry.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What the mock does, parsed from its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MockBehaviour {
    /// `echo` / `unsure`: answer the last user message, word by word.
    Echo {
        /// Log-probability of every token, in thousandths (-50 for `echo`, -2000 for `unsure`).
        logprob_milli: i32,
    },
    /// `slow`, `slow_<N>ms`: echo, waiting before each token.
    Slow {
        /// Wait before the first token.
        first: Duration,
        /// Wait before each later token.
        between: Duration,
    },
    /// `error_500`: fail with upstream status 500.
    Error500,
    /// `overloaded`: fail as a full local admission queue would.
    Overloaded,
    /// `rate_limited`: fail with 429 and a 1 s `retry_after`.
    RateLimited,
    /// `disconnect_after_<N>`: stream N tokens, then a connection error.
    DisconnectAfter(usize),
    /// `flaky_<N>`: the first N calls fail with status 503, later ones echo.
    Flaky(u64),
    /// `hang`: never answer.
    Hang,
}

impl MockBehaviour {
    /// Parse a behaviour name (see the module docs).
    pub fn parse(name: &str) -> Result<Self> {
        let parsed = match name {
            "echo" => Some(MockBehaviour::Echo { logprob_milli: -50 }),
            "unsure" => Some(MockBehaviour::Echo {
                logprob_milli: -2000,
            }),
            "slow" => Some(MockBehaviour::Slow {
                first: Duration::from_millis(40),
                between: Duration::from_millis(40),
            }),
            "error_500" => Some(MockBehaviour::Error500),
            "overloaded" => Some(MockBehaviour::Overloaded),
            "rate_limited" => Some(MockBehaviour::RateLimited),
            "hang" => Some(MockBehaviour::Hang),
            _ => None,
        };
        if let Some(b) = parsed {
            return Ok(b);
        }
        let number = |prefix: &str, suffix: &str| {
            name.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                .and_then(|n| n.parse::<u64>().ok())
        };
        if let Some(ms) = number("slow_", "ms") {
            let d = Duration::from_millis(ms);
            return Ok(MockBehaviour::Slow {
                first: d,
                between: d,
            });
        }
        if let Some(n) = number("disconnect_after_", "") {
            return Ok(MockBehaviour::DisconnectAfter(n as usize));
        }
        if let Some(n) = number("flaky_", "") {
            return Ok(MockBehaviour::Flaky(n));
        }
        Err(BackendError::Config(format!(
            "unknown mock behaviour {name:?}; expected one of echo, unsure, slow, slow_<N>ms, \
             error_500, overloaded, rate_limited, disconnect_after_<N>, flaky_<N>, hang"
        )))
    }
}

/// What a mock answers with: a named behaviour or a script.
#[derive(Debug)]
enum Act {
    Named(MockBehaviour),
    Scripted(Script),
}

/// A test double standing in for any backend; see the module docs for the behaviours.
#[derive(Debug)]
pub struct MockBackend {
    name: String,
    act: Act,
    local_compute: Option<f64>,
    calls: AtomicU64,
}

impl MockBackend {
    /// A mock with the behaviour named `name` (e.g. `"echo"`, `"disconnect_after_3"`).
    pub fn new(name: &str) -> Result<Self> {
        Ok(Self {
            name: name.to_string(),
            act: Act::Named(MockBehaviour::parse(name)?),
            local_compute: None,
            calls: AtomicU64::new(0),
        })
    }

    /// A mock answering by `script` (named `scripted`).
    pub fn scripted(script: Script) -> Self {
        Self {
            name: "scripted".to_string(),
            act: Act::Scripted(script),
            local_compute: None,
            calls: AtomicU64::new(0),
        }
    }

    /// End every stream with `ChatEvent::LocalCompute { busy_secs }`, as the llama engine does
    /// with its busy share of the batched decode steps (what a local answer is billed by).
    pub fn with_local_compute(mut self, busy_secs: f64) -> Self {
        self.local_compute = Some(busy_secs);
        self
    }

    /// The behaviour name it was built with (the configured model), `scripted` for a script.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it does, parsed from the name; `None` for a scripted mock.
    pub fn behaviour(&self) -> Option<MockBehaviour> {
        match &self.act {
            Act::Named(b) => Some(*b),
            Act::Scripted(_) => None,
        }
    }

    /// How many requests this mock has received.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

/// The last user message split into words, each but the first with its leading space.
fn echo_tokens(request: &ChatRequest) -> Vec<String> {
    let text = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.text())
        .unwrap_or_default();
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            }
        })
        .collect()
}

impl Backend for MockBackend {
    async fn chat(&self, request: ChatRequest) -> Result<ChatResponse> {
        let stream = self.chat_stream(request).await?;
        collect_stream(stream, &self.name).await
    }

    async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream> {
        let call = self.calls.fetch_add(1, Ordering::Relaxed);
        let events = match &self.act {
            Act::Named(behaviour) => self.named_stream(*behaviour, &request, call).await?,
            Act::Scripted(script) => script.stream(&request, call),
        };
        Ok(match self.local_compute {
            None => events,
            Some(busy_secs) => Box::pin(events.chain(futures::stream::once(async move {
                Ok(ChatEvent::LocalCompute {
                    busy_secs,
                    at: now(),
                })
            }))),
        })
    }
}

impl MockBackend {
    /// The events of a named behaviour's call number `call` (0-based).
    async fn named_stream(
        &self,
        behaviour: MockBehaviour,
        request: &ChatRequest,
        call: u64,
    ) -> Result<EventStream> {
        let (first, between, logprob, cut) = match behaviour {
            MockBehaviour::Echo { logprob_milli } => (
                Duration::ZERO,
                Duration::ZERO,
                logprob_milli as f32 / 1000.0,
                None,
            ),
            MockBehaviour::Slow { first, between } => (first, between, ECHO_LOGPROB, None),
            MockBehaviour::DisconnectAfter(n) => {
                (Duration::ZERO, Duration::ZERO, ECHO_LOGPROB, Some(n))
            }
            MockBehaviour::Flaky(n) if call < n => {
                return Err(BackendError::UpstreamStatus {
                    status: 503,
                    body: format!("mock {}: call {} of {n} fails", self.name, call + 1),
                })
            }
            MockBehaviour::Flaky(_) => (Duration::ZERO, Duration::ZERO, ECHO_LOGPROB, None),
            MockBehaviour::Error500 => {
                return Err(BackendError::UpstreamStatus {
                    status: 500,
                    body: format!("mock {}: internal error", self.name),
                })
            }
            MockBehaviour::Overloaded => return Err(BackendError::Overloaded { capacity: 0 }),
            MockBehaviour::RateLimited => {
                return Err(BackendError::RateLimited {
                    status: 429,
                    retry_after: Some(Duration::from_secs(1)),
                    body: format!("mock {}: rate limited", self.name),
                })
            }
            MockBehaviour::Hang => {
                return futures::future::pending::<Result<EventStream>>().await;
            }
        };
        let tokens = echo_tokens(request);
        let prompt_words = request.all_text().split_whitespace().count() as u32;
        let completion = tokens.len() as u32;
        let head = futures::stream::once(async { Ok(ChatEvent::FirstByte { at: now() }) });
        let count = tokens.len();
        let body = futures::stream::iter(tokens.into_iter().enumerate()).then(
            move |(i, text)| async move {
                if cut.is_some_and(|n| i >= n) {
                    return Err(BackendError::Connection(format!(
                        "mock: disconnected after {} tokens",
                        cut.unwrap_or(0)
                    )));
                }
                let delay = if i == 0 { first } else { between };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(ChatEvent::Token {
                    choice: 0,
                    logprobs: vec![TokenLogprob::of_text(&text, logprob)],
                    text,
                    at: now(),
                })
            },
        );
        let cut_after_all = cut.filter(|n| *n >= count);
        let tail = futures::stream::iter([0u8, 1]).map(move |i| match (i, cut_after_all) {
            (0, Some(n)) => Err(BackendError::Connection(format!(
                "mock: disconnected after {n} tokens"
            ))),
            (0, None) => Ok(ChatEvent::Done {
                choice: 0,
                finish_reason: FinishReason::Stop,
                stop_sequence: None,
                at: now(),
            }),
            _ => Ok(ChatEvent::Usage {
                usage: Usage::new(prompt_words, completion),
                at: now(),
            }),
        });
        // A stream ends at its first error, as remote streams do.
        let mut failed = false;
        let stream = head.chain(body).chain(tail).take_while(move |item| {
            let keep = !failed;
            failed |= item.is_err();
            futures::future::ready(keep)
        });
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_streams_the_last_user_message_word_by_word() {
        let mock = MockBackend::new("echo").unwrap();
        let response = mock
            .chat(ChatRequest::user("m", "the quick  brown fox"))
            .await
            .unwrap();
        assert_eq!(response.text(), "the quick brown fox");
        assert_eq!(response.finish_reason(), Some(&FinishReason::Stop));
        assert_eq!(response.usage.as_ref().unwrap().completion_tokens, 4);
        assert_eq!(response.token_logprobs, vec![-0.05; 4]);
        assert_eq!(mock.calls(), 1);
    }

    #[tokio::test]
    async fn disconnect_after_3_fails_after_three_tokens() {
        let mock = MockBackend::new("disconnect_after_3").unwrap();
        let mut stream = mock
            .chat_stream(ChatRequest::user("m", "one two three four five"))
            .await
            .unwrap();
        let mut tokens = 0;
        let mut error = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(ChatEvent::Token { .. }) => tokens += 1,
                Ok(_) => {}
                Err(e) => error = Some(e),
            }
        }
        assert_eq!(tokens, 3);
        assert!(matches!(error, Some(BackendError::Connection(_))));
    }

    #[tokio::test]
    async fn failing_behaviours_give_their_typed_errors() {
        let req = || ChatRequest::user("m", "hi");
        let err = MockBackend::new("error_500")
            .unwrap()
            .chat(req())
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            BackendError::UpstreamStatus { status: 500, .. }
        ));
        let err = MockBackend::new("overloaded")
            .unwrap()
            .chat(req())
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::Overloaded { .. }));
        let err = MockBackend::new("rate_limited")
            .unwrap()
            .chat(req())
            .await
            .unwrap_err();
        assert!(matches!(err, BackendError::RateLimited { status: 429, .. }));
        let flaky = MockBackend::new("flaky_2").unwrap();
        assert!(flaky.chat(req()).await.is_err());
        assert!(flaky.chat(req()).await.is_err());
        assert_eq!(flaky.chat(req()).await.unwrap().text(), "hi");
        let hang = MockBackend::new("hang").unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(20), hang.chat(req())).await;
        assert!(waited.is_err());
        assert!(MockBackend::new("nonsense").is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_delays_every_token() {
        let mock = MockBackend::new("slow_30ms").unwrap();
        let started = tokio::time::Instant::now();
        let response = mock.chat(ChatRequest::user("m", "a b c")).await.unwrap();
        assert_eq!(response.text(), "a b c");
        assert!(started.elapsed() >= Duration::from_millis(90));
    }

    #[tokio::test(start_paused = true)]
    async fn scripted_paces_its_answer_on_tokio_time_one_request_at_a_time() {
        let script = Script::answering(|_| "one two three".into())
            .service_time(Duration::from_millis(10))
            .token_delay(Duration::from_millis(5))
            .stall_at(1, Duration::from_millis(100))
            .logprob(-0.5);
        let mock = MockBackend::scripted(script);
        let started = tokio::time::Instant::now();
        let (a, b) = tokio::join!(
            mock.chat(ChatRequest::user("m", "hi")),
            mock.chat(ChatRequest::user("m", "hi"))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.text(), "one two three");
        assert_eq!(a.token_logprobs, vec![-0.5; 3]);
        assert_eq!(a.usage.as_ref().unwrap().completion_tokens, 3);
        let ms = |at: Option<Instant>| at.unwrap().duration_since(started.into_std()).as_millis();
        // The first: 10 ms service, tokens at 10, 15, 20 ms. The second waits for it, stalls
        // 100 ms, serves 10 ms: tokens at 130, 135, 140 ms.
        assert_eq!(ms(a.timings.first_token), 10);
        assert_eq!(ms(a.timings.finished), 20);
        assert_eq!(ms(b.timings.first_token), 130);
        assert_eq!(ms(b.timings.finished), 140);
        assert_eq!(mock.calls(), 2);
        assert_eq!(mock.behaviour(), None);
        let echo = MockBackend::scripted(Script::echo());
        assert_eq!(
            echo.chat(ChatRequest::user("m", "a  b"))
                .await
                .unwrap()
                .text(),
            "a  b"
        );
    }

    #[tokio::test]
    async fn local_compute_follows_the_answer() {
        let mock = MockBackend::new("echo").unwrap().with_local_compute(7.5);
        let events: Vec<ChatEvent> = mock
            .chat_stream(ChatRequest::user("m", "a b"))
            .await
            .unwrap()
            .map(|e| e.unwrap())
            .collect()
            .await;
        assert!(matches!(
            events.last(),
            Some(ChatEvent::LocalCompute { busy_secs, .. }) if *busy_secs == 7.5
        ));
        let whole = mock.chat(ChatRequest::user("m", "a b")).await.unwrap();
        assert_eq!(whole.text(), "a b");
        assert_eq!(whole.timings.engine_busy_secs, 7.5);
    }
}
