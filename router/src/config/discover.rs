//! The configuration `triage serve` uses when it is given none and finds no `./triage.yaml`:
//! whatever `models/` holds, served with safe routes, so the first command a newcomer runs works
//! offline and without keys.
//!
//! The small chat model (SmolLM2, else the smallest other GGUF) becomes `slm`; the Gemma-3-270M
//! stand-in, when present, becomes `llm` (a second local model, never a remote: nothing leaves
//! the machine). Routes: requests with PII stay on `slm`, `model: auto` goes to `slm` (falling
//! back to `llm`), and clients may pin `llm` by name. No budgets (nothing is paid), no keys
//! (loopback only), the ledger in `./triage-ledger.sqlite`, the task classifier when
//! `models/task-classifier.json` exists.
//!
//! The result is YAML text parsed by [`Config::parse`] like any file, so it is validated the
//! same way and can be printed for the user to save and edit.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError};

/// File name prefix of the shipped small chat model (`scripts/setup.sh`).
const SLM_PREFIX: &str = "smollm2";
/// File name prefix of the shipped stand-in for a remote LLM.
const STAND_IN_PREFIX: &str = "gemma-3-270m";

/// Why no configuration could be made from a models directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoverError {
    /// The directory holds no GGUF model (or does not exist).
    #[error(
        "no config given (--config FILE), no ./triage.yaml, and no GGUF model in {dir}: run \
         `make build` (fetches SmolLM2 and the Gemma stand-in into models/) or \
         `triage models pull`, or pass --config"
    )]
    NoModels {
        /// The directory looked in.
        dir: String,
    },
    /// The directory could not be read.
    #[error("cannot read {dir}: {source}")]
    Read {
        /// The directory.
        dir: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The generated configuration did not validate (a model path YAML cannot hold).
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// A configuration made from a models directory: the YAML (to print or save) and its
/// validated form.
#[derive(Debug)]
pub struct Discovered {
    /// The configuration as a `triage.yaml` would hold it.
    pub yaml: String,
    /// The parsed, validated configuration.
    pub config: Config,
    /// One line per choice made, for the user (`slm: models/… (the local chat model)`).
    pub summary: Vec<String>,
}

/// Make the configuration for the GGUF files in `models` (relative paths resolve against the
/// working directory, as the generated YAML names them).
pub fn from_models_dir(models: &Path) -> Result<Discovered, DiscoverError> {
    let dir = models.display().to_string();
    let ggufs = gguf_files(models).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => DiscoverError::NoModels { dir: dir.clone() },
        _ => DiscoverError::Read {
            dir: dir.clone(),
            source,
        },
    })?;
    let named = |prefix: &str| {
        ggufs
            .iter()
            .find(|(p, _)| file_name(p).to_ascii_lowercase().starts_with(prefix))
            .map(|(p, _)| p.clone())
    };
    let stand_in = named(STAND_IN_PREFIX);
    // The shipped SLM, else the smallest model that is not the stand-in.
    let slm = named(SLM_PREFIX).or_else(|| {
        ggufs
            .iter()
            .filter(|(p, _)| Some(p) != stand_in.as_ref())
            .min_by_key(|(_, size)| *size)
            .map(|(p, _)| p.clone())
    });
    let (slm, llm) = match (slm, stand_in) {
        (Some(slm), llm) => (slm, llm),
        // Only the stand-in: it is the one model there is.
        (None, Some(only)) => (only, None),
        (None, None) => return Err(DiscoverError::NoModels { dir }),
    };
    let classifier = models.join("task-classifier.json");
    let classifier = classifier.is_file().then_some(classifier);
    let yaml = render(&slm, llm.as_deref(), classifier.as_deref());
    let config = Config::parse(&yaml, "(generated from models/)", Path::new("."))?;
    let mut summary = vec![format!("slm: {} (the local chat model)", slm.display())];
    match &llm {
        Some(llm) => summary.push(format!(
            "llm: {} (the local stand-in for a remote LLM; pin it with \"model\": \"llm\")",
            llm.display()
        )),
        None => summary.push("llm: none (no gemma-3-270m GGUF in models/)".into()),
    }
    summary.push(
        "routes: PII → slm; \"model\": \"auto\" → slm (falls back to llm); budgets: none".into(),
    );
    summary.push(match &classifier {
        Some(c) => format!("classifier: {}", c.display()),
        None => "classifier: rules only (no models/task-classifier.json)".into(),
    });
    summary.push(format!(
        "ledger: {}; no API keys: loopback only",
        config.server.ledger
    ));
    Ok(Discovered {
        yaml,
        config,
        summary,
    })
}

/// The `.gguf` files of `dir` with their sizes, by name (split parts `-00002-of-…` skipped:
/// llama.cpp opens a split model by its first part).
fn gguf_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = file_name(&path).to_ascii_lowercase();
        if !name.ends_with(".gguf") || (name.contains("-of-") && !name.contains("-00001-of-")) {
            continue;
        }
        // `metadata` follows symlinks (models/ may link to a shared copy).
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.is_file() {
                out.push((path, meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A path as a double-quoted YAML scalar.
fn quoted(path: &Path) -> String {
    serde_json::Value::String(path.display().to_string()).to_string()
}

fn render(slm: &Path, llm: Option<&Path>, classifier: Option<&Path>) -> String {
    let mut y = String::from(
        "# Generated by `triage serve` from models/ (no --config, no ./triage.yaml).\n\
         server:\n  listen: 127.0.0.1:8080\n  ledger: triage-ledger.sqlite\n\
         backends:\n",
    );
    y.push_str(&format!(
        "  slm: {{ kind: llama, model: {}, slots: 4, context: 2048 }}\n",
        quoted(slm)
    ));
    if let Some(llm) = llm {
        y.push_str(&format!(
            "  llm: {{ kind: llama, model: {}, slots: 2, context: 2048 }}\n",
            quoted(llm)
        ));
    }
    y.push_str("routes:\n  - { name: private, when: { pii: true }, to: slm }\n");
    if llm.is_some() {
        y.push_str("  - { name: default, to: slm, fallback: [llm] }\n");
    } else {
        y.push_str("  - { name: default, to: slm }\n");
    }
    if let Some(c) = classifier {
        y.push_str(&format!("classifier: {{ model: {} }}\n", quoted(c)));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str, bytes: usize) {
        std::fs::write(dir.join(name), vec![0u8; bytes]).unwrap();
    }

    #[test]
    fn the_slm_and_the_stand_in_are_chosen_by_name() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "gemma-3-270m-q4_k_m.gguf", 30);
        touch(dir.path(), "SmolLM2-135M-Instruct.Q4_1.gguf", 20);
        touch(dir.path(), "other.gguf", 10);
        let d = from_models_dir(dir.path()).unwrap();
        let slm = d.config.backends.get("slm").unwrap();
        let llm = d.config.backends.get("llm").unwrap();
        let path_of = |b: &crate::config::BackendSpec| match b {
            crate::config::BackendSpec::Local(l) => l.model_path.clone(),
            other => panic!("not a chat model: {other:?}"),
        };
        assert!(path_of(slm).ends_with("SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert!(path_of(llm).ends_with("gemma-3-270m-q4_k_m.gguf"));
        assert!(!d.yaml.contains("classifier"), "{}", d.yaml);
        assert_eq!(d.config.policy.rules.len(), 2);
        assert!(d.summary.iter().any(|l| l.starts_with("routes:")));
    }

    #[test]
    fn without_the_stand_in_the_smallest_model_is_the_slm() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "big.gguf", 30);
        touch(dir.path(), "small.gguf", 10);
        touch(dir.path(), "notes.txt", 1);
        let d = from_models_dir(dir.path()).unwrap();
        assert!(d.yaml.contains("small.gguf"), "{}", d.yaml);
        assert!(!d.config.backends.contains_key("llm"));
    }

    #[test]
    fn an_empty_or_missing_directory_names_the_way_out() {
        let dir = tempfile::tempdir().unwrap();
        for models in [dir.path().to_path_buf(), dir.path().join("absent")] {
            let message = from_models_dir(&models).unwrap_err().to_string();
            assert!(message.contains("make build"), "{message}");
            assert!(message.contains("triage models pull"), "{message}");
        }
    }
}
