//! Datasets: inline items, or a JSONL / JSON-array / CSV / TSV file relative to the scenario,
//! with a field mapping (scenario field ← source column, dotted paths reach into nested JSON)
//! and optional seeded sampling with a limit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{BenchError, Result};
use crate::template::Item;

/// Where a scenario's items come from.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// A data file, relative to the scenario file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Items written in the scenario itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Item>>,
    /// File format; by default from the extension (.jsonl, .json, .csv, .tsv).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<DataFormat>,
    /// Scenario field name → source column (dotted paths reach into nested JSON objects).
    /// Unmapped columns stay available under their own names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
    /// Column holding a stable item id; default: the row number (from 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Use at most this many items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Shuffle with this seed before applying `limit` (without it, the first rows are used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// A dataset file's format (`dataset.format`, else from the file's extension).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// JSON Lines: one JSON object per non-empty line (`.jsonl`, `.ndjson`).
    Jsonl,
    /// One JSON array of objects (`.json`).
    Json,
    /// Comma-separated values with a header row naming the columns (`.csv`); every value is a
    /// string.
    Csv,
    /// Tab-separated values with a header row, no quoting (`.tsv`, `.tab`); every value is a
    /// string.
    Tsv,
}

/// One loaded row: its id, its fields after mapping, and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The item id: the value of the column named by `dataset.id`, else the 1-based row number.
    pub id: String,
    /// The row's fields: mapped names plus every original column under its own name.
    pub fields: Item,
    /// The data file the row came from (the scenario file for inline items).
    pub source: PathBuf,
    /// 1-based line (JSONL), record (CSV/TSV, header excluded) or element (JSON/inline) number.
    pub row: usize,
}

/// Load the rows of a dataset. `scenario_path` is used in messages for inline items;
/// `limit_override` replaces the spec's `limit` when given.
pub fn load(
    spec: &DatasetSpec,
    base_dir: &Path,
    scenario_path: &Path,
    limit_override: Option<usize>,
) -> Result<Vec<Row>> {
    let mut rows = load_every_row(spec, base_dir, scenario_path)?;
    if let Some(limit) = limit_override.or(spec.limit) {
        rows.truncate(limit);
    }
    Ok(rows)
}

/// Every row of a dataset, shuffled by its `seed` when it has one, before any `limit`: a
/// scenario draws its few-shot examples from these before its limit applies.
pub fn load_every_row(
    spec: &DatasetSpec,
    base_dir: &Path,
    scenario_path: &Path,
) -> Result<Vec<Row>> {
    let (raw, source): (Vec<(usize, Item)>, PathBuf) = match (&spec.path, &spec.items) {
        (Some(_), Some(_)) => {
            return Err(BenchError::invalid(
                scenario_path,
                "field `dataset`: give `path` or `items`, not both",
            ))
        }
        (None, None) => {
            return Err(BenchError::invalid(
                scenario_path,
                "field `dataset`: give `path` (a JSONL/JSON/CSV/TSV file) or inline `items`",
            ))
        }
        (None, Some(items)) => (
            items
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, it)| (i + 1, it))
                .collect(),
            scenario_path.to_path_buf(),
        ),
        (Some(rel), None) => {
            let path = base_dir.join(rel);
            let format = match spec.format {
                Some(f) => f,
                None => format_from_extension(&path).ok_or_else(|| {
                    BenchError::invalid(
                        scenario_path,
                        format!(
                            "field `dataset.format`: cannot tell the format of {} from its extension; set `format: jsonl|json|csv|tsv`",
                            path.display()
                        ),
                    )
                })?,
            };
            (read_rows(&path, format)?, path)
        }
    };
    let mut rows = Vec::with_capacity(raw.len());
    for (row, item) in raw {
        let mut fields = item.clone();
        for (name, column) in &spec.fields {
            let value = lookup(&item, column).ok_or_else(|| BenchError::Dataset {
                path: source.clone(),
                row,
                message: format!(
                    "field mapping `{name}: {column}`: the row has no `{column}` (it has: {})",
                    item.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            })?;
            fields.insert(name.clone(), value.clone());
        }
        let id = match &spec.id {
            None => row.to_string(),
            Some(column) => match lookup(&item, column) {
                Some(Value::String(s)) => s.clone(),
                Some(v) if !v.is_null() => v.to_string(),
                _ => {
                    return Err(BenchError::Dataset {
                        path: source.clone(),
                        row,
                        message: format!("id column `{column}` missing"),
                    })
                }
            },
        };
        rows.push(Row {
            id,
            fields,
            source: source.clone(),
            row,
        });
    }
    if let Some(seed) = spec.seed {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        rows.shuffle(&mut rng);
    }
    Ok(rows)
}

fn format_from_extension(path: &Path) -> Option<DataFormat> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "jsonl" | "ndjson" => Some(DataFormat::Jsonl),
        "json" => Some(DataFormat::Json),
        "csv" => Some(DataFormat::Csv),
        "tsv" | "tab" => Some(DataFormat::Tsv),
        _ => None,
    }
}

/// `a.b.c` into nested objects (a plain key with dots wins if present).
fn lookup<'a>(item: &'a Item, path: &str) -> Option<&'a Value> {
    if let Some(v) = item.get(path) {
        return Some(v);
    }
    let mut parts = path.split('.');
    let mut current = item.get(parts.next()?)?;
    for part in parts {
        current = match current {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn read_rows(path: &Path, format: DataFormat) -> Result<Vec<(usize, Item)>> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    let bad = |row: usize, message: String| BenchError::Dataset {
        path: path.to_path_buf(),
        row,
        message,
    };
    let mut out = Vec::new();
    match format {
        DataFormat::Jsonl => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value =
                    serde_json::from_str(line).map_err(|e| bad(i + 1, format!("not JSON: {e}")))?;
                match value {
                    Value::Object(m) => out.push((i + 1, m)),
                    _ => return Err(bad(i + 1, "expected a JSON object per line".into())),
                }
            }
        }
        DataFormat::Json => {
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| bad(e.line(), format!("not JSON (column {}): {e}", e.column())))?;
            let Value::Array(elements) = value else {
                return Err(bad(1, "expected a JSON array of objects".into()));
            };
            for (i, element) in elements.into_iter().enumerate() {
                match element {
                    Value::Object(m) => out.push((i + 1, m)),
                    _ => return Err(bad(i + 1, "array element is not an object".into())),
                }
            }
        }
        DataFormat::Csv | DataFormat::Tsv => {
            let mut builder = csv::ReaderBuilder::new();
            builder.has_headers(true).flexible(false);
            if format == DataFormat::Tsv {
                builder.delimiter(b'\t').quoting(false);
            }
            let mut reader = builder.from_reader(text.as_bytes());
            let headers = reader
                .headers()
                .map_err(|e| bad(0, format!("cannot read the header row: {e}")))?
                .clone();
            for (i, record) in reader.records().enumerate() {
                let record = record.map_err(|e| bad(i + 1, e.to_string()))?;
                let mut m = Map::new();
                for (h, v) in headers.iter().zip(record.iter()) {
                    m.insert(h.to_string(), Value::String(v.to_string()));
                }
                out.push((i + 1, m));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn csv_tsv_jsonl_with_mapping_and_sampling() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "a.csv",
            "sentence,label\n\"hi, there\",1\nbye,0\n",
        );
        write(dir.path(), "a.tsv", "sentence\tlabel\nit's \"good\"\t1\n");
        write(
            dir.path(),
            "a.jsonl",
            "{\"u\":{\"text\":\"x\"},\"k\":7}\n\n{\"u\":{\"text\":\"y\"},\"k\":8}\n",
        );
        let scen = dir.path().join("s.yaml");
        let spec = |path: &str| DatasetSpec {
            path: Some(path.into()),
            fields: [("text".to_string(), "sentence".to_string())].into(),
            ..DatasetSpec::default()
        };
        let rows = load(&spec("a.csv"), dir.path(), &scen, None).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].fields["text"], "hi, there");
        assert_eq!(rows[1].id, "2");
        let rows = load(&spec("a.tsv"), dir.path(), &scen, None).unwrap();
        assert_eq!(rows[0].fields["text"], "it's \"good\"");
        let nested = DatasetSpec {
            path: Some("a.jsonl".into()),
            fields: [("text".to_string(), "u.text".to_string())].into(),
            id: Some("k".into()),
            ..DatasetSpec::default()
        };
        let rows = load(&nested, dir.path(), &scen, None).unwrap();
        assert_eq!(rows[1].fields["text"], "y");
        assert_eq!(rows[1].id, "8");
        assert_eq!(rows[1].row, 3, "line numbers count blank lines");

        let items: Vec<Item> = (0..20)
            .map(|i| serde_json::json!({"n": i}).as_object().cloned().unwrap())
            .collect();
        let sampled = DatasetSpec {
            items: Some(items),
            seed: Some(7),
            limit: Some(5),
            ..DatasetSpec::default()
        };
        let a = load(&sampled, dir.path(), &scen, None).unwrap();
        let b = load(&sampled, dir.path(), &scen, None).unwrap();
        assert_eq!(a, b, "same seed, same sample");
        assert_eq!(a.len(), 5);
        assert_ne!(
            a.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            ["1", "2", "3", "4", "5"],
            "shuffled"
        );
        assert_eq!(load(&sampled, dir.path(), &scen, Some(2)).unwrap().len(), 2);
    }

    #[test]
    fn missing_mapped_column_names_file_and_row() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.jsonl", "{\"text\":\"x\"}\n{\"other\":1}\n");
        let spec = DatasetSpec {
            path: Some("a.jsonl".into()),
            fields: [("t".to_string(), "text".to_string())].into(),
            ..DatasetSpec::default()
        };
        let err = load(&spec, dir.path(), &dir.path().join("s.yaml"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a.jsonl: row 2"), "{err}");
        assert!(err.contains("`text`"), "{err}");
    }
}
