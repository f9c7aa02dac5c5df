//! Files: models as small JSON (sparse weights: only buckets seen in training), checked on
//! load, and labelled examples as JSON Lines.

use std::path::Path;

use super::model::{Model, MODEL_FORMAT};
use super::{ClassifierError, Example};

impl Model {
    /// Write the model as JSON, creating the parent directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), ClassifierError> {
        let io = |source| ClassifierError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let json = serde_json::to_string(self).map_err(|e| io(std::io::Error::other(e)))?;
        std::fs::write(path, json).map_err(io)
    }

    /// Read a model written by [`Model::save`], checking its format tag and shapes.
    pub fn load(path: &Path) -> Result<Model, ClassifierError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClassifierError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let bad = |message: String| ClassifierError::BadModel {
            path: path.display().to_string(),
            message,
        };
        let model: Model = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if model.format != MODEL_FORMAT {
            return Err(bad(format!(
                "format is {:?}, expected {MODEL_FORMAT:?}",
                model.format
            )));
        }
        let k = model.tasks.len();
        if k < 2 || model.bias.len() != k || model.weights.values().any(|w| w.len() != k) {
            return Err(bad("weights do not match the task list".into()));
        }
        if !(8..=24).contains(&model.dims_log2) {
            return Err(bad(format!("dims_log2 {} out of range", model.dims_log2)));
        }
        Ok(model)
    }
}

/// Read labelled examples from JSON Lines with `text` and `task` fields (other fields ignored).
pub fn read_examples(path: &Path) -> Result<Vec<Example>, ClassifierError> {
    let p = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ClassifierError::Io {
        path: p.clone(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let ex: Example = serde_json::from_str(line).map_err(|e| ClassifierError::BadExample {
            path: p.clone(),
            line: i + 1,
            message: format!("expected an object with string fields `text` and `task`: {e}"),
        })?;
        out.push(ex);
    }
    if out.is_empty() {
        return Err(ClassifierError::BadExample {
            path: p,
            line: 0,
            message: "no examples".into(),
        });
    }
    Ok(out)
}
