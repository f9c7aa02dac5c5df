//! Shared helpers of the gateway tests: `backends::mock::MockBackend` (a TEST DOUBLE chosen by
//! name), a scripted routing core (TEST DOUBLE), an in-process app, and an SSE body parser.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use router::events::RequestSummary;
use router::gateway::{
    app, AppState, BackendSlot, Backends, GatewayOptions, Locality, RouteInfo, RouteInput, Routed,
    RoutingCore,
};
use router::policy::{Action, CascadeSpec, Decision};
use router::pricing::{CostBreakdown, Usage};
use tower::ServiceExt;

pub use backends::mock::MockBackend;
use backends::{AnyBackend, ChatRequest, ChatResponse, EventStream};
use futures::future::BoxFuture;
use router::gateway::{DynBackend, LocalLoad};

/// A mock backend as the gateway holds it.
pub fn mock(name: &str) -> Arc<AnyBackend> {
    Arc::new(AnyBackend::Mock(MockBackend::new(name).unwrap()))
}

/// How many requests a mock received.
pub fn mock_calls(backend: &AnyBackend) -> u64 {
    match backend {
        AnyBackend::Mock(m) => m.calls(),
        _ => panic!("not a mock"),
    }
}

/// TEST DOUBLE of a local engine's load: delegates to a backend and reports a fixed
/// queue depth and busy slots, as the llama engine's atomics would.
pub struct WithLoad {
    pub inner: Arc<AnyBackend>,
    pub load: LocalLoad,
}

impl DynBackend for WithLoad {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        DynBackend::chat(&*self.inner, request)
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        DynBackend::chat_stream(&*self.inner, request)
    }

    fn local_load(&self) -> Option<LocalLoad> {
        Some(self.load)
    }
}

/// TEST DOUBLE of the routing core: the decision is chosen by the task (header, else
/// `metadata.task`), costs come from a fixed price table ($1/M input and $2/M output tokens for
/// every backend but `slm`/`unsure`, which are free; the reference is that price), and recorded
/// summaries are kept in memory (a ledger double).
#[derive(Default)]
pub struct ScriptedCore {
    pub ledger: Mutex<Vec<RequestSummary>>,
}

fn llm_price(u: &Usage) -> f64 {
    u.tokens_in as f64 * 1e-6 + u.tokens_out as f64 * 2e-6
}

impl RoutingCore for ScriptedCore {
    fn policy_models(&self) -> Vec<RouteInfo> {
        vec![RouteInfo {
            name: "auto".into(),
            description: "scripted test policy".into(),
        }]
    }

    fn routes(&self) -> Vec<RouteInfo> {
        vec![RouteInfo {
            name: "default".into(),
            description: "to slm".into(),
        }]
    }

    fn decide(&self, input: &RouteInput<'_>) -> Routed {
        let metadata_task = input
            .request
            .metadata
            .as_ref()
            .and_then(|m| m.get("task"))
            .and_then(|t| t.as_str());
        let (task, source) = match (input.task_header, metadata_task) {
            (Some(t), _) => (t.to_string(), "header"),
            (None, Some(t)) => (t.to_string(), "metadata"),
            (None, None) => ("default".to_string(), "classifier"),
        };
        let cascade = |first: &str| Action::Cascade(CascadeSpec::on_confidence(first, "llm", 0.6));
        let (route, action, fallback): (&str, Action, Vec<String>) = match input.pinned {
            Some(b) => ("pinned", Action::Backend(b.into()), vec![]),
            None => match task.as_str() {
                "big" => ("big", Action::Backend("llm".into()), vec![]),
                "broken" => (
                    "broken",
                    Action::Backend("broken".into()),
                    vec!["llm".into()],
                ),
                "broken_only" => ("broken_only", Action::Backend("broken".into()), vec![]),
                "cut" => ("cut", Action::Backend("cut".into()), vec!["llm".into()]),
                "slow" => ("slow", Action::Backend("slow".into()), vec![]),
                "cascade" => ("cascade", cascade("slm"), vec![]),
                "cascade_unsure" => ("cascade", cascade("unsure"), vec![]),
                "cascade_broken" => ("cascade", cascade("broken"), vec![]),
                "budget" => (
                    "budget",
                    Action::Refuse {
                        status: 429,
                        message: "daily budget of $5.00 is exhausted".into(),
                    },
                    vec![],
                ),
                _ => ("default", Action::Backend("slm".into()), vec![]),
            },
        };
        Routed {
            decision: Decision {
                route: route.into(),
                action,
                fallback,
                reason: format!("scripted: task {task}"),
                trace: vec![],
            },
            task,
            task_source: source.into(),
        }
    }

    fn cost(&self, calls: &[(&str, Usage)]) -> CostBreakdown {
        let cost_usd: f64 = calls
            .iter()
            .map(|(b, u)| {
                if *b == "slm" || *b == "unsure" {
                    0.0
                } else {
                    llm_price(u)
                }
            })
            .sum();
        let reference_usd = calls.last().map(|(_, u)| llm_price(u)).unwrap_or(0.0);
        CostBreakdown {
            cost_usd,
            reference_usd,
            saved_usd: reference_usd - cost_usd,
        }
    }

    fn record(&self, summary: &RequestSummary) {
        self.ledger.lock().unwrap().push(summary.clone());
    }
}

pub struct TestGateway {
    pub state: AppState,
    pub core: Arc<ScriptedCore>,
    pub backends: Vec<(String, Arc<AnyBackend>)>,
}

impl TestGateway {
    pub fn new(options: GatewayOptions) -> Self {
        let core = Arc::new(ScriptedCore::default());
        let mut backends = Backends::new();
        let mut handles = Vec::new();
        for (name, behaviour, kind) in [
            ("slm", "echo", Locality::Local),
            ("llm", "echo", Locality::Remote),
            ("unsure", "unsure", Locality::Local),
            ("broken", "error_500", Locality::Remote),
            ("cut", "disconnect_after_3", Locality::Remote),
            ("slow", "slow", Locality::Remote),
            ("busy", "overloaded", Locality::Local),
        ] {
            let backend = mock(behaviour);
            let handle: Arc<dyn DynBackend> = if kind == Locality::Local {
                Arc::new(WithLoad {
                    inner: backend.clone(),
                    load: LocalLoad {
                        queue_depth: 2,
                        busy_slots: 1,
                        slots: 4,
                        predicted_ttft_ms: None,
                    },
                })
            } else {
                backend.clone()
            };
            backends.insert(BackendSlot::ready(name, kind, handle));
            handles.push((name.to_string(), backend));
        }
        let state = AppState::new(backends, core.clone(), options);
        Self {
            state,
            core,
            backends: handles,
        }
    }

    pub fn ledger(&self) -> Vec<RequestSummary> {
        self.core.ledger.lock().unwrap().clone()
    }

    pub fn calls(&self, name: &str) -> u64 {
        self.backends
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| mock_calls(b))
            .unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec()).unwrap(),
        }
    }

    pub async fn chat(&self, body: serde_json::Value, task: Option<&str>) -> Reply {
        let mut req =
            Request::post("/v1/chat/completions").header("content-type", "application/json");
        if let Some(task) = task {
            req = req.header("x-triage-task", task);
        }
        self.send(req.body(Body::from(body.to_string())).unwrap())
            .await
    }
}

pub fn options() -> GatewayOptions {
    GatewayOptions {
        request_deadline: Duration::from_secs(10),
        ..GatewayOptions::default()
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `data:` payloads of an SSE body, in order (comments dropped).
    pub fn sse_data(&self) -> Vec<String> {
        sse_data(&self.body)
    }
}

pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .flat_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// Concatenated `delta.content` of the chunks.
pub fn streamed_text(data: &[String]) -> String {
    data.iter()
        .filter(|d| d.as_str() != "[DONE]")
        .filter_map(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

pub fn chat_body(text: &str, stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": "auto",
        "messages": [{"role": "user", "content": text}],
        "stream": stream,
    })
}
