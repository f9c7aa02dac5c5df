//! The OpenAI-compatible HTTP gateway (`triage serve`).
//!
//! [`app`] builds the axum [`Router`]; tests drive it in-process with `tower::ServiceExt::oneshot`
//! and [`serve`] runs it on a listener with graceful, bounded shutdown (running streams finish
//! within `server.shutdown_grace`, the live event streams end). The transport's limits —
//! timeouts, header size, connections and requests in flight, panics — live in [`transport`].
//! Endpoints:
//!
//! - `POST /v1/chat/completions` — streaming (SSE) and non-streaming; see [`chat`];
//! - `POST /v1/embeddings` — a local embedding model or an OpenAI upstream; see [`embeddings`];
//! - `POST /v1/messages`, `POST /v1/messages/count_tokens` — Anthropic's Messages API over the
//!   same routing and execution (`messages`), with Anthropic-shaped answers and errors;
//! - `GET /v1/models` — `auto`, the routes and the backends;
//! - `GET /healthz` (process up), `GET /readyz` (every backend loaded);
//! - `GET /metrics` — Prometheus text ([`crate::metrics`]);
//! - `GET /v1/triage/events` — SSE, one JSON [`RequestSummary`] per finished request.
//!
//! Every error, including unknown paths and bad bodies, is an OpenAI-shaped body ([`ApiError`]),
//! and Anthropic-shaped on `/v1/messages…` (the outermost layer re-renders it there).

mod admission;
pub mod auth;
pub mod backend;
pub mod cascade;
pub mod chat;
pub mod configured_routing;
mod cors;
pub mod embeddings;
pub mod error;
mod info;
mod messages;
mod prologue;
pub mod reload;
pub mod routing;
pub mod server;
pub mod sse;
mod task_encoder;
pub mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{Method, Uri};
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;

pub use auth::{ApiKeys, Auth, KeysError};
pub use backend::{BackendSlot, Backends, DynBackend, LocalLoad, Locality};
pub use configured_routing::PolicyCore;
pub use error::ApiError;
pub use reload::{ReloadReport, Reloader};
pub use routing::{AdmitInput, RouteInfo, RouteInput, Routed, RoutingCore};
pub use server::{check_exposure, start, start_with, Gateway, ServeError, ServeOptions, Server};
pub use transport::TransportLimits;

use crate::events::{EventBus, RequestSummary};
use crate::metrics::Metrics;

/// Limits and keys of one gateway.
#[derive(Clone, Debug)]
pub struct GatewayOptions {
    /// Bearer keys; `None`: no authentication.
    pub keys: Option<ApiKeys>,
    /// `/metrics` checks the keys too (it is open by default, for Prometheus scrapers).
    pub metrics_require_key: bool,
    /// Largest accepted request body.
    pub body_limit_bytes: usize,
    /// Longest a chat request may take, first byte to last.
    pub request_deadline: Duration,
    /// Summaries kept for slow `/v1/triage/events` subscribers.
    pub events_capacity: usize,
    /// Tenants whose keys see every tenant's requests on `/v1/triage/events`.
    pub admin_tenants: Vec<String>,
    /// Browser origins allowed by CORS; empty: no CORS headers (browsers keep other sites out).
    pub cors_allow_origins: Vec<String>,
    /// Timeouts, header size and connection / in-flight limits of the transport.
    pub transport: TransportLimits,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        Self {
            keys: None,
            metrics_require_key: false,
            body_limit_bytes: 4 * 1024 * 1024,
            request_deadline: Duration::from_secs(600),
            events_capacity: 1024,
            admin_tenants: Vec::new(),
            cors_allow_origins: Vec::new(),
            transport: TransportLimits::default(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) backends: Backends,
    pub(crate) core: Arc<dyn RoutingCore>,
    /// `model` values that go through the policy (cached from the core).
    pub(crate) policy_models: Vec<String>,
    pub(crate) auth: Auth,
    pub(crate) options: GatewayOptions,
    /// Shared by every configuration the gateway reloads to.
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: EventBus,
    pub(crate) shutdown: CancellationToken,
    /// Places for chat completions in flight (`transport.max_in_flight`).
    pub(crate) in_flight: Arc<Semaphore>,
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("backends", &self.inner.backends)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `backends`, routed by `core`, with `options`' keys and limits; metrics and the
    /// event bus start empty.
    pub fn new(backends: Backends, core: Arc<dyn RoutingCore>, options: GatewayOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                backends,
                policy_models: core.policy_models().into_iter().map(|m| m.name).collect(),
                core,
                auth: Auth::new(options.keys.clone()).with_admins(options.admin_tenants.clone()),
                in_flight: Arc::new(Semaphore::new(options.transport.max_in_flight)),
                events: EventBus::new(options.events_capacity),
                options,
                metrics: Arc::new(Metrics::new()),
                shutdown: CancellationToken::new(),
            }),
        }
    }

    /// The state of a reloaded configuration: new backends, routing core and keys, and this
    /// state's metrics, event bus, shutdown token, in-flight places and transport options
    /// (which a reload does not change).
    pub fn reconfigured(
        &self,
        backends: Backends,
        core: Arc<dyn RoutingCore>,
        keys: Option<ApiKeys>,
        admin_tenants: Vec<String>,
    ) -> AppState {
        let old = &self.inner;
        let mut options = old.options.clone();
        options.keys = keys.clone();
        options.admin_tenants = admin_tenants.clone();
        AppState {
            inner: Arc::new(Inner {
                backends,
                policy_models: core.policy_models().into_iter().map(|m| m.name).collect(),
                core,
                auth: Auth::new(keys).with_admins(admin_tenants),
                options,
                metrics: old.metrics.clone(),
                events: old.events.clone(),
                shutdown: old.shutdown.clone(),
                in_flight: old.in_flight.clone(),
            }),
        }
    }

    /// The backends requests can reach, by name.
    pub fn backends(&self) -> &Backends {
        &self.inner.backends
    }

    /// The Prometheus counters and gauges `/metrics` serves.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The bus finished-request summaries are published on.
    pub fn events(&self) -> &EventBus {
        &self.inner.events
    }

    /// Subscribe to finished-request summaries (as `/v1/triage/events` does).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<RequestSummary>> {
        self.inner.events.subscribe()
    }

    /// The tenant of the request's key (`None` on an open gateway). A refusal (401) is counted
    /// in `triage_auth_rejections_total{endpoint}` and writes no ledger row: a flood of
    /// unauthenticated requests must not grow the ledger.
    pub(crate) fn authenticate(
        &self,
        headers: &axum::http::HeaderMap,
        endpoint: &'static str,
    ) -> Result<Option<String>, ApiError> {
        self.inner.auth.check(headers).inspect_err(|_| {
            self.inner.metrics.auth_rejected(endpoint);
        })
    }

    /// Ends the live event streams; [`serve`] triggers it when shutdown begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }
}

/// The gateway's current state, replaced whole when the configuration is reloaded. Each request
/// takes the state current when it arrives (axum extracts [`AppState`] from it through
/// [`FromRef`]) and keeps it to its end, so a request or stream in flight finishes on the
/// configuration it started with while new requests see the new one.
#[derive(Clone)]
pub struct LiveState(Arc<ArcSwap<Inner>>);

impl std::fmt::Debug for LiveState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("LiveState").field(&self.current()).finish()
    }
}

impl LiveState {
    /// Start from `state`.
    pub fn new(state: AppState) -> Self {
        LiveState(Arc::new(ArcSwap::new(state.inner)))
    }

    /// The state new requests get.
    pub fn current(&self) -> AppState {
        AppState {
            inner: self.0.load_full(),
        }
    }

    /// Make `state` the one new requests get (atomically; requests already running keep theirs).
    pub fn replace(&self, state: AppState) {
        self.0.store(state.inner);
    }
}

impl FromRef<LiveState> for AppState {
    fn from_ref(live: &LiveState) -> AppState {
        live.current()
    }
}

impl From<AppState> for LiveState {
    fn from(state: AppState) -> Self {
        LiveState::new(state)
    }
}

/// The gateway's routes over a fixed state (see [`app_live`]).
pub fn app(state: AppState) -> Router {
    app_live(LiveState::new(state))
}

/// The gateway's routes over a state that reloads may replace, under the request-level limits
/// of [`transport`]: header size, body read deadline, chat completions in flight, and a `500`
/// for a panicking handler. The limits are the first state's (a reload keeps them).
pub fn app_live(live: LiveState) -> Router {
    let state = live.current();
    let limit = state.inner.options.body_limit_bytes;
    let cors = cors::layer(&state.inner.options.cors_allow_origins);
    let chat = post(chat::chat_completions).route_layer(middleware::from_fn_with_state(
        state.clone(),
        transport::limit_in_flight,
    ));
    let embeddings = post(embeddings::embeddings).route_layer(middleware::from_fn_with_state(
        state.clone(),
        transport::limit_in_flight,
    ));
    let messages = post(messages::messages).route_layer(middleware::from_fn_with_state(
        state.clone(),
        transport::limit_in_flight,
    ));
    let router = Router::new()
        .route("/v1/chat/completions", chat)
        .route("/v1/embeddings", embeddings)
        .route("/v1/messages", messages)
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/models", get(info::models))
        .route("/v1/triage/events", get(info::events))
        .route("/healthz", get(info::healthz))
        .route("/readyz", get(info::readyz))
        .route("/metrics", get(info::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            transport::guard_request,
        ))
        .layer(CatchPanicLayer::custom(transport::panic_response(
            state.clone(),
        )))
        .layer(middleware::from_fn(messages::errors::anthropic_errors))
        .with_state(live);
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::path_not_found(method.as_str(), uri.path())
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::method_not_allowed(method.as_str(), uri.path())
}

/// Serve until `shutdown` resolves, under the state's [`TransportLimits`]; then stop accepting,
/// end the event streams, let running requests (streams included) finish for up to
/// `shutdown_grace`, and drop the connections still open.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_live(listener, LiveState::new(state), shutdown).await
}

/// [`serve`] over a state that reloads may replace ([`Reloader`]).
pub async fn serve_live(
    listener: TcpListener,
    live: LiveState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let state = live.current();
    let token = state.shutdown_token();
    let limits = state.inner.options.transport.clone();
    let router = app_live(live);
    transport::serve_listener(listener, router, limits, state, async move {
        shutdown.await;
        token.cancel();
    })
    .await
}
