//! State of the compare view: one [`Column`] per target of each run, the latency CDFs drawn
//! from the stored histograms (computed once at load), the per-task table's rows and scroll,
//! and the chart's [`LatencyMetric`].

use bench::results::{GroupSummary, ALL_TASKS};

use super::App;
use crate::data::runs::RunData;

/// One column of the compare view and the request browser: one target of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Index of the run in [`crate::state::App::runs`].
    pub run: usize,
    /// Target name within that run.
    pub target: String,
    /// `target`, or `run:target` when several runs are shown.
    pub label: String,
    /// The target's kind from the run metadata (`llama`, `openai`, …), if recorded.
    pub kind: Option<String>,
}

/// Latency metric shown in the compare view's distribution chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyMetric {
    /// End-to-end latency, from the intended send time.
    E2e,
    /// Time to first token.
    Ttft,
    /// Gaps between consecutive tokens.
    Itl,
    /// Time per output token after the first.
    Tpot,
}

impl LatencyMetric {
    /// Every metric, in the order `m` cycles through them (also the index into
    /// [`CompareState::cdf`]).
    pub const ALL: [LatencyMetric; 4] = [
        LatencyMetric::E2e,
        LatencyMetric::Ttft,
        LatencyMetric::Itl,
        LatencyMetric::Tpot,
    ];

    fn index(self) -> usize {
        LatencyMetric::ALL
            .iter()
            .position(|m| *m == self)
            .unwrap_or(0)
    }

    /// The metric's name in `histograms.json` keys (`target/task/metric`).
    pub fn key(self) -> &'static str {
        match self {
            LatencyMetric::E2e => "e2e",
            LatencyMetric::Ttft => "ttft",
            LatencyMetric::Itl => "itl",
            LatencyMetric::Tpot => "tpot",
        }
    }

    /// The metric's name in the chart title.
    pub fn title(self) -> &'static str {
        match self {
            LatencyMetric::E2e => "end-to-end",
            LatencyMetric::Ttft => "time to first token",
            LatencyMetric::Itl => "inter-token",
            LatencyMetric::Tpot => "time per output token",
        }
    }

    pub(super) fn next(self) -> Self {
        match self {
            LatencyMetric::E2e => LatencyMetric::Ttft,
            LatencyMetric::Ttft => LatencyMetric::Itl,
            LatencyMetric::Itl => LatencyMetric::Tpot,
            LatencyMetric::Tpot => LatencyMetric::E2e,
        }
    }
}

/// The compare view: its columns, their CDFs, the per-task table's scroll and filter.
#[derive(Clone, Debug)]
pub struct CompareState {
    /// One column per target of each run, in run order.
    pub columns: Vec<Column>,
    /// Latency CDF points per column and [`LatencyMetric`], computed once at load (the
    /// histograms do not change): `(log10 ms, percentile)`.
    pub cdf: Vec<[Vec<(f64, f64)>; 4]>,
    /// First row shown of the per-task table.
    pub task_scroll: usize,
    /// The metric the latency CDF chart shows (`m` cycles it).
    pub metric: LatencyMetric,
    /// Substring filter on task and target names.
    pub filter: String,
}

impl CompareState {
    /// The columns of `runs` and their latency CDFs, nothing scrolled or filtered.
    pub(super) fn new(runs: &[RunData], columns: Vec<Column>) -> Self {
        let cdf = columns
            .iter()
            .map(|col| LatencyMetric::ALL.map(|m| cdf_points(runs, col, m)))
            .collect();
        CompareState {
            cdf,
            columns,
            task_scroll: 0,
            metric: LatencyMetric::E2e,
            filter: String::new(),
        }
    }

    /// The CDF points of one column and metric (empty when nothing was recorded).
    pub fn cdf_of(&self, column: usize, metric: LatencyMetric) -> &[(f64, f64)] {
        self.cdf
            .get(column)
            .map(|per_metric| per_metric[metric.index()].as_slice())
            .unwrap_or(&[])
    }
}

impl App {
    /// The summary group of one column and task (`*` for all tasks).
    pub fn group(&self, column: &Column, task: &str) -> Option<&GroupSummary> {
        group_of(&self.runs, column, task)
    }

    /// Every task of every run (without `*`), sorted, passing the compare filter.
    pub fn tasks(&self) -> Vec<String> {
        let mut tasks: Vec<String> = self
            .runs
            .iter()
            .flat_map(|r| r.summary.groups.iter())
            .filter(|g| g.task != ALL_TASKS)
            .map(|g| g.task.clone())
            .collect();
        tasks.sort();
        tasks.dedup();
        tasks
    }

    /// Rows of the per-task table: (task, column index) pairs passing the compare filter.
    pub fn task_rows(&self) -> Vec<(String, usize)> {
        let needle = self.compare.filter.to_lowercase();
        let mut rows = Vec::new();
        for task in self.tasks() {
            for (ci, col) in self.compare.columns.iter().enumerate() {
                if self.group(col, &task).is_none() {
                    continue;
                }
                if needle.is_empty()
                    || task.to_lowercase().contains(&needle)
                    || col.label.to_lowercase().contains(&needle)
                {
                    rows.push((task.clone(), ci));
                }
            }
        }
        rows
    }
}

fn group_of<'a>(runs: &'a [RunData], column: &Column, task: &str) -> Option<&'a GroupSummary> {
    runs.get(column.run)?
        .summary
        .groups
        .iter()
        .find(|g| g.target == column.target && g.task == task)
}

/// Points of a latency CDF for one column: (log10 ms, percentile), from the stored HDR
/// histogram when there is one, else from the summary's percentiles.
fn cdf_points(runs: &[RunData], col: &Column, metric: LatencyMetric) -> Vec<(f64, f64)> {
    const QS: [f64; 14] = [
        0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999,
    ];
    let to_point = |ms: f64, q: f64| (ms.max(1e-3).log10(), q * 100.0);
    if let Some(h) = runs
        .get(col.run)
        .and_then(|r| r.histogram(&col.target, ALL_TASKS, metric.key()))
    {
        if !h.is_empty() {
            let mut pts: Vec<(f64, f64)> =
                QS.iter().map(|q| to_point(h.quantile_ms(*q), *q)).collect();
            pts.push(to_point(h.quantile_ms(1.0), 1.0));
            return pts;
        }
    }
    let Some(g) = group_of(runs, col, ALL_TASKS) else {
        return Vec::new();
    };
    let p = match metric {
        LatencyMetric::E2e => g.latency.e2e.as_ref(),
        LatencyMetric::Ttft => g.latency.ttft.as_ref(),
        LatencyMetric::Itl => g.latency.itl.as_ref(),
        LatencyMetric::Tpot => g.latency.tpot.as_ref(),
    };
    match p {
        Some(p) => vec![
            to_point(p.min_ms, 0.0),
            to_point(p.p50_ms, 0.5),
            to_point(p.p90_ms, 0.9),
            to_point(p.p99_ms, 0.99),
            to_point(p.p999_ms, 0.999),
            to_point(p.max_ms, 1.0),
        ],
        None => Vec::new(),
    }
}

pub(super) fn columns_of(runs: &[RunData]) -> Vec<Column> {
    let mut out = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let mut targets: Vec<&str> = Vec::new();
        for t in &run.summary.run.targets {
            targets.push(&t.name);
        }
        for g in &run.summary.groups {
            if !targets.contains(&g.target.as_str()) {
                targets.push(&g.target);
            }
        }
        for r in &run.records {
            if !targets.contains(&r.target.as_str()) {
                targets.push(&r.target);
            }
        }
        for target in targets {
            let kind = run
                .summary
                .run
                .targets
                .iter()
                .find(|t| t.name == target)
                .map(|t| t.kind.clone());
            out.push(Column {
                run: ri,
                target: target.to_string(),
                label: if runs.len() > 1 {
                    format!("{}:{target}", run.label)
                } else {
                    target.to_string()
                },
                kind,
            });
        }
    }
    out
}
