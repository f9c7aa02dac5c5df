//! Errors of the dashboard: files that cannot be read or do not match what the harness and
//! `triage hw` write (each names the file and, where it applies, the line and field), terminal
//! failures, and what goes wrong reading a live gateway ([`LiveError`]).

use std::path::PathBuf;

/// Why `triage dash` could not start or had to stop: an input file it cannot use, or the terminal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DashError {
    /// The I/O error is part of the message (not a separate cause, so it is printed once).
    #[error("{path}: {error}")]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The operating-system error.
        error: std::io::Error,
    },
    /// A JSON/JSONL file whose content does not match; `location` is `line L` or
    /// `line L column C`, `field` the JSON path of the offending field when known.
    #[error("{path}{}: {}{message}", location.as_ref().map(|l| format!(":{l}")).unwrap_or_default(), field.as_ref().filter(|f| !f.is_empty() && f.as_str() != ".").map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Parse {
        /// The file that failed to parse (`summary.json`, `requests.jsonl`, a hw report, …).
        path: PathBuf,
        /// `line L` or `line L column C`, when known.
        location: Option<String>,
        /// JSON path of the offending field, when known.
        field: Option<String>,
        /// The parser's message.
        message: String,
    },
    /// A file that parses but holds something unusable (e.g. a hw report whose `system` is not
    /// an object).
    #[error("{path}: {message}")]
    Invalid {
        /// The offending file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The terminal could not be set up, read or drawn to (raw mode, alternate screen, input
    /// events).
    #[error("terminal: {0}")]
    Terminal(std::io::Error),
    /// A live-gateway error converted with `?`; nothing produces it today (the live tasks report
    /// their errors as text and recover).
    #[error("live view: {0}")]
    Live(#[from] LiveError),
}

/// Why the live view could not read the gateway. The live tasks report it (as text) and carry
/// on: they reconnect or poll again, so it is never fatal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// The request got no answer; `detail` is the root cause after its kind
    /// (`connect: Connection refused (os error 111)`).
    #[error("GET {path}: {detail}")]
    Request {
        /// The gateway path requested (`/metrics`, `/v1/triage/events`).
        path: &'static str,
        /// The root cause, e.g. `connect: Connection refused (os error 111)`.
        detail: String,
    },
    /// The gateway answered with an error status.
    #[error("GET {path} answered {status}")]
    Status {
        /// The gateway path requested.
        path: &'static str,
        /// The HTTP status it answered with.
        status: reqwest::StatusCode,
    },
    /// `/metrics` answered, but not with Prometheus text.
    #[error("/metrics is not Prometheus text: {0}")]
    NotPrometheus(String),
    /// The open event stream failed.
    #[error("event stream: {0}")]
    Stream(String),
    /// The gateway ended the event stream.
    #[error("the gateway closed the event stream")]
    Closed,
}

impl DashError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DashError::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// Deserialize JSON text with the failing field's path in the error.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
    text: &str,
) -> Result<T, DashError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| DashError::Parse {
        path: path.to_path_buf(),
        location: Some(format!(
            "line {} column {}",
            e.inner().line(),
            e.inner().column()
        )),
        field: Some(e.path().to_string()),
        message: e.inner().to_string(),
    })
}
