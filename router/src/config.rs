//! `triage.yaml`: loading and validation.
//!
//! The file is read in two steps, as TensorZero does: `serde_yaml` deserializes raw structs that
//! reject unknown fields (`serde_path_to_error` records where), then validation turns them into
//! runtime types in which an invalid policy cannot be expressed: every backend a route names
//! exists, a cascade has both sides, condition sets are non-empty, the last route matches every
//! request, and a privacy rule never names a remote backend. Every error names the file, the
//! line and column, and the field path, e.g.
//! `triage.yaml:12:5: routes[2].cascade.escalate_to: unknown backend "lmm" (known: llm, slm)`.
//!
//! serde_yaml carries no spans into deserialized values, so for errors found during validation
//! the position comes from a second, event-level parse (`yaml-rust2`) that indexes every field
//! path to its line and column.
//!
//! `serde_yaml`'s last release (0.9.34) is marked deprecated upstream; it is kept because the
//! design card names it and its read path is stable. Swapping it for a maintained fork only
//! touches [`Config::parse`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::classifier::{Classifier, Model, TaskRule};
use crate::pii::{PiiDetector, PiiKind};
use crate::policy::{
    Budgets, CascadeSpec, Conditions, Limits, Locality, NonEmpty, OnExhausted, Policy, Rule,
    RuleAction, Spill, TokenRange,
};
use crate::pricing::{BackendPrice, CostModel, PriceTable};

/// A config problem, located: `file:line:col: path: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path such as `routes[2].cascade.escalate_to` (empty for the whole file).
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        if !self.path.is_empty() && self.path != "." {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) structs.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    backends: BTreeMap<String, RawBackend>,
    #[serde(default)]
    pricing: BTreeMap<String, RawPrice>,
    #[serde(default)]
    reference_backend: Option<String>,
    routes: Vec<RawRoute>,
    #[serde(default)]
    budgets: Option<RawBudgets>,
    #[serde(default)]
    classifier: Option<RawClassifier>,
    #[serde(default)]
    pii: Option<RawPii>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    api_keys_env: Option<String>,
    metrics_require_key: Option<bool>,
    body_limit_bytes: Option<usize>,
    request_timeout: Option<RawDuration>,
    ledger: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum RawKind {
    Llama,
    Openai,
    Anthropic,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    kind: RawKind,
    /// llama: GGUF path relative to the config file; remote: the upstream model id.
    model: Option<String>,
    // llama
    slots: Option<usize>,
    threads: Option<i32>,
    threads_batch: Option<i32>,
    context: Option<u32>,
    batch_size: Option<u32>,
    queue: Option<usize>,
    chat_template: Option<String>,
    completion_mode: Option<bool>,
    flash_attention: Option<String>,
    // remote
    base_url: Option<String>,
    api_key_env: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    timeouts: Option<RawTimeouts>,
    retry: Option<RawRetry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    connect: Option<RawDuration>,
    first_byte: Option<RawDuration>,
    idle: Option<RawDuration>,
    total: Option<RawDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<u32>,
    initial_backoff: Option<RawDuration>,
    max_backoff: Option<RawDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input: Option<f64>,
    output: Option<f64>,
    model: Option<String>,
    machine_usd_per_hour: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    when: Option<RawWhen>,
    to: Option<String>,
    cascade: Option<RawCascade>,
    fallback: Option<Vec<String>>,
    spill: Option<RawSpill>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWhen {
    task: Option<StringList>,
    pii: Option<bool>,
    prompt_tokens: Option<RawRange>,
    content: Option<String>,
    model: Option<StringList>,
    tenant: Option<StringList>,
    tools: Option<bool>,
    stream: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRange {
    min: Option<usize>,
    max: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCascade {
    first: String,
    escalate_to: String,
    min_confidence: f64,
    min_token_logprob: Option<f64>,
    accept_if_constrained: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpill {
    to: String,
    queue_depth: Option<usize>,
    predicted_ttft_ms: Option<f64>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    daily_usd: Option<f64>,
    monthly_usd: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudgets {
    daily_usd: Option<f64>,
    monthly_usd: Option<f64>,
    per_key: Option<RawLimits>,
    tenants: Option<BTreeMap<String, RawLimits>>,
    on_exhausted: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClassifier {
    model: Option<String>,
    threshold: Option<f32>,
    #[serde(default)]
    rules: Vec<RawTaskRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaskRule {
    name: Option<String>,
    task: String,
    #[serde(default)]
    keywords: Vec<String>,
    regex: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPii {
    detect: Option<Vec<String>>,
    #[serde(default)]
    patterns: Vec<RawPattern>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    name: String,
    regex: String,
}

/// One string or a list of strings.
struct StringList(Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StringList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<StringList, E> {
                Ok(StringList(vec![v.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringList, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(StringList(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// A duration: seconds as a number, or a string such as `500ms`, `30s`, `2m`.
#[derive(Clone, Copy)]
struct RawDuration(Duration);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration: seconds, or a string like \"500ms\", \"30s\", \"2m\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<RawDuration, E> {
                u64::try_from(v)
                    .map(|v| RawDuration(Duration::from_secs(v)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<RawDuration, E> {
                Duration::try_from_secs_f64(v)
                    .map(RawDuration)
                    .map_err(|e| E::custom(format!("bad duration {v}: {e}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawDuration, E> {
                humantime::parse_duration(v)
                    .map(RawDuration)
                    .map_err(|e| E::custom(format!("bad duration {v:?}: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------
// Runtime types.

/// The validated configuration: everything the gateway and `route explain` need.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (as given), for messages.
    pub file: String,
    /// The directory relative paths are resolved against.
    pub dir: PathBuf,
    pub server: ServerConfig,
    pub backends: BTreeMap<String, BackendSpec>,
    pub costs: CostModel,
    pub policy: Policy,
    pub classifier: Classifier,
    pub pii: PiiDetector,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Environment variable holding the API keys (`key` or `tenant:key`, comma separated);
    /// `None`: no authentication.
    pub api_keys_env: Option<String>,
    /// `/metrics` asks for an API key too (off by default: Prometheus scrapers usually hold none).
    pub metrics_require_key: bool,
    pub body_limit_bytes: usize,
    pub request_timeout: Duration,
    /// The SQLite ledger file (resolved against the config's directory).
    pub ledger: PathBuf,
}

/// One configured backend.
#[derive(Clone, Debug, PartialEq)]
pub enum BackendSpec {
    Local(LocalBackendSpec),
    Remote(RemoteBackendSpec),
}

impl BackendSpec {
    pub fn locality(&self) -> Locality {
        match self {
            BackendSpec::Local(_) => Locality::Local,
            BackendSpec::Remote(_) => Locality::Remote,
        }
    }
}

/// A local llama.cpp engine; maps 1:1 onto `backends::llama::LlamaEngineConfig`.
#[derive(Clone, Debug, PartialEq)]
pub struct LocalBackendSpec {
    /// Absolute or resolved against the config file's directory.
    pub model_path: PathBuf,
    pub slots: usize,
    pub context_per_slot: u32,
    pub threads: i32,
    pub threads_batch: i32,
    pub batch_size: u32,
    pub queue_capacity: usize,
    pub chat_template: Option<String>,
    pub completion_mode: bool,
    pub flash_attention: backends::FlashAttention,
}

impl LocalBackendSpec {
    /// The engine configuration this backend loads with.
    #[cfg(feature = "llama")]
    pub fn to_llama_config(&self) -> backends::llama::LlamaEngineConfig {
        backends::llama::LlamaEngineConfig {
            model_path: self.model_path.clone(),
            slots: self.slots,
            context_per_slot: self.context_per_slot,
            threads: self.threads,
            threads_batch: self.threads_batch,
            batch_size: self.batch_size,
            queue_capacity: self.queue_capacity,
            chat_template: self.chat_template.clone(),
            completion_mode: self.completion_mode,
            flash_attention: self.flash_attention,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RemoteProvider {
    OpenAi,
    Anthropic,
}

/// A remote API; maps onto `backends::remote::RemoteConfig` (+ the provider picks the client).
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteBackendSpec {
    pub provider: RemoteProvider,
    pub base_url: String,
    pub model: String,
    /// The environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// `None` fields take the remote client's defaults.
    pub timeouts: TimeoutsSpec,
    pub retry: RetrySpec,
}

impl RemoteBackendSpec {
    /// The remote client's configuration; unset timeouts and retry fields take the client's
    /// defaults (`Timeouts::default()`, `RetryPolicy::default()`).
    pub fn to_remote_config(&self) -> backends::remote::RemoteConfig {
        use backends::remote::{RemoteConfig, RetryPolicy, Timeouts};
        let t = Timeouts::default();
        let r = RetryPolicy::default();
        RemoteConfig {
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key_env: self.api_key_env.clone(),
            headers: self.headers.clone(),
            timeouts: Timeouts {
                connect: self.timeouts.connect.unwrap_or(t.connect),
                first_byte: self.timeouts.first_byte.unwrap_or(t.first_byte),
                idle: self.timeouts.idle.unwrap_or(t.idle),
                total: self.timeouts.total.unwrap_or(t.total),
            },
            retry: RetryPolicy {
                max_attempts: self.retry.max_attempts.unwrap_or(r.max_attempts),
                base_delay: self.retry.initial_backoff.unwrap_or(r.base_delay),
                max_delay: self.retry.max_backoff.unwrap_or(r.max_delay),
            },
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TimeoutsSpec {
    pub connect: Option<Duration>,
    pub first_byte: Option<Duration>,
    pub idle: Option<Duration>,
    pub total: Option<Duration>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RetrySpec {
    pub max_attempts: Option<u32>,
    pub initial_backoff: Option<Duration>,
    pub max_backoff: Option<Duration>,
}

/// API keys read from the environment. Debug output never shows a key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeys {
    entries: Vec<(String, String)>,
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field(
                "tenants",
                &self.entries.iter().map(|(_, t)| t).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ApiKeys {
    /// Parse `key` or `tenant:key` entries separated by commas. A key without a tenant gets
    /// the tenant `key-<12 hex of its SHA-256>`, so ledgers never hold the key itself.
    pub fn parse(spec: &str) -> Result<ApiKeys, String> {
        let mut entries = Vec::new();
        for (i, raw) in spec.split(',').enumerate() {
            let raw = raw.trim();
            if raw.is_empty() {
                continue;
            }
            let (tenant, key) = match raw.split_once(':') {
                Some((t, k)) if !t.is_empty() && t.chars().all(is_name_char) => {
                    (t.to_string(), k.trim().to_string())
                }
                _ => (hashed_key_label(raw), raw.to_string()),
            };
            if key.is_empty() {
                return Err(format!("entry {} has an empty key", i + 1));
            }
            entries.push((key, tenant));
        }
        if entries.is_empty() {
            return Err("no keys".into());
        }
        Ok(ApiKeys { entries })
    }

    /// Read and parse the variable; the error never contains the value.
    pub fn from_env(var: &str) -> Result<ApiKeys, String> {
        let value = std::env::var(var)
            .map_err(|_| format!("environment variable {var} (server.api_keys_env) is not set"))?;
        ApiKeys::parse(&value).map_err(|e| format!("environment variable {var}: {e}"))
    }

    /// The tenant of a presented key, comparing against every key in constant time per byte.
    pub fn tenant_for(&self, presented: &str) -> Option<&str> {
        let mut found = None;
        for (key, tenant) in &self.entries {
            if constant_time_eq(key.as_bytes(), presented.as_bytes()) {
                found = Some(tenant.as_str());
            }
        }
        found
    }

    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(_, t)| t.as_str())
    }
}

/// `key-` and the first 12 hex digits of the key's SHA-256: a stable, non-reversible label.
pub fn hashed_key_label(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("key-{hex}")
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
/// Hand-written (8 lines) rather than a crate: the gateway compares a handful of keys.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

// ---------------------------------------------------------------------------------------------
// Locating field paths in the YAML text.

#[derive(Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(segs: &[Seg]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

enum Frame {
    Map { awaiting_key: bool },
    Seq { next: usize },
}

/// Maps every field path (`routes[2].cascade.escalate_to`) to the line/column of its value.
#[derive(Default)]
struct Locator {
    frames: Vec<Frame>,
    segs: Vec<Seg>,
    spots: HashMap<String, (usize, usize)>,
    /// Positions of mapping keys, for "unknown field" style messages.
    key_spots: HashMap<String, (usize, usize)>,
}

impl Locator {
    fn index(text: &str) -> Locator {
        let mut loc = Locator::default();
        let mut parser = yaml_rust2::parser::Parser::new_from_str(text);
        // A syntax error is reported by serde_yaml with its own position; the index is then
        // simply partial.
        let _ = parser.load(&mut loc, false);
        loc
    }

    fn begin_value(&mut self, mark: (usize, usize)) {
        if let Some(Frame::Seq { next }) = self.frames.last() {
            self.segs.push(Seg::Index(*next));
        }
        self.spots.insert(path_string(&self.segs), mark);
    }

    fn end_value(&mut self) {
        match self.frames.last_mut() {
            Some(Frame::Map { awaiting_key }) => {
                *awaiting_key = true;
                self.segs.pop();
            }
            Some(Frame::Seq { next }) => {
                *next += 1;
                self.segs.pop();
            }
            None => {}
        }
    }

    fn get(&self, path: &str) -> Option<(usize, usize)> {
        self.spots
            .get(path)
            .or_else(|| self.key_spots.get(path))
            .copied()
    }
}

impl yaml_rust2::parser::MarkedEventReceiver for Locator {
    fn on_event(&mut self, ev: yaml_rust2::Event, mark: yaml_rust2::scanner::Marker) {
        use yaml_rust2::Event;
        // yaml-rust2 markers: 1-based line, 0-based column.
        let at = (mark.line(), mark.col() + 1);
        let is_key = matches!(self.frames.last(), Some(Frame::Map { awaiting_key: true }));
        match ev {
            Event::Scalar(value, ..) if is_key => {
                if let Some(Frame::Map { awaiting_key }) = self.frames.last_mut() {
                    *awaiting_key = false;
                }
                self.segs.push(Seg::Key(value));
                self.key_spots.insert(path_string(&self.segs), at);
            }
            Event::Scalar(..) | Event::Alias(_) => {
                self.begin_value(at);
                self.end_value();
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if is_key {
                    // A complex key: not addressable by a path.
                    if let Some(Frame::Map { awaiting_key }) = self.frames.last_mut() {
                        *awaiting_key = false;
                    }
                    self.segs.push(Seg::Key("?".into()));
                } else {
                    self.begin_value(at);
                }
                self.frames.push(if matches!(ev, Event::MappingStart(..)) {
                    Frame::Map { awaiting_key: true }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.frames.pop();
                self.end_value();
            }
            _ => {}
        }
    }
}

/// Builds located errors during validation.
struct Ctx<'a> {
    file: &'a str,
    locator: Locator,
}

impl Ctx<'_> {
    fn err(&self, path: &str, message: impl Into<String>) -> ConfigError {
        let at = self.locate(path);
        ConfigError {
            file: self.file.to_string(),
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            path: path.to_string(),
            message: message.into(),
        }
    }

    /// The position of `path`, or of its nearest ancestor that is in the file.
    fn locate(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = path.to_string();
        loop {
            if let Some(at) = self.locator.get(&p) {
                return Some(at);
            }
            let cut = p.rfind(['.', '['])?;
            p.truncate(cut);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Loading and validation.

impl Config {
    /// Read and validate a config file. Relative paths in it are resolved against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: None,
            column: None,
            path: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Config::parse(&text, &file, &dir)
    }

    /// Validate config text; `file` names it in messages and `dir` anchors relative paths.
    pub fn parse(text: &str, file: &str, dir: &Path) -> Result<Config, ConfigError> {
        let ctx = Ctx {
            file,
            locator: Locator::index(text),
        };
        let de = serde_yaml::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let location = inner.location();
            let message = strip_path(&strip_location(&inner.to_string()), &path);
            let (line, column) = match location {
                Some(l) => (Some(l.line()), Some(l.column())),
                None => match ctx.locate(&path) {
                    Some((l, c)) => (Some(l), Some(c)),
                    None => (None, None),
                },
            };
            ConfigError {
                file: file.to_string(),
                line,
                column,
                path,
                message,
            }
        })?;
        validate(raw, &ctx, dir)
    }

    pub fn backend(&self, name: &str) -> Option<&BackendSpec> {
        self.backends.get(name)
    }
}

/// serde_yaml appends " at line L column C" to messages; the located error says it once.
fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) if msg[i..].contains(" column ") => msg[..i].to_string(),
        _ => msg.to_string(),
    }
}

/// serde_yaml prefixes messages with its own (shorter) path; the located error has the full one.
fn strip_path(msg: &str, path: &str) -> String {
    match msg.split_once(": ") {
        Some((p, rest)) if !p.is_empty() && path.starts_with(p) => rest.to_string(),
        _ => msg.to_string(),
    }
}

fn known(names: &BTreeSet<String>) -> String {
    names.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn validate(raw: RawConfig, ctx: &Ctx<'_>, dir: &Path) -> Result<Config, ConfigError> {
    let server = validate_server(&raw.server, ctx, dir)?;

    if raw.backends.is_empty() {
        return Err(ctx.err("backends", "at least one backend is required"));
    }
    let mut backends = BTreeMap::new();
    for (name, b) in &raw.backends {
        let path = format!("backends.{name}");
        check_name(name, &path, ctx)?;
        if name == "auto" {
            return Err(ctx.err(
                &path,
                "\"auto\" is reserved for routing; name the backend something else",
            ));
        }
        backends.insert(name.clone(), validate_backend(b, &path, ctx, dir)?);
    }
    let names: BTreeSet<String> = backends.keys().cloned().collect();
    let locality: BTreeMap<String, Locality> = backends
        .iter()
        .map(|(n, b)| (n.clone(), b.locality()))
        .collect();
    let backend_ref = |name: &str, path: &str| -> Result<String, ConfigError> {
        if names.contains(name) {
            Ok(name.to_string())
        } else {
            Err(ctx.err(
                path,
                format!("unknown backend {name:?} (known: {})", known(&names)),
            ))
        }
    };

    let costs = validate_pricing(&raw, &backends, &names, ctx)?;

    // Routes.
    if raw.routes.is_empty() {
        return Err(ctx.err("routes", "at least one route is required"));
    }
    let mut rules = Vec::with_capacity(raw.routes.len());
    let mut seen_names = BTreeSet::new();
    for (i, r) in raw.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        if r.name.trim().is_empty() {
            return Err(ctx.err(&format!("{path}.name"), "route name must not be empty"));
        }
        if !seen_names.insert(r.name.clone()) {
            return Err(ctx.err(
                &format!("{path}.name"),
                format!("duplicate route name {:?}", r.name),
            ));
        }
        let when = validate_when(r.when.as_ref(), &format!("{path}.when"), ctx)?;
        let action = match (&r.to, &r.cascade) {
            (Some(to), None) => RuleAction::To(backend_ref(to, &format!("{path}.to"))?),
            (None, Some(c)) => {
                let cp = format!("{path}.cascade");
                let first = backend_ref(&c.first, &format!("{cp}.first"))?;
                let escalate_to = backend_ref(&c.escalate_to, &format!("{cp}.escalate_to"))?;
                if first == escalate_to {
                    return Err(ctx.err(
                        &format!("{cp}.escalate_to"),
                        "a cascade must escalate to a different backend than `first`",
                    ));
                }
                if !(0.0..=1.0).contains(&c.min_confidence) {
                    return Err(ctx.err(
                        &format!("{cp}.min_confidence"),
                        format!(
                            "must be a probability between 0 and 1 (got {})",
                            c.min_confidence
                        ),
                    ));
                }
                if let Some(lp) = c.min_token_logprob {
                    if lp.is_nan() || lp > 0.0 {
                        return Err(ctx.err(
                            &format!("{cp}.min_token_logprob"),
                            format!("a log-probability is <= 0 (got {lp})"),
                        ));
                    }
                }
                RuleAction::Cascade(CascadeSpec {
                    first,
                    escalate_to,
                    min_confidence: c.min_confidence,
                    min_token_logprob: c.min_token_logprob,
                    accept_if_constrained: c.accept_if_constrained.unwrap_or(true),
                })
            }
            (Some(_), Some(_)) => {
                return Err(ctx.err(
                    &format!("{path}.cascade"),
                    "a route has one action: `to` or `cascade`, not both",
                ))
            }
            (None, None) => {
                return Err(ctx.err(
                    &path,
                    "a route needs an action: `to: BACKEND` or `cascade: {first, escalate_to, min_confidence}`",
                ))
            }
        };
        let first = match &action {
            RuleAction::To(b) => b.clone(),
            RuleAction::Cascade(c) => c.first.clone(),
        };
        let mut fallback = Vec::new();
        for (j, f) in r.fallback.iter().flatten().enumerate() {
            let fp = format!("{path}.fallback[{j}]");
            let f = backend_ref(f, &fp)?;
            if f == first || fallback.contains(&f) {
                return Err(ctx.err(
                    &fp,
                    format!("backend {f:?} is already tried before this fallback"),
                ));
            }
            fallback.push(f);
        }
        if r.fallback.as_ref().is_some_and(Vec::is_empty) {
            return Err(ctx.err(
                &format!("{path}.fallback"),
                "an empty fallback list; remove it or name backends",
            ));
        }
        let spill = match &r.spill {
            None => None,
            Some(s) => {
                let sp = format!("{path}.spill");
                let to = backend_ref(&s.to, &format!("{sp}.to"))?;
                if locality.get(&first) != Some(&Locality::Local) {
                    return Err(ctx.err(
                        &sp,
                        format!("spill applies when the route's first backend is local, and {first:?} is remote"),
                    ));
                }
                if to == first {
                    return Err(
                        ctx.err(&format!("{sp}.to"), "spill must go to a different backend")
                    );
                }
                if s.queue_depth.is_none() && s.predicted_ttft_ms.is_none() {
                    return Err(ctx.err(
                        &sp,
                        "spill needs `queue_depth` or `predicted_ttft_ms` (or both)",
                    ));
                }
                if let Some(t) = s.predicted_ttft_ms {
                    if !(t.is_finite() && t >= 0.0) {
                        return Err(ctx.err(
                            &format!("{sp}.predicted_ttft_ms"),
                            "must be a non-negative number of milliseconds",
                        ));
                    }
                }
                Some(Spill {
                    to,
                    queue_depth: s.queue_depth,
                    predicted_ttft_ms: s.predicted_ttft_ms,
                })
            }
        };
        // Privacy: a rule for requests with PII never names a remote backend.
        if when.pii == Some(true) {
            let mut reached: Vec<(&str, String)> = vec![];
            match &action {
                RuleAction::To(b) => reached.push((b, format!("{path}.to"))),
                RuleAction::Cascade(c) => {
                    reached.push((&c.first, format!("{path}.cascade.first")));
                    reached.push((&c.escalate_to, format!("{path}.cascade.escalate_to")));
                }
            }
            for (j, f) in fallback.iter().enumerate() {
                reached.push((f, format!("{path}.fallback[{j}]")));
            }
            if let Some(s) = &spill {
                reached.push((&s.to, format!("{path}.spill.to")));
            }
            for (b, p) in reached {
                if locality.get(b) == Some(&Locality::Remote) {
                    return Err(ctx.err(
                        &p,
                        format!("this rule matches requests with PII (`pii: true`) and would send them to remote backend {b:?}; privacy rules must keep data on local backends"),
                    ));
                }
            }
        }
        rules.push(Rule {
            name: r.name.clone(),
            when,
            action,
            fallback,
            spill,
        });
    }
    if let Some(last) = rules.last() {
        if !last.when.is_catch_all() {
            let i = rules.len() - 1;
            return Err(ctx.err(
                &format!("routes[{i}].when"),
                format!("the last route ({:?}) must match every request (no `when`), so every request gets a decision", last.name),
            ));
        }
    }
    let privacy_rule = rules
        .iter()
        .find(|r| {
            r.when.pii == Some(true)
                && Conditions {
                    pii: None,
                    ..r.when.clone()
                }
                .is_catch_all()
        })
        .map(|r| r.name.clone());

    let budgets = match &raw.budgets {
        None => None,
        Some(b) => Some(validate_budgets(b, &locality, &names, ctx)?),
    };

    let classifier = validate_classifier(raw.classifier.as_ref(), ctx, dir)?;
    let pii = validate_pii(raw.pii.as_ref(), ctx)?;

    Ok(Config {
        file: ctx.file.to_string(),
        dir: dir.to_path_buf(),
        server,
        backends,
        costs,
        policy: Policy {
            rules,
            budgets,
            backends: locality,
            privacy_rule,
        },
        classifier,
        pii,
    })
}

fn check_name(name: &str, path: &str, ctx: &Ctx<'_>) -> Result<(), ConfigError> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(ctx.err(
            path,
            format!("name {name:?} may only hold letters, digits, '_', '-' and '.'"),
        ));
    }
    Ok(())
}

fn resolve(dir: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

fn validate_server(s: &RawServer, ctx: &Ctx<'_>, dir: &Path) -> Result<ServerConfig, ConfigError> {
    let listen = match &s.listen {
        None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(l) => l.parse().map_err(|e| {
            ctx.err(
                "server.listen",
                format!("{l:?} is not an address such as 127.0.0.1:8080: {e}"),
            )
        })?,
    };
    if let Some(var) = &s.api_keys_env {
        if var.is_empty() || var.contains('=') {
            return Err(ctx.err("server.api_keys_env", "must name an environment variable"));
        }
    }
    let metrics_require_key = s.metrics_require_key.unwrap_or(false);
    if metrics_require_key && s.api_keys_env.is_none() {
        return Err(ctx.err(
            "server.metrics_require_key",
            "needs server.api_keys_env: without keys there is nothing to require",
        ));
    }
    let body_limit_bytes = s.body_limit_bytes.unwrap_or(4 * 1024 * 1024);
    if body_limit_bytes == 0 {
        return Err(ctx.err("server.body_limit_bytes", "must be > 0"));
    }
    let request_timeout = s
        .request_timeout
        .map(|d| d.0)
        .unwrap_or(Duration::from_secs(300));
    if request_timeout.is_zero() {
        return Err(ctx.err("server.request_timeout", "must be > 0"));
    }
    Ok(ServerConfig {
        listen,
        api_keys_env: s.api_keys_env.clone(),
        metrics_require_key,
        body_limit_bytes,
        request_timeout,
        ledger: resolve(dir, s.ledger.as_deref().unwrap_or("triage-ledger.sqlite")),
    })
}

fn validate_backend(
    b: &RawBackend,
    path: &str,
    ctx: &Ctx<'_>,
    dir: &Path,
) -> Result<BackendSpec, ConfigError> {
    let model = match &b.model {
        Some(m) if !m.trim().is_empty() => m.clone(),
        _ => {
            return Err(ctx.err(
                &format!("{path}.model"),
                match b.kind {
                    RawKind::Llama => "a llama backend needs `model: PATH/TO/MODEL.gguf`",
                    _ => "a remote backend needs `model: UPSTREAM_MODEL_ID`",
                },
            ))
        }
    };
    let wrong_kind = |field: &str, kind: &str| {
        ctx.err(
            &format!("{path}.{field}"),
            format!("`{field}` applies only to kind {kind}"),
        )
    };
    match b.kind {
        RawKind::Llama => {
            for (field, set) in [
                ("base_url", b.base_url.is_some()),
                ("api_key_env", b.api_key_env.is_some()),
                ("headers", b.headers.is_some()),
                ("timeouts", b.timeouts.is_some()),
                ("retry", b.retry.is_some()),
            ] {
                if set {
                    return Err(wrong_kind(field, "openai or anthropic"));
                }
            }
            let positive =
                |v: Option<i64>, field: &str, default: i64| -> Result<i64, ConfigError> {
                    match v {
                        None => Ok(default),
                        Some(n) if n >= 1 => Ok(n),
                        Some(n) => Err(ctx.err(
                            &format!("{path}.{field}"),
                            format!("must be >= 1 (got {n})"),
                        )),
                    }
                };
            let cores = std::thread::available_parallelism()
                .map(|n| n.get() as i64)
                .unwrap_or(1);
            let threads = positive(b.threads.map(i64::from), "threads", cores)?;
            let context = positive(b.context.map(i64::from), "context", 4096)?;
            if context < 64 {
                return Err(ctx.err(
                    &format!("{path}.context"),
                    "a context below 64 tokens cannot hold a chat prompt",
                ));
            }
            let flash_attention = match &b.flash_attention {
                None => backends::FlashAttention::default(),
                Some(v) => v
                    .parse()
                    .map_err(|e: String| ctx.err(&format!("{path}.flash_attention"), e))?,
            };
            Ok(BackendSpec::Local(LocalBackendSpec {
                model_path: resolve(dir, &model),
                slots: positive(b.slots.map(|v| v as i64), "slots", 4)? as usize,
                context_per_slot: context as u32,
                threads: threads as i32,
                threads_batch: positive(b.threads_batch.map(i64::from), "threads_batch", threads)?
                    as i32,
                batch_size: positive(b.batch_size.map(i64::from), "batch_size", 512)? as u32,
                queue_capacity: positive(b.queue.map(|v| v as i64), "queue", 64)? as usize,
                chat_template: b.chat_template.clone(),
                completion_mode: b.completion_mode.unwrap_or(false),
                flash_attention,
            }))
        }
        RawKind::Openai | RawKind::Anthropic => {
            for (field, set) in [
                ("slots", b.slots.is_some()),
                ("threads", b.threads.is_some()),
                ("threads_batch", b.threads_batch.is_some()),
                ("context", b.context.is_some()),
                ("batch_size", b.batch_size.is_some()),
                ("queue", b.queue.is_some()),
                ("chat_template", b.chat_template.is_some()),
                ("completion_mode", b.completion_mode.is_some()),
                ("flash_attention", b.flash_attention.is_some()),
            ] {
                if set {
                    return Err(wrong_kind(field, "llama"));
                }
            }
            let (provider, default_url) = match b.kind {
                RawKind::Anthropic => (RemoteProvider::Anthropic, "https://api.anthropic.com/v1"),
                _ => (RemoteProvider::OpenAi, "https://api.openai.com/v1"),
            };
            let base_url = b
                .base_url
                .clone()
                .unwrap_or_else(|| default_url.to_string());
            if !(base_url.starts_with("http://") || base_url.starts_with("https://"))
                || base_url.len() <= "https://".len()
            {
                return Err(ctx.err(
                    &format!("{path}.base_url"),
                    format!("{base_url:?} is not an http(s) URL"),
                ));
            }
            if let Some(var) = &b.api_key_env {
                if var.is_empty() || var.contains('=') || var.starts_with("sk-") {
                    return Err(ctx.err(
                        &format!("{path}.api_key_env"),
                        "must name an environment variable that holds the key (not the key itself)",
                    ));
                }
            }
            let t = b.timeouts.as_ref();
            let r = b.retry.as_ref();
            if r.and_then(|r| r.max_attempts) == Some(0) {
                return Err(ctx.err(
                    &format!("{path}.retry.max_attempts"),
                    "must be >= 1 (1 means no retry)",
                ));
            }
            Ok(BackendSpec::Remote(RemoteBackendSpec {
                provider,
                base_url: base_url.trim_end_matches('/').to_string(),
                model,
                api_key_env: b.api_key_env.clone(),
                headers: b.headers.clone().unwrap_or_default(),
                timeouts: TimeoutsSpec {
                    connect: t.and_then(|t| t.connect).map(|d| d.0),
                    first_byte: t.and_then(|t| t.first_byte).map(|d| d.0),
                    idle: t.and_then(|t| t.idle).map(|d| d.0),
                    total: t.and_then(|t| t.total).map(|d| d.0),
                },
                retry: RetrySpec {
                    max_attempts: r.and_then(|r| r.max_attempts),
                    initial_backoff: r.and_then(|r| r.initial_backoff).map(|d| d.0),
                    max_backoff: r.and_then(|r| r.max_backoff).map(|d| d.0),
                },
            }))
        }
    }
}

fn validate_pricing(
    raw: &RawConfig,
    backends: &BTreeMap<String, BackendSpec>,
    names: &BTreeSet<String>,
    ctx: &Ctx<'_>,
) -> Result<CostModel, ConfigError> {
    for name in raw.pricing.keys() {
        if !names.contains(name) {
            return Err(ctx.err(
                &format!("pricing.{name}"),
                format!("unknown backend {name:?} (known: {})", known(names)),
            ));
        }
    }
    let table = PriceTable::shipped().map_err(|e| ctx.err("pricing", e.to_string()))?;
    let mut prices = BTreeMap::new();
    for (name, spec) in backends {
        let path = format!("pricing.{name}");
        let given = raw.pricing.get(name);
        let non_negative = |v: f64, field: &str| -> Result<f64, ConfigError> {
            if v.is_finite() && v >= 0.0 {
                Ok(v)
            } else {
                Err(ctx.err(
                    &format!("{path}.{field}"),
                    format!("must be a non-negative price (got {v})"),
                ))
            }
        };
        let price = match (spec, given) {
            (BackendSpec::Local(_), None) => BackendPrice::Machine { usd_per_hour: 0.0 },
            (BackendSpec::Local(_), Some(p)) => {
                if p.input.is_some() || p.output.is_some() || p.model.is_some() {
                    return Err(ctx.err(
                        &path,
                        "a local backend is priced by `machine_usd_per_hour` only",
                    ));
                }
                BackendPrice::Machine {
                    usd_per_hour: non_negative(
                        p.machine_usd_per_hour.unwrap_or(0.0),
                        "machine_usd_per_hour",
                    )?,
                }
            }
            (BackendSpec::Remote(r), p) => {
                if p.is_some_and(|p| p.machine_usd_per_hour.is_some()) {
                    return Err(ctx.err(&format!("{path}.machine_usd_per_hour"), "applies only to local backends; remote ones use `input`/`output` per 1M tokens"));
                }
                match p.map(|p| (p.input, p.output, p.model.as_deref())) {
                    Some((Some(i), Some(o), None)) => BackendPrice::PerToken {
                        input: non_negative(i, "input")?,
                        output: non_negative(o, "output")?,
                    },
                    Some((Some(_), None, _)) | Some((None, Some(_), _)) => {
                        return Err(ctx.err(&path, "give both `input` and `output` (USD per 1M tokens)"))
                    }
                    Some((Some(_), Some(_), Some(_))) => {
                        return Err(ctx.err(&path, "give either `model` (look up the shipped table) or `input`/`output`, not both"))
                    }
                    other => {
                        let model = other.and_then(|o| o.2).unwrap_or(&r.model);
                        let hint = match r.provider {
                            RemoteProvider::Anthropic => Some("anthropic"),
                            RemoteProvider::OpenAi => None,
                        };
                        match table.lookup(model, hint) {
                            Some(m) => BackendPrice::PerToken { input: m.input, output: m.output },
                            None => {
                                let at = if other.is_some() { format!("{path}.model") } else { format!("backends.{name}.model") };
                                return Err(ctx.err(
                                    &at,
                                    format!("no price known for model {model:?}; set `pricing.{name}: {{input: USD_PER_1M, output: USD_PER_1M}}`"),
                                ));
                            }
                        }
                    }
                }
            }
        };
        prices.insert(name.clone(), price);
    }
    let remotes: Vec<&String> = backends
        .iter()
        .filter(|(_, b)| matches!(b, BackendSpec::Remote(_)))
        .map(|(n, _)| n)
        .collect();
    let reference = match &raw.reference_backend {
        Some(r) => {
            if !names.contains(r) {
                return Err(ctx.err("reference_backend", format!("unknown backend {r:?} (known: {})", known(names))));
            }
            if !matches!(prices.get(r), Some(BackendPrice::PerToken { .. })) {
                return Err(ctx.err("reference_backend", format!("{r:?} is local; savings are measured against a per-token (remote) price")));
            }
            Some(r.clone())
        }
        None => match remotes.as_slice() {
            [] => None,
            [one] => Some((*one).clone()),
            _ => {
                return Err(ctx.err(
                    "reference_backend",
                    format!("several remote backends ({}); set `reference_backend` to the one savings are measured against", remotes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
                ))
            }
        },
    };
    Ok(CostModel { prices, reference })
}

fn string_set(
    list: &Option<StringList>,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Option<NonEmpty<String>>, ConfigError> {
    match list {
        None => Ok(None),
        Some(StringList(items)) => {
            if let Some(i) = items.iter().position(|s| s.trim().is_empty()) {
                return Err(ctx.err(&format!("{path}[{i}]"), "empty name"));
            }
            NonEmpty::new(items.clone()).map(Some).ok_or_else(|| {
                ctx.err(
                    path,
                    "an empty list matches nothing; remove the condition or name values",
                )
            })
        }
    }
}

fn validate_when(
    w: Option<&RawWhen>,
    path: &str,
    ctx: &Ctx<'_>,
) -> Result<Conditions, ConfigError> {
    let Some(w) = w else {
        return Ok(Conditions::default());
    };
    let prompt_tokens = match &w.prompt_tokens {
        None => None,
        Some(r) => {
            if r.min.is_none() && r.max.is_none() {
                return Err(ctx.err(
                    &format!("{path}.prompt_tokens"),
                    "give `min`, `max` or both",
                ));
            }
            if let (Some(a), Some(b)) = (r.min, r.max) {
                if a > b {
                    return Err(ctx.err(
                        &format!("{path}.prompt_tokens"),
                        format!("min {a} > max {b}"),
                    ));
                }
            }
            Some(TokenRange {
                min: r.min,
                max: r.max,
            })
        }
    };
    let content = match &w.content {
        None => None,
        Some(re) => Some(
            Regex::new(re)
                .map_err(|e| ctx.err(&format!("{path}.content"), format!("invalid regex: {e}")))?,
        ),
    };
    Ok(Conditions {
        task: string_set(&w.task, &format!("{path}.task"), ctx)?,
        pii: w.pii,
        prompt_tokens,
        content,
        model: string_set(&w.model, &format!("{path}.model"), ctx)?,
        tenant: string_set(&w.tenant, &format!("{path}.tenant"), ctx)?,
        tools: w.tools,
        stream: w.stream,
    })
}

fn validate_limits(l: RawLimits, path: &str, ctx: &Ctx<'_>) -> Result<Limits, ConfigError> {
    for (field, v) in [("daily_usd", l.daily_usd), ("monthly_usd", l.monthly_usd)] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= 0.0) {
                let p = if path.is_empty() {
                    field.to_string()
                } else {
                    format!("{path}.{field}")
                };
                return Err(ctx.err(
                    &p,
                    format!("must be a non-negative amount of USD (got {v})"),
                ));
            }
        }
    }
    Ok(Limits {
        daily_usd: l.daily_usd,
        monthly_usd: l.monthly_usd,
    })
}

fn validate_budgets(
    b: &RawBudgets,
    locality: &BTreeMap<String, Locality>,
    names: &BTreeSet<String>,
    ctx: &Ctx<'_>,
) -> Result<Budgets, ConfigError> {
    let global = validate_limits(
        RawLimits {
            daily_usd: b.daily_usd,
            monthly_usd: b.monthly_usd,
        },
        "budgets",
        ctx,
    )?;
    let per_key = validate_limits(b.per_key.unwrap_or_default(), "budgets.per_key", ctx)?;
    let mut tenants = BTreeMap::new();
    for (t, l) in b.tenants.iter().flatten() {
        tenants.insert(
            t.clone(),
            validate_limits(*l, &format!("budgets.tenants.{t}"), ctx)?,
        );
    }
    if global == Limits::default() && per_key == Limits::default() && tenants.is_empty() {
        return Err(ctx.err(
            "budgets",
            "no limit set: give `daily_usd`, `monthly_usd`, `per_key` or `tenants`",
        ));
    }
    let on_exhausted = match b.on_exhausted.as_deref() {
        None | Some("refuse") => OnExhausted::Refuse,
        Some(name) => match locality.get(name) {
            Some(Locality::Local) => OnExhausted::Backend(name.to_string()),
            Some(Locality::Remote) => {
                return Err(ctx.err(
                    "budgets.on_exhausted",
                    format!("{name:?} is a remote backend; when the budget is spent, route to a local backend or `refuse`"),
                ))
            }
            None => {
                return Err(ctx.err(
                    "budgets.on_exhausted",
                    format!("unknown backend {name:?} (known: {}; or `refuse`)", known(names)),
                ))
            }
        },
    };
    Ok(Budgets {
        global,
        per_key,
        tenants,
        on_exhausted,
    })
}

fn validate_classifier(
    c: Option<&RawClassifier>,
    ctx: &Ctx<'_>,
    dir: &Path,
) -> Result<Classifier, ConfigError> {
    let Some(c) = c else {
        return Ok(Classifier {
            rules: Vec::new(),
            model: None,
            threshold: 0.5,
        });
    };
    let threshold = c.threshold.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&threshold) {
        return Err(ctx.err(
            "classifier.threshold",
            format!("must be between 0 and 1 (got {threshold})"),
        ));
    }
    let model = match &c.model {
        None => None,
        Some(p) => Some(
            Model::load(&resolve(dir, p))
                .map_err(|e| ctx.err("classifier.model", e.to_string()))?,
        ),
    };
    let mut rules = Vec::new();
    for (i, r) in c.rules.iter().enumerate() {
        let path = format!("classifier.rules[{i}]");
        if r.task.trim().is_empty() {
            return Err(ctx.err(&format!("{path}.task"), "empty task name"));
        }
        let name = r.name.clone().unwrap_or_else(|| format!("{}#{i}", r.task));
        let rule = TaskRule::new(&name, &r.task, &r.keywords, r.regex.as_deref()).map_err(|e| {
            let at = if r.regex.is_some() {
                format!("{path}.regex")
            } else {
                path.clone()
            };
            ctx.err(&at, e.to_string())
        })?;
        rules.push(rule);
    }
    Ok(Classifier {
        rules,
        model,
        threshold,
    })
}

fn validate_pii(p: Option<&RawPii>, ctx: &Ctx<'_>) -> Result<PiiDetector, ConfigError> {
    let Some(p) = p else {
        return Ok(PiiDetector::new());
    };
    let kinds = match &p.detect {
        None => PiiKind::BUILT_IN.to_vec(),
        Some(list) => {
            let mut kinds = Vec::new();
            for (i, name) in list.iter().enumerate() {
                kinds.push(PiiKind::built_in(name).ok_or_else(|| {
                    ctx.err(
                        &format!("pii.detect[{i}]"),
                        format!(
                            "unknown PII kind {name:?} (known: {})",
                            PiiKind::BUILT_IN
                                .iter()
                                .map(PiiKind::name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?);
            }
            kinds
        }
    };
    let mut custom = Vec::new();
    for (i, pat) in p.patterns.iter().enumerate() {
        let path = format!("pii.patterns[{i}]");
        check_name(&pat.name, &format!("{path}.name"), ctx)?;
        if PiiKind::built_in(&pat.name).is_some() {
            return Err(ctx.err(
                &format!("{path}.name"),
                format!("{:?} is a built-in kind", pat.name),
            ));
        }
        custom.push(
            PiiDetector::custom_pattern(&pat.name, &pat.regex)
                .map_err(|e| ctx.err(&format!("{path}.regex"), e.to_string()))?,
        );
    }
    Ok(PiiDetector::with_kinds(&kinds, custom))
}
