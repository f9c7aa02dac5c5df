#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Calibration from a run with both SLM and LLM answers, and the SVG plot.

use std::sync::Arc;

use bench::calibrate::{calibrate, plot_svg, write_min_confidence};
use bench::replay::{Recorded, ReplayBackend};
use bench::results::read_records;
use bench::runner::RunOptions;
use bench::scenario::Suite;
use bench::score::Judges;
use bench::suite::run_suite;
use bench::target::{BackendTarget, Target};
use router::pricing::BackendPrice;

/// 20 yes/no items. The "SLM" replay is right on the 12 items where it is confident (logprob
/// −0.05) and wrong on the 8 where it is not (−2.0); the "LLM" replay is always right.
fn setup(dir: &std::path::Path) -> (Suite, Arc<dyn Target>, Arc<dyn Target>) {
    let items: Vec<String> = (0..20)
        .map(|i| format!("{{q: 'question {i}', a: 'yes'}}"))
        .collect();
    std::fs::write(
        dir.join("yn.yaml"),
        format!("name: yn\ntask: qa\ndataset: {{items: [{}]}}\nprompt: \"{{{{q}}}}\"\nexpected: \"{{{{a}}}}\"\nscorer: {{kind: choice, choices: [yes, no]}}\n", items.join(", ")),
    )
    .unwrap();
    std::fs::write(dir.join("suite.yaml"), "name: cal\nscenarios: [yn.yaml]\n").unwrap();
    let suite = Suite::load(&dir.join("suite.yaml")).unwrap();
    let slm = ReplayBackend::new((0..20).map(|i| {
        let confident = i < 12;
        Recorded {
            prompt: format!("question {i}"),
            response: if confident { "yes".into() } else { "no".into() },
            logprobs: vec![if confident { -0.05 } else { -2.0 }],
        }
    }));
    let llm = ReplayBackend::new((0..20).map(|i| Recorded {
        prompt: format!("question {i}"),
        response: "yes".into(),
        logprobs: vec![],
    }));
    let price = |out: f64| {
        Some(BackendPrice::PerToken {
            input: 0.0,
            output: out,
        })
    };
    (
        suite,
        Arc::new(BackendTarget::new("slm", "replay", slm).with_price(price(1.0))),
        Arc::new(BackendTarget::new("llm", "replay", llm).with_price(price(1000.0))),
    )
}

#[tokio::test]
async fn calibrate_finds_the_threshold_that_escalates_only_unsure_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (suite, slm, llm) = setup(dir.path());
    let run = dir.path().join("run");
    run_suite(
        suite,
        vec![slm, llm],
        Judges::default(),
        RunOptions::default(),
        &run,
        serde_json::Value::Null,
    )
    .await
    .unwrap();
    let records = read_records(&run).unwrap();
    let cal = calibrate(&records, "slm", "llm", 0.95).unwrap();
    assert_eq!(cal.items, 20);
    assert!((cal.slm_quality - 0.6).abs() < 1e-12);
    assert!((cal.llm_quality - 1.0).abs() < 1e-12);
    // Escalating the 8 unsure answers (40% of calls) recovers the whole gap at the least cost.
    let chosen = cal.chosen.unwrap();
    assert!((chosen.strong_share - 0.4).abs() < 1e-12, "{chosen:?}");
    assert!((chosen.quality - 1.0).abs() < 1e-12);
    let conf_unsure = (-2.0f64).exp();
    let conf_sure = (-0.05f64).exp();
    assert!(
        chosen.threshold > conf_unsure && chosen.threshold <= conf_sure,
        "{}",
        chosen.threshold
    );
    // Curve: 0% → 0.6, 40% → 1.0, 100% → 1.0. APGR = area 0.4·0.8 + 0.6·1.0 = 0.92 → (0.92 − 0.6)/0.4.
    assert!((cal.apgr.unwrap() - 0.8).abs() < 1e-9, "{:?}", cal.apgr);
    assert!((cal.cpt["50%"].unwrap() - 0.2).abs() < 1e-9);
    assert!((cal.cpt["95%"].unwrap() - 0.38).abs() < 1e-9);
    assert_eq!(cal.frontier.len(), 2);

    // The plot is an SVG with text, drawn without any font library.
    let svg = dir.path().join("frontier.svg");
    plot_svg(&cal, &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
    assert!(
        text.contains("<polyline") || text.contains("<path"),
        "has the curve"
    );
    assert!(text.contains("quality"), "axis label is drawn as SVG text");

    // --write: the cascade route's min_confidence becomes the chosen threshold.
    let config = dir.path().join("triage.yaml");
    std::fs::write(&config, "routes:\n  - { name: cascade, when: { task: [qa] }, cascade: { first: slm, escalate_to: llm, min_confidence: 0.62 } }\n").unwrap();
    let old = write_min_confidence(&config, None, chosen.threshold).unwrap();
    assert_eq!(old, "0.62");
    let updated = std::fs::read_to_string(&config).unwrap();
    assert!(
        updated.contains(&format!(
            "min_confidence: {}",
            format!("{:.6}", chosen.threshold).trim_end_matches('0')
        )),
        "{updated}"
    );
}

#[tokio::test]
async fn calibrate_explains_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (suite, slm, _) = setup(dir.path());
    let run = dir.path().join("run");
    run_suite(
        suite,
        vec![slm],
        Judges::default(),
        RunOptions::default(),
        &run,
        serde_json::Value::Null,
    )
    .await
    .unwrap();
    let err = calibrate(&read_records(&run).unwrap(), "slm", "llm", 0.95)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no records of target `llm`"), "{err}");
}
