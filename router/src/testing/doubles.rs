//! [`WithLoad`], a TEST DOUBLE of a local engine's load: the gateway's spill rules and queue
//! gauges read [`DynBackend::local_load`], which only a loaded llama engine reports, so a test
//! of them wraps a mock that reports a fixed one.

use std::sync::Arc;

use backends::{AnyBackend, ChatRequest, ChatResponse, EventStream};
use futures::future::BoxFuture;

use crate::gateway::{DynBackend, LocalLoad};

/// Delegates to `inner` and reports `load` as the engine's queue depth and busy slots.
pub struct WithLoad {
    /// The backend that answers.
    pub inner: Arc<AnyBackend>,
    /// The load reported on every call.
    pub load: LocalLoad,
}

impl DynBackend for WithLoad {
    fn chat(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<ChatResponse>> {
        DynBackend::chat(&*self.inner, request)
    }

    fn chat_stream(&self, request: ChatRequest) -> BoxFuture<'_, backends::Result<EventStream>> {
        DynBackend::chat_stream(&*self.inner, request)
    }

    fn local_load(&self) -> Option<LocalLoad> {
        Some(self.load)
    }
}
