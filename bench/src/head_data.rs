//! Labelled rows from the shared datasets (`../shared/datasets`) for encoder classifier heads
//! ([`crate::head_train`]): more items of the kind a shipped `choices` scenario asks about,
//! with their gold label, rendered through that scenario's prompt so the head reads them as it
//! reads the scenario's items.
//!
//! Each source says which part trains and which is held out, so no text is both:
//!
//! - **BANKING77** (the intent scenario's items are BANKING77 *test* utterances): `train.csv`
//!   trains, `test.csv` is held out — only the scenario's 10 intents, and never a text that is
//!   one of the scenario's own items;
//! - **SST-2 dev** (872 movie-review sentences; the sentiment scenario's reviews were written
//!   for triage, so none overlaps): a seeded half trains, the other half is held out.
//!
//! Files are read in place, never copied into the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::dataset::{self, DataFormat, DatasetSpec};
use crate::error::Result;
use crate::head_train::LabelledItem;
use crate::scenario::{Scenario, ScenarioItem};
use crate::template::{value_text, Item};

/// Which rows of a source train a head and which measure it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Every row trains.
    Train,
    /// Every row is held out.
    HeldOut,
    /// A seeded half of each label trains, the rest is held out.
    Half,
}

/// One labelled shared file and the scenario whose prompt renders it.
#[derive(Clone, Copy, Debug)]
pub struct HeadSource {
    /// Name in reports (`dataset:ID`).
    pub id: &'static str,
    /// Relative to the datasets directory.
    pub path: &'static str,
    /// How the file is read.
    pub format: DataFormat,
    /// The column holding the text.
    pub text: &'static str,
    /// The column holding the label.
    pub label: &'static str,
    /// Raw label → the scenario's choice (empty: the raw label is the choice).
    pub label_map: &'static [(&'static str, &'static str)],
    /// The scenario (`name:`) whose prompt renders the text and whose choices are the labels.
    pub scenario: &'static str,
    /// The scenario's template field the text fills.
    pub field: &'static str,
    /// Which rows train and which are held out.
    pub part: Part,
}

/// The shared datasets with gold labels for a shipped `choices` scenario.
pub const HEAD_SOURCES: &[HeadSource] = &[
    HeadSource {
        id: "banking77-train",
        path: "banking77/train.csv",
        format: DataFormat::Csv,
        text: "text",
        label: "category",
        label_map: &[],
        scenario: "support-intent",
        field: "text",
        part: Part::Train,
    },
    HeadSource {
        id: "banking77-test",
        path: "banking77/test.csv",
        format: DataFormat::Csv,
        text: "text",
        label: "category",
        label_map: &[],
        scenario: "support-intent",
        field: "text",
        part: Part::HeldOut,
    },
    HeadSource {
        id: "sst2-dev",
        path: "sst2/sst2_glue_dev_872.tsv",
        format: DataFormat::Tsv,
        text: "sentence",
        label: "label",
        label_map: &[("0", "negative"), ("1", "positive")],
        scenario: "sentiment",
        field: "text",
        part: Part::Half,
    },
];

/// Dataset rows for heads: (training rows, held-out rows, notes). `per_label` caps each
/// source's training rows per label (a seeded sample); held-out rows are all kept. Texts that
/// are one of the scenarios' own item texts (`seen`) are left out.
pub fn dataset_items(
    dir: &Path,
    scenarios: &[Scenario],
    seen: &BTreeSet<String>,
    per_label: usize,
    seed: u64,
) -> Result<(Vec<LabelledItem>, Vec<LabelledItem>, Vec<String>)> {
    let (mut train, mut held, mut notes) = (Vec::new(), Vec::new(), Vec::new());
    for source in HEAD_SOURCES {
        let path = dir.join(source.path);
        let Some(scenario) = scenarios.iter().find(|s| s.name == source.scenario) else {
            notes.push(format!(
                "{}: scenario `{}` not given",
                source.id, source.scenario
            ));
            continue;
        };
        if !path.exists() {
            notes.push(format!("{}: {} not found", source.id, path.display()));
            continue;
        }
        let choices = scenario.generation.choices.clone().unwrap_or_default();
        let mut by_label: BTreeMap<String, Vec<LabelledItem>> = BTreeMap::new();
        let mut texts = BTreeSet::new();
        for (i, (text, raw_label)) in read(&path, source)?.into_iter().enumerate() {
            let label = source
                .label_map
                .iter()
                .find(|(raw, _)| *raw == raw_label)
                .map_or(raw_label.clone(), |(_, l)| l.to_string());
            if !choices.contains(&label) {
                continue;
            }
            let Some(rendered) = render(scenario, source.field, &text)? else {
                continue;
            };
            if seen.contains(&rendered) || !texts.insert(rendered.clone()) {
                continue;
            }
            by_label
                .entry(label.clone())
                .or_default()
                .push(LabelledItem {
                    task: scenario.task.clone(),
                    scenario: format!("dataset:{}", source.id),
                    item_id: (i + 1).to_string(),
                    text: rendered,
                    label,
                    choices: choices.clone(),
                });
        }
        let (mut n_train, mut n_held) = (0, 0);
        for (_, mut rows) in by_label {
            router::classifier::seeded_shuffle(&mut rows, seed);
            let (to_train, to_hold) = match source.part {
                Part::Train => (rows, Vec::new()),
                Part::HeldOut => (Vec::new(), rows),
                Part::Half => {
                    let hold = rows.split_off(rows.len() / 2);
                    (rows, hold)
                }
            };
            n_train += to_train.len().min(per_label);
            n_held += to_hold.len();
            train.extend(to_train.into_iter().take(per_label));
            held.extend(to_hold);
        }
        notes.push(format!(
            "{}: {n_train} rows train, {n_held} held out",
            source.id
        ));
    }
    Ok((train, held, notes))
}

/// (text, raw label) of every row of a source, in file order.
fn read(path: &Path, source: &HeadSource) -> Result<Vec<(String, String)>> {
    let mut fields = BTreeMap::new();
    fields.insert("t".to_string(), source.text.to_string());
    fields.insert("l".to_string(), source.label.to_string());
    let spec = DatasetSpec {
        path: Some(path.display().to_string()),
        format: Some(source.format),
        fields,
        ..DatasetSpec::default()
    };
    Ok(dataset::load(&spec, Path::new(""), path, None)?
        .into_iter()
        .filter_map(|row| {
            let text = row.fields.get("t").map(value_text)?.trim().to_string();
            let label = row.fields.get("l").map(value_text)?.trim().to_string();
            (!text.is_empty()).then_some((text, label))
        })
        .collect())
}

/// `text` as the `field` of an item of `scenario`: the text the head reads for it.
fn render(scenario: &Scenario, field: &str, text: &str) -> Result<Option<String>> {
    let mut fields = Item::new();
    fields.insert(field.to_string(), Value::String(text.to_string()));
    let item = ScenarioItem {
        id: String::new(),
        fields,
        expected: None,
    };
    Ok(backends::head::classifier_text(&scenario.request(&item)?))
}
