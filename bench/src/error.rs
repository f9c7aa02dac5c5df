//! Typed errors of the harness. [`BenchError`] is what the library's fallible operations
//! return: every error about a file names the file, and where the underlying parser knows it,
//! the line and the field. The smaller types say what is wrong with one value (a scorer spec,
//! a load section, a name, a threshold edit); the caller adds the file or flag it came from.

use std::path::PathBuf;

/// An error from loading scenarios, running targets or analysing runs; its message names the file
/// (and line and field where known) or the target.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file that could not be read or written.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A YAML/JSON file does not match what is expected. `location` is `line L column C`
    /// when known, `field` the path of the offending field (e.g. `scorers[1].choices`).
    #[error("{path}{}: {}{message}", location.as_ref().map(|l| format!(":{l}")).unwrap_or_default(), if field.is_empty() || field == "." { String::new() } else { format!("field `{field}`: ") })]
    Parse {
        /// The file that failed to parse.
        path: PathBuf,
        /// `line L column C` (or `line L`) when the parser knows the position.
        location: Option<String>,
        /// Path of the offending field (e.g. `scorers[1].choices`); empty or `.` for the whole
        /// document.
        field: String,
        /// What the parser expected or found.
        message: String,
    },
    /// The file parses but says something invalid (a scorer without choices, …).
    #[error("{path}: {message}")]
    Invalid {
        /// The file holding the invalid content.
        path: PathBuf,
        /// What is invalid and, usually, how to fix it.
        message: String,
    },
    /// A dataset row is missing a field or holds an unusable value.
    #[error("{path}: row {row}: {message}")]
    Dataset {
        /// The dataset file (or the scenario holding inline items).
        path: PathBuf,
        /// 1-based position of the offending item (JSONL line, CSV/TSV data row, JSON array
        /// element, inline item); 0 for an unreadable CSV/TSV header row.
        row: usize,
        /// Which field is missing or why its value is unusable.
        message: String,
    },
    /// A template refers to a field the item does not have.
    #[error(
        "template refers to `{{{{{field}}}}}` but the item has no such field (it has: {available})"
    )]
    MissingField {
        /// The field the template names.
        field: String,
        /// The item's field names, comma-separated.
        available: String,
    },
    /// A target spec (`--target name=kind:...`) could not be understood or built.
    #[error("target `{name}`: {message}")]
    Target {
        /// The target's name (`NAME` of `--target NAME=SPEC`).
        name: String,
        /// What is wrong with its spec or why it could not be built.
        message: String,
    },
    /// A run directory lacks what an analysis needs.
    #[error("{0}")]
    Analysis(String),
    /// An error from the backend a target runs on (connection, HTTP status, stream, engine).
    #[error(transparent)]
    Backend(#[from] backends::BackendError),
}

/// The harness's result type, with [`BenchError`] as the default error.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

impl BenchError {
    /// A [`BenchError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BenchError::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`BenchError::Invalid`] for `path`.
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
    /// The name that was given.
    pub name: String,
    /// The names that exist.
    pub known: &'static str,
}

/// A scenario's `load` section whose fields don't fit together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadSpecError {
    /// `mode: open` without a positive, finite `rate`.
    #[error("mode `open` needs `rate` > 0 (requests per second)")]
    OpenWithoutRate,
    /// `concurrency: 0`.
    #[error("`concurrency` must be at least 1")]
    ZeroConcurrency,
    /// A `concurrency` other than 1 with `mode: sequential`.
    #[error("`concurrency` needs mode `closed`")]
    ConcurrencyWithoutClosed,
    /// Both a request count and a duration; the run must end on one or the other.
    #[error("give `requests` or `duration_s`, not both")]
    RequestsAndDuration,
    /// `max_in_flight: 0`.
    #[error("`max_in_flight` must be at least 1")]
    ZeroMaxInFlight,
}

/// A scorer spec that cannot be built, or a scenario item it cannot score.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ScorerError {
    /// A `choice` scorer with an empty `choices` list.
    #[error("`choices` must list at least one label")]
    NoChoices,
    /// A `choice` scorer's label at this index (0-based) is empty.
    #[error("choice {0} is empty")]
    EmptyChoice(usize),
    /// A `choice` scorer lists this label twice.
    #[error("choice `{0}` is listed twice")]
    DuplicateChoice(String),
    /// A `regex` scorer's `pattern` does not compile.
    #[error("bad `pattern`: {0}")]
    Pattern(regex::Error),
    /// A `json_valid` scorer's `schema` is not a valid JSON Schema; the validator's message.
    #[error("bad `schema`: {0}")]
    Schema(String),
    /// A `numeric` scorer's `tolerance` or `relative` is negative.
    #[error("tolerances must not be negative")]
    NegativeTolerance,
    /// A scorer's `pass_at` threshold (the value given) is outside [0, 1].
    #[error("`pass_at` must be in [0, 1], got {0}")]
    PassAt(f64),
    /// A `pii_leak` scorer without `field`.
    #[error("`field` must name the item field listing PII values")]
    NoPiiField,
    /// The item's PII field does not hold a list of strings.
    #[error("`{field}` must be a list of strings, found {found}")]
    PiiNotStrings {
        /// The item field named by the scorer's `field`.
        field: String,
        /// The offending value (the whole field, or a non-string element), as JSON.
        found: String,
    },
    /// The item lacks the `pii_leak` scorer's `field` (named here).
    #[error("the item has no `{0}` field listing its PII values")]
    NoPiiValues(String),
    /// A `choice` scorer's item expects an answer that is not among its labels.
    #[error("expected answer `{expected}` is not one of the choices {choices:?}")]
    NotAChoice {
        /// The item's expected answer.
        expected: String,
        /// The scorer's labels.
        choices: Vec<String>,
    },
    /// A `numeric` scorer's item expects an answer (given here) with no number in it.
    #[error("expected answer `{0}` holds no number")]
    NoNumber(String),
    /// A `json_match` scorer's item expects an answer (given here) that is not a JSON object.
    #[error("expected answer `{0}` is not a JSON object")]
    NotJsonObject(String),
}

/// Why `min_confidence` could not be rewritten in a triage.yaml.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ThresholdEditError {
    /// The config has no `min_confidence:` at all.
    #[error("no `min_confidence:` found (is there a cascade route?)")]
    NotFound,
    /// Several routes (this many) carry `min_confidence` and no `--route` said which.
    #[error("{0} routes carry `min_confidence`; name one with --route")]
    Ambiguous(usize),
    /// `--route` named a route (given here) that has no `min_confidence`.
    #[error("no route named `{0}` with `min_confidence`")]
    NoSuchRoute(String),
    /// The edit's internal pattern failed to compile (not expected to happen).
    #[error(transparent)]
    Regex(#[from] regex::Error),
}
