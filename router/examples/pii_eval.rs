//! Prints the PII detector's precision and recall per entity type on Presidio's synthetic PII
//! dataset (MIT; copied under `router/tests/data/presidio_pii_synth`).
//!
//! `cargo run -p router --release --example pii_eval [-- PATH/TO/synth_dataset_v2.json]`
//!
//! Then the same sentences on the gateway's path (each as a chat request through
//! `scan_request`: the normalised view, offsets mapped back), and the adversarial set written for
//! triage (`router/tests/data/pii_adversarial/items.jsonl`).
//!
//! Matching: a detected span is a true positive when it overlaps a gold span of the same
//! type (each gold span matches once); `exact` counts those whose boundaries are identical.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use router::pii::{adversarial, eval, PiiDetector};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pii_eval: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), eval::EvalError> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/presidio_pii_synth/synth_dataset_v2.json")
        });
    let samples = eval::load(&path)?;
    let detector = PiiDetector::new();
    let started = Instant::now();
    let report = eval::evaluate(&detector, &samples);
    let elapsed = started.elapsed();
    println!(
        "PII detector on {} ({} sentences)",
        path.display(),
        samples.len()
    );
    print!("{report}");
    let bytes: usize = samples.iter().map(|s| s.full_text.len()).sum();
    println!(
        "scan time: {:.1} ms for {} KiB ({:.1} µs per sentence)",
        elapsed.as_secs_f64() * 1e3,
        bytes / 1024,
        elapsed.as_secs_f64() * 1e6 / samples.len().max(1) as f64
    );
    let started = Instant::now();
    let gateway = eval::evaluate_requests(&detector, &samples);
    let elapsed = started.elapsed();
    println!("\nthe gateway's path (scan_request on a one-message request per sentence)");
    print!("{gateway}");
    println!(
        "scan time: {:.1} ms ({:.1} µs per sentence)",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / samples.len().max(1) as f64
    );
    let adv_path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/pii_adversarial/items.jsonl");
    let items = adversarial::load(&adv_path)?;
    println!("\nadversarial set {}", adv_path.display());
    print!("{}", adversarial::evaluate(&detector, &items));
    // The path before issue 14 for comparison: the detector on the messages' text alone.
    let (mut planted, mut found, mut neg, mut neg_flagged) = (0, 0, 0, 0);
    for item in &items {
        let spans = detector.detect(&item.request.all_text());
        planted += item.pii.len() + usize::from(item.non_text);
        found += item
            .pii
            .iter()
            .filter(|p| spans.iter().any(|s| s.kind.name() == p.kind))
            .count();
        if item.pii.is_empty() && !item.non_text {
            neg += 1;
            neg_flagged += usize::from(!spans.is_empty());
        }
    }
    println!(
        "before (detector on the messages' text only): found {found}/{planted}, negatives flagged {neg_flagged}/{neg}"
    );
    // PII_EVAL_SHOW=PHONE_NUMBER prints that type's misses and false alarms.
    if let Ok(entity) = std::env::var("PII_EVAL_SHOW") {
        for s in &samples {
            let gold: Vec<String> = s
                .spans
                .iter()
                .filter(|g| g.entity_type == entity)
                .map(|g| {
                    s.full_text
                        .chars()
                        .skip(g.start_position)
                        .take(g.end_position - g.start_position)
                        .collect()
                })
                .collect();
            let found: Vec<String> = detector
                .detect(&s.full_text)
                .iter()
                .filter(|p| eval::entity_of(&p.kind) == Some(entity.as_str()))
                .map(|p| s.full_text[p.start..p.end].to_string())
                .collect();
            if gold != found {
                println!("gold {gold:?} found {found:?} in {:?}", s.full_text);
            }
        }
    }
    Ok(())
}
