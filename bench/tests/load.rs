#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The load modes against a test double with a known artificial stall, on tokio's paused clock:
//! time only moves when every task waits for a timer, so the schedule, the send times and the
//! latencies are exact and the tests check behaviour (who was sent when, what each record
//! charges) without depending on how fast the machine is.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backends::mock::{MockBackend, Script};
use bench::progress::Progress;
use bench::record::RequestRecord;
use bench::runner::{run_target, RunOptions};
use bench::scenario::{parse_yaml, Arrival, LoadMode, LoadSpec, Scenario, ScenarioFile};
use bench::score::Judges;
use bench::target::{BackendTarget, Target};

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

/// Each request takes 2 ms; request `stall_at` first stalls for `stall`.
fn stalled_target(stall_at: usize, stall: Duration) -> Arc<dyn Target> {
    let backend = MockBackend::scripted(
        Script::echo()
            .stall_at(stall_at, stall)
            .service_time(Duration::from_millis(2)),
    );
    Arc::new(BackendTarget::new("stalling", "test-double", backend))
}

fn options(load: LoadSpec) -> RunOptions {
    RunOptions {
        load,
        ..RunOptions::default()
    }
}

/// Milliseconds compare exactly on the paused clock, up to float rounding.
fn assert_ms(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-6,
        "{what}: {got} ms, expected {want} ms"
    );
}

#[tokio::test(start_paused = true)]
async fn open_loop_charges_a_stall_to_every_request_scheduled_during_it() {
    // 50 requests/s (one every 20 ms), one in flight at most, request 5 (sent at 100 ms)
    // stalls 500 ms and ends at 602 ms. The requests scheduled meanwhile wait for the slot and
    // leave back to back, 2 ms apart, until the backlog clears at request 33 (due at 660 ms).
    let run = run_target(
        stalled_target(5, Duration::from_millis(500)),
        Arc::new(vec![echo_scenario(40)]),
        &options(LoadSpec {
            mode: LoadMode::Open,
            rate: Some(50.0),
            arrival: Arrival::Constant,
            max_in_flight: Some(1),
            ..LoadSpec::default()
        }),
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 40);
    assert!(run.records.iter().all(|r| r.passed), "echo answers pass");
    for (k, r) in run.records.iter().enumerate() {
        assert_eq!(r.seq, k as u64);
        // The schedule does not bend to the target.
        let intended = 20.0 * k as f64;
        assert_ms(r.intended_ms, intended, &format!("request {k} intended"));
        let sent = match k {
            6..=32 => 602.0 + 2.0 * (k - 6) as f64,
            _ => intended,
        };
        assert_ms(r.sent_ms, sent, &format!("request {k} sent"));
        assert_ms(
            r.send_delay_ms,
            sent - intended,
            &format!("request {k} delay"),
        );
        // What a naive client reports: only the stalled request is slow.
        let service = if k == 5 { 502.0 } else { 2.0 };
        assert_ms(
            r.e2e_from_send_ms,
            service,
            &format!("request {k} from send"),
        );
        // Corrected: from the intended time, so every request due during the stall carries
        // the rest of it.
        assert_ms(
            r.e2e_ms,
            sent - intended + service,
            &format!("request {k} e2e"),
        );
        assert_eq!(r.slo_met, r.e2e_ms <= 150.0, "request {k}: 150 ms SLO");
    }
    let due_during_stall: Vec<&RequestRecord> = run
        .records
        .iter()
        .filter(|r| r.intended_ms > 100.0 && r.intended_ms < 602.0)
        .collect();
    assert_eq!(due_during_stall.len(), 25);
    assert!(due_during_stall
        .iter()
        .all(|r| r.e2e_ms >= 602.0 - r.intended_ms));
    // Goodput excludes the requests over the 150 ms SLO even though they passed: the stalled
    // one and requests 6–24 (request k waits 592 − 18k ms), where a naive count finds one.
    let missed: Vec<u64> = run
        .records
        .iter()
        .filter(|r| !r.slo_met)
        .map(|r| r.seq)
        .collect();
    assert_eq!(missed, (5..=24).collect::<Vec<_>>());
    assert_eq!(
        run.records
            .iter()
            .filter(|r| r.e2e_from_send_ms > 150.0)
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn closed_loop_hides_the_stall_behind_one_slow_request() {
    // The contrast: a closed-loop client waits for the stalled request and sends nothing
    // during it, so only that request is slow — coordinated omission.
    let run = run_target(
        stalled_target(5, Duration::from_millis(300)),
        Arc::new(vec![echo_scenario(20)]),
        &options(LoadSpec {
            mode: LoadMode::Closed,
            concurrency: Some(1),
            ..LoadSpec::default()
        }),
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 20);
    for (k, r) in run.records.iter().enumerate() {
        assert_eq!(r.send_delay_ms, 0.0, "request {k} leaves when intended");
        let e2e = if k == 5 { 302.0 } else { 2.0 };
        assert_ms(r.e2e_ms, e2e, &format!("request {k} e2e"));
        if let Some(next) = run.records.get(k + 1) {
            // The next request is due only when this one finished.
            assert_ms(next.intended_ms, r.intended_ms + r.e2e_ms, "next intended");
        }
    }
    assert_eq!(run.records.iter().filter(|r| r.e2e_ms >= 250.0).count(), 1);
    assert_ms(run.wall_s * 1e3, 20.0 * 2.0 + 300.0, "wall time");
}

#[tokio::test(start_paused = true)]
async fn closed_loop_workers_send_until_the_duration_is_over() {
    // 2 workers against a test double that serves one request at a time, 5 ms each: request
    // n ends at 5(n+1) ms, and a worker sends its next request when its previous one ended,
    // as long as 100 ms have not passed — the last (n = 20) leaves at 95 ms and ends at 105.
    let backend = MockBackend::scripted(Script::echo().service_time(Duration::from_millis(5)));
    let target: Arc<dyn Target> = Arc::new(BackendTarget::new("t", "test-double", backend));
    let run = run_target(
        target,
        Arc::new(vec![echo_scenario(3)]),
        &options(LoadSpec {
            mode: LoadMode::Closed,
            concurrency: Some(2),
            duration_s: Some(0.1),
            ..LoadSpec::default()
        }),
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 21);
    for (n, r) in run.records.iter().enumerate() {
        assert_eq!(r.seq, n as u64);
        let sent = if n < 2 { 0.0 } else { 5.0 * (n - 1) as f64 };
        assert_ms(r.intended_ms, sent, &format!("request {n} intended"));
        assert_ms(
            r.e2e_ms,
            5.0 * (n + 1) as f64 - sent,
            &format!("request {n} e2e"),
        );
    }
    assert_ms(
        run.wall_s * 1e3,
        105.0,
        "the last request ends after the deadline",
    );
}

#[tokio::test(start_paused = true)]
async fn warmup_is_excluded_and_counts_cycle_items() {
    let backend = Arc::new(BackendTarget::new(
        "echo",
        "test-double",
        MockBackend::scripted(Script::echo()),
    ));
    let served = backend.clone();
    let run = run_target(
        backend,
        Arc::new(vec![echo_scenario(3)]),
        &options(LoadSpec {
            mode: LoadMode::Closed,
            concurrency: Some(3),
            warmup: 2,
            requests: Some(7),
            ..LoadSpec::default()
        }),
        &Judges::default(),
    )
    .await;
    assert_eq!(run.records.len(), 7, "warm-up not recorded");
    assert_eq!(served.backend.calls(), 9, "2 warm-up + 7");
    let seqs: Vec<u64> = run.records.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (0..7).collect::<Vec<_>>(),
        "records in schedule order"
    );
    assert_eq!(
        run.records.iter().filter(|r| r.item_id == "1").count(),
        3,
        "items cycled"
    );
}

#[tokio::test(start_paused = true)]
async fn records_carry_stream_timings_tokens_and_confidence() {
    // Four words, 5 ms apart, no service time: first token at once, three 5 ms gaps.
    let b = MockBackend::scripted(
        Script::answering(|_| "one two three four".to_string())
            .token_delay(Duration::from_millis(5))
            .logprob(-0.5),
    );
    let target: Arc<dyn Target> = Arc::new(BackendTarget::new("t", "test-double", b));
    let run = run_target(
        target,
        Arc::new(vec![echo_scenario(1)]),
        &RunOptions::default(),
        &Judges::default(),
    )
    .await;
    let r = &run.records[0];
    assert_eq!(r.output, "one two three four");
    assert_eq!(r.tokens_out, Some(4));
    let itl = r.itl.unwrap();
    assert_eq!(itl.count, 3, "3 gaps between 4 tokens");
    assert_ms(itl.p50_ms, 5.0, "gap");
    assert_ms(itl.max_ms, 5.0, "largest gap");
    assert_ms(r.ttft_ms.unwrap(), 0.0, "ttft");
    assert_ms(r.tpot_ms.unwrap(), 5.0, "tpot");
    assert_ms(r.e2e_ms, 15.0, "e2e");
    assert!((r.mean_logprob.unwrap() + 0.5).abs() < 1e-6);
    assert!((r.confidence.unwrap() - (-0.5f64).exp()).abs() < 1e-6);
    assert!(!r.passed, "echo of the prompt != answer");
}

/// Collects what the runner reports.
#[derive(Default)]
struct Recorded {
    events: Mutex<Vec<String>>,
}

impl Progress for Recorded {
    fn start(&self, label: &str, total: Option<u64>) {
        self.events
            .lock()
            .unwrap()
            .push(format!("start {label} {total:?}"));
    }
    fn inc(&self, status: &str) {
        self.events.lock().unwrap().push(format!("inc {status}"));
    }
    fn finish(&self) {
        self.events.lock().unwrap().push("finish".into());
    }
}

#[tokio::test(start_paused = true)]
async fn progress_sees_the_phase_and_each_recorded_request() {
    let progress = Arc::new(Recorded::default());
    let backend = MockBackend::scripted(Script::echo().service_time(Duration::from_millis(10)));
    let target: Arc<dyn Target> = Arc::new(BackendTarget::new("echo", "test-double", backend));
    let opts = RunOptions {
        load: LoadSpec {
            warmup: 1,
            requests: Some(3),
            ..LoadSpec::default()
        },
        progress: progress.clone(),
        ..RunOptions::default()
    };
    run_target(
        target,
        Arc::new(vec![echo_scenario(2)]),
        &opts,
        &Judges::default(),
    )
    .await;
    let events = progress.events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "start echo Some(3)",
            "inc pass 100.0%  p50 10 ms",
            "inc pass 100.0%  p50 10 ms",
            "inc pass 100.0%  p50 10 ms",
            "finish",
        ],
        "warm-up is not counted"
    );
}
