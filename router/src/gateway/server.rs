//! Building a running gateway from `triage.yaml`: backends, keys, ledger store, policy core,
//! listener. `triage serve` (the binary's `cli_serve`) and the examples call [`start`] and then
//! [`Server::run`], so the wiring is the same everywhere.
//!
//! Remote backends are ready at once. Local llama.cpp engines load on a blocking thread after
//! the listener is bound: the server answers `/healthz` immediately and `/readyz` turns 200 once
//! every model is loaded (a request routed to a model still loading gets a 503 naming it, and
//! falls back when its rule has a fallback).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use backends::anthropic::AnthropicBackend;
use backends::openai::OpenAiBackend;
use backends::{AnyBackend, BackendError};
use tokio::net::TcpListener;

use super::ApiKeys;
use super::{serve, AppState, BackendSlot, Backends, GatewayOptions, Locality, PolicyCore};
use crate::config::{BackendSpec, Config, ConfigError, RemoteProvider};
use crate::store::{SqliteStore, Store, StoreError};

/// What `triage serve` needs to start.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub config: PathBuf,
    /// Overrides `server.listen` (`127.0.0.1:0` picks a free port).
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("API keys: {0}")]
    Keys(String),
    #[error("backend `{name}`: {source}")]
    Backend {
        name: String,
        #[source]
        source: BackendError,
    },
    #[error("backend `{0}` is a local llama.cpp model, but this triage was built without the `llama` feature")]
    LlamaNotBuilt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A gateway bound to its address, ready to run.
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    core: Arc<PolicyCore>,
    loads: Vec<LocalLoadJob>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// A local engine to load once the listener is up.
struct LocalLoadJob {
    slot: Arc<BackendSlot>,
    #[cfg_attr(not(feature = "llama"), allow(dead_code))]
    spec: backends::LlamaEngineConfig,
}

/// Build every backend of the config (remote ones ready, local ones pending).
fn build_backends(config: &Config) -> Result<(Backends, Vec<LocalLoadJob>), ServeError> {
    let mut backends = Backends::new();
    let mut loads = Vec::new();
    for (name, spec) in &config.backends {
        match spec {
            BackendSpec::Remote(r) => {
                let cfg = r.config.clone();
                let backend = match r.provider {
                    RemoteProvider::OpenAi => OpenAiBackend::new(cfg).map(AnyBackend::OpenAi),
                    RemoteProvider::Anthropic => {
                        AnthropicBackend::new(cfg).map(AnyBackend::Anthropic)
                    }
                }
                .map_err(|source| ServeError::Backend {
                    name: name.clone(),
                    source,
                })?;
                backends.insert(
                    BackendSlot::ready(name.clone(), Locality::Remote, Arc::new(backend))
                        .with_upstream_model(Some(r.config.model.clone())),
                );
            }
            BackendSpec::Local(l) => {
                if !cfg!(feature = "llama") {
                    return Err(ServeError::LlamaNotBuilt(name.clone()));
                }
                let slot = backends.insert(BackendSlot::pending(name.clone(), Locality::Local));
                loads.push(LocalLoadJob {
                    slot,
                    spec: l.clone(),
                });
            }
        }
    }
    Ok((backends, loads))
}

/// Load the config, build the backends and the core, and bind the listener.
pub async fn start(options: &ServeOptions) -> Result<Server, ServeError> {
    let config = Arc::new(Config::load(&options.config)?);
    for warning in &config.warnings {
        tracing::warn!(config = %config.file, "{warning}");
    }
    let keys = match &config.server.api_keys_env {
        Some(var) => Some(ApiKeys::from_env(var).map_err(ServeError::Keys)?),
        None => None,
    };
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&config.server.ledger)?);
    let (backends, loads) = build_backends(&config)?;
    let gateway_options = GatewayOptions {
        keys,
        metrics_require_key: config.server.metrics_require_key,
        body_limit_bytes: config.server.body_limit_bytes,
        request_deadline: config.server.request_timeout,
        ..GatewayOptions::default()
    };
    let core = Arc::new(PolicyCore::new(config.clone(), store));
    let state = AppState::new(backends, core.clone(), gateway_options);
    let addr = options.listen.unwrap_or(config.server.listen);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let addr = listener.local_addr()?;
    Ok(Server {
        listener,
        addr,
        state,
        core,
        loads,
    })
}

impl Server {
    /// The bound address (the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Load local engines in the background, serve until `shutdown` resolves, let running
    /// requests finish, then write out the ledger.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        for job in self.loads {
            load_local(job);
        }
        serve(self.listener, self.state, shutdown).await?;
        let core = self.core;
        let _ = tokio::task::spawn_blocking(move || core.flush()).await;
        Ok(())
    }
}

#[cfg(feature = "llama")]
fn load_local(job: LocalLoadJob) {
    use backends::llama::LlamaEngine;
    let slot = job.slot;
    tokio::task::spawn_blocking(move || match LlamaEngine::load(job.spec) {
        Ok(engine) => {
            tracing::info!(backend = %slot.name, "local model loaded");
            slot.install(Arc::new(AnyBackend::Llama(engine)));
        }
        Err(e) => {
            tracing::error!(backend = %slot.name, error = %e, "local model failed to load");
            slot.fail(e.to_string());
        }
    });
}

#[cfg(not(feature = "llama"))]
fn load_local(job: LocalLoadJob) {
    // `build_backends` refuses local backends without the feature; keep the slot honest anyway.
    job.slot
        .fail("built without the `llama` feature".to_string());
}
