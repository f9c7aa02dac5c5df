//! The README's main job (`scripts/demo.sh`, what `make demo` runs) end to end with real models
//! and real HTTP, two items per scenario: gateway B serves Gemma-3-270M as the stand-in LLM; the
//! quickstart suite measures slm and llm; `bench calibrate --per-task --write` writes per-task
//! routes into gateway A's config; gateway A (SmolLM2 + gateway B) routes by them; the
//! evaluation half goes to slm, llm and router; `triage dash` prints the comparison (stdout is
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
        .env("QUICKSTART_LIMIT", "2")
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
    // The evaluation half: the same items for every target, none failed.
    let items_of = |target: &str| -> std::collections::BTreeSet<(String, String)> {
        records
            .iter()
            .filter(|r| r["target"] == target)
            .map(|r| (r["scenario"].to_string(), r["item_id"].to_string()))
            .collect()
    };
    let eval = items_of("slm");
    let measured: Vec<Value> = std::fs::read_to_string(run.join("measure/requests.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let all_slm = measured.iter().filter(|r| r["target"] == "slm").count();
    assert_eq!(
        all_slm, 18,
        "the measuring run: 2 items of each of the 9 scenarios"
    );
    assert!(
        !eval.is_empty() && eval.len() < all_slm,
        "the evaluation half is a strict part: {} of {all_slm}",
        eval.len()
    );
    for target in ["slm", "llm", "router"] {
        assert_eq!(
            items_of(target),
            eval,
            "{target} answered the evaluation half"
        );
        for r in records.iter().filter(|r| r["target"] == target) {
            assert!(
                r["error"].is_null(),
                "{target}: {} failed: {}",
                r["scenario"],
                r["error"]
            );
            assert!(r["tokens_out"].as_u64().unwrap_or(0) > 0, "{target}: {r}");
            // The request browser has the messages as sent.
            assert!(
                r["prompt"].as_str().is_some_and(|p| p.contains("user: ")),
                "{target}: {r}"
            );
        }
    }
    // The in-process SLM is billed by its engine busy seconds at $0.05 per hour.
    for r in records.iter().filter(|r| r["target"] == "slm") {
        let busy = r["engine_busy_secs"].as_f64().unwrap();
        assert!(busy > 0.0, "{r}");
        let cost = r["cost_usd"].as_f64().unwrap();
        assert!((cost - 0.05 * busy / 3600.0).abs() < 1e-15, "{r}");
    }
    // Calibration wrote one route per task into gateway A's config, which loaded.
    let router_yaml = std::fs::read_to_string(run.join("router.yaml")).unwrap();
    assert!(
        router_yaml.contains("# >>> triage bench calibrate"),
        "{router_yaml}"
    );
    assert!(
        router_yaml.contains("name: task-sentiment"),
        "{router_yaml}"
    );
    // ... each the cheapest policy that reached the quality target with 95% confidence.
    assert!(
        router_yaml.contains("with 95% confidence on the calibration half"),
        "{router_yaml}"
    );
    // The router's answers carry its routing decision, from gateway A's headers.
    let routed: Vec<&Value> = records.iter().filter(|r| r["target"] == "router").collect();
    assert!(
        routed
            .iter()
            .all(|r| matches!(r["routing"]["backend"].as_str(), Some("slm" | "llm"))),
        "{routed:?}"
    );
    // Every routed answer names the calibrated route it took (or the privacy rule).
    for r in &routed {
        let route = r["routing"]["route"].as_str().unwrap_or_default();
        assert!(
            route.starts_with("task-") || route == "private",
            "not a calibrated route: {r}"
        );
    }

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
