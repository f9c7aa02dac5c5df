//! The README's main job (`scripts/demo.sh`, what `make demo` runs) end to end with real models
//! and real HTTP, one item per scenario: gateway B serves Gemma-3-270M as the stand-in LLM,
//! gateway A routes between its local SmolLM2 and gateway B, `triage bench run` sends the
//! quickstart suite to slm, llm and router, and `triage dash` prints the comparison (stdout is
//! not a terminal here).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

#[test]
fn the_main_job_runs_the_quickstart_suite_against_slm_llm_and_router() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for model in [
        "models/SmolLM2-135M-Instruct.Q4_1.gguf",
        "models/gemma-3-270m-q4_k_m.gguf",
    ] {
        assert!(root.join(model).exists(), "{model}: run `make setup` first");
    }
    let run = std::env::temp_dir().join(format!("triage-demo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run);
    let output = Command::new("bash")
        .arg(root.join("scripts/demo.sh"))
        .current_dir(&root)
        .env("TRIAGE", env!("CARGO_BIN_EXE_triage"))
        .env("RUN", &run)
        .env("QUICKSTART_LIMIT", "1")
        // The Gemma stand-in, whatever the environment holds.
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "demo.sh failed ({}):\n{stdout}\n{stderr}",
        output.status
    );

    // No server the demo started outlives it.
    let pids = std::fs::read_to_string(run.join("servers.pid")).unwrap();
    let pids: Vec<&str> = pids.split_whitespace().collect();
    assert_eq!(pids.len(), 2, "gateways A and B were started: {pids:?}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the gateway with pid {pid} is still running after demo.sh ended"
        );
    }

    // Every request of every target is recorded, none failed.
    let records: Vec<Value> = std::fs::read_to_string(run.join("requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for target in ["slm", "llm", "router"] {
        let mine: Vec<&Value> = records.iter().filter(|r| r["target"] == target).collect();
        assert_eq!(
            mine.len(),
            9,
            "{target}: one item of each of the 9 scenarios"
        );
        for r in &mine {
            assert!(
                r["error"].is_null(),
                "{target}: {} failed: {}",
                r["scenario"],
                r["error"]
            );
            assert!(r["tokens_out"].as_u64().unwrap_or(0) > 0, "{target}: {r}");
        }
    }
    // The router's answers carry its routing decision, from gateway A's headers.
    let routed: Vec<&Value> = records.iter().filter(|r| r["target"] == "router").collect();
    assert!(
        routed
            .iter()
            .all(|r| matches!(r["routing"]["backend"].as_str(), Some("slm" | "llm"))),
        "{routed:?}"
    );
    // Small tasks went to the SLM, others to the LLM (gateway A's rules in demo.sh; text with
    // PII stays local whatever its task).
    let backend_of = |scenario: &str| {
        routed
            .iter()
            .find(|r| r["scenario"] == scenario)
            .and_then(|r| r["routing"]["backend"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(backend_of("sentiment"), "slm");
    assert!(
        routed.iter().any(|r| r["routing"]["backend"] == "llm"),
        "nothing went to the LLM: {routed:?}"
    );

    // summary.json has every target, and the printed comparison shows them.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let groups = summary["groups"].as_array().unwrap();
    for target in ["slm", "llm", "router"] {
        assert!(
            groups
                .iter()
                .any(|g| g["target"] == target && g["task"] == "*"),
            "{target} missing from summary.json"
        );
        assert!(
            stdout.contains(target),
            "{target} not in the table:\n{stdout}"
        );
    }
    std::fs::remove_dir_all(&run).ok();
}
