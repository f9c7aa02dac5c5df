//! Shared pieces of the remote-backend tests: a scripted local upstream (a TEST DOUBLE that
//! replays recorded responses and injects faults on 127.0.0.1), fixture loading, and event
//! normalisation.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use backends::remote::{Extensions, RemoteConfig, RetryPolicy, Timeouts};
use backends::{ChatEvent, EventStream};
use futures::StreamExt;

/// The workspace's `tests/fixtures` directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn read_fixture(rel: &str) -> Vec<u8> {
    let path = fixtures().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// Sorted file names (relative to the fixtures dir) under `dir` ending in `ext`.
pub fn fixture_files(dir: &str, ext: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(fixtures().join(dir))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(ext))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no {ext} fixtures in {dir}");
    out
}

/// How the body ends after its chunks.
#[derive(Clone, Copy, Debug)]
pub enum End {
    Finish,
    /// Keep the connection open and send nothing more.
    Hang,
    /// Abort the connection (the client sees a broken body).
    Reset,
}

/// One scripted answer of the test upstream.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Never send response headers.
    HangBeforeHeaders,
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        chunks: Vec<Bytes>,
        /// Pause before each chunk after the first.
        gap: Duration,
        end: End,
    },
}

impl Reply {
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Reply::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            chunks: vec![body.into()],
            gap: Duration::ZERO,
            end: End::Finish,
        }
    }

    pub fn sse(body: impl Into<Bytes>) -> Self {
        Reply::Respond {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks: vec![body.into()],
            gap: Duration::ZERO,
            end: End::Finish,
        }
    }

    pub fn sse_chunks(chunks: Vec<Bytes>, gap: Duration, end: End) -> Self {
        Reply::Respond {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            chunks,
            gap,
            end,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name.to_string(), value.to_string()));
        }
        self
    }
}

/// What the upstream saw of one request.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Hit {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }
}

struct Script {
    replies: Vec<Reply>,
    hits: Mutex<Vec<Hit>>,
}

/// A local upstream on 127.0.0.1 that answers hit N with reply N (the last reply repeats).
pub struct TestUpstream {
    pub base_url: String,
    script: Arc<Script>,
}

impl TestUpstream {
    pub async fn start(replies: Vec<Reply>) -> Self {
        assert!(!replies.is_empty());
        let script = Arc::new(Script {
            replies,
            hits: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(script.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}/v1"),
            script,
        }
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.script.hits.lock().unwrap().clone()
    }

    pub fn hit_count(&self) -> usize {
        self.script.hits.lock().unwrap().len()
    }
}

async fn answer(
    State(script): State<Arc<Script>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = {
        let mut hits = script.hits.lock().unwrap();
        hits.push(Hit {
            at: Instant::now(),
            path: uri.path().to_string(),
            headers,
            body,
        });
        hits.len() - 1
    };
    let reply = script.replies[n.min(script.replies.len() - 1)].clone();
    match reply {
        Reply::HangBeforeHeaders => {
            futures::future::pending::<()>().await;
            unreachable!()
        }
        Reply::Respond {
            status,
            headers,
            chunks,
            gap,
            end,
        } => {
            let body = futures::stream::iter(chunks.into_iter().enumerate())
                .then(move |(i, chunk)| async move {
                    if i > 0 && !gap.is_zero() {
                        tokio::time::sleep(gap).await;
                    }
                    Ok::<Bytes, std::io::Error>(chunk)
                })
                .chain(
                    futures::stream::once(async move {
                        match end {
                            End::Finish => None,
                            End::Hang => {
                                futures::future::pending::<()>().await;
                                None
                            }
                            End::Reset => {
                                // Let the chunks before it reach the client first.
                                tokio::time::sleep(gap.max(Duration::from_millis(20))).await;
                                Some(Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "test upstream: connection reset",
                                )))
                            }
                        }
                    })
                    .filter_map(futures::future::ready),
                );
            let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from_stream(body)).unwrap()
        }
    }
}

/// Test timeouts: short, so fault tests finish in well under a second each.
pub fn config(base_url: &str, model: &str) -> RemoteConfig {
    RemoteConfig {
        base_url: base_url.to_string(),
        model: model.to_string(),
        api_key_env: None,
        headers: BTreeMap::new(),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(5),
            total: Duration::from_secs(20),
        },
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(500),
        },
        extensions: Extensions::None,
    }
}

/// A chat event without its `Instant`, for comparing event sequences.
#[derive(Clone, Debug, PartialEq)]
pub enum Ev {
    FirstByte,
    Token(u32, String, Vec<f32>),
    Refusal(u32, String),
    ToolCall(u32, u32, Option<String>, Option<String>, String),
    Usage(u32, u32, u32),
    Done(u32, String),
}

pub fn strip(event: &ChatEvent) -> Ev {
    match event {
        ChatEvent::FirstByte { .. } => Ev::FirstByte,
        ChatEvent::Token {
            choice,
            text,
            logprobs,
            ..
        } => Ev::Token(
            *choice,
            text.clone(),
            logprobs.iter().map(|t| t.logprob).collect(),
        ),
        ChatEvent::Refusal { choice, text, .. } => Ev::Refusal(*choice, text.clone()),
        ChatEvent::ToolCallDelta {
            choice,
            index,
            id,
            name,
            arguments,
            ..
        } => Ev::ToolCall(*choice, *index, id.clone(), name.clone(), arguments.clone()),
        ChatEvent::Usage { usage, .. } => Ev::Usage(
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens,
        ),
        ChatEvent::Done {
            choice,
            finish_reason,
            ..
        } => Ev::Done(*choice, finish_reason.as_str().to_string()),
        other => panic!("unexpected event {other:?}"),
    }
}

/// Drain a stream: the events before the first error, and that error.
pub async fn drain(mut stream: EventStream) -> (Vec<ChatEvent>, Option<backends::BackendError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => events.push(event),
            Err(e) => {
                assert!(
                    stream.next().await.is_none(),
                    "a stream must end after its error"
                );
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

/// The `data:` payloads of an SSE text whose events are separated by blank lines
/// (how every fixture is written), in order.
pub fn sse_data_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_string())
        .collect()
}

/// Some SDK fixture files were saved without the blank line that ends the last SSE event on
/// the wire (a text-file artefact: real streams always end every event with one). The replay
/// restores it; `truncated_fixture_files_are_protocol_errors` shows what happens without.
pub fn wire_sse(raw: &[u8]) -> Vec<u8> {
    let mut out = raw.to_vec();
    if !out.ends_with(b"\n\n") {
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// Cut `body` at the given positions (taken modulo its length + 1).
pub fn split_at(body: &[u8], cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(Bytes::copy_from_slice(&body[start..cut]));
        start = cut;
    }
    chunks.push(Bytes::copy_from_slice(&body[start..]));
    chunks
}
