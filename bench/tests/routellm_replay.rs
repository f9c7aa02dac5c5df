#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! RouteLLM's recorded answers (a fixture subset) through the replay backend and the router
//! evaluation.

use std::path::Path;

use backends::{Backend, ChatRequest};
use bench::replay::routellm::{self, Benchmark, SimpleRouter};
use bench::score::numeric::final_number;

fn fixture() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/routellm"
    ))
}

#[test]
fn loads_and_decontaminates_like_routellm() {
    let (rows, dropped) = routellm::load(fixture(), Benchmark::Gsm8k).unwrap();
    assert_eq!((rows.len(), dropped), (115, 5));
    let (weak, strong) = routellm::model_accuracy(&rows);
    assert!((weak - 67.0 / 115.0).abs() < 1e-12);
    assert!((strong - 97.0 / 115.0).abs() < 1e-12);
    let (mmlu, _) = routellm::load(fixture(), Benchmark::Mmlu).unwrap();
    assert!(mmlu.len() > 100, "astronomy has {} questions", mmlu.len());
    assert!(
        mmlu.iter().all(|r| r.weak_response.is_none()),
        "MMLU has no recorded answers"
    );
}

#[test]
fn router_curves_rank_oracle_over_random() {
    let (rows, _) = routellm::load(fixture(), Benchmark::Gsm8k).unwrap();
    let eval = |r: SimpleRouter| routellm::evaluate(&rows, &r.name(), &r.scores(&rows), 10);
    let random = eval(SimpleRouter::Random { seed: 0 });
    let oracle = eval(SimpleRouter::Oracle);
    let length = eval(SimpleRouter::Length);
    assert_eq!(
        random.points.len(),
        11,
        "10 bins → 11 thresholds, as pd.qcut"
    );
    assert!(oracle.apgr.unwrap() > 0.9, "{:?}", oracle.apgr);
    assert!(
        random.apgr.unwrap() > 0.2 && random.apgr.unwrap() < 0.8,
        "{:?}",
        random.apgr
    );
    assert!(length.apgr.is_some());
    assert!(oracle.cpt["50%"].unwrap() < random.cpt["50%"].unwrap());
    // The learned classifier, cross-fitted: a real curve with every prompt scored (on 40
    // prompts, to keep the debug-build test quick).
    let few = &rows[..40];
    let scores = routellm::classifier_scores(few, 2, 0).unwrap();
    assert_eq!(scores.len(), few.len());
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    let learned = routellm::evaluate(few, "classifier", &scores, 10);
    assert!(learned.apgr.is_some());
}

#[tokio::test]
async fn replay_backend_answers_with_the_recorded_model_outputs() {
    let (rows, _) = routellm::load(fixture(), Benchmark::Gsm8k).unwrap();
    let (weak, strong) = routellm::replay_backends(&rows).unwrap();
    let first = &rows[0];
    let w = weak
        .chat(ChatRequest::user("mixtral", first.prompt.clone()))
        .await
        .unwrap();
    let s = strong
        .chat(ChatRequest::user("gpt-4", first.prompt.clone()))
        .await
        .unwrap();
    assert_eq!(w.text(), first.weak_response.as_deref().unwrap());
    assert_eq!(s.text(), first.strong_response.as_deref().unwrap());
    // The recorded answers end in a number the numeric scorer can read.
    assert!(final_number(w.text()).is_some() && final_number(s.text()).is_some());
    let unknown = weak
        .chat(ChatRequest::user("mixtral", "not a recorded prompt"))
        .await;
    assert!(unknown.is_err(), "no made-up answers");
}
