#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! PII detector precision and recall per entity type on Presidio's synthetic dataset (MIT,
//! copied under tests/data with its SOURCE.md). The full table: `cargo run -p router
//! --release --example pii_eval`. The floors below are what the privacy rule relies on.

use std::path::Path;

use router::pii::{eval, PiiDetector};

#[test]
fn precision_and_recall_per_entity_type() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/presidio_pii_synth/synth_dataset_v2.json");
    let samples = eval::load(&path).unwrap();
    assert_eq!(samples.len(), 1500);
    let report = eval::evaluate(&PiiDetector::new(), &samples);
    println!("{report}");
    for entity in eval::ENTITIES {
        let c = report.by_entity[entity];
        assert!(c.gold > 0, "{entity}: no gold spans");
        assert!(
            c.recall() >= 0.95,
            "{entity}: recall {:.3}\n{report}",
            c.recall()
        );
        assert!(
            c.precision() >= 0.95,
            "{entity}: precision {:.3}\n{report}",
            c.precision()
        );
    }
    // For the privacy rule what counts is whether a sentence with PII is flagged at all.
    assert_eq!(
        report.sentences_flagged, report.sentences_with_pii,
        "{report}"
    );
    assert!(
        report.sentences_false_flagged * 100 <= report.sentences_without_pii,
        "{report}"
    );
}
