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
//! - `raw`: the file as written (private): structs with `deny_unknown_fields`, backends as a
//!   `kind`-tagged enum;
//! - [`locate`]: field paths to line and column (a second, event-level parse with `yaml-rust2`,
//!   since serde_yaml keeps no spans), and located deserialization errors; public, because the
//!   harness locates its scenario errors with it too;
//! - [`discover`]: the configuration `triage serve` makes from `models/` when it has none;
//! - `validate`: raw into runtime types, one file per section (private);
//! - `spec`: the runtime types, [`Config`] and the backends as their own crate's configs.
//!
//! API keys are named here (`server.api_keys_env`) but read and checked by the gateway
//! ([`crate::gateway::ApiKeys`]).
//!
//! `serde_yaml`'s last release (0.9.34) is marked deprecated upstream; it is kept because the
//! design card names it and its read path is stable. Swapping it for a maintained fork only
//! touches [`locate::from_str`] and the backend error refinement in `raw`.

pub mod discover;
pub mod locate;
mod raw;
pub mod report;
mod spec;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};

pub use spec::{
    BackendSpec, ClassifierSpec, Config, RemoteBackendSpec, RemoteProvider, ServerConfig, Telemetry,
};

pub(crate) use validate::is_name_char;

use locate::{Locator, YamlError};
use raw::RawConfig;
use validate::Ctx;

/// A config problem, located: `file:line:col: path: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The config file, as given.
    pub file: String,
    /// 1-based line and column, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Field path such as `routes[2].cascade.escalate_to` (empty for the whole file).
    pub path: String,
    /// What is wrong.
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

impl ConfigError {
    fn from_yaml(file: &str, e: YamlError) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: e.line,
            column: e.column,
            path: e.path,
            message: e.message,
        }
    }
}

/// The JSON schema of `triage.yaml`, generated from the raw types the file is read into (published
/// at `schema/triage.schema.json`; `triage config schema` prints it). It describes the file's
/// shape; what only validation can check (a route naming an unknown backend, the last route
/// matching every request) is left to [`Config::load`].
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawConfig)).unwrap_or(serde_json::Value::Null)
}

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
        let raw: RawConfig = locate::from_str(text).map_err(|e| {
            ConfigError::from_yaml(file, raw::refine_backend_error(text, &ctx.locator, e))
        })?;
        validate::validate(raw, &ctx, dir)
    }
}
