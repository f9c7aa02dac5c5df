//! Suite files: which scenarios to run (with per-scenario overrides), against which targets,
//! under what load — the raw YAML types (whose JSON schema is published at
//! `scenarios/schema/suite.schema.json`) and [`Suite`], a suite file loaded with its scenarios
//! validated and their items drawn. Kept apart from the single-scenario types in
//! [`crate::scenario`], which re-exports everything here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{BenchError, Result};
use crate::load_spec::{validate_load, LoadSpec};
use crate::scenario::{read_yaml, Scenario, ScenarioFile};

/// A suite file as written: which scenarios, which targets, what load.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// Name of the suite; the run id in `metadata.json` ends with it.
    pub name: String,
    /// Free text for people reading the file; not used by the harness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Scenario files, relative to the suite file.
    pub scenarios: Vec<SuiteScenario>,
    /// Target names (mapped to backends by the command line) or full entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<SuiteTarget>,
    /// How requests are sent: scheduling mode, count or duration, warm-up, timeout.
    #[serde(default)]
    pub load: LoadSpec,
    /// The target that grades `judge` scorers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// Write each request's messages into `requests.jsonl` (for the request browser); `false`
    /// when the items hold private data.
    #[serde(default = "record_prompts_default")]
    pub record_prompts: bool,
}

fn record_prompts_default() -> bool {
    true
}

/// A scenario in a suite: a path, or a path with a limit on its items.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SuiteScenario {
    /// Just the scenario file's path, relative to the suite file.
    Path(String),
    /// A path with per-scenario overrides.
    Entry(SuiteScenarioEntry),
}

/// A scenario in a suite with its overrides.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuiteScenarioEntry {
    /// The scenario file, relative to the suite file.
    pub path: String,
    /// At most this many items (after the dataset's own sampling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Overrides the scenario's `max_tokens` (e.g. shorter answers for a quick suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Overrides the scenario's `few_shot_from_items`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot_from_items: Option<usize>,
}

impl SuiteScenario {
    /// The scenario file's path, relative to the suite file.
    pub fn path(&self) -> &str {
        match self {
            SuiteScenario::Path(p) => p,
            SuiteScenario::Entry(e) => &e.path,
        }
    }
    /// The entry's item limit, if any.
    pub fn limit(&self) -> Option<usize> {
        match self {
            SuiteScenario::Path(_) => None,
            SuiteScenario::Entry(e) => e.limit,
        }
    }
    /// The entry's `max_tokens` override, if any.
    pub fn max_tokens(&self) -> Option<u32> {
        match self {
            SuiteScenario::Path(_) => None,
            SuiteScenario::Entry(e) => e.max_tokens,
        }
    }
    /// The entry's `few_shot_from_items` override, if any.
    pub fn few_shot_from_items(&self) -> Option<usize> {
        match self {
            SuiteScenario::Path(_) => None,
            SuiteScenario::Entry(e) => e.few_shot_from_items,
        }
    }
}

/// A target in a suite: a bare name, or a name with a spec and prices.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SuiteTarget {
    /// A bare target name; the command line must give its spec with `--target NAME=SPEC`.
    Name(String),
    /// A name with its spec and price.
    Entry(TargetEntry),
}

/// A suite target with its own spec and price, used when the command line gives no `--target`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetEntry {
    /// Target name: the run's column in results and comparisons.
    pub name: String,
    /// `openai:BASE_URL#MODEL`, `llama:PATH`, `replay:FILE`, `router:CONFIG` (see `bench run --help`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// Price used to bill this target's requests when `--price` gives none for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<router::pricing::BackendPrice>,
}

impl SuiteTarget {
    /// The target's name.
    pub fn name(&self) -> &str {
        match self {
            SuiteTarget::Name(n) => n,
            SuiteTarget::Entry(e) => &e.name,
        }
    }
}

/// A loaded suite: its scenarios (validated, datasets loaded) and the raw file.
#[derive(Debug)]
pub struct Suite {
    /// The suite file.
    pub path: PathBuf,
    /// The suite file as parsed.
    pub file: SuiteFile,
    /// Its scenarios, validated and with their items loaded, examples drawn and limits applied.
    pub scenarios: Vec<Scenario>,
    /// The half of each task's items kept (`--half`), when only one is run.
    pub half: Option<crate::half::Half>,
    /// A previous run directory whose stored retrieval the RAG scenarios reuse
    /// (`--retrieval-from`); without it, [`crate::suite::run_suite`] builds the index anew.
    pub retrieval_from: Option<PathBuf>,
}

impl Suite {
    /// Keep only one half of each task's items (after examples and limits; see [`crate::half`]).
    pub fn keep_half(&mut self, half: crate::half::Half) {
        self.keep_half_seeded(half, crate::fewshot::split_seed());
    }

    /// Keep fold `fold` of the items left (`keep_in`), or all but that fold; see
    /// [`crate::half::keep_fold`].
    pub fn keep_fold(&mut self, fold: crate::half::Fold, seed: u64, keep_in: bool) {
        crate::half::keep_fold(&mut self.scenarios, fold, seed, keep_in);
    }

    /// [`Self::keep_half`] under another split seed (`bench calibrate --per-task --seed`).
    pub fn keep_half_seeded(&mut self, half: crate::half::Half, seed: u64) {
        crate::half::keep(&mut self.scenarios, half, seed);
        self.half = Some(half);
    }

    /// Load a suite file and every scenario it lists, with the suite's own limits.
    pub fn load(path: &Path) -> Result<Suite> {
        Suite::load_with_cap(path, None)
    }

    /// Load with every scenario capped at `cap` items (on top of the suite's own limits).
    pub fn load_with_cap(path: &Path, cap: Option<usize>) -> Result<Suite> {
        Suite::load_with(path, cap, None)
    }

    /// Load with every scenario capped at `cap` items, and with `few_shot_from_items` examples
    /// drawn for every scenario without examples of its own when given (over the suite's and the
    /// scenarios' own settings). Examples are drawn before the caps apply.
    pub fn load_with(
        path: &Path,
        cap: Option<usize>,
        few_shot_from_items: Option<usize>,
    ) -> Result<Suite> {
        Suite::load_seeded(path, cap, few_shot_from_items, crate::fewshot::split_seed())
    }

    /// [`Self::load_with`], drawing examples from the calibration halves of the split under
    /// `seed` (`bench run --split-seed`, matching `bench calibrate --per-task --seed`).
    pub fn load_seeded(
        path: &Path,
        cap: Option<usize>,
        few_shot_from_items: Option<usize>,
        seed: u64,
    ) -> Result<Suite> {
        let file: SuiteFile = read_yaml(path)?;
        if file.scenarios.is_empty() {
            return Err(BenchError::invalid(path, "field `scenarios`: empty"));
        }
        validate_load(&file.load)
            .map_err(|m| BenchError::invalid(path, format!("field `load`: {m}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut scenarios = Vec::new();
        let mut names = BTreeMap::new();
        for entry in &file.scenarios {
            let limit = match (entry.limit(), cap) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let scenario_path = base.join(entry.path());
            let raw: ScenarioFile = read_yaml(&scenario_path)?;
            let mut scenario = Scenario::with_every_item(raw, &scenario_path, limit)?;
            if let Some(m) = entry.max_tokens() {
                scenario.generation.max_tokens = Some(m);
            }
            if let Some(k) = few_shot_from_items.or(entry.few_shot_from_items()) {
                scenario.few_shot_from_items = k;
            }
            if let Some(previous) = names.insert(scenario.name.clone(), entry.path().to_string()) {
                return Err(BenchError::invalid(
                    path,
                    format!(
                        "scenario name `{}` used by both {previous} and {}",
                        scenario.name,
                        entry.path()
                    ),
                ));
            }
            scenarios.push(scenario);
        }
        crate::fewshot::draw(&mut scenarios, seed)?;
        for scenario in &mut scenarios {
            scenario.apply_limit();
        }
        Ok(Suite {
            path: path.to_path_buf(),
            file,
            scenarios,
            half: None,
            retrieval_from: None,
        })
    }
}

/// The JSON schema of suite files (published at `scenarios/schema/suite.schema.json`).
pub fn suite_schema() -> Value {
    serde_json::to_value(schemars::schema_for!(SuiteFile)).unwrap_or(Value::Null)
}
