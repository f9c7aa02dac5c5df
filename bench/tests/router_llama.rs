//! The `router:` target over a config whose backend is the real SmolLM2 (bench feature
//! `llama`): answers are routed and billed by the in-process gateway, and closing the target at
//! the end of a run ends the engine's thread and the ledger writer — no thread keeps a model.
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bench::runner::{run_target, RunOptions};
use bench::scenario::{parse_yaml, Scenario, ScenarioFile};
use bench::score::Judges;
use bench::spec::TargetSpec;

/// Threads of this process with the given name (Linux: `/proc/self/task/*/comm`).
fn threads_named(name: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

async fn wait_until_gone(name: &str) -> usize {
    for _ in 0..100 {
        if threads_named(name) == 0 {
            return 0;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    threads_named(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_target_on_smollm2_answers_bills_and_lets_its_engine_go() {
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.exists(), "run `make setup` first");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("triage.yaml"),
        format!(
            "backends:\n  slm: {{ kind: llama, model: {}, slots: 1, threads: 1 }}\npricing:\n  slm: {{ machine_usd_per_hour: 0.05 }}\nroutes:\n  - {{ name: default, to: slm }}\n",
            model.display()
        ),
    )
    .unwrap();
    assert_eq!(threads_named("llama-engine"), 0);
    let spec = TargetSpec::parse_assignment("router=router:triage.yaml").unwrap();
    let target = spec.build(dir.path(), None).await.unwrap();
    assert_eq!(threads_named("llama-engine"), 1, "the model is loaded");
    assert_eq!(target.info().model_files, vec![model.clone()]);

    let yaml = "name: s\ntask: sentiment\ndataset: {items: [{t: I loved it}, {t: Awful film}]}\nprompt: \"Review: {{t}}\"\nscorer: {kind: regex, pattern: \".\"}\nmax_tokens: 4\ntemperature: 0\n";
    let raw: ScenarioFile = parse_yaml(yaml, Path::new("s.yaml")).unwrap();
    let scenario = Scenario::from_file(raw, Path::new("s.yaml"), None).unwrap();
    let run = run_target(
        target.clone(),
        Arc::new(vec![scenario]),
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 2);
    for r in &run.records {
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.routing.backend.as_deref(), Some("slm"));
        assert_eq!(r.routing.route.as_deref(), Some("default"));
        // The gateway's settled cost: engine seconds at $0.05 an hour, a few milliseconds'
        // worth at most for four tokens of a 135M model.
        let cost = r.cost_usd.unwrap();
        assert!(
            cost > 0.0 && cost < 0.05 * r.e2e_ms / 3.6e6 + 1e-12,
            "{r:?}"
        );
    }

    target.close().await;
    drop(target);
    assert_eq!(
        wait_until_gone("llama-engine").await,
        0,
        "engine thread left"
    );
    assert_eq!(
        wait_until_gone("triage-ledger").await,
        0,
        "ledger writer left"
    );
}
