//! Typed errors of the harness. [`BenchError`] is what the library's fallible operations
//! return: every error about a file names the file, and where the underlying parser knows it,
//! the line and the field. The smaller types say what is wrong with one value (a scorer spec,
//! a load section, a name, a threshold edit); the caller adds the file or flag it came from.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A YAML/JSON file does not match what is expected. `location` is `line L column C`
    /// when known, `field` the path of the offending field (e.g. `scorers[1].choices`).
    #[error("{path}{}: {}{message}", location.as_ref().map(|l| format!(":{l}")).unwrap_or_default(), if field.is_empty() || field == "." { String::new() } else { format!("field `{field}`: ") })]
    Parse {
        path: PathBuf,
        location: Option<String>,
        field: String,
        message: String,
    },
    /// The file parses but says something invalid (a scorer without choices, …).
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A dataset row is missing a field or holds an unusable value.
    #[error("{path}: row {row}: {message}")]
    Dataset {
        path: PathBuf,
        row: usize,
        message: String,
    },
    /// A template refers to a field the item does not have.
    #[error(
        "template refers to `{{{{{field}}}}}` but the item has no such field (it has: {available})"
    )]
    MissingField { field: String, available: String },
    /// A target spec (`--target name=kind:...`) could not be understood or built.
    #[error("target `{name}`: {message}")]
    Target { name: String, message: String },
    /// A run directory lacks what an analysis needs.
    #[error("{0}")]
    Analysis(String),
    #[error(transparent)]
    Backend(#[from] backends::BackendError),
}

pub type Result<T, E = BenchError> = std::result::Result<T, E>;

impl BenchError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        BenchError::Invalid {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A name that is not one of the known ones (`--format`, `--benchmark`, `--router`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}` ({known})")]
pub struct UnknownName {
    /// What was named: `format`, `benchmark`, `router`.
    pub what: &'static str,
    pub name: String,
    /// The names that exist.
    pub known: &'static str,
}

/// A scenario's `load` section whose fields don't fit together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadSpecError {
    #[error("mode `open` needs `rate` > 0 (requests per second)")]
    OpenWithoutRate,
    #[error("`concurrency` must be at least 1")]
    ZeroConcurrency,
    #[error("`concurrency` needs mode `closed`")]
    ConcurrencyWithoutClosed,
    #[error("give `requests` or `duration_s`, not both")]
    RequestsAndDuration,
    #[error("`max_in_flight` must be at least 1")]
    ZeroMaxInFlight,
}

/// A scorer spec that cannot be built, or a scenario item it cannot score.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScorerError {
    #[error("`choices` must list at least one label")]
    NoChoices,
    #[error("choice {0} is empty")]
    EmptyChoice(usize),
    #[error("choice `{0}` is listed twice")]
    DuplicateChoice(String),
    #[error("bad `pattern`: {0}")]
    Pattern(regex::Error),
    #[error("bad `schema`: {0}")]
    Schema(String),
    #[error("tolerances must not be negative")]
    NegativeTolerance,
    #[error("`pass_at` must be in [0, 1], got {0}")]
    PassAt(f64),
    #[error("`field` must name the item field listing PII values")]
    NoPiiField,
    #[error("`{field}` must be a list of strings, found {found}")]
    PiiNotStrings { field: String, found: String },
    #[error("the item has no `{0}` field listing its PII values")]
    NoPiiValues(String),
    #[error("expected answer `{expected}` is not one of the choices {choices:?}")]
    NotAChoice {
        expected: String,
        choices: Vec<String>,
    },
    #[error("expected answer `{0}` holds no number")]
    NoNumber(String),
    #[error("expected answer `{0}` is not a JSON object")]
    NotJsonObject(String),
}

/// Why `min_confidence` could not be rewritten in a triage.yaml.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdEditError {
    #[error("no `min_confidence:` found (is there a cascade route?)")]
    NotFound,
    #[error("{0} routes carry `min_confidence`; name one with --route")]
    Ambiguous(usize),
    #[error("no route named `{0}` with `min_confidence`")]
    NoSuchRoute(String),
    #[error(transparent)]
    Regex(#[from] regex::Error),
}
