//! `triage route train` from the binary, on the shipped scenarios: it prints held-out accuracy
//! per task, writes a model the config loads, and that model names the task of a request that
//! carries none. A gateway whose configured model file does not exist yet starts anyway, with a
//! warning, on its rules.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::root;

/// A fresh directory under cargo's per-test temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("route_train_{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn triage() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_triage"));
    cmd.current_dir(root());
    cmd
}

/// The shipped scenario and suite files, as `scenarios/*.yaml` expands.
fn shipped_scenarios() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

const CONFIG: &str = "\
backends:
  llm: { kind: openai, base_url: \"http://127.0.0.1:9/v1\", model: gpt-4o-mini }
routes:
  - { name: default, to: llm }
";

#[test]
fn trains_on_the_shipped_scenarios_and_the_model_classifies_untagged_requests() {
    let dir = scratch("train");
    let model = dir.join("models/task-classifier.json");
    let report = dir.join("report.json");
    let out = triage()
        .args(["route", "train", "--scenario"])
        .args(shipped_scenarios())
        .args(["--holdout", "0.5", "--seed", "0", "--out"])
        .arg(&model)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("held-out accuracy"), "{stdout}");

    // Every shipped task is measured on half of its items (the suites add no second copy).
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let tasks: Vec<&str> = report["per_task"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tasks,
        [
            "extraction",
            "intent",
            "math",
            "qa",
            "redaction",
            "sentiment",
            "summarization",
            "translation"
        ]
    );
    assert_eq!(report["scenarios"].as_array().unwrap().len(), 9);
    for row in report["per_task"].as_array().unwrap() {
        let acc = &row["accuracy"];
        let (v, lo, hi) = (
            acc["value"].as_f64().unwrap(),
            acc["ci95_low"].as_f64().unwrap(),
            acc["ci95_high"].as_f64().unwrap(),
        );
        assert!(lo <= v && v <= hi && hi <= 1.0, "{row}");
        assert!(stdout.contains(row["name"].as_str().unwrap()));
    }
    let held: u64 = report["held_out"].as_u64().unwrap();
    let trained: u64 = report["trained_on"].as_u64().unwrap();
    assert!(
        held > 200 && trained >= held,
        "{held} held out, {trained} trained"
    );

    // The model, named in a config without classifier rules, tells the task of a request that
    // has no task header and no metadata.
    std::fs::write(
        dir.join("triage.yaml"),
        format!("{CONFIG}classifier: {{ model: models/task-classifier.json }}\n"),
    )
    .unwrap();
    let request = dir.join("request.json");
    std::fs::write(
        &request,
        serde_json::json!({
            "model": "auto",
            "messages": [{
                "role": "user",
                "content": "Translate into French.\nEnglish: The library closes early on Sundays.\nFrench:"
            }]
        })
        .to_string(),
    )
    .unwrap();
    let explain = triage()
        .args(["route", "explain", "--json", "--config"])
        .arg(dir.join("triage.yaml"))
        .arg(&request)
        .output()
        .unwrap();
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    let explained: serde_json::Value = serde_json::from_slice(&explain.stdout).unwrap();
    let text = explained.to_string();
    assert_eq!(
        explained["gathered"]["facts"]["task"], "translation",
        "{text}"
    );
    assert!(text.contains("learned model"), "{text}");
}

#[test]
fn a_gateway_whose_model_file_is_missing_starts_with_a_warning() {
    let dir = scratch("missing");
    std::fs::write(
        dir.join("triage.yaml"),
        format!(
            "server: {{ ledger: ledger.sqlite }}\n{CONFIG}classifier: {{ model: models/task-classifier.json, rules: [{{ task: sentiment, keywords: [review] }}] }}\n"
        ),
    )
    .unwrap();
    // Started means it printed its address; the warning came before.
    let mut gw = support::ServeCommand::new(&dir.join("triage.yaml"))
        .current_dir(&root())
        .stderr(Stdio::piped())
        .spawn();
    let _ = gw.child.kill();
    let _ = gw.child.wait();
    let mut stderr = String::new();
    gw.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        gw.url.starts_with("http://127.0.0.1:"),
        "{}\n{stderr}",
        gw.url
    );
    assert!(
        stderr.contains("task-classifier.json does not exist")
            && stderr.contains("rules only")
            && stderr.contains("route train"),
        "{stderr}"
    );
}
