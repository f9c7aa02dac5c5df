#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `route explain` on the sample requests in examples/requests, under a policy shaped like the
//! shipped triage.yaml but written here (editing the shipped file never breaks a test).

use std::path::{Path, PathBuf};

use router::config::Config;
use router::explain::{explain, explain_with};
use router::policy::{Action, StateSnapshot};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn request(name: &str) -> String {
    std::fs::read_to_string(root().join("examples/requests").join(name)).unwrap()
}

/// The shipped policy's routes and classifier rules, with no trained model file.
const POLICY: &str = r#"
backends:
  slm: { kind: llama, model: models/slm.gguf, slots: 4 }
  llm: { kind: openai, base_url: "http://127.0.0.1:9/v1", model: gpt-4o-mini }
pricing:
  llm: { input: 0.15, output: 0.60 }
  slm: { machine_usd_per_hour: 0.05 }
routes:
  - { name: private, when: { pii: true }, to: slm }
  - name: small-tasks
    when: { task: [sentiment, intent, extraction] }
    to: slm
    spill: { to: llm, queue_depth: 32, predicted_ttft_ms: 2000 }
    fallback: [llm]
  - { name: cascade, when: { task: [qa] }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.6 } }
  - { name: default, to: llm, fallback: [slm] }
classifier:
  rules:
    - { task: sentiment, keywords: [sentiment] }
    - { task: extraction, keywords: [extract] }
"#;

#[test]
fn sample_requests_on_a_policy_like_the_shipped_one() {
    let config = Config::parse(POLICY, "triage.yaml", &root()).unwrap();

    let e = explain(&config, &request("sentiment.json")).unwrap();
    assert_eq!(e.gathered.facts.task, "sentiment");
    assert_eq!(
        (e.decision.route.as_str(), &e.decision.action),
        ("small-tasks", &Action::Backend("slm".into()))
    );
    assert_eq!(e.decision.fallback, vec!["llm".to_string()]);

    let busy: StateSnapshot = serde_json::from_str(&request("busy-state.json")).unwrap();
    let e = explain_with(&config, &request("sentiment.json"), Some("alice"), &busy).unwrap();
    assert_eq!(e.decision.action, Action::Backend("llm".into()), "{e}");
    assert!(e.to_string().contains("spilled to llm"), "{e}");

    let e = explain(&config, &request("pii.json")).unwrap();
    assert_eq!(
        (e.decision.route.as_str(), &e.decision.action),
        ("private", &Action::Backend("slm".into()))
    );
    let kinds: Vec<String> = e.gathered.pii.iter().map(|s| s.kind.to_string()).collect();
    assert_eq!(kinds, vec!["email", "card"]);
    assert!(e.gathered.facts.stream);

    let e = explain(&config, &request("tools.json")).unwrap();
    assert!(e.gathered.facts.has_tools);
    assert_eq!(e.decision.route, "default");
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["decision"]["route"], "default");
}

/// `route train` output plugged into `classifier.model`: the learned model classifies.
#[test]
fn trained_model_from_jsonl_drives_routing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    let mut lines = Vec::new();
    for review in [
        "loved it, a wonderful film",
        "dull, boring and far too long",
        "great acting and a moving story",
        "awful script, I walked out",
    ] {
        lines.push(serde_json::json!({"text": format!("Review: {review}. Positive or negative?"), "task": "sentiment"}).to_string());
    }
    for q in [
        "What is 17 times 3?",
        "A car drives 40 km per hour for 2 hours; how far?",
        "Add 120 and 45, then halve it",
        "How many apples are left if 9 of 12 are eaten?",
    ] {
        lines.push(serde_json::json!({"text": q, "task": "math"}).to_string());
    }
    std::fs::write(&data, lines.join("\n")).unwrap();
    let examples = router::classifier::read_examples(&data).unwrap();
    let model = router::classifier::train(&examples, &Default::default()).unwrap();
    model.save(&dir.path().join("model.json")).unwrap();
    std::fs::write(
        dir.path().join("triage.yaml"),
        "backends:\n  slm: { kind: llama, model: m.gguf }\n  llm: { kind: openai, model: gpt-4o-mini }\n\
         routes:\n  - { name: math, when: { task: math }, to: llm }\n  - { name: default, to: slm }\n\
         classifier: { model: model.json, threshold: 0.5 }\n",
    )
    .unwrap();
    let config = Config::load(&dir.path().join("triage.yaml")).unwrap();
    let e = explain(
        &config,
        r#"{"messages":[{"role":"user","content":"What is 21 times 4, then add 8?"}]}"#,
    )
    .unwrap();
    assert_eq!(e.gathered.facts.task, "math", "{e}");
    assert_eq!(e.decision.route, "math");
    assert!(e.to_string().contains("learned model: math"), "{e}");
}
