//! The gateway test harness (feature `test-util`), shared by the router's, the harness's and
//! the dashboards' tests so each does not keep its own copy of the wiring.
//!
//! [`TestGateway::from_yaml`] builds the real gateway: a `triage.yaml` given as a string
//! (`Config::parse`), the real [`PolicyCore`] over an in-memory SQLite ledger, and named
//! backend slots filled with TEST DOUBLEs — usually a `backends::mock::MockBackend` chosen by
//! behaviour name, or any [`DynBackend`]. [`TestGateway::with_core`] puts a routing core of the
//! test's own (a scripted one) in place of the policy. The gateway answers in process
//! ([`TestGateway::send`], [`TestGateway::chat`]: a [`Reply`]) or on a real listener
//! ([`TestGateway::serve`]: a [`Served`] with its address and a stop handle).
//!
//! [`RedisServer`] starts a private `redis-server` for tests of the shared store.
//!
//! Nothing here panics: setup and requests return [`HarnessError`], which names what went
//! wrong (a bad config, an unknown mock behaviour, a body that is not JSON, quoted).

mod doubles;
pub mod postgres;
mod redis;
mod reply;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use backends::mock::MockBackend;
use backends::AnyBackend;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceExt;

pub use doubles::WithLoad;
pub use redis::RedisServer;
pub use reply::{chat_body, sse_data, streamed_text, Reply};

use crate::config::{Config, ConfigError};
use crate::gateway::{
    app, serve, AppState, BackendSlot, Backends, DynBackend, Gateway, GatewayOptions, LocalLoad,
    Locality, PolicyCore, RoutingCore,
};
use crate::ledger::LedgerRow;
use crate::store::{SqliteStore, Store, StoreError};

/// Why the harness could not build a gateway, send a request or read its answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HarnessError {
    /// The YAML config does not parse or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The in-memory ledger could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A mock backend was asked for with an unknown behaviour name.
    #[error("mock backend `{name}`: {source}")]
    Mock {
        /// The slot's name.
        name: String,
        /// What the mock reported.
        #[source]
        source: backends::BackendError,
    },
    /// No mock backend has this name.
    #[error("no mock backend named `{0}`")]
    NoSuchMock(String),
    /// The gateway was built with a routing core of the test's own, which keeps no SQL ledger.
    #[error("this gateway has a custom routing core, not the policy core with its ledger")]
    NoPolicyCore,
    /// The request could not be built (bad header value).
    #[error("request: {0}")]
    Request(#[from] axum::http::Error),
    /// The response body failed while it was read.
    #[error("response body: {0}")]
    Body(#[from] axum::Error),
    /// The response body is not UTF-8.
    #[error("response body is not UTF-8: {0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
    /// The response body is not JSON.
    #[error("not JSON ({source}): {body}")]
    NotJson {
        /// The parser's error.
        source: serde_json::Error,
        /// The body.
        body: String,
    },
    /// Binding, serving or the server task failed.
    #[error("server: {0}")]
    Server(#[from] std::io::Error),
    /// The server task panicked or was cancelled.
    #[error("server task: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// A private `redis-server` could not be started.
    #[error("redis-server: {0}")]
    RedisServer(String),
}

/// Where the routing decisions come from.
enum CoreSource {
    /// `triage.yaml` text for the policy core.
    Yaml(String),
    /// A core of the test's own.
    Custom(Arc<dyn RoutingCore>),
}

/// Builds a [`TestGateway`]: the routing core, the backend slots, the options.
pub struct TestGatewayBuilder {
    core: CoreSource,
    backends: Backends,
    mocks: BTreeMap<String, Arc<AnyBackend>>,
    options: GatewayOptions,
    store: Option<Arc<dyn Store>>,
    error: Option<HarnessError>,
}

impl std::fmt::Debug for TestGatewayBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGatewayBuilder")
            .field("backends", &self.backends)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl TestGatewayBuilder {
    fn new(core: CoreSource) -> Self {
        Self {
            core,
            backends: Backends::new(),
            mocks: BTreeMap::new(),
            options: GatewayOptions::default(),
            store: None,
            error: None,
        }
    }

    /// Keys and limits (default: [`GatewayOptions::default`]).
    pub fn options(mut self, options: GatewayOptions) -> Self {
        self.options = options;
        self
    }

    /// The ledger store of the policy core (default: a private in-memory SQLite database), e.g.
    /// a `PgStore` on a [`postgres::PgServer`].
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Slot `name` answered by a `MockBackend` with the behaviour named `behaviour` (see
    /// `backends::mock`); an unknown name fails [`TestGatewayBuilder::build`].
    pub fn mock(self, name: &str, locality: Locality, behaviour: &str) -> Self {
        match MockBackend::new(behaviour) {
            Ok(mock) => self.mock_backend(name, locality, mock),
            Err(source) => self.fail(HarnessError::Mock {
                name: name.to_string(),
                source,
            }),
        }
    }

    /// Slot `name` answered by `mock` (a scripted one, or one reporting engine seconds).
    pub fn mock_backend(mut self, name: &str, locality: Locality, mock: MockBackend) -> Self {
        let mock = Arc::new(AnyBackend::Mock(mock));
        self.mocks.insert(name.to_string(), mock.clone());
        self.backend(name, locality, mock)
    }

    /// Local slot `name` answered by a mock with the behaviour named `behaviour` that reports
    /// `load` as its engine's queue and slots ([`WithLoad`]).
    pub fn mock_under_load(self, name: &str, behaviour: &str, load: LocalLoad) -> Self {
        let mock = match MockBackend::new(behaviour) {
            Ok(mock) => Arc::new(AnyBackend::Mock(mock)),
            Err(source) => {
                return self.fail(HarnessError::Mock {
                    name: name.to_string(),
                    source,
                })
            }
        };
        let mut this = self;
        this.mocks.insert(name.to_string(), mock.clone());
        this.backend(
            name,
            Locality::Local,
            Arc::new(WithLoad { inner: mock, load }),
        )
    }

    /// Slot `name` answered by any backend.
    pub fn backend(mut self, name: &str, locality: Locality, backend: Arc<dyn DynBackend>) -> Self {
        self.backends
            .insert(BackendSlot::ready(name, locality, backend));
        self
    }

    /// The encoder of a `classifier: { kind: embedding }` task classifier (what `triage serve`
    /// attaches from the config): a loaded engine, or a TEST DOUBLE answering `sentence_vector`.
    pub fn task_encoder(mut self, slot: BackendSlot) -> Self {
        self.backends.set_task_encoder(Arc::new(slot));
        self
    }

    /// A slot as the caller built it (one still loading, or one whose load failed).
    pub fn slot(mut self, slot: BackendSlot) -> Self {
        self.backends.insert(slot);
        self
    }

    fn fail(mut self, error: HarnessError) -> Self {
        self.error.get_or_insert(error);
        self
    }

    /// The gateway, or the first thing that went wrong while describing it.
    pub fn build(self) -> Result<TestGateway, HarnessError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let (state, policy) = match self.core {
            CoreSource::Yaml(yaml) => {
                let config = Arc::new(Config::parse(&yaml, "test.yaml", Path::new("."))?);
                let store: Arc<dyn Store> = match self.store {
                    Some(store) => store,
                    None => Arc::new(SqliteStore::in_memory()?),
                };
                let gateway = Gateway::with_backends(config, store, self.backends, self.options);
                (gateway.state().clone(), Some(gateway))
            }
            CoreSource::Custom(core) => (AppState::new(self.backends, core, self.options), None),
        };
        Ok(TestGateway {
            state,
            policy,
            mocks: self.mocks,
        })
    }
}

/// A gateway under test: its state, its policy core (when built from YAML) and its mocks.
pub struct TestGateway {
    state: AppState,
    policy: Option<Gateway>,
    mocks: BTreeMap<String, Arc<AnyBackend>>,
}

impl std::fmt::Debug for TestGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestGateway")
            .field("state", &self.state)
            .field("mocks", &self.mocks.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TestGateway {
    /// The real policy core from `yaml` (a `triage.yaml`; relative paths resolve against the
    /// working directory) over an in-memory SQLite ledger. Add the backends it names.
    pub fn from_yaml(yaml: &str) -> TestGatewayBuilder {
        TestGatewayBuilder::new(CoreSource::Yaml(yaml.to_string()))
    }

    /// A routing core of the test's own (a scripted TEST DOUBLE) in place of the policy.
    pub fn with_core(core: Arc<dyn RoutingCore>) -> TestGatewayBuilder {
        TestGatewayBuilder::new(CoreSource::Custom(core))
    }

    /// The state the handlers share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The policy core, when built with [`TestGateway::from_yaml`].
    pub fn policy_core(&self) -> Option<&Arc<PolicyCore>> {
        self.policy.as_ref().map(Gateway::core)
    }

    /// The gateway as `triage serve` and the harness's `router:` target hold it, when built
    /// with [`TestGateway::from_yaml`].
    pub fn into_gateway(self) -> Option<Gateway> {
        self.policy
    }

    /// The ledger rows written so far, oldest first (the writer is flushed first).
    pub fn ledger(&self) -> Result<Vec<LedgerRow>, HarnessError> {
        let core = self.policy_core().ok_or(HarnessError::NoPolicyCore)?;
        core.flush();
        let mut rows = core.store().recent(u32::MAX as usize)?;
        rows.reverse();
        Ok(rows)
    }

    /// How many requests the mock in slot `name` received.
    pub fn calls(&self, name: &str) -> Result<u64, HarnessError> {
        match self.mocks.get(name).map(|b| &**b) {
            Some(AnyBackend::Mock(mock)) => Ok(mock.calls()),
            _ => Err(HarnessError::NoSuchMock(name.to_string())),
        }
    }

    /// Send `request` to the gateway in process and read the whole answer.
    pub async fn send(&self, request: Request<Body>) -> Result<Reply, HarnessError> {
        let response = match app(self.state.clone()).oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8(body.to_vec())?,
        })
    }

    /// `POST /v1/chat/completions` with `body`, and `x-triage-task: task` when given.
    pub async fn chat(
        &self,
        body: serde_json::Value,
        task: Option<&str>,
    ) -> Result<Reply, HarnessError> {
        let mut request =
            Request::post("/v1/chat/completions").header("content-type", "application/json");
        if let Some(task) = task {
            request = request.header("x-triage-task", task);
        }
        self.send(request.body(Body::from(body.to_string()))?).await
    }

    /// `POST /v1/messages` (Anthropic's Messages API) with `body` and the extra `headers`.
    pub async fn messages(
        &self,
        body: serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Result<Reply, HarnessError> {
        let mut request = Request::post("/v1/messages").header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body.to_string()))?).await
    }

    /// Serve on a real listener at `addr` (port 0: any free port) until [`Served::stop`] or
    /// until the handle is dropped.
    pub async fn serve(&self, addr: SocketAddr) -> Result<Served, HarnessError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, self.state.clone(), async move {
            let _ = stopped.await;
        }));
        Ok(Served {
            addr,
            stop: Some(stop),
            server,
        })
    }
}

/// A gateway serving on a real listener. Dropping the handle starts a graceful shutdown.
#[derive(Debug)]
pub struct Served {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<std::io::Result<()>>,
}

impl Served {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Begin the graceful shutdown (stop accepting, end the event streams, let running
    /// requests finish) without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Wait until the server has stopped (after [`Served::begin_shutdown`]).
    pub async fn stopped(self) -> Result<(), HarnessError> {
        Ok(self.server.await??)
    }

    /// Shut down gracefully and wait until the server has stopped.
    pub async fn stop(mut self) -> Result<(), HarnessError> {
        self.begin_shutdown();
        self.stopped().await
    }
}
