//! Building a gateway from `triage.yaml`: backends, keys, ledger store, policy core, listener.
//! `triage serve` (the binary's `cli_serve`) and the examples call [`start`] and then
//! [`Server::run`]; the benchmark harness's in-process `router:` target builds the same
//! [`Gateway`] without a listener and calls its axum app directly, so the wiring is the same
//! everywhere.
//!
//! Remote backends are ready at once. Under `triage serve`, local llama.cpp engines load on a
//! blocking thread after the listener is bound: the server answers `/healthz` immediately and
//! `/readyz` turns 200 once every model is loaded (a request routed to a model still loading
//! gets a 503 naming it, and falls back when its rule has a fallback). In-process users wait for
//! the models with [`Gateway::load_local`] instead.
//!
//! With `telemetry.otlp_endpoint` set, [`Gateway::build`] also starts the span exporter
//! ([`crate::telemetry`]); [`Gateway::close`] sends its last batch.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backends::anthropic::AnthropicBackend;
use backends::openai::OpenAiBackend;
use backends::{AnyBackend, BackendError};
use tokio::net::TcpListener;

use super::reload::Reloader;
use super::{app_live, serve_live, AppState, BackendSlot, Backends, GatewayOptions, LiveState};
use super::{ApiKeys, KeysError, Locality, PolicyCore};
use crate::config::{BackendSpec, Config, ConfigError, RemoteProvider};
use crate::store::{Store, StoreError};
use crate::telemetry::{self, OtlpExporter};

/// What `triage serve` needs to start.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The triage.yaml to load.
    pub config: PathBuf,
    /// Overrides `server.listen` (`127.0.0.1:0` picks a free port).
    pub listen: Option<SocketAddr>,
    /// Listen on an address other machines can reach even though no API keys are configured
    /// (`--allow-unauthenticated`); without it [`start`] refuses ([`ServeError::Unauthenticated`]).
    pub allow_unauthenticated: bool,
}

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration does not load or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The API keys variable is malformed.
    #[error("API keys: {0}")]
    Keys(#[from] super::auth::KeysError),
    /// A backend could not be built (bad URL, missing key variable) or its local model failed
    /// to load.
    #[error("backend `{name}`: {source}")]
    Backend {
        /// The backend's name in `backends:`.
        name: String,
        /// What the backend reported.
        #[source]
        source: BackendError,
    },
    /// A `kind: llama` backend is configured in a build without the `llama` feature.
    #[error("backend `{0}` is a local llama.cpp model, but this triage was built without the `llama` feature")]
    LlamaNotBuilt(String),
    /// The ledger database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error (address in use, permission denied, …).
        #[source]
        source: std::io::Error,
    },
    /// A non-loopback listen address without API keys, and no `--allow-unauthenticated`.
    #[error(
        "refusing to listen on {addr} without API keys: anyone who can reach it could use (and \
         spend on) every backend. Set `server.api_keys_env` in the config (and that variable), \
         listen on a loopback address such as 127.0.0.1, or pass --allow-unauthenticated if \
         the network is trusted"
    )]
    Unauthenticated {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// Accepting or serving connections failed.

    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A gateway bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    gateway: Gateway,
    reloader: Arc<Reloader>,
}

/// A gateway built from a configuration, not listening: its state (for [`app`] or in-process
/// `oneshot` calls), its routing core, and the local engines it has yet to load.
pub struct Gateway {
    live: LiveState,
    core: Arc<PolicyCore>,
    loads: Vec<LocalLoadJob>,
    /// The span exporter, when `telemetry.otlp_endpoint` is set.
    telemetry: Option<OtlpExporter>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("state", &self.live)
            .field("pending_local_loads", &self.loads.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Build every backend of `config` (remote ones ready, local ones pending until
    /// [`Gateway::load_local`] or [`Server::run`]) and the policy core over `store`.
    pub fn build(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        options: GatewayOptions,
    ) -> Result<Gateway, ServeError> {
        let (backends, loads) = build_backends(&config, |_, _| None)?;
        let mut gateway = Gateway::with_backends(config.clone(), store, backends, options);
        gateway.loads = loads;
        if let Some(endpoint) = &config.telemetry.otlp_endpoint {
            match OtlpExporter::spawn(
                endpoint,
                &config.telemetry.service_name,
                telemetry::backend_info(&config),
                gateway.live.current().events(),
            ) {
                Ok(exporter) => {
                    tracing::info!(endpoint = %endpoint, "exporting request spans over OTLP/HTTP");
                    gateway.telemetry = Some(exporter);
                }
                Err(e) => tracing::error!(error = %e, "request spans will not be exported"),
            }
        }
        Ok(gateway)
    }

    /// A gateway over backends the caller built (named as `config` names them): tests, and
    /// programs embedding the gateway with backends of their own.
    pub fn with_backends(
        config: Arc<Config>,
        store: Arc<dyn Store>,
        backends: Backends,
        options: GatewayOptions,
    ) -> Gateway {
        let core = Arc::new(PolicyCore::new(config, store));
        let state = AppState::new(backends, core.clone(), options);
        Gateway {
            live: LiveState::new(state),
            core,
            loads: Vec::new(),
            telemetry: None,
        }
    }

    /// The limits `triage serve` applies for `config` (body size, request deadline, transport
    /// limits, whether `/metrics` needs a key), without API keys: [`start`] adds those from the environment
    /// variable the config names; an in-process caller is the operator and needs none.
    pub fn limits_for(config: &Config) -> GatewayOptions {
        GatewayOptions {
            keys: None,
            metrics_require_key: config.server.metrics_require_key,
            body_limit_bytes: config.server.body_limit_bytes,
            request_deadline: config.server.request_timeout,
            admin_tenants: config.server.admin_tenants.clone(),
            cors_allow_origins: config.server.cors_allow_origins.clone(),
            transport: config.server.transport.clone(),
            ..GatewayOptions::default()
        }
    }

    /// The state new requests get (backends, routing core, metrics, events).
    pub fn state(&self) -> AppState {
        self.live.current()
    }

    /// The state a configuration reload replaces ([`Reloader`]).
    pub fn live(&self) -> &LiveState {
        &self.live
    }

    /// The routing core: configuration, policy, pricing and the store it records to.
    pub fn core(&self) -> &Arc<PolicyCore> {
        &self.core
    }

    /// The gateway's routes over its state (cheap: the state is shared).
    pub fn app(&self) -> axum::Router {
        app_live(self.live.clone())
    }

    /// Load every pending local engine now and wait for all of them. A model that fails to
    /// load marks its slot failed (as under `triage serve`) and the first failure is returned.
    pub async fn load_local(&mut self) -> Result<(), ServeError> {
        let mut first_error = None;
        for job in std::mem::take(&mut self.loads) {
            if let Err(e) = load_now(job).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Stop: end the live event streams and write out the ledger. The backends go with the
    /// last clone of the state (a local engine's thread ends when its last handle is dropped).
    pub async fn close(self) {
        self.live.current().shutdown_token().cancel();
        if let Some(exporter) = self.telemetry {
            exporter.finish(Duration::from_secs(5)).await;
        }
        let core = self.core;
        let _ = tokio::task::spawn_blocking(move || core.flush()).await;
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A local engine to load once the listener is up.
pub(super) struct LocalLoadJob {
    pub(super) slot: Arc<BackendSlot>,
    #[cfg_attr(not(feature = "llama"), allow(dead_code))]
    pub(super) spec: LocalSpec,
}

/// What a local slot loads: a chat engine or an embedding engine.
#[cfg_attr(not(feature = "llama"), allow(dead_code))]
pub(super) enum LocalSpec {
    Chat(backends::LlamaEngineConfig),
    Embedding(backends::EmbeddingEngineConfig),
    Classifier(crate::config::ClassifierSpec),
}

/// Build every backend of the config (remote ones ready, local ones pending), except those
/// `reuse` hands back already running (a reload keeps a backend whose spec did not change).
pub(super) fn build_backends(
    config: &Config,
    reuse: impl Fn(&str, &BackendSpec) -> Option<Arc<BackendSlot>>,
) -> Result<(Backends, Vec<LocalLoadJob>), ServeError> {
    let mut backends = Backends::new();
    let mut loads = Vec::new();
    let mut down = Vec::new();
    for (name, spec) in &config.backends {
        if let Some(slot) = reuse(name, spec) {
            backends.insert_shared(slot);
            continue;
        }
        match spec {
            BackendSpec::Remote(r) => {
                let cfg = r.config.clone();
                let backend = match r.provider {
                    RemoteProvider::OpenAi => OpenAiBackend::new(cfg).map(AnyBackend::OpenAi),
                    RemoteProvider::Anthropic => {
                        AnthropicBackend::new(cfg).map(AnyBackend::Anthropic)
                    }
                };
                match backend {
                    Ok(backend) => {
                        backends.insert(
                            BackendSlot::ready(name.clone(), Locality::Remote, Arc::new(backend))
                                .with_upstream_model(Some(r.config.model.clone())),
                        );
                    }
                    // A remote backend that cannot be built (its key variable is unset, most
                    // often) is marked down, loudly, instead of stopping the gateway: routes
                    // to it fall back, `/readyz` and `/metrics` show it.
                    Err(source) => {
                        tracing::error!(backend = %name, error = %source, "backend is down");
                        let slot = BackendSlot::pending(name.clone(), Locality::Remote)
                            .with_upstream_model(Some(r.config.model.clone()));
                        slot.fail(source.to_string());
                        down.push(ServeError::Backend {
                            name: name.clone(),
                            source,
                        });
                        backends.insert(slot);
                    }
                }
            }
            BackendSpec::Local(_) | BackendSpec::Embedding(_) | BackendSpec::Classifier(_) => {
                if !cfg!(feature = "llama") {
                    return Err(ServeError::LlamaNotBuilt(name.clone()));
                }
                let slot = backends.insert(BackendSlot::pending(name.clone(), Locality::Local));
                let spec = match spec {
                    BackendSpec::Embedding(e) => LocalSpec::Embedding(e.clone()),
                    BackendSpec::Classifier(c) => LocalSpec::Classifier(c.clone()),
                    BackendSpec::Local(l) => LocalSpec::Chat(l.clone()),
                    BackendSpec::Remote(_) => continue,
                };
                loads.push(LocalLoadJob { slot, spec });
            }
        }
    }
    if let Some(model) = config.classifier.embedding() {
        super::task_encoder::attach(config, &model.encoder, &mut backends, &mut loads);
    }
    // Nothing left to serve: stop with the first reason.
    if down.len() == config.backends.len() {
        if let Some(first) = down.into_iter().next() {
            return Err(first);
        }
    }
    Ok((backends, loads))
}

/// Whether a gateway may listen on `addr`: a loopback address always; any other (`0.0.0.0`, a
/// LAN address) only with API keys or when explicitly allowed.
pub fn check_exposure(addr: SocketAddr, has_keys: bool, allowed: bool) -> Result<(), ServeError> {
    if has_keys || allowed || addr.ip().to_canonical().is_loopback() {
        Ok(())
    } else {
        Err(ServeError::Unauthenticated { addr })
    }
}

/// Load the config, build the backends and the core, and bind the listener.
pub async fn start(options: &ServeOptions) -> Result<Server, ServeError> {
    start_with(options, Config::load(&options.config)?).await
}

/// [`start`] with a configuration already loaded (`triage serve` without a file: the one
/// [`crate::config::discover`] made from `models/`); `options.config` is not read.
pub async fn start_with(options: &ServeOptions, config: Config) -> Result<Server, ServeError> {
    let config = Arc::new(config);
    for warning in &config.warnings {
        tracing::warn!(config = %config.file, "{warning}");
    }
    let mut gateway_options = Gateway::limits_for(&config);
    gateway_options.keys = keys_for(&config)?;
    let addr = options.listen.unwrap_or(config.server.listen);
    check_exposure(
        addr,
        gateway_options.keys.is_some(),
        options.allow_unauthenticated,
    )?;
    let store = crate::store::open(&config.server.ledger)?;
    let gateway = Gateway::build(config.clone(), store, gateway_options)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener.local_addr()?;
    let reloader = Arc::new(Reloader::new(
        options.config.clone(),
        gateway.live.clone(),
        config,
        gateway.core.clone(),
        (addr, options.allow_unauthenticated),
    ));
    Ok(Server {
        listener,
        addr,
        gateway,
        reloader,
    })
}

/// The API keys `config` names, read from the environment: an unset variable means no keys
/// (said loudly; [`check_exposure`] still keeps such a gateway on loopback).
pub(super) fn keys_for(config: &Config) -> Result<Option<ApiKeys>, ServeError> {
    match &config.server.api_keys_env {
        Some(var) => match ApiKeys::from_env(var) {
            Ok(keys) => Ok(Some(keys)),
            Err(KeysError::Unset(_)) => {
                tracing::warn!(
                    variable = %var,
                    "server.api_keys_env names an unset variable: no API keys, every request is let in"
                );
                Ok(None)
            }
            Err(e) => Err(e.into()),
        },
        None => Ok(None),
    }
}

impl Server {
    /// The bound address (the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The state new requests get (backends, routing core, metrics, events).
    pub fn state(&self) -> AppState {
        self.gateway.state()
    }

    /// Reloads the configuration file the server was started from (on SIGHUP, or when
    /// [`Reloader::watch`] sees the file change).
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// Load local engines in the background, serve until `shutdown` resolves, let running
    /// requests finish, then write out the ledger.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let Server {
            listener,
            mut gateway,
            ..
        } = self;
        for job in std::mem::take(&mut gateway.loads) {
            load_in_background(job);
        }
        serve_live(listener, gateway.live.clone(), shutdown).await?;
        gateway.close().await;
        Ok(())
    }
}

#[cfg(feature = "llama")]
fn load_engine(job: &LocalLoadJob) -> Result<AnyBackend, BackendError> {
    match &job.spec {
        LocalSpec::Chat(c) => backends::llama::LlamaEngine::load(c.clone()).map(AnyBackend::Llama),
        LocalSpec::Embedding(e) => {
            backends::embed::EmbeddingEngine::load(e.clone()).map(AnyBackend::Embedding)
        }
        LocalSpec::Classifier(c) => load_classifier(c).map(AnyBackend::Classifier),
    }
}

/// Read the heads (each must answer the task it is listed under), load the encoder, check the
/// heads against it.
#[cfg(feature = "llama")]
fn load_classifier(
    spec: &crate::config::ClassifierSpec,
) -> Result<backends::classifier::ClassifierBackend, BackendError> {
    let mut heads = Vec::with_capacity(spec.heads.len());
    for (task, file) in &spec.heads {
        let head =
            backends::head::Head::load(file).map_err(|e| BackendError::Config(e.to_string()))?;
        if head.task != *task {
            return Err(BackendError::Config(format!(
                "{} is a head for task `{}`, listed under `{task}`",
                file.display(),
                head.task
            )));
        }
        heads.push(head);
    }
    let engine = backends::embed::EmbeddingEngine::load(spec.encoder.clone())?;
    backends::classifier::ClassifierBackend::new(engine, heads)
}

#[cfg(not(feature = "llama"))]
fn load_engine(_job: &LocalLoadJob) -> Result<AnyBackend, BackendError> {
    // `build_backends` refuses local backends without the feature; keep the slot honest anyway.
    Err(BackendError::Config(
        "built without the `llama` feature".to_string(),
    ))
}

/// Load one local engine on a blocking thread and install it (or mark its slot failed).
fn load_into_slot(job: LocalLoadJob) -> Result<(), ServeError> {
    let slot = job.slot.clone();
    match load_engine(&job) {
        Ok(engine) => {
            tracing::info!(backend = %slot.name, "local model loaded");
            slot.install(Arc::new(engine));
            Ok(())
        }
        Err(e) => {
            tracing::error!(backend = %slot.name, error = %e, "local model failed to load");
            slot.fail(e.to_string());
            Err(ServeError::Backend {
                name: slot.name.clone(),
                source: e,
            })
        }
    }
}

fn load_in_background(job: LocalLoadJob) {
    tokio::task::spawn_blocking(move || load_into_slot(job));
}

pub(super) async fn load_now(job: LocalLoadJob) -> Result<(), ServeError> {
    let name = job.slot.name.clone();
    tokio::task::spawn_blocking(move || load_into_slot(job))
        .await
        .map_err(|e| ServeError::Backend {
            name,
            source: BackendError::Engine(format!("model loading thread failed: {e}")),
        })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_open_without_keys_unless_allowed() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        for open in [
            "127.0.0.1:8080",
            "127.1.2.3:0",
            "[::1]:8080",
            "[::ffff:127.0.0.1]:80",
        ] {
            assert!(check_exposure(addr(open), false, false).is_ok(), "{open}");
        }
        for exposed in [
            "0.0.0.0:8080",
            "[::]:8080",
            "192.168.1.5:8080",
            "10.0.0.1:80",
        ] {
            let err = check_exposure(addr(exposed), false, false).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, ServeError::Unauthenticated { .. }));
            assert!(message.contains("--allow-unauthenticated"), "{message}");
            assert!(message.contains("api_keys_env"), "{message}");
            assert!(check_exposure(addr(exposed), true, false).is_ok());
            assert!(check_exposure(addr(exposed), false, true).is_ok());
        }
    }
}
