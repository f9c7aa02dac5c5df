//! `triage route train --head embedding --task-classifier`: the router's task classifier as a
//! [`backends::head::Head`] over sentence vectors (labels: the tasks), trained and measured on
//! exactly the texts and the held-out split of the n-gram model ([`crate::classifier_train`]),
//! with the same report, so the two kinds compare on the same items.
//!
//! Texts are embedded one per forward pass, so the same texts give the same head file.
//!
//! The text embedded is the one the gateway embeds: `ChatRequest::all_text()` of the request,
//! cut to the encoder's input limit ([`backends::embed::EmbeddingEngine::embed_prefix`]). The
//! latency reported is one held-out text at a time: the encoder pass plus the head, what one
//! gateway request without a stated task waits for.

use std::path::Path;

use backends::head::{Head, HeadOptions};

use crate::classifier_train::{TrainReport, TrainSetup};
use crate::error::Result;

/// Embed, train the task head on the kept texts, measure it on the held-out ones.
#[cfg(feature = "llama")]
pub async fn train_task_head(
    setup: &TrainSetup,
    encoder: &Path,
    threads: i32,
    options: &HeadOptions,
) -> Result<(Head, TrainReport)> {
    use std::time::Instant;

    use backends::head::{train_head, EncoderId};
    use router::classifier::{EmbeddingModel, TASK_HEAD};

    use crate::classifier_train::{assemble_and_split, report, Latency};
    use crate::error::BenchError;

    let analysis = |what: &str, e: String| BenchError::Analysis(format!("{what}: {e}"));
    let split = assemble_and_split(setup)?;
    let mut config = backends::EmbeddingEngineConfig::new(encoder);
    config.threads = threads;
    let engine =
        tokio::task::spawn_blocking(move || backends::embed::EmbeddingEngine::load(config))
            .await
            .map_err(|e| analysis("encoder loading thread", e.to_string()))?
            .map_err(|e| analysis("loading the encoder", e.to_string()))?;
    let id = EncoderId::of_file(encoder, engine.dimensions())
        .map_err(|e| analysis("hashing the encoder", e.to_string()))?;
    let started = Instant::now();
    let mut examples = Vec::with_capacity(split.kept.len());
    // One text per forward pass: which texts share a pass would depend on timing, and a
    // vector's last bits on its pass, so the same texts give the same head file only this way.
    for t in &split.kept {
        let vector = engine
            .embed_prefix(&t.text)
            .await
            .map_err(|e| analysis("embedding a training text", e.to_string()))?;
        examples.push((vector, t.task.clone()));
    }
    let head = train_head(TASK_HEAD, id, &examples, options)
        .map_err(|e| analysis("training the task head", e.to_string()))?;
    let train_seconds = started.elapsed().as_secs_f64();
    let model = EmbeddingModel {
        head: head.clone(),
        encoder: encoder.to_path_buf(),
    };
    let mut predicted = Vec::with_capacity(split.held.len());
    let mut secs = Vec::with_capacity(split.held.len());
    for t in &split.held {
        let started = Instant::now();
        let vector = engine
            .embed_prefix(&t.text)
            .await
            .map_err(|e| analysis("embedding a held-out text", e.to_string()))?;
        std::hint::black_box(model.classify_vector(&vector, setup.threshold));
        secs.push(started.elapsed().as_secs_f64());
        let probs = head.probabilities(&vector);
        let best = (0..probs.len())
            .max_by(|&a, &b| probs[a].total_cmp(&probs[b]))
            .unwrap_or(0);
        predicted.push((
            head.labels.get(best).cloned().unwrap_or_default(),
            probs.get(best).copied().unwrap_or(0.0) as f32,
        ));
    }
    let report = report(
        setup,
        &split,
        "embedding",
        train_seconds,
        &predicted,
        Latency::of(secs),
    );
    Ok((head, report))
}

/// Unused-path guard for builds without the engine.
#[cfg(not(feature = "llama"))]
pub async fn train_task_head(
    setup: &TrainSetup,
    encoder: &Path,
    threads: i32,
    options: &HeadOptions,
) -> Result<(Head, TrainReport)> {
    let _ = (setup, threads, options);
    Err(crate::error::BenchError::Analysis(format!(
        "cannot train a task head on {}: this build has no local engine (build with `llama`)",
        encoder.display()
    )))
}
