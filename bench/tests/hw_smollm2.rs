//! `triage hw` on the real SmolLM2 model with tiny sizes (pp 16, tg 8).
#![cfg(feature = "llama")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use bench::hw::{self, HwConfig, HWREPORT_SCHEMA};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_sweep_reports_every_figure_and_validates() {
    let model =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(model.exists(), "run `make setup` first");
    let config = HwConfig {
        threads: vec![1, 2],
        prompt_lengths: vec![16],
        gen_lengths: vec![8],
        batch_sizes: vec![64],
        concurrency: vec![1, 2],
        concurrency_prompt: 16,
        concurrency_gen: 48,
        repetitions: 3,
        bandwidth_mib: 16,
        ..HwConfig::new(&model)
    };
    let mut report = hw::run(&config).await.unwrap();
    // The remote probe's rows, from a test double standing in for a remote API (a mock that
    // echoes the prompt, 1 ms per token), so the schema covers them too.
    let mock = backends::mock::MockBackend::new("slow_1ms").unwrap();
    let target: std::sync::Arc<dyn bench::target::Target> = std::sync::Arc::new(
        bench::target::BackendTarget::new("mock-remote", "mock", mock),
    );
    let probe_config = bench::probe::ProbeConfig {
        requests: 3,
        ..bench::probe::ProbeConfig::default()
    };
    report.remote = bench::probe::probe(target, "echo", &probe_config).await;
    assert_eq!(report.remote.len(), 2);
    assert!(report
        .remote
        .iter()
        .all(|r| r.requests == 3 && r.errors == 0));

    // Every speed figure is present and positive.
    for test in ["pp16", "tg8"] {
        for threads in [1, 2] {
            let row = report
                .speed
                .iter()
                .find(|r| r.test == test && r.threads == threads)
                .unwrap_or_else(|| panic!("{test} at {threads} threads missing"));
            assert_eq!(
                row.samples.len(),
                3,
                "{test}: warm-up excluded, 3 repetitions kept"
            );
            assert!(row.samples.iter().all(|s| *s > 0.0));
            assert!(row.tokens_per_sec_mean > 0.0 && row.tokens_per_sec_std >= 0.0);
        }
    }
    let roofline = report.roofline.as_ref().expect("roofline measured");
    assert!(roofline.bandwidth.triad_gbps > 0.0 && roofline.ceiling_tps > 0.0);
    assert!(roofline.efficiency_pct > 0.0);
    assert_eq!(report.model.architecture, "llama");
    assert!(report.model.parameters > 100_000_000);
    assert!(!report.system.cpu_model.is_empty() && report.system.logical_cpus >= 1);

    // Every concurrency level is measured, with the engine's own share of its busy time.
    // (That batching shares decode steps is checked as behaviour in the engine's tests, not
    // here as a speed comparison.)
    for streams in [1, 2] {
        let row = report
            .concurrency
            .iter()
            .find(|c| c.streams == streams)
            .unwrap_or_else(|| panic!("{streams} streams missing"));
        assert!(row.aggregate_tps > 0.0 && row.per_stream_tps > 0.0 && row.ttft_p50_ms > 0.0);
        assert!(
            row.engine_host_pct > 0.0 && row.engine_host_pct < 100.0,
            "{streams} streams: engine host share {}",
            row.engine_host_pct
        );
    }

    // The JSON validates against the checked-in schema.
    let schema: serde_json::Value = serde_json::from_str(HWREPORT_SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let json = serde_json::to_value(&report).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&json)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    // Markdown and the comparison render.
    let table = hw::markdown_table(&report);
    assert!(table.contains("| pp16 |"));
    assert!(
        table.contains("| mock-remote (mock) | echo | 2 | 3 | 0 |"),
        "{table}"
    );
    assert!(hw::compare_reports(&report, &report).contains("1.000"));
}
