//! Shared helpers of the gateway tests: test doubles for backends and the routing core, an
//! in-process app, and an SSE body parser.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod mock_backend;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use backends::Usage;
use http_body_util::BodyExt;
use router::events::RequestSummary;
use router::gateway::{
    app, AppState, BackendKind, BackendSlot, Backends, CascadePlan, Cost, GatewayOptions, Plan,
    PlanAction, RouteInfo, RouteInput, RoutingCore,
};
use tower::ServiceExt;

pub use mock_backend::MockBackend;

/// TEST DOUBLE of the routing core: the plan is chosen by the task hint, costs come from a
/// fixed two-price table, and recorded summaries are kept in memory (a ledger double).
#[derive(Default)]
pub struct ScriptedCore {
    pub ledger: Mutex<Vec<RequestSummary>>,
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

    fn decide(&self, input: &RouteInput<'_>) -> Plan {
        let task = input.task.map(|t| t.task.clone());
        let cascade = |first: &str| {
            PlanAction::Cascade(CascadePlan {
                first: first.into(),
                escalate_to: "llm".into(),
                min_confidence: 0.6,
                min_token_prob: None,
            })
        };
        let (route, action, fallback): (&str, PlanAction, Vec<String>) =
            match task.as_deref().unwrap_or("default") {
                "big" => ("big", PlanAction::Backend("llm".into()), vec![]),
                "broken" => (
                    "broken",
                    PlanAction::Backend("broken".into()),
                    vec!["llm".into()],
                ),
                "broken_only" => ("broken_only", PlanAction::Backend("broken".into()), vec![]),
                "cut" => ("cut", PlanAction::Backend("cut".into()), vec!["llm".into()]),
                "slow" => ("slow", PlanAction::Backend("slow".into()), vec![]),
                "cascade" => ("cascade", cascade("slm"), vec![]),
                "cascade_unsure" => ("cascade", cascade("unsure"), vec![]),
                "cascade_broken" => ("cascade", cascade("broken"), vec![]),
                "budget" => (
                    "budget",
                    PlanAction::Refuse {
                        status: 429,
                        message: "daily budget of $5.00 is exhausted".into(),
                    },
                    vec![],
                ),
                _ => ("default", PlanAction::Backend("slm".into()), vec![]),
            };
        Plan {
            route: route.into(),
            reason: format!("scripted: task {task:?}"),
            task: task.clone(),
            task_source: input.task.map(|t| t.source.to_string()),
            action,
            fallback,
            trace: vec![],
        }
    }

    fn cost(&self, backend: &str, usage: &Usage, _busy: f64) -> Cost {
        let llm = f64::from(usage.prompt_tokens) * 1e-6 + f64::from(usage.completion_tokens) * 2e-6;
        let usd = if backend == "slm" || backend == "unsure" {
            0.0
        } else {
            llm
        };
        Cost {
            usd,
            saved_usd: llm - usd,
        }
    }

    fn record(&self, summary: &RequestSummary) {
        self.ledger.lock().unwrap().push(summary.clone());
    }
}

pub struct TestGateway {
    pub state: AppState,
    pub core: Arc<ScriptedCore>,
    pub backends: Vec<(String, Arc<MockBackend>)>,
}

impl TestGateway {
    pub fn new(options: GatewayOptions) -> Self {
        let core = Arc::new(ScriptedCore::default());
        let mut backends = Backends::new();
        let mut handles = Vec::new();
        for (name, behaviour, kind) in [
            ("slm", "echo", BackendKind::Local),
            ("llm", "echo", BackendKind::Remote),
            ("unsure", "unsure", BackendKind::Local),
            ("broken", "error_500", BackendKind::Remote),
            ("cut", "disconnect_after_3", BackendKind::Remote),
            ("slow", "slow", BackendKind::Remote),
            ("busy", "overloaded", BackendKind::Local),
        ] {
            let mut mock = MockBackend::new(behaviour);
            if kind == BackendKind::Local {
                mock = mock.local(router::gateway::LocalLoad {
                    queue_depth: 2,
                    busy_slots: 1,
                    slots: 4,
                });
            }
            let mock = Arc::new(mock);
            backends.insert(BackendSlot::ready(name, kind, mock.clone()));
            handles.push((name.to_string(), mock));
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

    pub fn calls(&self, name: &str) -> usize {
        self.backends
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.calls.load(std::sync::atomic::Ordering::SeqCst))
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
