//! The validated configuration: what the gateway, `triage route explain` and the harness read.
//!
//! Backends are held as the configuration types of the backends crate themselves
//! ([`backends::LlamaEngineConfig`], [`backends::remote::RemoteConfig`]), with every default
//! already applied, so what was validated is exactly what is loaded and no field is mirrored.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use backends::remote::RemoteConfig;
use backends::LlamaEngineConfig;

use crate::classifier::Classifier;
use crate::pii::PiiDetector;
use crate::policy::{Locality, Policy};
use crate::pricing::CostModel;

/// The validated configuration: everything the gateway and `route explain` need.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (as given), for messages.
    pub file: String,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    /// The `server:` section.
    pub server: ServerConfig,
    /// The `backends:` section, by backend name.
    pub backends: BTreeMap<String, BackendSpec>,
    /// Every backend's price and the reference for savings (`pricing:`, `reference_backend`).
    pub costs: CostModel,
    /// The rules of `routes:` and the `budgets:`.
    pub policy: Policy,
    /// The task classifier (`classifier:`).
    pub classifier: Classifier,
    /// The PII detector (`pii:`).
    pub pii: PiiDetector,
    /// Where budgets and rate limits live (`store:`, `store_failure:`, `rate_limits:`).
    pub shared: crate::reserve::SharedConfig,
    /// Where request spans are exported (`telemetry:`).
    pub telemetry: Telemetry,
    /// What loaded but deserves attention (e.g. a classifier model file not trained yet); the
    /// gateway logs each at start.
    pub warnings: Vec<String>,
}

impl Config {
    /// The backend named `name` in `backends:`, if there is one.
    pub fn backend(&self, name: &str) -> Option<&BackendSpec> {
        self.backends.get(name)
    }
}

/// The `server:` section, defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    /// Address and port the gateway listens on.
    pub listen: SocketAddr,
    /// Environment variable holding the API keys (`key` or `tenant:key`, comma separated; read
    /// by [`crate::gateway::ApiKeys::from_env`]); `None`: no authentication.
    pub api_keys_env: Option<String>,
    /// `/metrics` asks for an API key too (off by default: Prometheus scrapers usually hold none).
    pub metrics_require_key: bool,
    /// Largest request body accepted, bytes (default 4 MiB).
    pub body_limit_bytes: usize,
    /// Longest a chat request may take, first byte to last (default 300 s).
    pub request_timeout: Duration,
    /// The ledger: a SQLite file (resolved against the config's directory; the default
    /// `triage-ledger.sqlite`) or a `postgres://` database shared by replicas.
    pub ledger: crate::store::LedgerLocation,
    /// Tenants whose keys see every tenant's requests on `/v1/triage/events` (others see only
    /// their own); needs `api_keys_env`.
    pub admin_tenants: Vec<String>,
    /// Web origins (`https://app.example.com`) allowed to call the gateway from a browser;
    /// empty (the default): no CORS headers at all, so browsers keep other sites out.
    pub cors_allow_origins: Vec<String>,
    /// Timeouts, header size, connection and in-flight limits of the listener.
    pub transport: crate::gateway::TransportLimits,
}

/// One configured backend. Equality is what a reload compares: an unchanged spec keeps its
/// running backend (a loaded model is not loaded again).
#[derive(Clone, Debug, PartialEq)]
pub enum BackendSpec {
    /// A local llama.cpp engine, exactly as it loads (the model path resolved against the
    /// config file's directory). The engine itself needs feature `llama`; its configuration
    /// does not, so a build without it still validates the file.
    Local(LlamaEngineConfig),
    /// A remote API (`kind: openai` or `kind: anthropic`).
    Remote(RemoteBackendSpec),
    /// A local sentence-embedding model (`kind: embedding`): it answers `/v1/embeddings` only,
    /// so no route may send chat to it.
    Embedding(backends::EmbeddingEngineConfig),
    /// An encoder classifier (`kind: classifier`): it answers chat requests that carry
    /// `choices`, from embeddings and trained heads.
    Classifier(ClassifierSpec),
}

/// A `kind: classifier` backend as it loads.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassifierSpec {
    /// The embedding engine the heads read (the GGUF they were trained on).
    pub encoder: backends::EmbeddingEngineConfig,
    /// Head files by the task they answer, resolved against the config file's directory.
    pub heads: BTreeMap<String, PathBuf>,
}

impl BackendSpec {
    /// Whether chat requests can be sent to it (every kind but `embedding`).
    pub fn is_chat(&self) -> bool {
        !matches!(self, BackendSpec::Embedding(_))
    }

    /// Whether the backend is local or remote (what the privacy and budget guards need).
    pub fn locality(&self) -> Locality {
        match self {
            BackendSpec::Local(_) | BackendSpec::Embedding(_) | BackendSpec::Classifier(_) => {
                Locality::Local
            }
            BackendSpec::Remote(_) => Locality::Remote,
        }
    }
}

/// Which protocol a remote backend speaks (and so which client serves it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteProvider {
    /// OpenAI Chat Completions (`kind: openai`): OpenAI, vLLM, llama-server, another triage.
    OpenAi,
    /// The Anthropic Messages API (`kind: anthropic`).
    Anthropic,
}

/// A remote API: its protocol and the client's configuration, unset timeouts and retry fields
/// already at the client's defaults (`Timeouts::default()`, `RetryPolicy::default()`).
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteBackendSpec {
    /// Which protocol it speaks.
    pub provider: RemoteProvider,
    /// URL, model, key variable, timeouts, retries and extensions, as the client uses them.
    pub config: RemoteConfig,
}

/// The `telemetry:` section: OpenTelemetry export of one span per request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Telemetry {
    /// OTLP/HTTP collector URL (`http://127.0.0.1:4318`, or the full `…/v1/traces`); `None`: no
    /// export.
    pub otlp_endpoint: Option<String>,
    /// The `service.name` resource attribute (default `triage`).
    pub service_name: String,
}
