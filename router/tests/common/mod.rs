//! Shared helpers of the gateway tests: a scripted routing core (TEST DOUBLE) and the gateway
//! over it, built with `router::testing` (the workspace's gateway harness) from
//! `backends::mock::MockBackend` TEST DOUBLEs chosen by name.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use router::events::RequestSummary;
use router::gateway::{
    AppState, GatewayOptions, LocalLoad, Locality, RouteInfo, RouteInput, Routed, RoutingCore,
};
use router::policy::{Action, CascadeSpec, Decision};
use router::pricing::{CostBreakdown, Usage};

use router::testing::Reply;

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
            classifier: None,
            prompt_tokens: 0,
            hold: Default::default(),
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

/// The gateway over [`ScriptedCore`] with seven mock backends: `slm` and `llm` echo,
/// `unsure` echoes with low confidence, `broken` answers 500, `cut` disconnects after 3
/// tokens, `slow` waits 40 ms per token, `busy` is an overloaded local engine. Local mocks
/// report a queue of 2 with 1 of 4 slots busy. Requests unwrap (these are tests).
pub struct TestGateway {
    pub state: AppState,
    pub core: Arc<ScriptedCore>,
    pub gateway: router::testing::TestGateway,
}

impl TestGateway {
    pub fn new(options: GatewayOptions) -> Self {
        let core = Arc::new(ScriptedCore::default());
        let load = LocalLoad {
            queue_depth: 2,
            busy_slots: 1,
            slots: 4,
            predicted_ttft_ms: None,
        };
        let gateway = router::testing::TestGateway::with_core(core.clone())
            .options(options)
            .mock_under_load("slm", "echo", load)
            .mock("llm", Locality::Remote, "echo")
            .mock_under_load("unsure", "unsure", load)
            .mock("broken", Locality::Remote, "error_500")
            .mock("cut", Locality::Remote, "disconnect_after_3")
            .mock("slow", Locality::Remote, "slow")
            .mock_under_load("busy", "overloaded", load)
            .build()
            .unwrap();
        Self {
            state: gateway.state().clone(),
            core,
            gateway,
        }
    }

    pub fn ledger(&self) -> Vec<RequestSummary> {
        self.core.ledger.lock().unwrap().clone()
    }

    pub fn calls(&self, name: &str) -> u64 {
        self.gateway.calls(name).unwrap()
    }

    pub async fn send(&self, request: Request<Body>) -> Reply {
        self.gateway.send(request).await.unwrap()
    }

    pub async fn chat(&self, body: serde_json::Value, task: Option<&str>) -> Reply {
        self.gateway.chat(body, task).await.unwrap()
    }
}

pub fn options() -> GatewayOptions {
    GatewayOptions {
        request_deadline: Duration::from_secs(10),
        ..GatewayOptions::default()
    }
}
