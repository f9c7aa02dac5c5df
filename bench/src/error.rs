//! Typed errors of the harness. Every error about a file names the file, and where the
//! underlying parser knows it, the line and the field.

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
