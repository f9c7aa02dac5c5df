//! Retrieval-augmented QA end to end: the shipped `rag_docs` scenario loads; with the real
//! all-MiniLM-L6-v2 every gold quote lies in a passage and a hand-checked question retrieves
//! its gold passage first; every target of a run gets the same passages, and a later run reuses
//! them without the embedding model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use bench::scenario::Scenario;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_shipped_rag_scenario_loads_and_marks_a_gold_passage_for_every_item() {
    let s = Scenario::load(&repo().join("scenarios/rag_docs.yaml"), None).unwrap();
    let rag = s.rag.as_ref().expect("a rag section");
    assert_eq!(rag.top_k, 3);
    assert!(s.items.len() >= 50, "{} items", s.items.len());
    for item in &s.items {
        assert!(item.fields["evidence"].is_string(), "{}", item.id);
        assert!(item.expected.as_deref().is_some_and(|e| !e.is_empty()));
    }
    // Before retrieval there is nothing to send.
    let e = s.request(&s.items[0]).unwrap_err().to_string();
    assert!(e.contains("no retrieved passages"), "{e}");
}

#[cfg(feature = "llama")]
mod with_minilm {
    use std::sync::Arc;

    use backends::mock::{MockBackend, Script};
    use bench::rag::{prepare, PrepareOptions, PASSAGES_FIELD};
    use bench::runner::RunOptions;
    use bench::scenario::{Scenario, Suite};
    use bench::score::Judges;
    use bench::suite::run_suite;
    use bench::target::{BackendTarget, Target};

    use super::repo;

    fn minilm() -> std::path::PathBuf {
        let path = repo().join("models/all-MiniLM-L6-v2.gguf");
        assert!(
            path.exists(),
            "{} is missing: run `make setup`",
            path.display()
        );
        path
    }

    /// Every evidence quote of the shipped scenario is in some passage (prepare refuses
    /// otherwise). Checked by hand: "What error does a request beyond the engine's admission
    /// queue capacity get?" is answered by the back-pressure paragraph of ARCHITECTURE.md's "The
    /// local engine" section, and that passage ranks first. Prints recall@k for BENCHMARKS.md.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retrieval_finds_the_hand_checked_gold_passage_and_a_rerun_reuses_it() {
        minilm();
        let path = repo().join("scenarios/rag_docs.yaml");
        let out = tempfile::tempdir().unwrap();
        let mut scenarios = vec![Scenario::load(&path, None).unwrap()];
        let started = std::time::Instant::now();
        let done = prepare(
            &mut scenarios,
            &PrepareOptions {
                out: out.path().to_path_buf(),
                reuse_from: None,
            },
        )
        .await
        .unwrap();
        let s = &scenarios[0];
        let n = s.retrievals.len() as f64;
        let within = |k: u32| {
            s.retrievals
                .values()
                .filter(|r| r.gold_rank.is_some_and(|g| g <= k))
                .count() as f64
                / n
        };
        println!(
            "{} passages, {} items, index+queries {:.1} s; recall@1 {:.3} @3 {:.3} @5 {:.3}",
            done[0].passages,
            done[0].items,
            started.elapsed().as_secs_f64(),
            within(1),
            within(3),
            within(5)
        );
        let item = s
            .items
            .iter()
            .find(|i| {
                i.fields["question"]
                    == "What error does a request beyond the engine's admission queue capacity get?"
            })
            .unwrap();
        let r = &s.retrievals[&item.id];
        assert_eq!(r.gold_rank, Some(1), "{r:?}");
        let passages = item.fields[PASSAGES_FIELD].as_str().unwrap();
        let first = passages.split("\n\n[2] ").next().unwrap();
        assert!(
            first.starts_with("[1] ARCHITECTURE.md › Architecture › The local engine"),
            "{first}"
        );
        assert!(
            first.contains("gets `BackendError::Overloaded` at once"),
            "{first}"
        );
        assert_eq!(r.passages.len(), 3);

        // A rerun from the stored index gives the same passages without loading the model.
        let yaml = std::fs::read_to_string(&path)
            .unwrap()
            .replace("../models/all-MiniLM-L6-v2.gguf", "../models/missing.gguf");
        let raw: bench::scenario::ScenarioFile = bench::scenario::parse_yaml(&yaml, &path).unwrap();
        let mut again = vec![Scenario::from_file(raw, &path, None).unwrap()];
        let out2 = tempfile::tempdir().unwrap();
        let reused = prepare(
            &mut again,
            &PrepareOptions {
                out: out2.path().to_path_buf(),
                reuse_from: Some(out.path().to_path_buf()),
            },
        )
        .await
        .unwrap();
        assert!(reused[0].reused_from.is_some());
        assert_eq!(again[0].retrievals, scenarios[0].retrievals);
        for (a, b) in again[0].items.iter().zip(&scenarios[0].items) {
            assert_eq!(a.fields[PASSAGES_FIELD], b.fields[PASSAGES_FIELD]);
        }
        assert_eq!(
            std::fs::read(out.path().join("rag/rag-docs/index.json")).unwrap(),
            std::fs::read(out2.path().join("rag/rag-docs/index.json")).unwrap(),
            "the stored index is carried over byte for byte"
        );
    }

    const CORPUS_A: &str = "# Cats\nCats sleep sixteen hours a day and purr when content.\n\n\
        # Rust\nRust's borrow checker prevents data races at compile time.\n";
    const CORPUS_B: &str =
        "# Trains\nThe Shinkansen runs at up to 320 km/h between Tokyo and Osaka.\n";
    const QUESTIONS: &str = concat!(
        r#"{"id": "q1", "question": "How fast does the Shinkansen run?", "answer": "320 km/h", "evidence": "up to 320 km/h"}"#,
        "\n",
        r#"{"id": "q2", "question": "What prevents data races in Rust programs?", "answer": "the borrow checker", "evidence": "borrow checker prevents data races"}"#,
        "\n"
    );

    fn write_scenario(dir: &std::path::Path, model: &std::path::Path, chunk_max: usize) {
        std::fs::create_dir_all(dir.join("corpus")).unwrap();
        std::fs::write(dir.join("corpus/a.md"), CORPUS_A).unwrap();
        std::fs::write(dir.join("corpus/b.md"), CORPUS_B).unwrap();
        std::fs::write(dir.join("questions.jsonl"), QUESTIONS).unwrap();
        let scenario = format!(
            "name: tiny-rag\ntask: rag_qa\ndataset: {{ path: questions.jsonl, id: id }}\n\
             rag: {{ corpus: [corpus], embedding_model: {model:?}, top_k: 1, chunk: {{ max_tokens: {chunk_max} }} }}\n\
             prompt: \"Passages:\\n{{{{passages}}}}\\n\\nQuestion: {{{{question}}}}\"\n\
             expected: \"{{{{answer}}}}\"\n\
             scorers: [{{ kind: token_f1 }}, {{ kind: faithfulness }}]\n",
            model = model.display().to_string()
        );
        std::fs::write(dir.join("tiny.yaml"), scenario).unwrap();
        std::fs::write(
            dir.join("suite.yaml"),
            "name: tiny\nscenarios: [tiny.yaml]\n",
        )
        .unwrap();
    }

    fn targets() -> Vec<Arc<dyn Target>> {
        // "reader" answers from its passages (abstains when the speed is not there); "inventor"
        // answers something no passage says.
        let reader = MockBackend::scripted(Script::answering(|req| {
            let prompt = req.messages.last().map(|m| m.text()).unwrap_or_default();
            if prompt.contains("320 km/h") {
                "320 km/h".into()
            } else {
                "Not in the context.".into()
            }
        }));
        let inventor = MockBackend::scripted(Script::answering(|_| "A purple dragon".into()));
        vec![
            Arc::new(BackendTarget::new("reader", "test-double", reader)),
            Arc::new(BackendTarget::new("inventor", "test-double", inventor)),
        ]
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_target_gets_the_same_passages_and_the_summary_reports_recall_and_abstentions() {
        let dir = tempfile::tempdir().unwrap();
        write_scenario(dir.path(), &minilm(), 200);
        let out = dir.path().join("run1");
        let suite = Suite::load(&dir.path().join("suite.yaml")).unwrap();
        let run = run_suite(
            suite,
            targets(),
            Judges::default(),
            RunOptions::default(),
            &out,
            serde_json::Value::Null,
        )
        .await
        .unwrap();
        assert!(out.join("rag/tiny-rag/index.json").exists());
        assert!(out.join("rag/tiny-rag/retrieval.jsonl").exists());
        let (reader, inventor) = (&run.runs[0].records, &run.runs[1].records);
        for (a, b) in reader.iter().zip(inventor) {
            assert_eq!(a.item_id, b.item_id);
            assert_eq!(a.prompt, b.prompt, "the same passages for every target");
            assert_eq!(a.retrieval, b.retrieval);
        }
        let q1 = reader.iter().find(|r| r.item_id == "q1").unwrap();
        assert_eq!(q1.retrieval.as_ref().unwrap().passages, ["b.md#0"]);
        assert!(q1.passed, "{:?}", q1.scores);
        let group = |target: &str| {
            run.summary
                .groups
                .iter()
                .find(|g| g.target == target && g.task == "rag_qa")
                .and_then(|g| g.rag.clone())
                .unwrap()
        };
        let (r, i) = (group("reader"), group("inventor"));
        assert_eq!(
            r.recall_at_1,
            Some(1.0),
            "hand-checked: both gold passages rank first"
        );
        assert_eq!(r.recall_at_1, i.recall_at_1);
        assert_eq!(
            (r.abstained, r.faithful, r.exact_match),
            (Some(0.5), Some(1.0), Some(0.5))
        );
        assert_eq!(
            (i.abstained, i.faithful, i.exact_match),
            (Some(0.0), Some(0.0), Some(0.0))
        );

        // Another run reuses the stored retrieval: same prompts, no model needed.
        let model_gone = dir.path().join("nowhere.gguf");
        write_scenario(dir.path(), &model_gone, 200);
        let mut suite = Suite::load(&dir.path().join("suite.yaml")).unwrap();
        suite.retrieval_from = Some(out.clone());
        let rerun = run_suite(
            suite,
            targets(),
            Judges::default(),
            RunOptions::default(),
            &dir.path().join("run2"),
            serde_json::Value::Null,
        )
        .await
        .unwrap();
        for (a, b) in rerun.runs[0].records.iter().zip(reader) {
            assert_eq!(a.prompt, b.prompt);
        }
        // A changed chunking is not the stored index: refused, naming the way out.
        write_scenario(dir.path(), &model_gone, 100);
        let mut suite = Suite::load(&dir.path().join("suite.yaml")).unwrap();
        suite.retrieval_from = Some(out);
        let e = run_suite(
            suite,
            targets(),
            Judges::default(),
            RunOptions::default(),
            &dir.path().join("run3"),
            serde_json::Value::Null,
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(e.contains("without --retrieval-from"), "{e}");
    }
}
