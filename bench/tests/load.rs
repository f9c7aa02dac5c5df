#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The load modes against a test double with a known artificial stall.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bench::runner::{run_target, Judges, RunOptions};
use bench::scenario::{parse_yaml, Arrival, LoadMode, LoadSpec, Scenario, ScenarioFile};
use bench::target::{BackendTarget, Target};
use support::TestBackend;

fn echo_scenario(items: usize) -> Scenario {
    let items: Vec<String> = (0..items)
        .map(|i| format!("{{text: \"item {i}\"}}"))
        .collect();
    let yaml = format!(
        "name: echo\ntask: echo\ndataset: {{items: [{}]}}\nprompt: \"{{{{text}}}}\"\nexpected: \"{{{{text}}}}\"\nscorer: {{kind: exact}}\nslo: {{e2e_ms: 150}}\n",
        items.join(", ")
    );
    let raw: ScenarioFile = parse_yaml(&yaml, Path::new("echo.yaml")).unwrap();
    Scenario::from_file(raw, Path::new("echo.yaml"), None).unwrap()
}

fn stalled_target(stall_at: usize, stall: Duration) -> Arc<dyn Target> {
    let mut backend = TestBackend::echo();
    backend.stall_at = Some(stall_at);
    backend.stall = stall;
    backend.service_time = Duration::from_millis(2);
    Arc::new(BackendTarget::new("stalling", "test-double", backend))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_charges_a_stall_to_every_request_scheduled_during_it() {
    // 50 requests/s (one every 20 ms), one in flight at most, request 5 stalls 500 ms: the ~25
    // requests scheduled during the stall leave late. Measured from their intended send times
    // they show the stall; measured from when they actually left (what a naive client
    // reports) only the stalled request does.
    let scenarios = Arc::new(vec![echo_scenario(40)]);
    let opts = RunOptions {
        load: LoadSpec {
            mode: LoadMode::Open,
            rate: Some(50.0),
            arrival: Arrival::Constant,
            max_in_flight: Some(1),
            ..LoadSpec::default()
        },
        progress: false,
    };
    let run = run_target(
        stalled_target(5, Duration::from_millis(500)),
        scenarios,
        &opts,
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 40);
    assert!(run.records.iter().all(|r| r.passed), "echo answers pass");
    let corrected_slow = run.records.iter().filter(|r| r.e2e_ms >= 250.0).count();
    let naive_slow = run
        .records
        .iter()
        .filter(|r| r.e2e_from_send_ms >= 250.0)
        .count();
    let worst = run.records.iter().map(|r| r.e2e_ms).fold(0.0, f64::max);
    assert!(
        corrected_slow >= 6,
        "corrected latencies show the stall: {corrected_slow} ≥ 250 ms"
    );
    assert!(
        naive_slow <= 2,
        "uncorrected latencies hide it: {naive_slow} ≥ 250 ms"
    );
    assert!(
        worst >= 450.0,
        "worst corrected latency {worst} ms carries the 500 ms stall"
    );
    // The requests right after the stall left late, and say so.
    let late = run
        .records
        .iter()
        .filter(|r| r.send_delay_ms >= 100.0)
        .count();
    assert!(late >= 5, "{late} requests record their send delay");
    // Goodput excludes requests over the 150 ms SLO even though they passed.
    assert!(run.records.iter().filter(|r| !r.slo_met).count() >= corrected_slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_hides_the_stall_behind_one_slow_request() {
    // The contrast: a closed-loop client waits for the stalled request and sends nothing
    // during it, so only that request is slow — coordinated omission.
    let scenarios = Arc::new(vec![echo_scenario(20)]);
    let opts = RunOptions {
        load: LoadSpec {
            mode: LoadMode::Closed,
            concurrency: Some(1),
            ..LoadSpec::default()
        },
        progress: false,
    };
    let run = run_target(
        stalled_target(5, Duration::from_millis(300)),
        scenarios,
        &opts,
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 20);
    let slow = run.records.iter().filter(|r| r.e2e_ms >= 250.0).count();
    assert_eq!(slow, 1);
    assert!(run.records.iter().all(|r| r.send_delay_ms < 50.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_is_excluded_and_counts_cycle_items() {
    let backend = Arc::new(BackendTarget::new(
        "echo",
        "test-double",
        TestBackend::echo(),
    ));
    let served = backend.clone();
    let scenarios = Arc::new(vec![echo_scenario(3)]);
    let opts = RunOptions {
        load: LoadSpec {
            mode: LoadMode::Closed,
            concurrency: Some(3),
            warmup: 2,
            requests: Some(7),
            ..LoadSpec::default()
        },
        progress: false,
    };
    let run = run_target(backend, scenarios, &opts, &Judges::default()).await;
    assert_eq!(run.records.len(), 7, "warm-up not recorded");
    assert_eq!(
        served
            .backend
            .served
            .load(std::sync::atomic::Ordering::SeqCst),
        9,
        "2 warm-up + 7"
    );
    let mut seqs: Vec<u64> = run.records.iter().map(|r| r.seq).collect();
    seqs.sort();
    assert_eq!(seqs, (0..7).collect::<Vec<_>>());
    assert_eq!(
        run.records.iter().filter(|r| r.item_id == "1").count(),
        3,
        "items cycled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_carry_stream_timings_tokens_and_confidence() {
    let mut b = TestBackend::new(|_| "one two three four".to_string());
    b.token_delay = Duration::from_millis(5);
    b.logprob = -0.5;
    let target: Arc<dyn Target> = Arc::new(BackendTarget::new("t", "test-double", b));
    let scenarios = Arc::new(vec![echo_scenario(1)]);
    let run = run_target(
        target,
        scenarios,
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;
    let r = &run.records[0];
    assert_eq!(r.output, "one two three four");
    assert_eq!(r.tokens_out, Some(4));
    let itl = r.itl.unwrap();
    assert_eq!(itl.count, 3, "3 gaps between 4 tokens");
    assert!(itl.p50_ms >= 4.0, "{itl:?}");
    assert!(r.ttft_ms.unwrap() <= r.e2e_ms);
    assert!(r.tpot_ms.unwrap() >= 4.0);
    assert!((r.mean_logprob.unwrap() + 0.5).abs() < 1e-6);
    assert!((r.confidence.unwrap() - (-0.5f64).exp()).abs() < 1e-6);
    assert!(!r.passed, "echo of the prompt != answer");
}
