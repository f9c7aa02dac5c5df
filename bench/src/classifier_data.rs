//! Labelled texts for the task classifier (`triage route train`): every scenario's items, as
//! the gateway would see them, labelled with the scenario's `task:`, plus texts from the shared
//! evaluation datasets (`../shared/datasets`) where the task they belong to is explicit.
//!
//! The text of an example is exactly what the gateway classifies: `ChatRequest::all_text()` of
//! the rendered request (system prompt, few-shot turns and the user turn), so training and
//! serving see the same thing.
//!
//! Shared datasets are read where they are (never copied into the repository) through
//! [`SHARED_SOURCES`], a fixed table that says, for each file, which texts to take and why
//! they belong to a task:
//!
//! - **through a scenario**: the dataset holds more inputs of the kind a shipped scenario asks
//!   about (BANKING77 customer messages for the intent scenario, SST-2 movie-review sentences for
//!   the sentiment scenario, …), so each is rendered through that scenario's prompt and labelled
//!   with its task. This adds content, not wording: every such text carries the scenario's
//!   instruction;
//! - **as a request by itself**: the text already is a request of that task in its own words
//!   (a GSM8K word problem is a math request; MT-Bench labels its questions by category, and its
//!   `math` and `extraction` categories are triage tasks of the same name). MT-Bench's other
//!   categories (writing, roleplay, reasoning, coding, STEM, humanities) are open requests that
//!   are none of the scenario tasks: they are labelled [`CHAT_TASK`], so a text in wording the
//!   scenarios never used has somewhere to go other than the nearest task.
//!
//! A dataset whose scenario is not among the given ones, or whose file is absent, is skipped
//! with a note. Texts already seen (a scenario's own item drawn from the same dataset) are
//! dropped, then each source is sampled (seeded) down to a cap, so no task is drowned by one
//! large file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::dataset::{self, DataFormat, DatasetSpec};
use crate::error::{BenchError, Result};
use crate::scenario::{read_yaml, Scenario, ScenarioItem, SuiteFile};
use crate::template::{value_text, Item};

/// One labelled text and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelledText {
    /// The text the classifier sees: `ChatRequest::all_text()` of the rendered request, or the raw
    /// request text.
    pub text: String,
    /// The label: a scenario's `task`, or [`CHAT_TASK`].
    pub task: String,
    /// `scenario:NAME` or `dataset:ID` (an entry of [`SHARED_SOURCES`]).
    pub source: String,
}

/// How a shared file is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceFormat {
    /// A table the harness's dataset loader reads (JSONL, JSON array, CSV, TSV); `column` may be
    /// a dotted path into nested JSON.
    Table(DataFormat),
    /// One text per non-empty line.
    Lines,
}

/// Why a shared text belongs to a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceUse {
    /// Rendered through the scenario named `scenario` (its `name:`), the text filling its
    /// template field `field`; labelled with that scenario's task.
    Render {
        /// The scenario whose prompt renders the text (its `name:`).
        scenario: &'static str,
        /// The scenario's template field the text fills.
        field: &'static str,
    },
    /// The text is itself a request of `task`.
    Raw {
        /// The task the texts are labelled with.
        task: &'static str,
    },
}

/// One shared dataset file and its explicit task mapping.
#[derive(Clone, Copy, Debug)]
pub struct SharedSource {
    /// Name in notes and in [`LabelledText::source`] (`dataset:ID`).
    pub id: &'static str,
    /// Relative to the datasets directory.
    pub path: &'static str,
    /// How the file is read.
    pub format: SourceFormat,
    /// The column (or dotted path) holding the text; unused for [`SourceFormat::Lines`].
    pub column: &'static str,
    /// Keep only rows whose `column` holds one of these values.
    pub only: Option<(&'static str, &'static [&'static str])>,
    /// Texts shorter than this many characters are left out.
    pub min_chars: usize,
    /// Why its texts belong to a task, and how they become requests.
    pub use_: SourceUse,
}

/// The shared datasets whose task is explicit, and how each is used.
pub const SHARED_SOURCES: &[SharedSource] = &[
    SharedSource {
        id: "sst2",
        path: "sst2/sst2_glue_dev_872.tsv",
        format: SourceFormat::Table(DataFormat::Tsv),
        column: "sentence",
        only: None,
        min_chars: 1,
        // Movie-review sentences: what the sentiment scenario classifies.
        use_: SourceUse::Render {
            scenario: "sentiment",
            field: "text",
        },
    },
    SharedSource {
        id: "banking77",
        path: "banking77/train.csv",
        format: SourceFormat::Table(DataFormat::Csv),
        column: "text",
        only: None,
        min_chars: 1,
        // The intent scenario's items are BANKING77 test utterances; the train split adds more.
        use_: SourceUse::Render {
            scenario: "support-intent",
            field: "text",
        },
    },
    SharedSource {
        id: "restaurant8k",
        path: "restaurant8k_slots/test.json",
        format: SourceFormat::Table(DataFormat::Json),
        column: "userInput.text",
        only: None,
        // The booking scenario's own criterion: short replies ("13") carry no booking.
        min_chars: 25,
        use_: SourceUse::Render {
            scenario: "booking-extraction",
            field: "text",
        },
    },
    SharedSource {
        id: "presidio",
        path: "presidio_pii_synth/synth_dataset_v2.json",
        format: SourceFormat::Table(DataFormat::Json),
        column: "full_text",
        only: None,
        min_chars: 1,
        use_: SourceUse::Render {
            scenario: "pii-redaction",
            field: "text",
        },
    },
    SharedSource {
        id: "gsm8k",
        path: "gsm8k/test.jsonl",
        format: SourceFormat::Table(DataFormat::Jsonl),
        column: "question",
        only: None,
        min_chars: 1,
        use_: SourceUse::Render {
            scenario: "arithmetic",
            field: "question",
        },
    },
    SharedSource {
        id: "gsm8k-raw",
        path: "gsm8k/test.jsonl",
        format: SourceFormat::Table(DataFormat::Jsonl),
        column: "question",
        only: None,
        min_chars: 1,
        // A word problem sent as it is asks for its solution.
        use_: SourceUse::Raw { task: "math" },
    },
    SharedSource {
        id: "ntrex128",
        path: "ntrex128_translation/newstest2019-src.eng.txt",
        format: SourceFormat::Lines,
        column: "",
        only: None,
        min_chars: 1,
        use_: SourceUse::Render {
            scenario: "translation-en-fr",
            field: "source",
        },
    },
    SharedSource {
        id: "mt_bench-math",
        path: "mt_bench/mt_bench_question.jsonl",
        format: SourceFormat::Table(DataFormat::Jsonl),
        column: "turns.0",
        only: Some(("category", &["math"])),
        min_chars: 1,
        use_: SourceUse::Raw { task: "math" },
    },
    SharedSource {
        id: "mt_bench-extraction",
        path: "mt_bench/mt_bench_question.jsonl",
        format: SourceFormat::Table(DataFormat::Jsonl),
        column: "turns.0",
        only: Some(("category", &["extraction"])),
        min_chars: 1,
        use_: SourceUse::Raw { task: "extraction" },
    },
    SharedSource {
        id: "mt_bench-chat",
        path: "mt_bench/mt_bench_question.jsonl",
        format: SourceFormat::Table(DataFormat::Jsonl),
        column: "turns.0",
        only: Some((
            "category",
            &[
                "writing",
                "roleplay",
                "reasoning",
                "coding",
                "stem",
                "humanities",
            ],
        )),
        min_chars: 1,
        // Open requests that are none of the scenarios' tasks: without them every text the
        // scenarios' wordings do not explain lands, confidently, on some task.
        use_: SourceUse::Raw { task: CHAT_TASK },
    },
];

/// The task of open requests that are none of the scenario tasks (MT-Bench's other
/// categories); no shipped route names it, so such requests take the default route.
pub const CHAT_TASK: &str = "chat";

/// What became of one shared source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceNote {
    /// The source's [`SharedSource::id`].
    pub id: String,
    /// Texts taken (after de-duplication and the cap).
    pub used: usize,
    /// Texts available after filtering and de-duplication.
    pub available: usize,
    /// Why nothing was taken, when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// Load the given scenario files (no item limit). A suite file among them stands for its
/// scenarios; a scenario reached twice (directly and through a suite) is loaded once; RAG
/// scenarios are left out (their prompts exist only once a run has retrieved passages).
pub fn load_scenarios(paths: &[PathBuf]) -> Result<Vec<Scenario>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        let value: Value = read_yaml(path)?;
        if value.get("scenarios").is_some() {
            let suite: SuiteFile = read_yaml(path)?;
            let base = path.parent().unwrap_or(Path::new("."));
            files.extend(suite.scenarios.iter().map(|s| base.join(s.path())));
        } else {
            files.push(path.clone());
        }
    }
    let mut seen = BTreeSet::new();
    let mut names = BTreeMap::new();
    let mut out = Vec::new();
    for file in files {
        let key = std::fs::canonicalize(&file).map_err(|e| BenchError::io(&file, e))?;
        if !seen.insert(key) {
            continue;
        }
        let scenario = Scenario::load(&file, None)?;
        // A RAG scenario's requests hold passages retrieved during a run (`bench::rag`); without
        // them there is no text the gateway would see, so it does not train the classifier.
        if scenario.rag.is_some() {
            continue;
        }
        if let Some(previous) = names.insert(scenario.name.clone(), file.clone()) {
            return Err(BenchError::invalid(
                &file,
                format!(
                    "scenario name `{}` is also used by {}",
                    scenario.name,
                    previous.display()
                ),
            ));
        }
        out.push(scenario);
    }
    Ok(out)
}

/// Every item of every scenario, rendered as the gateway sees it, labelled with its task.
pub fn scenario_texts(scenarios: &[Scenario]) -> Result<Vec<LabelledText>> {
    let mut out = Vec::new();
    for scenario in scenarios {
        for item in &scenario.items {
            out.push(LabelledText {
                text: scenario.request(item)?.all_text(),
                task: scenario.task.clone(),
                source: format!("scenario:{}", scenario.name),
            });
        }
    }
    Ok(out)
}

/// Texts from the shared datasets in `dir` as [`SHARED_SOURCES`] says, at most `cap` per
/// source (a seeded sample), none repeating a text in `seen` (which grows with them).
pub fn shared_texts(
    dir: &Path,
    scenarios: &[Scenario],
    cap: usize,
    seed: u64,
    seen: &mut BTreeSet<String>,
) -> Result<(Vec<LabelledText>, Vec<SourceNote>)> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for source in SHARED_SOURCES {
        let note = |used: usize, available: usize, skipped: Option<String>| SourceNote {
            id: source.id.to_string(),
            used,
            available,
            skipped,
        };
        let path = dir.join(source.path);
        if !path.exists() {
            notes.push(note(0, 0, Some(format!("{} not found", path.display()))));
            continue;
        }
        let (scenario, task) = match source.use_ {
            SourceUse::Raw { task } => (None, task.to_string()),
            SourceUse::Render { scenario, .. } => {
                match scenarios.iter().find(|s| s.name == scenario) {
                    Some(s) => (Some(s), s.task.clone()),
                    None => {
                        notes.push(note(
                            0,
                            0,
                            Some(format!("scenario `{scenario}` was not given")),
                        ));
                        continue;
                    }
                }
            }
        };
        let mut texts = Vec::new();
        for raw in read_source(&path, source)? {
            let text = match (scenario, source.use_) {
                (Some(s), SourceUse::Render { field, .. }) => render(s, field, &raw)?,
                _ => raw,
            };
            if seen.insert(text.clone()) {
                texts.push(text);
            }
        }
        let available = texts.len();
        router::classifier::seeded_shuffle(&mut texts, seed);
        texts.truncate(cap);
        notes.push(note(texts.len(), available, None));
        out.extend(texts.into_iter().map(|text| LabelledText {
            text,
            task: task.clone(),
            source: format!("dataset:{}", source.id),
        }));
    }
    Ok((out, notes))
}

/// The texts of one source, filtered, in file order.
fn read_source(path: &Path, source: &SharedSource) -> Result<Vec<String>> {
    let texts: Vec<String> = match source.format {
        SourceFormat::Lines => std::fs::read_to_string(path)
            .map_err(|e| BenchError::io(path, e))?
            .lines()
            .map(|l| l.trim().to_string())
            .collect(),
        SourceFormat::Table(format) => {
            let mut fields = BTreeMap::new();
            fields.insert("text".to_string(), source.column.to_string());
            if let Some((column, _)) = source.only {
                fields.insert("only".to_string(), column.to_string());
            }
            let spec = DatasetSpec {
                path: Some(path.display().to_string()),
                format: Some(format),
                fields,
                ..DatasetSpec::default()
            };
            dataset::load(&spec, Path::new(""), path, None)?
                .into_iter()
                .filter(|row| match source.only {
                    None => true,
                    Some((_, want)) => row
                        .fields
                        .get("only")
                        .map(value_text)
                        .is_some_and(|v| want.contains(&v.as_str())),
                })
                .filter_map(|row| row.fields.get("text").map(value_text))
                .map(|t| t.trim().to_string())
                .collect()
        }
    };
    Ok(texts
        .into_iter()
        .filter(|t| t.chars().count() >= source.min_chars.max(1))
        .collect())
}

/// `text` as the `field` of an item of `scenario`, rendered as the gateway sees it.
fn render(scenario: &Scenario, field: &str, text: &str) -> Result<String> {
    let mut fields = Item::new();
    fields.insert(field.to_string(), Value::String(text.to_string()));
    let item = ScenarioItem {
        id: String::new(),
        fields,
        expected: None,
    };
    Ok(scenario.request(&item)?.all_text())
}
