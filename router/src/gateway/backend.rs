//! The gateway's view of its backends: a name, whether it is local (its load feeds spill
//! decisions and the queue gauges), and an object-safe handle to call it.
//!
//! `backends::Backend` returns `impl Future`, which keeps dispatch static inside `AnyBackend`
//! but cannot be a trait object; [`DynBackend`] boxes the futures once at this boundary so the
//! gateway holds backends of any kind in one map. Local engines load in the background
//! ([`BackendSlot::install`]), so `/readyz` can say when every model is loaded while the server
//! is already listening.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use backends::{
    AnyBackend, Backend, BackendError, ChatRequest, ChatResponse, EmbeddingRequest,
    EmbeddingResponse, EngineTime, EventStream,
};
use futures::future::BoxFuture;

pub use crate::policy::{LocalLoad, Locality};

/// A backend the gateway can call through a trait object.
pub trait DynBackend: Send + Sync {
    /// Answer with the whole response, as [`Backend::chat`].
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>>;
    /// Answer as a stream of events, as [`Backend::chat_stream`].
    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>>;
    /// The load of a local engine; `None` for remote backends.
    fn local_load(&self) -> Option<LocalLoad> {
        None
    }
    /// Where a local engine's time went so far; `None` for remote backends.
    fn local_engine_time(&self) -> Option<EngineTime> {
        None
    }
    /// The request's prompt tokens by this backend's own tokenizer (the rendered prompt);
    /// `None` for backends without one in process.
    fn count_prompt_tokens(&self, request: &ChatRequest) -> Option<usize> {
        let _ = request;
        None
    }
    /// Whether it answers `/v1/embeddings` (a local embedding model, an OpenAI upstream).
    fn serves_embeddings(&self) -> bool {
        false
    }
    /// The sentence vector of `text` from this backend's in-process encoder (the router's
    /// `kind: embedding` task classifier shares one this way); backends without one refuse.
    fn sentence_vector(&self, text: String) -> BoxFuture<'_, backends::Result<Vec<f32>>> {
        let _ = text;
        Box::pin(async {
            Err(BackendError::InvalidRequest(
                "this backend has no in-process sentence encoder".into(),
            ))
        })
    }
    /// Answer an embeddings request; a chat-only backend refuses it.
    fn embeddings(
        &self,
        request: EmbeddingRequest,
    ) -> BoxFuture<'_, backends::Result<EmbeddingResponse>> {
        Box::pin(async move {
            Err(BackendError::InvalidRequest(format!(
                "model `{}` does not answer embeddings",
                request.model
            )))
        })
    }
}

impl DynBackend for AnyBackend {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        Box::pin(Backend::chat(self, request))
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        Box::pin(Backend::chat_stream(self, request))
    }

    fn local_load(&self) -> Option<LocalLoad> {
        #[cfg(feature = "llama")]
        #[allow(irrefutable_let_patterns)]
        if let AnyBackend::Llama(engine) = self {
            let s = engine.stats();
            return Some(LocalLoad {
                queue_depth: s.queue_depth,
                busy_slots: s.busy_slots,
                slots: s.slots,
                predicted_ttft_ms: None,
            });
        }
        None
    }

    fn local_engine_time(&self) -> Option<EngineTime> {
        #[cfg(feature = "llama")]
        #[allow(irrefutable_let_patterns)]
        if let AnyBackend::Llama(engine) = self {
            return Some(engine.stats().time);
        }
        None
    }

    fn serves_embeddings(&self) -> bool {
        match self {
            #[cfg(feature = "llama")]
            AnyBackend::Embedding(_) => true,
            AnyBackend::OpenAi(_) => true,
            _ => false,
        }
    }

    fn embeddings(
        &self,
        request: EmbeddingRequest,
    ) -> BoxFuture<'_, backends::Result<EmbeddingResponse>> {
        Box::pin(async move { AnyBackend::embeddings(self, &request).await })
    }

    fn sentence_vector(&self, text: String) -> BoxFuture<'_, backends::Result<Vec<f32>>> {
        Box::pin(async move { AnyBackend::sentence_vector(self, &text).await })
    }

    fn count_prompt_tokens(&self, request: &ChatRequest) -> Option<usize> {
        #[cfg(feature = "llama")]
        #[allow(irrefutable_let_patterns)]
        if let AnyBackend::Llama(engine) = self {
            return engine.count_tokens(request).ok();
        }
        let _ = request;
        None
    }
}

/// One configured backend; its handle is installed once it is loaded.
pub struct BackendSlot {
    /// The backend's name in `backends:`.
    pub name: String,
    /// Whether it is local or remote.
    pub kind: Locality,
    /// The model id sent upstream in `model` (remote backends), when configured.
    pub upstream_model: Option<String>,
    handle: OnceLock<Arc<dyn DynBackend>>,
    load_error: OnceLock<String>,
    /// Moving averages (f64 bits) of answered requests' TTFT and end-to-end time, for the
    /// predicted time to first token of a local engine.
    ttft_ewma_ms: AtomicU64,
    e2e_ewma_ms: AtomicU64,
}

/// Weight of the newest sample in the moving averages.
const EWMA_ALPHA: f64 = 0.2;

fn ewma_update(cell: &AtomicU64, sample: f64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
        let old = f64::from_bits(bits);
        let new = if old == 0.0 {
            sample
        } else {
            old + EWMA_ALPHA * (sample - old)
        };
        Some(new.to_bits())
    });
}

impl std::fmt::Debug for BackendSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendSlot")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl BackendSlot {
    /// A slot whose backend is still loading.
    pub fn pending(name: impl Into<String>, kind: Locality) -> Self {
        Self {
            name: name.into(),
            kind,
            upstream_model: None,
            handle: OnceLock::new(),
            load_error: OnceLock::new(),
            ttft_ewma_ms: AtomicU64::new(0),
            e2e_ewma_ms: AtomicU64::new(0),
        }
    }

    /// A slot with its backend ready.
    pub fn ready(name: impl Into<String>, kind: Locality, backend: Arc<dyn DynBackend>) -> Self {
        let slot = Self::pending(name, kind);
        let _ = slot.handle.set(backend);
        slot
    }

    /// Record the model id sent upstream (shown by `/v1/models`).
    pub fn with_upstream_model(mut self, model: Option<String>) -> Self {
        self.upstream_model = model;
        self
    }

    /// Install the loaded backend (a second install is ignored).
    pub fn install(&self, backend: Arc<dyn DynBackend>) {
        let _ = self.handle.set(backend);
    }

    /// Record that loading failed; `/readyz` reports it.
    pub fn fail(&self, reason: String) {
        let _ = self.load_error.set(reason);
    }

    /// Whether the backend is ready to take requests.
    pub fn is_loaded(&self) -> bool {
        self.handle.get().is_some()
    }

    /// Why loading failed, if it did.
    pub fn load_error(&self) -> Option<&str> {
        self.load_error.get().map(String::as_str)
    }

    /// The handle, or the error a request to it gets while it is not loaded.
    pub fn handle(&self) -> Result<&Arc<dyn DynBackend>, BackendError> {
        match self.handle.get() {
            Some(h) => Ok(h),
            None => Err(match self.load_error() {
                Some(e) => {
                    BackendError::Engine(format!("backend `{}` failed to load: {e}", self.name))
                }
                None => BackendError::NotReady(format!(
                    "backend `{}` is still loading its model (GET /readyz says when it is ready)",
                    self.name
                )),
            }),
        }
    }

    /// The engine's load now, with a predicted time to first token for a new request: the
    /// recent mean TTFT when a slot is free, plus, when requests wait, one mean request time per
    /// round of slots ahead of it. A heuristic from moving averages, `None` until this backend
    /// has answered a request.
    pub fn local_load(&self) -> Option<LocalLoad> {
        let mut load = self.handle.get().and_then(|h| h.local_load())?;
        let ttft = f64::from_bits(self.ttft_ewma_ms.load(Ordering::Relaxed));
        let e2e = f64::from_bits(self.e2e_ewma_ms.load(Ordering::Relaxed));
        if ttft > 0.0 {
            let slots = load.slots.max(1) as f64;
            let wait = if load.queue_depth == 0 && load.busy_slots < load.slots {
                0.0
            } else {
                ((load.queue_depth + 1) as f64 / slots).ceil() * e2e
            };
            load.predicted_ttft_ms = Some(ttft + wait);
        }
        Some(load)
    }

    /// Feed the moving averages with a request this backend answered.
    pub fn observe(&self, ttft_ms: Option<f64>, e2e_ms: f64) {
        if let Some(t) = ttft_ms {
            ewma_update(&self.ttft_ewma_ms, t);
        }
        ewma_update(&self.e2e_ewma_ms, e2e_ms);
    }
}

/// Every configured backend by name.
#[derive(Debug, Default)]
pub struct Backends {
    slots: BTreeMap<String, Arc<BackendSlot>>,
    /// The sentence encoder of a `classifier: { kind: embedding }` task classifier: a
    /// configured `kind: embedding` / `kind: classifier` backend's slot when it runs the same
    /// GGUF, else a slot of its own that no route can name.
    task_encoder: Option<Arc<BackendSlot>>,
}

impl Backends {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a slot under its name (replacing one of the same name) and return the shared handle.
    pub fn insert(&mut self, slot: BackendSlot) -> Arc<BackendSlot> {
        let slot = Arc::new(slot);
        self.slots.insert(slot.name.clone(), slot.clone());
        slot
    }

    /// Add a slot another set holds too (a reload keeps an unchanged backend running).
    pub fn insert_shared(&mut self, slot: Arc<BackendSlot>) {
        self.slots.insert(slot.name.clone(), slot);
    }

    /// The task classifier's encoder, when `classifier.kind` is `embedding`.
    pub fn task_encoder(&self) -> Option<&Arc<BackendSlot>> {
        self.task_encoder.as_ref()
    }

    /// Set the task classifier's encoder (a slot of this set, or one of its own).
    pub fn set_task_encoder(&mut self, slot: Arc<BackendSlot>) {
        self.task_encoder = Some(slot);
    }

    /// The slot named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<BackendSlot>> {
        self.slots.get(name)
    }

    /// Every slot, in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<BackendSlot>> {
        self.slots.values()
    }

    /// Every backend name, sorted.
    pub fn names(&self) -> Vec<String> {
        self.slots.keys().cloned().collect()
    }

    /// The prompt's tokens by the first loaded local backend's tokenizer (in name order), for
    /// `prompt_tokens` rule conditions; `None` when no local tokenizer is loaded.
    pub fn count_prompt_tokens(&self, request: &ChatRequest) -> Option<usize> {
        self.slots
            .values()
            .filter_map(|s| s.handle.get())
            .find_map(|h| h.count_prompt_tokens(request))
    }

    /// Cumulative engine time of every loaded local backend.
    pub fn local_engine_times(&self) -> BTreeMap<String, EngineTime> {
        self.slots
            .values()
            .filter_map(|s| {
                let time = s.handle.get()?.local_engine_time()?;
                Some((s.name.clone(), time))
            })
            .collect()
    }

    /// Load of every loaded local backend.
    pub fn local_loads(&self) -> BTreeMap<String, LocalLoad> {
        self.slots
            .values()
            .filter_map(|s| s.local_load().map(|l| (s.name.clone(), l)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TEST DOUBLE: a local engine that only reports a fixed load.
    struct FixedLoad(LocalLoad);

    impl DynBackend for FixedLoad {
        fn chat(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
            Box::pin(async { Err(BackendError::Engine("load-only test double".into())) })
        }
        fn chat_stream(&self, _: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
            Box::pin(async { Err(BackendError::Engine("load-only test double".into())) })
        }
        fn local_load(&self) -> Option<LocalLoad> {
            Some(self.0)
        }
    }

    fn slot(queue_depth: usize, busy_slots: usize) -> BackendSlot {
        BackendSlot::ready(
            "slm",
            Locality::Local,
            Arc::new(FixedLoad(LocalLoad {
                queue_depth,
                busy_slots,
                slots: 2,
                predicted_ttft_ms: None,
            })),
        )
    }

    #[test]
    fn predicted_ttft_grows_with_the_queue() {
        let idle = slot(0, 1);
        assert_eq!(
            idle.local_load().unwrap().predicted_ttft_ms,
            None,
            "no history yet"
        );
        idle.observe(Some(100.0), 1000.0);
        assert_eq!(idle.local_load().unwrap().predicted_ttft_ms, Some(100.0));
        let queued = slot(3, 2);
        queued.observe(Some(100.0), 1000.0);
        // 4 requests ahead-or-including over 2 slots: two rounds of 1 s before the prefill.
        assert_eq!(queued.local_load().unwrap().predicted_ttft_ms, Some(2100.0));
        queued.observe(Some(200.0), 1000.0);
        let p = queued.local_load().unwrap().predicted_ttft_ms.unwrap();
        assert!((p - 2120.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn a_loading_slot_answers_with_a_named_error() {
        let s = BackendSlot::pending("slm", Locality::Local);
        let loading = s.handle().err().unwrap();
        assert!(loading.to_string().contains("still loading"));
        assert_eq!(loading.http_status(), 503, "retryable while loading");
        s.fail("no such file".into());
        assert!(s
            .handle()
            .err()
            .unwrap()
            .to_string()
            .contains("no such file"));
    }
}
