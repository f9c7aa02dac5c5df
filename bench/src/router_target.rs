//! `router:CONFIG[;model=NAME]`: the triage gateway built in-process from a `triage.yaml`, as a
//! harness target, so calibrate → evaluate runs without starting servers.
//!
//! Why through the gateway's axum app rather than an internal routing function: the app is the
//! code `triage serve` runs — request parsing, the policy's decision, cascade and fallbacks,
//! the tracker's billing, the SSE body — so the router column of a run measures what a client of
//! the server gets, minus the TCP hop. Each request is one `oneshot` call on
//! [`Gateway::app`]; the streamed body is decoded by the decoder the `openai:` target uses
//! ([`backends::openai::decode_stream`]), so the records carry the same fields as over HTTP:
//! the `x-triage-*` headers become [`Routing`], and the usage chunk's `triage` object (the cost
//! the gateway settles once the stream has ended) replaces the headers' view of it.
//!
//! Deliberate differences from an `openai:` target pointed at `triage serve`:
//! - requests go as the scenario built them, `choices` included (the HTTP client drops it);
//! - budgets and the ledger live in a private in-memory SQLite store: a benchmark neither
//!   writes into a production gateway's ledger nor starts from its spend;
//! - no API key is asked for (the harness is the operator), and nothing is retried;
//! - local models are loaded before the run starts (not in the background), and
//!   [`Target::close`] drops them — the engine threads end — when the run is over.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, Request};
use backends::{BackendError, ChatEvent, ChatRequest, EventStream, StreamOptions};
use futures::StreamExt;
use router::config::{BackendSpec, Config};
use router::gateway::Gateway;
use router::pricing::BackendPrice;
use router::store::{SqliteStore, Store};
use tower::ServiceExt;

use crate::error::{BenchError, Result};
use crate::target::{CloseFuture, Routing, SendFuture, Target, TargetInfo, TargetReply};

/// The `model` asked of the gateway when the spec names none: the policy decides.
pub const DEFAULT_MODEL: &str = "auto";

/// Error bodies longer than this are cut (they are only for the record's message).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A triage gateway running inside the harness process.
pub struct RouterTarget {
    info: TargetInfo,
    /// `model` of every request: `auto`, a model name the rules match, or a backend name.
    model: String,
    /// `None` once closed.
    gateway: Mutex<Option<Gateway>>,
}

impl std::fmt::Debug for RouterTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterTarget")
            .field("info", &self.info)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl RouterTarget {
    /// Build the gateway of the config at `config_path` (with an in-memory ledger) and load
    /// its local models. `spec` is recorded in the run metadata as given.
    pub async fn load(
        name: &str,
        config_path: &Path,
        model: &str,
        spec: Option<String>,
        price: Option<BackendPrice>,
    ) -> Result<RouterTarget> {
        let fail = |message: String| BenchError::Target {
            name: name.to_string(),
            message,
        };
        let config = Config::load(config_path).map_err(|e| fail(e.to_string()))?;
        let model_files = local_model_files(&config);
        let limits = Gateway::limits_for(&config);
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::in_memory().map_err(|e| fail(e.to_string()))?);
        let mut gateway =
            Gateway::build(Arc::new(config), store, limits).map_err(|e| fail(e.to_string()))?;
        if let Err(e) = gateway.load_local().await {
            gateway.close().await;
            return Err(fail(e.to_string()));
        }
        let info = TargetInfo {
            name: name.to_string(),
            kind: "router".into(),
            spec,
            model_files,
            price,
        };
        Ok(RouterTarget::new(info, model, gateway))
    }

    /// A target over a gateway the caller built (tests: backends that are test doubles).
    pub fn new(info: TargetInfo, model: impl Into<String>, gateway: Gateway) -> RouterTarget {
        RouterTarget {
            info,
            model: model.into(),
            gateway: Mutex::new(Some(gateway)),
        }
    }

    fn app(&self) -> std::result::Result<axum::Router, BackendError> {
        self.gateway
            .lock()
            .ok()
            .and_then(|g| g.as_ref().map(Gateway::app))
            .ok_or_else(|| {
                BackendError::NotReady(format!(
                    "router target `{}` is closed (its run is over)",
                    self.info.name
                ))
            })
    }

    async fn exchange(
        &self,
        request: ChatRequest,
    ) -> std::result::Result<TargetReply, BackendError> {
        let app = self.app()?;
        let body = request_body(request, &self.model)?;
        let http = Request::post("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .map_err(|e| BackendError::InvalidRequest(format!("cannot build the request: {e}")))?;
        // The gateway's router never fails as a service (its error type is `Infallible`).
        let response = match app.oneshot(http).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let first_byte = Instant::now();
        let status = response.status();
        let routing = Routing::from_headers(
            response
                .headers()
                .iter()
                .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?))),
        );
        if !status.is_success() {
            let body = axum::body::to_bytes(response.into_body(), MAX_ERROR_BODY)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_else(|e| format!("(error body unreadable: {e})"));
            return Err(status_error(status.as_u16(), body));
        }
        let chunks = response
            .into_body()
            .into_data_stream()
            .map(|chunk| chunk.map_err(|e| BackendError::Connection(e.to_string())));
        let first =
            futures::stream::once(async move { Ok(ChatEvent::FirstByte { at: first_byte }) });
        let events: EventStream = Box::pin(first.chain(backends::openai::decode_stream(chunks)));
        Ok(TargetReply { events, routing })
    }
}

impl Target for RouterTarget {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn info(&self) -> TargetInfo {
        self.info.clone()
    }

    fn send(&self, request: ChatRequest) -> SendFuture<'_> {
        Box::pin(self.exchange(request))
    }

    fn close(&self) -> CloseFuture<'_> {
        Box::pin(async move {
            let gateway = self.gateway.lock().ok().and_then(|mut g| g.take());
            if let Some(gateway) = gateway {
                gateway.close().await;
            }
        })
    }
}

/// The JSON body: the request as the scenario built it, for `model`, streamed with the final
/// usage chunk (which carries the gateway's settled cost).
fn request_body(
    mut request: ChatRequest,
    model: &str,
) -> std::result::Result<Vec<u8>, BackendError> {
    request.model = model.to_string();
    request.stream = Some(true);
    request
        .stream_options
        .get_or_insert_with(StreamOptions::default)
        .include_usage = true;
    serde_json::to_vec(&request)
        .map_err(|e| BackendError::InvalidRequest(format!("cannot encode request: {e}")))
}

/// The typed error for a refused request, as the HTTP client types a non-success status.
fn status_error(status: u16, body: String) -> BackendError {
    if status == 429 || status == 529 {
        BackendError::RateLimited {
            status,
            retry_after: None,
            body,
        }
    } else {
        BackendError::UpstreamStatus { status, body }
    }
}

/// The GGUF files of the config's local backends (hashed into the run metadata).
fn local_model_files(config: &Config) -> Vec<PathBuf> {
    config
        .backends
        .values()
        .filter_map(|b| match b {
            BackendSpec::Local(l) => Some(l.model_path.clone()),
            BackendSpec::Embedding(e) => Some(e.model_path.clone()),
            BackendSpec::Classifier(c) => Some(c.encoder.model_path.clone()),
            BackendSpec::Remote(_) => None,
        })
        .collect()
}
