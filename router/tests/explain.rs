#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `route explain` on the shipped triage.yaml and the sample requests in examples/requests.

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

#[test]
fn sample_requests_on_the_shipped_config() {
    let config = Config::load(&root().join("triage.yaml")).unwrap();

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
