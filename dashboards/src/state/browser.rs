//! State of the request browser: every benchmark [`Item`] with each column's record of it, the
//! preset [`ItemFilter`]s ("SLM wrong, LLM right", escalated, errors, slowest) and the text
//! filter, the selection and the detail pane's scroll.

use std::collections::BTreeMap;

use bench::record::RequestRecord;

use super::compare::Column;
use crate::data::runs::RunData;

/// Preset filters of the request browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemFilter {
    /// Every item.
    All,
    /// Items the small model's column failed and the large model's column passed.
    SlmWrongLlmRight,
    /// Items the large model's column failed and the small model's column passed.
    LlmWrongSlmRight,
    /// Items some column's gateway escalated.
    Escalated,
    /// Items some column's request failed.
    Errors,
    /// Every item, slowest first (by the longest end-to-end latency across columns).
    Slowest,
}

impl ItemFilter {
    /// The filter's name in the browser's title.
    pub fn title(self) -> &'static str {
        match self {
            ItemFilter::All => "all",
            ItemFilter::SlmWrongLlmRight => "SLM wrong, LLM right",
            ItemFilter::LlmWrongSlmRight => "LLM wrong, SLM right",
            ItemFilter::Escalated => "escalated",
            ItemFilter::Errors => "errors",
            ItemFilter::Slowest => "slowest",
        }
    }

    pub(super) fn next(self) -> Self {
        match self {
            ItemFilter::All => ItemFilter::SlmWrongLlmRight,
            ItemFilter::SlmWrongLlmRight => ItemFilter::LlmWrongSlmRight,
            ItemFilter::LlmWrongSlmRight => ItemFilter::Escalated,
            ItemFilter::Escalated => ItemFilter::Errors,
            ItemFilter::Errors => ItemFilter::Slowest,
            ItemFilter::Slowest => ItemFilter::All,
        }
    }
}

/// One benchmark item across every column.
#[derive(Clone, Debug)]
pub struct Item {
    /// Scenario the item belongs to.
    pub scenario: String,
    /// The scenario's task.
    pub task: String,
    /// The item's id within its scenario.
    pub item_id: String,
    /// The request's messages as recorded (the first column that recorded them); `None` when the
    /// runs were made with `record_prompts: false`.
    pub prompt: Option<String>,
    /// The item's expected answer, when the scenario has one.
    pub expected: Option<String>,
    /// One entry per [`Column`]: that target's record of this item.
    pub cells: Vec<Option<RequestRecord>>,
}

impl Item {
    /// The longest end-to-end latency of the item across columns, in ms (0 without records).
    pub fn slowest_ms(&self) -> f64 {
        self.cells
            .iter()
            .flatten()
            .map(|r| r.e2e_ms)
            .fold(0.0, f64::max)
    }

    /// Whether any column's gateway escalated this item.
    pub fn escalated(&self) -> bool {
        self.cells
            .iter()
            .flatten()
            .any(|r| r.routing.escalated == Some(true))
    }

    /// Whether any column's request for this item failed.
    pub fn has_error(&self) -> bool {
        self.cells.iter().flatten().any(|r| r.error.is_some())
    }

    fn matches_text(&self, needle: &str) -> bool {
        if needle.is_empty() {
            return true;
        }
        let needle = needle.to_lowercase();
        let hay = |s: &str| s.to_lowercase().contains(&needle);
        hay(&self.item_id)
            || hay(&self.scenario)
            || hay(&self.task)
            || self.prompt.as_deref().is_some_and(hay)
            || self.expected.as_deref().is_some_and(hay)
            || self.cells.iter().flatten().any(|r| hay(&r.output))
    }
}

/// The request browser: every item, the filters, the selection.
#[derive(Clone, Debug)]
pub struct BrowserState {
    /// Every item of every run, in first-seen order.
    pub items: Vec<Item>,
    /// The preset filter (`f` cycles it).
    pub preset: ItemFilter,
    /// The text filter, matched case-insensitively against ids, prompt, expected answer and
    /// outputs.
    pub filter: String,
    /// Index into [`BrowserState::visible`].
    pub selected: usize,
    /// Lines the detail pane is scrolled down by; reset when the selection moves.
    pub detail_scroll: u16,
    /// Columns holding the small and the large model, when they can be told apart.
    pub slm_column: Option<usize>,
    /// The large model's column (never the same as `slm_column`).
    pub llm_column: Option<usize>,
}

impl BrowserState {
    /// The items of `runs` laid out over `columns`, with the small and large model's columns
    /// found by name or kind; nothing selected or filtered.
    pub(super) fn new(runs: &[RunData], columns: &[Column]) -> Self {
        let slm_column = find_column(columns, &["slm", "small", "local"], &["llama"]);
        let llm_column = find_column(
            columns,
            &["llm", "large", "remote"],
            &["openai", "anthropic"],
        )
        .filter(|c| Some(*c) != slm_column);
        BrowserState {
            items: items_of(runs, columns),
            preset: ItemFilter::All,
            filter: String::new(),
            selected: 0,
            detail_scroll: 0,
            slm_column,
            llm_column,
        }
    }

    /// Indices of the items passing the preset and the text filter, in display order.
    pub fn visible(&self) -> Vec<usize> {
        let passed = |item: &Item, col: Option<usize>| -> Option<bool> {
            let r = item.cells.get(col?)?.as_ref()?;
            Some(r.passed)
        };
        let mut out: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, item)| match self.preset {
                ItemFilter::All | ItemFilter::Slowest => true,
                ItemFilter::SlmWrongLlmRight => {
                    passed(item, self.slm_column) == Some(false)
                        && passed(item, self.llm_column) == Some(true)
                }
                ItemFilter::LlmWrongSlmRight => {
                    passed(item, self.slm_column) == Some(true)
                        && passed(item, self.llm_column) == Some(false)
                }
                ItemFilter::Escalated => item.escalated(),
                ItemFilter::Errors => item.has_error(),
            })
            .filter(|(_, item)| item.matches_text(&self.filter))
            .map(|(i, _)| i)
            .collect();
        if self.preset == ItemFilter::Slowest {
            out.sort_by(|a, b| {
                self.items[*b]
                    .slowest_ms()
                    .total_cmp(&self.items[*a].slowest_ms())
            });
        }
        out
    }

    /// The selected item among the visible ones, if any.
    pub fn selected_item(&self) -> Option<&Item> {
        let visible = self.visible();
        visible.get(self.selected).and_then(|i| self.items.get(*i))
    }
}

fn items_of(runs: &[RunData], columns: &[Column]) -> Vec<Item> {
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut items: Vec<Item> = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        for r in &run.records {
            let Some(ci) = columns
                .iter()
                .position(|c| c.run == ri && c.target == r.target)
            else {
                continue;
            };
            let key = (r.scenario.clone(), r.item_id.clone());
            let at = *index.entry(key).or_insert_with(|| {
                items.push(Item {
                    scenario: r.scenario.clone(),
                    task: r.task.clone(),
                    item_id: r.item_id.clone(),
                    prompt: None,
                    expected: None,
                    cells: vec![None; columns.len()],
                });
                items.len() - 1
            });
            let item = &mut items[at];
            if item.prompt.is_none() {
                item.prompt = r.prompt.clone();
            }
            if item.expected.is_none() {
                item.expected = r.expected.clone();
            }
            item.cells[ci] = Some(r.clone());
        }
    }
    items
}

/// The first column whose target name contains one of `names` or whose kind is in `kinds`
/// (router columns — by name, or the in-process `router:` target's kind — are never a model
/// column).
fn find_column(columns: &[Column], names: &[&str], kinds: &[&str]) -> Option<usize> {
    let is_router = |c: &Column| {
        c.target.to_lowercase().contains("router")
            || matches!(c.kind.as_deref(), Some("gateway" | "router"))
    };
    columns
        .iter()
        .position(|c| !is_router(c) && names.iter().any(|n| c.target.to_lowercase().contains(n)))
        .or_else(|| {
            columns.iter().position(|c| {
                !is_router(c) && c.kind.as_deref().is_some_and(|k| kinds.contains(&k))
            })
        })
}
