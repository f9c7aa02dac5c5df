//! The encoder of a `classifier: { kind: embedding }` task classifier: which slot answers its
//! sentence vectors. A configured `kind: embedding` or `kind: classifier` backend on the same
//! GGUF is shared (one model in memory); otherwise the gateway loads one of its own, with the
//! other local engines, in a slot no route can name, and a reload that names the same file
//! keeps it running.

use std::sync::Arc;

use super::backend::{BackendSlot, Backends, Locality};
use super::server::{LocalLoadJob, LocalSpec};
use crate::config::{BackendSpec, Config};

/// The name of the task classifier's own encoder slot (one no route can name).
const TASK_ENCODER: &str = "task-classifier encoder";

/// A reload whose task classifier reads the same encoder file keeps the running encoder of its
/// own (`previous`, loaded) instead of loading a second copy: its pending load is dropped.
pub(super) fn keep(
    backends: &mut Backends,
    loads: &mut Vec<LocalLoadJob>,
    previous: Option<&Arc<BackendSlot>>,
    same_file: bool,
) {
    let Some(previous) = previous.filter(|p| p.name == TASK_ENCODER && p.is_loaded()) else {
        return;
    };
    let Some(fresh) = backends
        .task_encoder()
        .filter(|s| s.name == TASK_ENCODER)
        .cloned()
    else {
        return;
    };
    if !same_file {
        return;
    }
    loads.retain(|job| !Arc::ptr_eq(&job.slot, &fresh));
    backends.set_task_encoder(previous.clone());
}

/// The encoder of a `kind: embedding` task classifier: a configured embedding or classifier
/// backend's slot when it runs the same GGUF (one model in memory), else a slot of its own,
/// loaded with the other local engines (one encoder thread).
pub(super) fn attach(
    config: &Config,
    encoder: &std::path::Path,
    backends: &mut Backends,
    loads: &mut Vec<LocalLoadJob>,
) {
    let same = |p: &std::path::Path| {
        p == encoder
            || matches!((p.canonicalize(), encoder.canonicalize()), (Ok(a), Ok(b)) if a == b)
    };
    let shared = config.backends.iter().find_map(|(name, spec)| match spec {
        BackendSpec::Embedding(e) if same(&e.model_path) => Some(name),
        BackendSpec::Classifier(c) if same(&c.encoder.model_path) => Some(name),
        _ => None,
    });
    if let Some(slot) = shared.and_then(|name| backends.get(name)).cloned() {
        tracing::info!(backend = %slot.name, "the task classifier shares this backend's encoder");
        backends.set_task_encoder(slot);
        return;
    }
    if !cfg!(feature = "llama") {
        tracing::warn!(
            "built without the `llama` feature: the embedding task classifier has no encoder \
             and leaves tasks to the classifier rules"
        );
        return;
    }
    let slot = Arc::new(BackendSlot::pending(TASK_ENCODER, Locality::Local));
    let mut engine = backends::EmbeddingEngineConfig::new(encoder);
    engine.threads = 1;
    loads.push(LocalLoadJob {
        slot: slot.clone(),
        spec: LocalSpec::Embedding(engine),
    });
    backends.set_task_encoder(slot);
}
