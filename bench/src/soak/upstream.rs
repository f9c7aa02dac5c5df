//! [`FaultUpstream`], a TEST DOUBLE: an OpenAI-compatible chat-completions server (JSON and SSE)
//! that injects faults at a configured rate, for `triage bench soak` and the crash test.
//!
//! A gateway must give every request exactly one answer and one ledger row whatever its
//! upstream does, so this server misbehaves the four ways real upstreams do: it drops the
//! connection without answering (a reset: SO_LINGER 0, so the close is an RST), answers 500,
//! stalls longer than the gateway's first-byte timeout, or cuts a body mid-way (an SSE stream
//! after its role and first content chunk, a JSON body after half its bytes, then the
//! connection closes). Which request gets which fault is drawn
//! from a seeded generator, so a run is repeatable; every injection is counted by kind.
//!
//! Each connection is served by hyper directly: a service error makes hyper close the
//! connection without a response, which axum's own `serve` cannot do; everything else is an
//! axum [`Router`].

use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use futures::StreamExt;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;

/// What the upstream injects, and how often.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultPlan {
    /// Share of chat requests that get a fault, in `[0, 1]` (each kind a quarter of it).
    pub rate: f64,
    /// Seed of the generator that picks the faulty requests and their kind.
    pub seed: u64,
    /// How long a stalled request waits before answering: longer than the gateway's first-byte
    /// timeout, so the gateway gives up first.
    pub stall: Duration,
}

impl FaultPlan {
    /// No faults: a fast, well-behaved upstream.
    pub fn none() -> Self {
        Self {
            rate: 0.0,
            seed: 0,
            stall: Duration::from_secs(4),
        }
    }
}

/// One kind of injected fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The connection is dropped (RST) without a response.
    Reset,
    /// HTTP 500 with an OpenAI error body.
    ServerError,
    /// The answer comes only after [`FaultPlan::stall`].
    Stall,
    /// The body stops mid-way and the connection is dropped.
    Cut,
}

const KINDS: [Fault; 4] = [Fault::Reset, Fault::ServerError, Fault::Stall, Fault::Cut];

/// Chat requests received and faults injected, by kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Chat-completion requests received (faulty or not).
    pub requests: u64,
    /// Connections dropped without a response.
    pub reset: u64,
    /// HTTP 500 answers.
    pub server_error: u64,
    /// Answers stalled past the gateway's first-byte timeout.
    pub stall: u64,
    /// Bodies cut mid-way.
    pub cut: u64,
}

impl FaultCounts {
    /// Faults of every kind.
    pub fn total(&self) -> u64 {
        self.reset + self.server_error + self.stall + self.cut
    }
}

struct Shared {
    plan: FaultPlan,
    rng: Mutex<fastrand::Rng>,
    requests: AtomicU64,
    injected: [AtomicU64; 4],
}

impl Shared {
    fn next_fault(&self) -> Option<Fault> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        if rng.f64() >= self.plan.rate {
            return None;
        }
        let i = rng.usize(0..KINDS.len());
        self.injected[i].fetch_add(1, Ordering::Relaxed);
        Some(KINDS[i])
    }
}

/// The fault chosen for a request, handed from the connection layer to the handler.
#[derive(Clone, Copy)]
struct Injected(Option<Fault>);

/// The service error that makes hyper drop the connection without a response.
#[derive(Debug, thiserror::Error)]
#[error("injected fault: connection reset")]
struct InjectedReset;

/// A running fault-injecting upstream (TEST DOUBLE); stopped when dropped.
pub struct FaultUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FaultUpstream {
    /// Listen on a free loopback port and serve until dropped.
    pub async fn start(plan: FaultPlan) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            plan,
            rng: Mutex::new(fastrand::Rng::with_seed(plan.seed)),
            requests: AtomicU64::new(0),
            injected: Default::default(),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .fallback(not_found)
            .with_state(plan.stall);
        let accept_shared = shared.clone();
        let task = tokio::spawn(async move {
            // Dropping the set (when this task is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            connections.spawn(serve_connection(stream, accept_shared.clone(), app.clone()));
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "fault upstream: accept failed");
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// The OpenAI base URL to configure (`http://ADDR/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received and faults injected so far.
    pub fn counts(&self) -> FaultCounts {
        let n = |i: usize| self.shared.injected[i].load(Ordering::Relaxed);
        FaultCounts {
            requests: self.shared.requests.load(Ordering::Relaxed),
            reset: n(0),
            server_error: n(1),
            stall: n(2),
            cut: n(3),
        }
    }
}

impl Drop for FaultUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>, app: Router) {
    // A second handle on the socket, so a reset can set SO_LINGER 0 (an abortive close: the
    // gateway sees an RST, not a clean EOF) on the connection it drops. Both handles close when
    // this function returns.
    let socket = match stream.as_fd().try_clone_to_owned() {
        Ok(fd) => Some(Arc::new(socket2::Socket::from(fd))),
        Err(e) => {
            tracing::debug!(error = %e, "fault upstream: cannot duplicate the socket");
            None
        }
    };
    let service = hyper::service::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        let app = app.clone();
        let socket = socket.clone();
        let fault = if req.uri().path().ends_with("/chat/completions") {
            shared.next_fault()
        } else {
            None
        };
        async move {
            if fault == Some(Fault::Reset) {
                if let Some(s) = socket {
                    let _ = s.set_linger(Some(Duration::ZERO));
                }
                return Err(InjectedReset);
            }
            req.extensions_mut().insert(Injected(fault));
            match app.oneshot(req.map(Body::new)).await {
                Ok(response) => Ok(response),
                Err(never) => match never {},
            }
        }
    });
    // Errors here are the injected faults and peers that went away: nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found_error", "no such route")
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
            .to_string(),
    )
        .into_response()
}

async fn chat(
    State(stall): State<Duration>,
    Extension(Injected(fault)): Extension<Injected>,
    body: Bytes,
) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "the body is not JSON",
        );
    };
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock")
        .to_string();
    match fault {
        Some(Fault::ServerError) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "injected fault: internal server error",
            )
        }
        Some(Fault::Stall) => tokio::time::sleep(stall).await,
        _ => {}
    }
    let cut = fault == Some(Fault::Cut);
    if stream {
        let mut events = sse_events(&model);
        if cut {
            events.truncate(2);
        }
        let parts: Vec<Bytes> = events.into_iter().map(Bytes::from).collect();
        let body = if cut {
            cut_body(parts)
        } else {
            Body::from_stream(futures::stream::iter(
                parts.into_iter().map(Ok::<_, std::io::Error>),
            ))
        };
        ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
    } else {
        let whole = completion(&model);
        if cut {
            let half = Bytes::from(whole.into_bytes());
            let half = half.slice(..half.len() / 2);
            (
                [(header::CONTENT_TYPE, "application/json")],
                cut_body(vec![half]),
            )
                .into_response()
        } else {
            ([(header::CONTENT_TYPE, "application/json")], whole).into_response()
        }
    }
}

/// A body that sends `parts`, waits so they are flushed and read, then fails: hyper drops the
/// connection mid-body (a clean close, so the gateway reads what was sent before it sees the
/// cut; a reset would let the kernel discard it unread).
fn cut_body(parts: Vec<Bytes>) -> Body {
    let sent = futures::stream::iter(parts.into_iter().map(Ok::<_, std::io::Error>));
    let cut = futures::stream::once(async {
        tokio::time::sleep(CUT_PAUSE).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "injected fault: cut",
        ))
    });
    Body::from_stream(sent.chain(cut))
}

/// The pause between a cut body's last bytes and the cut.
const CUT_PAUSE: Duration = Duration::from_millis(50);

const WORDS: [&str; 4] = ["The", " soak", " answer", " holds."];

fn usage() -> Value {
    json!({"prompt_tokens": 12, "completion_tokens": WORDS.len(), "total_tokens": 12 + WORDS.len()})
}

fn completion(model: &str) -> String {
    json!({
        "id": "chatcmpl-fault-upstream",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": WORDS.concat()}, "finish_reason": "stop"}],
        "usage": usage(),
    })
    .to_string()
}

/// A whole SSE answer: role, one chunk per word, finish, usage, `[DONE]`.
fn sse_events(model: &str) -> Vec<String> {
    let chunk = |choices: Value, usage: Option<Value>| {
        let mut v = json!({
            "id": "chatcmpl-fault-upstream",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        format!("data: {v}\n\n")
    };
    let mut events = vec![chunk(
        json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
        None,
    )];
    for w in WORDS {
        events.push(chunk(
            json!([{"index": 0, "delta": {"content": w}, "finish_reason": null}]),
            None,
        ));
    }
    events.push(chunk(
        json!([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        None,
    ));
    events.push(chunk(json!([]), Some(usage())));
    events.push("data: [DONE]\n\n".to_string());
    events
}
