//! Scenario and suite files.
//!
//! A scenario is one task measured one way: a dataset, a prompt template, the expected answer,
//! scorers, generation parameters and latency SLOs. A suite lists scenarios, targets and the
//! load to apply; its file types and loader live in `suite_file` and are re-exported here, so
//! `bench::scenario::{Suite, SuiteFile, …}` name them. Both are YAML, read into raw structs with `deny_unknown_fields` (so a typo is
//! an error, not a silently ignored key) through `serde_path_to_error`, so an error names the
//! file, the line and the field; then validated into runtime types. The JSON schema of the raw
//! scenario file is generated from the same structs ([`scenario_schema`]) and published at
//! `scenarios/schema/scenario.schema.json`.

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dataset::{self, DatasetSpec};
use crate::error::{BenchError, Result};
pub use crate::load_spec::{validate_load, Arrival, LoadMode, LoadSpec};
use crate::score::{Scorer, ScorerSpec};
pub use crate::suite_file::{
    suite_schema, Suite, SuiteFile, SuiteScenario, SuiteScenarioEntry, SuiteTarget, TargetEntry,
};
use crate::template::{Item, Template};

/// A scenario file as written.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Unique name of the scenario (used in results).
    pub name: String,
    /// The task kind (sentiment, intent, qa, …); results are grouped per task, and the router
    /// sees it as request metadata `task`.
    pub task: String,
    /// Free text for people reading the file; not used by the harness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the items come from: a data file or inline `items`, with field mapping and sampling.
    pub dataset: DatasetSpec,
    /// System prompt (may use `{{field}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// User prompt template with `{{field}}` placeholders.
    pub prompt: String,
    /// Worked examples: each is an item rendered through `prompt` (user turn) and `expected`
    /// (assistant turn) before the real question.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub few_shot: Vec<Item>,
    /// Without `few_shot`: use this many of the dataset's own items as worked examples, drawn
    /// from the calibration half of the task's items and not measured (see `bench::fewshot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot_from_items: Option<usize>,
    /// Expected answer template, e.g. `{{label}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// One scorer (shorthand for a one-element `scorers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorer: Option<ScorerSpec>,
    /// Several scorers; an item passes when every scorer passes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scorers: Vec<ScorerSpec>,
    /// Most tokens to generate per answer (the backend's default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature (the backend's default when unset; 0 for greedy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Sampling seed sent with every request, for backends that honour one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop sequences: generation ends before any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// The answer must be one of these (grammar-constrained on the local engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
    /// The answer must be JSON matching this schema (sent as `response_format`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    /// Latency objectives for goodput; none checked when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// Retrieval-augmented QA: retrieve passages of a corpus for every item before any target
    /// runs and render them as `{{passages}}` (see `bench::rag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rag: Option<crate::rag::RagSpec>,
}

/// Latency objectives a request must meet to count towards goodput. Unset ones are not checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Time to first token, from the intended send time, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<f64>,
    /// Time per output token after the first, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpot_ms: Option<f64>,
    /// End-to-end latency, from the intended send time, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2e_ms: Option<f64>,
}

impl Slo {
    /// Whether a request with these measurements meets every set objective. A missing
    /// measurement (no token at all) fails an objective that needs it.
    pub fn met(&self, ttft_ms: Option<f64>, tpot_ms: Option<f64>, e2e_ms: f64) -> bool {
        let within = |limit: Option<f64>, value: Option<f64>| match limit {
            None => true,
            Some(l) => value.is_some_and(|v| v <= l),
        };
        // TPOT is undefined for a one-token answer; that does not fail the objective.
        let tpot_ok = match (self.tpot_ms, tpot_ms) {
            (Some(limit), Some(v)) => v <= limit,
            _ => true,
        };
        within(self.ttft_ms, ttft_ms) && tpot_ok && within(self.e2e_ms, Some(e2e_ms))
    }
}

/// Generation parameters sent with every request of a scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Generation {
    /// Most tokens to generate (`max_tokens`, possibly overridden by the suite).
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Stop sequences (sent only when non-empty).
    pub stop: Vec<String>,
    /// Allowed answers, sent as the request's `choices` (grammar-constrained on the local engine).
    pub choices: Option<Vec<String>>,
    /// JSON schema the answer must match, sent as a strict `response_format`.
    pub json_schema: Option<Value>,
}

/// One dataset item ready to send: its id, its fields, and the rendered expected answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioItem {
    /// Stable item id: the dataset's id column, else the 1-based row number; joins records across
    /// targets.
    pub id: String,
    /// The item's fields after the dataset's field mapping (what templates render from).
    pub fields: Item,
    /// The `expected` template rendered for this item; `None` when the scenario has none.
    pub expected: Option<String>,
}

/// A validated scenario.
#[derive(Debug)]
pub struct Scenario {
    /// Scenario name from the file; unique within a suite, it labels every record.
    pub name: String,
    /// Task kind (sentiment, intent, …); results and the per-task fit group by it, and routers see
    /// it as request metadata `task`.
    pub task: String,
    /// The file it came from (for messages and metadata).
    pub path: PathBuf,
    /// System prompt template, when the scenario has one.
    pub system: Option<Template>,
    /// User prompt template, rendered per item.
    pub prompt: Template,
    /// (user, assistant) turns rendered from `few_shot`, or drawn from the items.
    pub few_shot: Vec<(String, String)>,
    /// Examples to draw from the items when there is no `few_shot` (0: none).
    pub few_shot_from_items: usize,
    /// The items drawn as examples, once drawn.
    pub drawn_examples: Option<crate::fewshot::FewShotDraw>,
    /// At most this many items, applied after examples are drawn.
    limit: Option<usize>,
    /// Expected-answer template; required when a scorer compares with the expected answer.
    pub expected: Option<Template>,
    /// Validated scorers; an item passes when all of them pass.
    pub scorers: Vec<Scorer>,
    /// Generation parameters sent with every request.
    pub generation: Generation,
    /// Latency objectives for goodput (all unset when the file has none).
    pub slo: Slo,
    /// The items to send, after examples were drawn and limits applied.
    pub items: Vec<ScenarioItem>,
    /// The `rag:` section, validated; `None` for scenarios that retrieve nothing.
    pub rag: Option<crate::rag::RagConfig>,
    /// Per item id, the passages [`crate::rag::prepare`] gave it (empty until then).
    pub retrievals: crate::rag::Retrievals,
}

impl Scenario {
    /// Read, validate and load the dataset of a scenario file. `limit` (from a suite)
    /// overrides the dataset's own sampling limit.
    pub fn load(path: &Path, limit: Option<usize>) -> Result<Scenario> {
        let raw: ScenarioFile = read_yaml(path)?;
        Scenario::from_file(raw, path, limit)
    }

    /// Validate an already parsed scenario; relative dataset paths resolve against `path`'s
    /// directory. Few-shot examples are drawn from the items when the file asks for them.
    pub fn from_file(raw: ScenarioFile, path: &Path, limit: Option<usize>) -> Result<Scenario> {
        let mut scenario = Scenario::with_every_item(raw, path, limit)?;
        crate::fewshot::draw(
            std::slice::from_mut(&mut scenario),
            crate::fewshot::split_seed(),
        )?;
        scenario.apply_limit();
        Ok(scenario)
    }

    /// Keep at most the scenario's limit of items (after examples were drawn).
    pub(crate) fn apply_limit(&mut self) {
        if let Some(limit) = self.limit {
            self.items.truncate(limit);
        }
    }

    /// Validate, with every item of the dataset (its `limit` is kept for [`Self::apply_limit`]).
    pub(crate) fn with_every_item(
        raw: ScenarioFile,
        path: &Path,
        limit: Option<usize>,
    ) -> Result<Scenario> {
        let invalid = |m: String| BenchError::invalid(path, m);
        if raw.name.trim().is_empty() {
            return Err(invalid("field `name`: must not be empty".into()));
        }
        if raw.task.trim().is_empty() {
            return Err(invalid("field `task`: must not be empty".into()));
        }
        // The task is sent to gateways as `x-triage-task`, which accepts only short plain names.
        let task = router::task_name::validate(&raw.task)
            .map_err(|e| invalid(format!("field `task`: {e}")))?;
        let mut specs = raw.scorers.clone();
        if let Some(s) = raw.scorer.clone() {
            if !specs.is_empty() {
                return Err(invalid(
                    "give either `scorer` or `scorers`, not both".into(),
                ));
            }
            specs.push(s);
        }
        if specs.is_empty() {
            return Err(invalid(
                "no scorer: add `scorer: {kind: ...}` or a `scorers` list".into(),
            ));
        }
        let scorers = specs
            .iter()
            .enumerate()
            .map(|(i, s)| Scorer::new(s).map_err(|m| invalid(format!("field `scorers[{i}]`: {m}"))))
            .collect::<Result<Vec<_>>>()?;
        let expected = raw.expected.as_deref().map(Template::parse);
        if expected.is_none() && scorers.iter().any(Scorer::needs_expected) {
            return Err(invalid(
                "field `expected`: missing, but a scorer compares the output with the expected answer".into(),
            ));
        }
        if let Some(schema) = &raw.json_schema {
            jsonschema::validator_for(schema).map_err(|e| {
                invalid(format!("field `json_schema`: not a valid JSON schema: {e}"))
            })?;
        }
        let prompt = Template::parse(&raw.prompt);
        let system = raw.system.as_deref().map(Template::parse);
        if !raw.few_shot.is_empty() && raw.few_shot_from_items.is_some_and(|k| k > 0) {
            return Err(invalid(
                "give either `few_shot` or `few_shot_from_items`, not both".into(),
            ));
        }
        let rag = raw
            .rag
            .as_ref()
            .map(|spec| crate::rag::RagConfig::new(spec, path))
            .transpose()
            .map_err(invalid)?;
        if rag.is_some()
            && (!raw.few_shot.is_empty() || raw.few_shot_from_items.is_some_and(|k| k > 0))
        {
            return Err(invalid(
                "a `rag` scenario takes no few-shot examples: their passages would not be retrieved".into(),
            ));
        }
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let rows = dataset::load_every_row(&raw.dataset, base_dir, path)?;
        let mut few_shot = Vec::new();
        for (i, example) in raw.few_shot.iter().enumerate() {
            let user = prompt
                .render(example)
                .map_err(|e| invalid(format!("field `few_shot[{i}]`: {e}")))?;
            let assistant = match &expected {
                Some(t) => t
                    .render(example)
                    .map_err(|e| invalid(format!("field `few_shot[{i}]`: {e}")))?,
                None => {
                    return Err(invalid(format!(
                        "field `few_shot[{i}]`: few-shot examples need an `expected` template for the answer turn"
                    )))
                }
            };
            few_shot.push((user, assistant));
        }
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            // A RAG item's passages arrive after retrieval; templates are checked with a
            // stand-in, and a dataset may not hold a field of that name itself.
            let mut checked = row.fields.clone();
            if rag.is_some() {
                if checked.contains_key(crate::rag::PASSAGES_FIELD) {
                    return Err(BenchError::Dataset {
                        path: row.source.clone(),
                        row: row.row,
                        message: format!(
                            "field `{}` is filled by retrieval in a `rag` scenario; rename it",
                            crate::rag::PASSAGES_FIELD
                        ),
                    });
                }
                checked.insert(
                    crate::rag::PASSAGES_FIELD.into(),
                    Value::String(String::new()),
                );
            }
            // Render once now so a missing field is reported at load time, with the row.
            let check = |t: &Template| {
                t.render(&checked).map_err(|e| BenchError::Dataset {
                    path: row.source.clone(),
                    row: row.row,
                    message: e.to_string(),
                })
            };
            check(&prompt)?;
            if let Some(s) = &system {
                check(s)?;
            }
            let expected_text = expected.as_ref().map(check).transpose()?;
            for scorer in &scorers {
                scorer
                    .check_item(&row.fields, expected_text.as_deref())
                    .map_err(|e| BenchError::Dataset {
                        path: row.source.clone(),
                        row: row.row,
                        message: e.to_string(),
                    })?;
            }
            items.push(ScenarioItem {
                id: row.id,
                fields: row.fields,
                expected: expected_text,
            });
        }
        if items.is_empty() {
            return Err(invalid("field `dataset`: no items".into()));
        }
        Ok(Scenario {
            name: raw.name,
            task,
            path: path.to_path_buf(),
            system,
            prompt,
            few_shot,
            few_shot_from_items: raw.few_shot_from_items.unwrap_or(0),
            drawn_examples: None,
            limit: limit.or(raw.dataset.limit),
            expected,
            scorers,
            generation: Generation {
                max_tokens: raw.max_tokens,
                temperature: raw.temperature,
                seed: raw.seed,
                stop: raw.stop,
                choices: raw.choices,
                json_schema: raw.json_schema,
            },
            slo: raw.slo.unwrap_or_default(),
            items,
            rag,
            retrievals: crate::rag::Retrievals::new(),
        })
    }

    /// The chat request for one item: system prompt, few-shot turns, then the rendered prompt.
    /// `task` and `scenario` go into `metadata` so a router in the path can use them.
    pub fn request(&self, item: &ScenarioItem) -> Result<backends::ChatRequest> {
        use backends::{ChatMessage, ChatRequest, Role};
        if self.rag.is_some() && !item.fields.contains_key(crate::rag::PASSAGES_FIELD) {
            return Err(BenchError::invalid(
                &self.path,
                format!(
                    "item `{}` has no retrieved passages: a `rag` scenario runs after \
                     `bench::rag::prepare`",
                    item.id
                ),
            ));
        }
        let mut messages = Vec::new();
        if let Some(system) = &self.system {
            messages.push(ChatMessage::new(Role::System, system.render(&item.fields)?));
        }
        for (user, assistant) in &self.few_shot {
            messages.push(ChatMessage::new(Role::User, user.clone()));
            messages.push(ChatMessage::new(Role::Assistant, assistant.clone()));
        }
        messages.push(ChatMessage::new(
            Role::User,
            self.prompt.render(&item.fields)?,
        ));
        let g = &self.generation;
        let mut metadata = serde_json::Map::new();
        metadata.insert("task".into(), Value::String(self.task.clone()));
        metadata.insert("scenario".into(), Value::String(self.name.clone()));
        Ok(ChatRequest {
            messages,
            max_tokens: g.max_tokens,
            temperature: g.temperature,
            seed: g.seed,
            stop: if g.stop.is_empty() {
                None
            } else {
                Some(backends::StopSequences::Many(g.stop.clone()))
            },
            choices: g.choices.clone(),
            response_format: g.json_schema.as_ref().map(|schema| {
                backends::ResponseFormat::JsonSchema {
                    json_schema: backends::JsonSchemaFormat {
                        name: self.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
                        schema: schema.clone(),
                        strict: Some(true),
                        description: None,
                    },
                }
            }),
            metadata: Some(metadata),
            stream: Some(true),
            ..ChatRequest::default()
        })
    }
}

/// Read a YAML file into `T`, with errors naming the file, line and field.
pub fn read_yaml<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| BenchError::io(path, e))?;
    parse_yaml(&text, path)
}

/// Parse YAML text (that came from `path`) into `T`. Errors are located by the router's YAML
/// locator (`router::config::locate`, shared with `triage.yaml`), which also places errors inside
/// tagged enums such as `scorer: {kind: ...}`, where serde_yaml alone loses the position.
pub fn parse_yaml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T> {
    router::config::locate::from_str(text).map_err(|e| BenchError::Parse {
        path: path.to_path_buf(),
        location: match (e.line, e.column) {
            (Some(line), Some(column)) => Some(format!("line {line} column {column}")),
            (Some(line), None) => Some(format!("line {line}")),
            _ => None,
        },
        field: e.path,
        message: e.message,
    })
}

/// The JSON schema of scenario files (published at `scenarios/schema/scenario.schema.json`).
pub fn scenario_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(ScenarioFile)).unwrap_or(Value::Null)
}
