#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The in-process `router:` target against the same gateway served over HTTP (an `openai:`
//! target): for the same requests, both record the same decision, backend, escalation, tokens
//! and settled cost. The gateway runs the real routing core on a `triage.yaml` policy; its
//! backends are the `backends` mock test doubles, the local ones reporting engine busy seconds
//! as the llama engine does.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use backends::mock::MockBackend;
use bench::record::RequestRecord;
use bench::router_target::RouterTarget;
use bench::runner::{run_target, RunOptions};
use bench::scenario::{parse_yaml, Scenario, ScenarioFile};
use bench::score::Judges;
use bench::spec::TargetSpec;
use bench::target::{Target, TargetInfo};
use router::gateway::Locality;
use router::testing::TestGateway;

const CONFIG: &str = r#"
backends:
  slm:    { kind: llama, model: models/test.gguf, slots: 2 }
  shaky:  { kind: llama, model: models/test.gguf, slots: 2 }
  llm:    { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
pricing:
  llm:   { input: 0.15, output: 0.60 }
  slm:   { machine_usd_per_hour: 0.05 }
  shaky: { machine_usd_per_hour: 0.05 }
routes:
  - { name: small-tasks, when: { task: [sentiment] }, to: slm }
  - { name: qa, when: { task: [qa] }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.62 } }
  - { name: hard, when: { task: [hard] }, cascade: { first: shaky, escalate_to: llm, min_confidence: 0.62 } }
  - { name: default, to: llm }
"#;

/// Engine seconds each local answer reports.
const BUSY_SECS: f64 = 7.2;

/// What one local answer costs: its engine seconds at $0.05 per machine hour.
fn local_cost() -> f64 {
    router::pricing::BackendPrice::Machine { usd_per_hour: 0.05 }.cost(0, 0, BUSY_SECS)
}

/// TEST DOUBLE of a local engine: a mock whose answers end with the `LocalCompute` event the
/// llama engine sends with its busy share of the batched decode steps.
fn engine_timed(behaviour: &str) -> MockBackend {
    MockBackend::new(behaviour)
        .unwrap()
        .with_local_compute(BUSY_SECS)
}

/// The policy over two engine-timed local mocks and an echoing remote.
fn gateway() -> TestGateway {
    TestGateway::from_yaml(CONFIG)
        .mock_backend("slm", Locality::Local, engine_timed("echo"))
        .mock_backend("shaky", Locality::Local, engine_timed("unsure"))
        .mock("llm", Locality::Remote, "echo")
        .build()
        .unwrap()
}

fn scenario(name: &str, task: &str) -> Scenario {
    let yaml = format!(
        "name: {name}\ntask: {task}\ndataset: {{items: [{{t: good movie, l: good movie}}, {{t: what is the capital of France, l: Paris}}]}}\nprompt: \"{{{{t}}}}\"\nexpected: \"{{{{l}}}}\"\nscorer: {{kind: contains}}\n"
    );
    let raw: ScenarioFile = parse_yaml(&yaml, Path::new("s.yaml")).unwrap();
    Scenario::from_file(raw, Path::new("s.yaml"), None).unwrap()
}

fn scenarios() -> Arc<Vec<Scenario>> {
    Arc::new(vec![
        scenario("reviews", "sentiment"),
        scenario("questions", "qa"),
        scenario("puzzles", "hard"),
        scenario("essays", "essay"),
    ])
}

fn by_item(records: &[RequestRecord]) -> BTreeMap<(String, String), RequestRecord> {
    records
        .iter()
        .map(|r| ((r.scenario.clone(), r.item_id.clone()), r.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_and_http_record_the_same_decision_and_settled_cost() {
    // Over HTTP: the gateway served on a local port, asked by an `openai:` target.
    let served = gateway()
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = served.addr();
    let spec =
        TargetSpec::parse_assignment(&format!("router=openai:http://{addr}/v1#auto")).unwrap();
    let http = spec.build(Path::new("."), None).await.unwrap();
    let over_http = run_target(
        http,
        scenarios(),
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;
    served.stop().await.unwrap();

    // In process: a second gateway from the same config and backends.
    let info = TargetInfo {
        name: "router".into(),
        kind: "router".into(),
        ..TargetInfo::default()
    };
    let target: Arc<dyn Target> = Arc::new(RouterTarget::new(
        info,
        "auto",
        gateway().into_gateway().unwrap(),
    ));
    let in_process = run_target(
        target.clone(),
        scenarios(),
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;

    let (a, b) = (by_item(&over_http.records), by_item(&in_process.records));
    assert_eq!(a.len(), 8);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (key, h) in &a {
        let p = &b[key];
        assert!(h.error.is_none() && p.error.is_none(), "{h:?}\n{p:?}");
        assert_eq!(h.routing, p.routing, "{key:?}");
        assert_eq!(h.cost_usd, p.cost_usd, "{key:?}");
        assert_eq!((h.tokens_in, h.tokens_out), (p.tokens_in, p.tokens_out));
        assert_eq!((&h.output, h.passed), (&p.output, p.passed));
        assert!(
            h.cost_usd.is_some(),
            "the settled cost is recorded: {key:?}"
        );
    }
    let route = |scenario: &str| {
        let r = &b[&(scenario.to_string(), "1".to_string())].routing;
        (
            r.route.clone().unwrap(),
            r.backend.clone().unwrap(),
            r.escalated.unwrap(),
        )
    };
    assert_eq!(
        route("reviews"),
        ("small-tasks".into(), "slm".into(), false)
    );
    assert_eq!(route("questions"), ("qa".into(), "slm".into(), false));
    assert_eq!(route("puzzles"), ("hard".into(), "llm".into(), true));
    assert_eq!(route("essays"), ("default".into(), "llm".into(), false));
    // A local answer costs its engine seconds at the machine's price, exactly.
    for r in b
        .values()
        .filter(|r| r.routing.backend.as_deref() == Some("slm"))
    {
        assert_eq!(r.cost_usd, Some(local_cost()), "{r:?}");
    }
    // An escalated answer also pays for the rejected local answer.
    for r in b.values().filter(|r| r.scenario == "puzzles") {
        let llm_tokens =
            (r.tokens_in.unwrap() as f64 * 0.15 + r.tokens_out.unwrap() as f64 * 0.60) / 1e6;
        assert!(
            (r.cost_usd.unwrap() - (local_cost() + llm_tokens)).abs() < 1e-15,
            "{r:?}"
        );
    }

    // Closed at the end of a run: the gateway is gone, later sends fail.
    target.close().await;
    let request = scenarios()[0].request(&scenarios()[0].items[0]).unwrap();
    let refused = target.send(request).await.err().unwrap();
    assert!(refused.to_string().contains("closed"), "{refused}");
}

#[tokio::test]
async fn a_router_spec_loads_its_config_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("triage.yaml");
    std::fs::write(
        &path,
        "backends:\n  llm: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: m }\npricing:\n  llm: { input: 1, output: 2 }\nroutes:\n  - { name: default, to: llm }\n",
    )
    .unwrap();
    let spec = TargetSpec::parse_assignment("r=router:triage.yaml;model=llm").unwrap();
    let target = spec.build(dir.path(), None).await.unwrap();
    let info = target.info();
    assert_eq!(
        (info.kind.as_str(), info.spec.as_deref()),
        ("router", Some("router:triage.yaml;model=llm"))
    );
    assert!(info.model_files.is_empty(), "no local model");
    target.close().await;

    let missing = TargetSpec::parse_assignment("r=router:nowhere.yaml").unwrap();
    let err = missing
        .build(dir.path(), None)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nowhere.yaml"), "{err}");
}

#[tokio::test]
async fn a_local_target_is_billed_by_engine_seconds_and_records_its_prompts() {
    let price = Some(router::pricing::BackendPrice::Machine { usd_per_hour: 0.05 });
    let local = || -> Arc<dyn Target> {
        Arc::new(
            bench::target::BackendTarget::new("slm", "llama", engine_timed("echo"))
                .with_price(price),
        )
    };
    let run = run_target(
        local(),
        scenarios(),
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 8);
    for r in &run.records {
        assert!(r.error.is_none(), "{r:?}");
        // The engine's busy seconds, not the wall time from send (which includes queueing).
        assert_eq!(r.engine_busy_secs, Some(BUSY_SECS), "{r:?}");
        assert_eq!(r.cost_usd, Some(local_cost()), "{r:?}");
        let prompt = r.prompt.as_deref().unwrap();
        assert!(prompt.starts_with("user: "), "{prompt}");
        assert!(
            prompt.contains(r.output.trim()),
            "echo answers the prompt: {prompt}"
        );
    }
    // Private data: no prompt is written.
    let opts = RunOptions {
        record_prompts: false,
        ..RunOptions::default()
    };
    let run = run_target(local(), scenarios(), &opts, &Judges::default()).await;
    assert!(run.records.iter().all(|r| r.prompt.is_none()));
}
