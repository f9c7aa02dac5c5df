#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The run directories in `tests/data/` that the view tests read, written by the harness's
//! own code (`bench::results::summarize` + `write_run_dir`) from hand-written records, so they
//! are exactly the harness's format. This test regenerates them in a temporary directory and
//! compares with the checked-in files: when the harness's format changes, it fails, and
//! `DASH_REGENERATE=1 cargo test -p dashboards --test test_runs` rewrites them.
//!
//! - `basic`: SLM (llama), LLM (openai) and a router over two tasks, with the calibration
//!   `bench::calibrate::calibrate` computes from it (`calibration.json`);
//! - `errors`: requests that timed out or failed upstream;
//! - `empty`: a run that recorded nothing.

use std::path::{Path, PathBuf};

use bench::record::{GapSummary, RecordError, RequestRecord, TargetRun};
use bench::results::{summarize, write_run_dir, HostInfo, RunMetadata};
use bench::score::ScoreResult;
use bench::target::{Routing, TargetInfo};
use router::pricing::BackendPrice;
use serde_json::json;

struct Rec<'a> {
    target: &'a str,
    scenario: &'a str,
    item: &'a str,
    ttft: Option<f64>,
    e2e: f64,
    out: &'a str,
    expected: &'a str,
    passed: bool,
}

fn record(
    seq: u64,
    r: Rec,
    cost_per_token: f64,
    routing: Routing,
    error: Option<(&str, &str)>,
) -> RequestRecord {
    let task = if r.scenario == "sentiment" {
        "sentiment"
    } else {
        "qa"
    };
    let tokens_out = r.out.split_whitespace().count().max(1) as u64;
    let gaps_ns: Vec<u64> = if error.is_some() {
        Vec::new()
    } else {
        (0..tokens_out.saturating_sub(1))
            .map(|i| ((r.e2e - r.ttft.unwrap_or(0.0)) / tokens_out as f64 * 1e6) as u64 + i * 1000)
            .collect()
    };
    let scorer = if task == "sentiment" {
        "choice"
    } else {
        "token_f1"
    };
    let quality = if error.is_some() {
        0.0
    } else if r.passed {
        1.0
    } else {
        0.0
    };
    RequestRecord {
        target: r.target.into(),
        scenario: r.scenario.into(),
        task: task.into(),
        item_id: r.item.into(),
        prompt: Some(format!(
            "system: Answer in one line.\n\nuser: {} item {}",
            r.scenario, r.item
        )),
        seq,
        intended_ms: seq as f64 * 100.0,
        sent_ms: seq as f64 * 100.0 + 0.2,
        send_delay_ms: 0.2,
        ttft_ms: if error.is_some() { None } else { r.ttft },
        e2e_ms: r.e2e,
        e2e_from_send_ms: r.e2e - 0.2,
        itl: GapSummary::from_ns(&gaps_ns),
        tpot_ms: r
            .ttft
            .filter(|_| error.is_none() && tokens_out > 1)
            .map(|t| (r.e2e - t) / (tokens_out - 1) as f64),
        tokens_in: Some(42),
        tokens_out: if error.is_some() {
            None
        } else {
            Some(tokens_out)
        },
        cost_usd: Some(
            routing
                .cost_usd
                .unwrap_or(cost_per_token * (42 + tokens_out) as f64),
        ),
        engine_busy_secs: None,
        routing,
        mean_logprob: None,
        confidence: None,
        signals: Default::default(),
        finish_reason: if error.is_some() {
            None
        } else {
            Some("stop".into())
        },
        output: if error.is_some() {
            String::new()
        } else {
            r.out.into()
        },
        expected: Some(r.expected.into()),
        scores: if error.is_some() {
            Vec::new()
        } else {
            vec![ScoreResult {
                scorer: scorer.into(),
                score: quality,
                passed: r.passed,
                raw: json!(r.out.split_whitespace().next().unwrap_or("")),
            }]
        },
        quality,
        passed: error.is_none() && r.passed,
        slo_met: r.e2e < 1000.0,
        retrieval: None,
        error: error.map(|(code, message)| RecordError {
            code: code.into(),
            message: message.into(),
        }),
        gaps_ns,
    }
}

const SLM_PRICE: BackendPrice = BackendPrice::Machine { usd_per_hour: 0.05 };
const LLM_PRICE: BackendPrice = BackendPrice::PerToken {
    input: 0.15,
    output: 0.60,
};
/// A gateway's requests carry their cost in its headers; its own price is nothing.
const FREE: BackendPrice = BackendPrice::PerToken {
    input: 0.0,
    output: 0.0,
};

fn target(name: &str, kind: &str, price: BackendPrice) -> TargetInfo {
    TargetInfo {
        name: name.into(),
        kind: kind.into(),
        spec: None,
        model_files: Vec::new(),
        price: Some(price),
    }
}

fn metadata(id: &str, targets: Vec<TargetInfo>) -> RunMetadata {
    RunMetadata {
        id: id.into(),
        started_at: "2026-11-21T12:00:00Z".into(),
        finished_at: "2026-11-21T12:01:00Z".into(),
        suite: "quickstart".into(),
        git_revision: Some("0123abc".into()),
        host: HostInfo {
            cpu_model: "Test CPU @ 2.0GHz".into(),
            cores: 2,
            os: "linux".into(),
            arch: "x86_64".into(),
        },
        targets,
        model_files: Vec::new(),
        config: json!({"load": {"mode": "sequential"}}),
        few_shot: Vec::new(),
        half: None,
        harness_version: "0.1.0".into(),
    }
}

const SENTIMENT: [(&str, &str); 4] = [
    ("s1", "positive"),
    ("s2", "negative"),
    ("s3", "negative"),
    ("s4", "positive"),
];
const QA: [(&str, &str); 3] = [("q1", "Paris"), ("q2", "1969"), ("q3", "Jupiter")];

fn basic_runs() -> Vec<TargetRun> {
    let (slm_price, llm_price) = (SLM_PRICE, LLM_PRICE);
    // (item, slm output, slm passed, llm output, llm passed)
    let slm_out = |id: &str| -> (&'static str, bool) {
        match id {
            "s1" => ("positive", true),
            "s2" => ("negative", true),
            "s3" => ("positive", false),
            "s4" => ("positive", true),
            "q1" => ("Paris", true),
            "q2" => ("It was 1972", false),
            _ => ("Saturn", false),
        }
    };
    let llm_out = |id: &str| -> (&'static str, bool) {
        match id {
            "s1" => ("positive", true),
            "s2" => ("negative", true),
            "s3" => ("negative", true),
            "s4" => ("positive", true),
            "q1" => ("Paris", true),
            "q2" => ("In 1969", true),
            _ => ("Saturn is the largest", false),
        }
    };
    let items: Vec<(&str, &str, &str)> = SENTIMENT
        .iter()
        .map(|(i, e)| ("sentiment", *i, *e))
        .chain(QA.iter().map(|(i, e)| ("short_qa", *i, *e)))
        .collect();
    let mut slm = Vec::new();
    let mut llm = Vec::new();
    let mut router = Vec::new();
    for (n, (scenario, item, expected)) in items.iter().enumerate() {
        let n64 = n as u64;
        let (o, p) = slm_out(item);
        let mut r = record(
            n64,
            Rec {
                target: "slm",
                scenario,
                item,
                ttft: Some(20.0 + 5.0 * n as f64),
                e2e: 90.0 + 20.0 * n as f64,
                out: o,
                expected,
                passed: p,
            },
            0.0000001,
            Routing::default(),
            None,
        );
        // The SLM is less sure of its wrong answers (what calibration exploits).
        r.confidence = Some(match *item {
            "s3" => 0.58,
            "q2" => 0.41,
            "q3" => 0.35,
            "s1" => 0.93,
            "s2" => 0.88,
            "s4" => 0.71,
            _ => 0.64,
        });
        r.mean_logprob = r.confidence.map(f64::ln);
        slm.push(r);
        let (o, p) = llm_out(item);
        llm.push(record(
            n64,
            Rec {
                target: "llm",
                scenario,
                item,
                ttft: Some(300.0 + 30.0 * n as f64),
                e2e: 650.0 + 60.0 * n as f64,
                out: o,
                expected,
                passed: p,
            },
            0.0000006,
            Routing::default(),
            None,
        ));
        // The router answers sentiment locally and cascades QA, escalating q2 and q3.
        let escalate = matches!(*item, "q2" | "q3");
        let (o, p, backend, e2e, ttft) = if escalate {
            let (o, p) = llm_out(item);
            (
                o,
                p,
                "llm",
                800.0 + 50.0 * n as f64,
                500.0 + 20.0 * n as f64,
            )
        } else {
            let (o, p) = slm_out(item);
            (o, p, "slm", 95.0 + 20.0 * n as f64, 22.0 + 5.0 * n as f64)
        };
        let route = if *scenario == "sentiment" {
            "small-tasks"
        } else {
            "cascade"
        };
        router.push(record(
            n64,
            Rec {
                target: "router",
                scenario,
                item,
                ttft: Some(ttft),
                e2e,
                out: o,
                expected,
                passed: p,
            },
            0.0,
            Routing {
                backend: Some(backend.into()),
                route: Some(route.into()),
                escalated: (route == "cascade").then_some(escalate),
                cost_usd: Some(if escalate { 0.00003 } else { 0.000001 }),
            },
            None,
        ));
    }
    vec![
        TargetRun {
            target: target("slm", "llama", slm_price),
            records: slm,
            wall_s: 1.5,
            warmup: 0,
        },
        TargetRun {
            target: target("llm", "openai", llm_price),
            records: llm,
            wall_s: 6.0,
            warmup: 0,
        },
        TargetRun {
            target: target("router", "gateway", FREE),
            records: router,
            wall_s: 3.0,
            warmup: 0,
        },
    ]
}

fn error_runs() -> Vec<TargetRun> {
    let (slm_price, llm_price) = (SLM_PRICE, LLM_PRICE);
    let mut slm = Vec::new();
    let mut llm = Vec::new();
    for (n, (item, expected)) in SENTIMENT.iter().take(3).enumerate() {
        let n64 = n as u64;
        let slm_err = (*item == "s3").then_some(("overloaded", "local queue full (8 waiting)"));
        slm.push(record(
            n64,
            Rec {
                target: "slm",
                scenario: "sentiment",
                item,
                ttft: Some(25.0),
                e2e: if slm_err.is_some() { 0.4 } else { 110.0 },
                out: expected,
                expected,
                passed: true,
            },
            0.0000001,
            Routing::default(),
            slm_err,
        ));
        let llm_err = match *item {
            "s1" => Some(("timeout", "no first byte within 30s")),
            "s2" => Some(("upstream_error", "HTTP 500 from upstream: internal error")),
            _ => None,
        };
        llm.push(record(
            n64,
            Rec {
                target: "llm",
                scenario: "sentiment",
                item,
                ttft: Some(400.0),
                e2e: if *item == "s1" { 30000.0 } else { 700.0 },
                out: expected,
                expected,
                passed: true,
            },
            0.0000006,
            Routing::default(),
            llm_err,
        ));
    }
    vec![
        TargetRun {
            target: target("slm", "llama", slm_price),
            records: slm,
            wall_s: 0.5,
            warmup: 0,
        },
        TargetRun {
            target: target("llm", "openai", llm_price),
            records: llm,
            wall_s: 31.0,
            warmup: 0,
        },
    ]
}

fn write_all(root: &Path) {
    for (name, runs) in [
        ("basic", basic_runs()),
        ("errors", error_runs()),
        ("empty", Vec::new()),
    ] {
        let targets = runs.iter().map(|r| r.target.clone()).collect();
        let (summary, hists) = summarize(&runs, metadata(&format!("{name}-0001"), targets));
        let dir = root.join(name);
        write_run_dir(&dir, &runs, &summary, &hists).unwrap();
        if name == "basic" {
            // What `triage bench calibrate` computes from this run's SLM and LLM answers.
            let records: Vec<RequestRecord> = runs.iter().flat_map(|r| r.records.clone()).collect();
            let cal = bench::calibrate::calibrate(&records, "slm", "llm", 0.95).unwrap();
            let text = serde_json::to_string_pretty(&cal).unwrap() + "\n";
            std::fs::write(dir.join("calibration.json"), text).unwrap();
        }
    }
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

#[test]
fn checked_in_runs_match_the_harness_format() {
    if std::env::var_os("DASH_REGENERATE").is_some() {
        write_all(&data_dir());
    }
    let tmp = tempfile::tempdir().unwrap();
    write_all(tmp.path());
    for name in ["basic", "errors", "empty"] {
        for file in [
            "summary.json",
            "requests.jsonl",
            "histograms.json",
            "metadata.json",
        ] {
            let fresh = std::fs::read_to_string(tmp.path().join(name).join(file)).unwrap();
            let checked_in = std::fs::read_to_string(data_dir().join(name).join(file))
                .unwrap_or_else(|e| {
                    panic!("tests/data/{name}/{file}: {e} (run with DASH_REGENERATE=1)")
                });
            assert_eq!(
                fresh, checked_in,
                "tests/data/{name}/{file} differs from what the harness writes now; \
                 rerun with DASH_REGENERATE=1 and review the snapshots"
            );
        }
    }
    // And every run loads with the dashboard's reader.
    for name in ["basic", "errors", "empty"] {
        dashboards::data::runs::RunData::load(&data_dir().join(name)).unwrap();
    }
}
