//! Everything the screen shows, and the only place it changes.
//!
//! [`App`] is plain data: [`App::apply`] handles an [`Action`] (from [`crate::input`]),
//! [`App::on_data`] a [`DataMsg`] (from the live tasks). Neither does I/O, so the draw loop never waits on the network or the disk, and tests
//! drive the whole dashboard by calling them.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bench::record::RequestRecord;
use bench::results::{GroupSummary, ALL_TASKS};

use crate::data::hw::HwReport;
use crate::data::live::{LiveMsg, MetricsSnapshot, RequestSummary};
use crate::data::runs::RunData;

/// The dashboard's tabs, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Compare,
    Requests,
    Live,
    Hardware,
}

impl Tab {
    pub const ALL: [Tab; 4] = [Tab::Compare, Tab::Requests, Tab::Live, Tab::Hardware];

    pub fn title(self) -> &'static str {
        match self {
            Tab::Compare => "Compare",
            Tab::Requests => "Requests",
            Tab::Live => "Live",
            Tab::Hardware => "Hardware",
        }
    }

    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Quit,
    NextTab,
    PrevTab,
    GoTab(usize),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Scroll the detail pane (request browser) or nothing.
    DetailUp,
    DetailDown,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    /// Keep the filter and leave filter editing.
    FilterDone,
    /// Clear the filter and leave filter editing.
    FilterClear,
    ToggleHelp,
    /// Request browser: next preset filter (all, SLM wrong/LLM right, …).
    CycleItemFilter,
    /// Compare view: next latency metric for the distribution chart.
    CycleMetric,
}

/// What arrives over the data channel.
#[derive(Clone, Debug)]
pub enum DataMsg {
    Live(LiveMsg),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputMode {
    Normal,
    Filter,
}

/// One column of the compare view and the request browser: one target of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub run: usize,
    pub target: String,
    /// `target`, or `run:target` when several runs are shown.
    pub label: String,
    /// The target's kind from the run metadata (`llama`, `openai`, …), if recorded.
    pub kind: Option<String>,
}

/// Latency metric shown in the compare view's distribution chart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LatencyMetric {
    E2e,
    Ttft,
    Itl,
    Tpot,
}

impl LatencyMetric {
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

    pub fn key(self) -> &'static str {
        match self {
            LatencyMetric::E2e => "e2e",
            LatencyMetric::Ttft => "ttft",
            LatencyMetric::Itl => "itl",
            LatencyMetric::Tpot => "tpot",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            LatencyMetric::E2e => "end-to-end",
            LatencyMetric::Ttft => "time to first token",
            LatencyMetric::Itl => "inter-token",
            LatencyMetric::Tpot => "time per output token",
        }
    }

    fn next(self) -> Self {
        match self {
            LatencyMetric::E2e => LatencyMetric::Ttft,
            LatencyMetric::Ttft => LatencyMetric::Itl,
            LatencyMetric::Itl => LatencyMetric::Tpot,
            LatencyMetric::Tpot => LatencyMetric::E2e,
        }
    }
}

#[derive(Clone, Debug)]
pub struct CompareState {
    pub columns: Vec<Column>,
    /// Latency CDF points per column and [`LatencyMetric`], computed once at load (the
    /// histograms do not change): `(log10 ms, percentile)`.
    pub cdf: Vec<[Vec<(f64, f64)>; 4]>,
    /// First row shown of the per-task table.
    pub task_scroll: usize,
    pub metric: LatencyMetric,
    /// Substring filter on task and target names.
    pub filter: String,
}

impl CompareState {
    /// The CDF points of one column and metric (empty when nothing was recorded).
    pub fn cdf_of(&self, column: usize, metric: LatencyMetric) -> &[(f64, f64)] {
        self.cdf
            .get(column)
            .map(|per_metric| per_metric[metric.index()].as_slice())
            .unwrap_or(&[])
    }
}

/// Preset filters of the request browser.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemFilter {
    All,
    SlmWrongLlmRight,
    LlmWrongSlmRight,
    Escalated,
    Errors,
    Slowest,
}

impl ItemFilter {
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

    fn next(self) -> Self {
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
    pub scenario: String,
    pub task: String,
    pub item_id: String,
    pub prompt: Option<String>,
    pub expected: Option<String>,
    /// One entry per [`Column`]: that target's record of this item.
    pub cells: Vec<Option<RequestRecord>>,
}

impl Item {
    pub fn slowest_ms(&self) -> f64 {
        self.cells
            .iter()
            .flatten()
            .map(|r| r.e2e_ms)
            .fold(0.0, f64::max)
    }

    pub fn escalated(&self) -> bool {
        self.cells
            .iter()
            .flatten()
            .any(|r| r.routing.escalated == Some(true))
    }

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

#[derive(Clone, Debug)]
pub struct BrowserState {
    pub items: Vec<Item>,
    pub preset: ItemFilter,
    pub filter: String,
    /// Index into [`BrowserState::visible`].
    pub selected: usize,
    pub detail_scroll: u16,
    /// Columns holding the small and the large model, when they can be told apart.
    pub slm_column: Option<usize>,
    pub llm_column: Option<usize>,
}

impl BrowserState {
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

    pub fn selected_item(&self) -> Option<&Item> {
        let visible = self.visible();
        visible.get(self.selected).and_then(|i| self.items.get(*i))
    }
}

/// State of the connection to the gateway's event stream.
#[derive(Clone, Debug, PartialEq)]
pub enum Connection {
    /// No `--live` URL given.
    Off,
    Connecting,
    Connected,
    Disconnected {
        error: String,
        retry_in: Duration,
    },
}

/// Requests per second over the last [`RATE_WINDOW`] of scrapes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rates {
    pub total: f64,
    pub by_backend: BTreeMap<String, f64>,
    pub by_route: BTreeMap<String, f64>,
}

/// Requests per second are averaged over this much scrape history.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Request counters of one scrape, for rates.
#[derive(Clone, Debug)]
pub struct CounterSample {
    pub at: std::time::Instant,
    pub by_backend: BTreeMap<String, f64>,
    pub by_route: BTreeMap<String, f64>,
}

/// How many recent requests and latency points the live view keeps.
pub const LIVE_RECENT: usize = 200;
pub const LIVE_SPARK_POINTS: usize = 120;

#[derive(Clone, Debug)]
pub struct LiveState {
    pub url: Option<String>,
    pub connection: Connection,
    /// Times the event stream was (re)established.
    pub connects: u64,
    pub events_seen: u64,
    pub bad_events: u64,
    pub last_bad_event: Option<String>,
    /// Newest first.
    pub recent: VecDeque<RequestSummary>,
    /// End-to-end microseconds of the last requests, per backend, oldest first.
    pub latency: BTreeMap<String, VecDeque<u64>>,
    pub metrics: Option<MetricsSnapshot>,
    pub metrics_error: Option<String>,
    pub rates: Rates,
    /// Scrapes within the rate window, oldest first.
    pub counter_history: VecDeque<CounterSample>,
    /// Total requests/s at each scrape, oldest first.
    pub rps_history: VecDeque<f64>,
    /// Cost and savings of the requests seen by this dashboard (from events).
    pub cost_seen_usd: f64,
    pub saved_seen_usd: f64,
    pub filter: String,
    pub scroll: usize,
}

impl LiveState {
    fn new(url: Option<String>) -> Self {
        LiveState {
            connection: if url.is_some() {
                Connection::Connecting
            } else {
                Connection::Off
            },
            url,
            connects: 0,
            events_seen: 0,
            bad_events: 0,
            last_bad_event: None,
            recent: VecDeque::new(),
            latency: BTreeMap::new(),
            metrics: None,
            metrics_error: None,
            rates: Rates::default(),
            counter_history: VecDeque::new(),
            rps_history: VecDeque::new(),
            cost_seen_usd: 0.0,
            saved_seen_usd: 0.0,
            filter: String::new(),
            scroll: 0,
        }
    }

    /// Fold one message from the live tasks into the state.
    pub fn on_msg(&mut self, msg: LiveMsg) {
        match msg {
            LiveMsg::Connected => {
                self.connection = Connection::Connected;
                self.connects += 1;
            }
            LiveMsg::Disconnected { error, retry_in } => {
                self.connection = Connection::Disconnected { error, retry_in };
            }
            LiveMsg::Event(summary) => self.on_event(*summary),
            LiveMsg::BadEvent(text) => {
                self.bad_events += 1;
                self.last_bad_event = Some(text);
            }
            LiveMsg::Metrics(snapshot) => self.on_metrics(snapshot),
            LiveMsg::MetricsError(e) => self.metrics_error = Some(e),
        }
    }

    fn on_event(&mut self, summary: RequestSummary) {
        self.events_seen += 1;
        self.cost_seen_usd += summary.cost_usd;
        self.saved_seen_usd += summary.saved_usd;
        let backend = summary.backend.clone().unwrap_or_else(|| "none".into());
        let points = self.latency.entry(backend).or_default();
        points.push_back((summary.e2e_ms.max(0.0) * 1000.0).round() as u64);
        while points.len() > LIVE_SPARK_POINTS {
            points.pop_front();
        }
        self.recent.push_front(summary);
        self.recent.truncate(LIVE_RECENT);
    }

    fn on_metrics(&mut self, snapshot: MetricsSnapshot) {
        self.metrics_error = None;
        let sample = CounterSample {
            at: snapshot.at,
            by_backend: snapshot.requests_by_backend(),
            by_route: snapshot.requests_by_route(),
        };
        // A counter that went down means the gateway restarted from zero: count from a zero
        // baseline at the previous scrape.
        let restarted = self.counter_history.back().is_some_and(|last| {
            sample
                .by_backend
                .iter()
                .any(|(k, v)| last.by_backend.get(k).is_some_and(|old| v < old))
                || last
                    .by_backend
                    .keys()
                    .any(|k| !sample.by_backend.contains_key(k))
        });
        if restarted {
            let at = self.counter_history.back().map_or(sample.at, |l| l.at);
            self.counter_history.clear();
            self.counter_history.push_back(CounterSample {
                at,
                by_backend: BTreeMap::new(),
                by_route: BTreeMap::new(),
            });
        }
        self.counter_history.push_back(sample);
        // Keep the newest sample and the ones within the rate window before it.
        while self.counter_history.len() > 2
            && self
                .counter_history
                .get(1)
                .zip(self.counter_history.back())
                .is_some_and(|(second, newest)| {
                    newest.at.saturating_duration_since(second.at) >= RATE_WINDOW
                })
        {
            self.counter_history.pop_front();
        }
        if let (Some(oldest), Some(newest)) =
            (self.counter_history.front(), self.counter_history.back())
        {
            let dt = newest.at.saturating_duration_since(oldest.at).as_secs_f64();
            if dt > 0.0 {
                let rate = |now: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>| {
                    now.iter()
                        .map(|(k, v)| {
                            let old = before.get(k).copied().unwrap_or(0.0);
                            (k.clone(), (v - old).max(0.0) / dt)
                        })
                        .collect::<BTreeMap<_, _>>()
                };
                let by_backend = rate(&newest.by_backend, &oldest.by_backend);
                let by_route = rate(&newest.by_route, &oldest.by_route);
                self.rates = Rates {
                    total: by_backend.values().sum(),
                    by_backend,
                    by_route,
                };
                self.rps_history.push_back(self.rates.total);
                while self.rps_history.len() > LIVE_SPARK_POINTS {
                    self.rps_history.pop_front();
                }
            }
        }
        self.metrics = Some(snapshot);
    }

    /// Recent requests passing the text filter (backend, route, task, model, status, error).
    pub fn visible_recent(&self) -> Vec<&RequestSummary> {
        let needle = self.filter.to_lowercase();
        self.recent
            .iter()
            .filter(|s| {
                needle.is_empty()
                    || [
                        s.backend.as_deref(),
                        s.route.as_deref(),
                        s.task.as_deref(),
                        Some(s.model.as_str()),
                        s.error.as_deref(),
                    ]
                    .into_iter()
                    .flatten()
                    .any(|f| f.to_lowercase().contains(&needle))
                    || s.status.to_string() == needle
            })
            .collect()
    }
}

#[derive(Clone, Debug)]
pub struct HwState {
    pub report: Option<HwReport>,
    pub scroll: usize,
}

/// The whole dashboard.
#[derive(Clone, Debug)]
pub struct App {
    pub tab: Tab,
    pub mode: InputMode,
    pub show_help: bool,
    pub should_quit: bool,
    pub runs: Vec<RunData>,
    pub compare: CompareState,
    pub browser: BrowserState,
    pub live: LiveState,
    pub hw: HwState,
}

impl App {
    pub fn new(runs: Vec<RunData>, hw: Option<HwReport>, live_url: Option<String>) -> App {
        let columns = columns_of(&runs);
        let items = items_of(&runs, &columns);
        let slm_column = find_column(&columns, &["slm", "small", "local"], &["llama"]);
        let llm_column = find_column(
            &columns,
            &["llm", "large", "remote"],
            &["openai", "anthropic"],
        )
        .filter(|c| Some(*c) != slm_column);
        let tab = if runs.is_empty() {
            if live_url.is_some() {
                Tab::Live
            } else if hw.is_some() {
                Tab::Hardware
            } else {
                Tab::Compare
            }
        } else {
            Tab::Compare
        };
        let mut app = App {
            tab,
            mode: InputMode::Normal,
            show_help: false,
            should_quit: false,
            runs,
            compare: CompareState {
                cdf: Vec::new(),
                columns,
                task_scroll: 0,
                metric: LatencyMetric::E2e,
                filter: String::new(),
            },
            browser: BrowserState {
                items,
                preset: ItemFilter::All,
                filter: String::new(),
                selected: 0,
                detail_scroll: 0,
                slm_column,
                llm_column,
            },
            live: LiveState::new(live_url),
            hw: HwState {
                report: hw,
                scroll: 0,
            },
        };
        app.compare.cdf = (0..app.compare.columns.len())
            .map(|i| {
                let col = &app.compare.columns[i];
                LatencyMetric::ALL.map(|m| cdf_points(&app, col, m))
            })
            .collect();
        app
    }

    /// The summary group of one column and task (`*` for all tasks).
    pub fn group(&self, column: &Column, task: &str) -> Option<&GroupSummary> {
        self.runs
            .get(column.run)?
            .summary
            .groups
            .iter()
            .find(|g| g.target == column.target && g.task == task)
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

    /// The text filter of the current tab.
    pub fn filter(&self) -> &str {
        match self.tab {
            Tab::Compare => &self.compare.filter,
            Tab::Requests => &self.browser.filter,
            Tab::Live => &self.live.filter,
            Tab::Hardware => "",
        }
    }

    fn filter_mut(&mut self) -> Option<&mut String> {
        match self.tab {
            Tab::Compare => Some(&mut self.compare.filter),
            Tab::Requests => Some(&mut self.browser.filter),
            Tab::Live => Some(&mut self.live.filter),
            Tab::Hardware => None,
        }
    }

    /// Handle one user action.
    pub fn apply(&mut self, action: Action) {
        match action {
            Action::Quit => self.should_quit = true,
            Action::ToggleHelp => self.show_help = !self.show_help,
            Action::NextTab => self.set_tab((self.tab.index() + 1) % Tab::ALL.len()),
            Action::PrevTab => {
                self.set_tab((self.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len())
            }
            Action::GoTab(i) => self.set_tab(i),
            Action::Up => self.move_selection(-1),
            Action::Down => self.move_selection(1),
            Action::PageUp => self.move_selection(-10),
            Action::PageDown => self.move_selection(10),
            Action::Top => self.move_selection(i64::MIN / 2),
            Action::Bottom => self.move_selection(i64::MAX / 2),
            Action::DetailUp => {
                self.browser.detail_scroll = self.browser.detail_scroll.saturating_sub(3)
            }
            Action::DetailDown => {
                self.browser.detail_scroll = self.browser.detail_scroll.saturating_add(3)
            }
            Action::StartFilter => {
                if self.filter_mut().is_some() {
                    self.mode = InputMode::Filter;
                }
            }
            Action::FilterChar(c) => {
                if let Some(f) = self.filter_mut() {
                    f.push(c);
                }
                self.reset_selection();
            }
            Action::FilterBackspace => {
                if let Some(f) = self.filter_mut() {
                    f.pop();
                }
                self.reset_selection();
            }
            Action::FilterDone => self.mode = InputMode::Normal,
            Action::FilterClear => {
                if let Some(f) = self.filter_mut() {
                    f.clear();
                }
                self.mode = InputMode::Normal;
                self.reset_selection();
            }
            Action::CycleItemFilter => {
                if self.tab == Tab::Requests {
                    self.browser.preset = self.browser.preset.next();
                    self.reset_selection();
                }
            }
            Action::CycleMetric => {
                if self.tab == Tab::Compare {
                    self.compare.metric = self.compare.metric.next();
                }
            }
        }
    }

    fn set_tab(&mut self, i: usize) {
        if let Some(tab) = Tab::ALL.get(i) {
            self.tab = *tab;
            self.mode = InputMode::Normal;
        }
    }

    fn reset_selection(&mut self) {
        match self.tab {
            Tab::Compare => self.compare.task_scroll = 0,
            Tab::Requests => {
                self.browser.selected = 0;
                self.browser.detail_scroll = 0;
            }
            Tab::Live => self.live.scroll = 0,
            Tab::Hardware => {}
        }
    }

    fn move_selection(&mut self, delta: i64) {
        let step = |pos: usize, len: usize| -> usize {
            if len == 0 {
                return 0;
            }
            (pos as i64).saturating_add(delta).clamp(0, len as i64 - 1) as usize
        };
        match self.tab {
            Tab::Compare => {
                let len = self.task_rows().len();
                self.compare.task_scroll = step(self.compare.task_scroll, len);
            }
            Tab::Requests => {
                let len = self.browser.visible().len();
                let next = step(self.browser.selected, len);
                if next != self.browser.selected {
                    self.browser.detail_scroll = 0;
                }
                self.browser.selected = next;
            }
            Tab::Live => {
                let len = self.live.visible_recent().len();
                self.live.scroll = step(self.live.scroll, len);
            }
            Tab::Hardware => {
                let len = self
                    .hw
                    .report
                    .as_ref()
                    .map_or(0, |r| r.system_lines().len());
                self.hw.scroll = step(self.hw.scroll, len);
            }
        }
    }

    /// Handle one message from a data task.
    pub fn on_data(&mut self, msg: DataMsg) {
        match msg {
            DataMsg::Live(m) => self.live.on_msg(m),
        }
    }
}

/// Points of a latency CDF for one column: (log10 ms, percentile), from the stored HDR
/// histogram when there is one, else from the summary's percentiles.
fn cdf_points(app: &App, col: &Column, metric: LatencyMetric) -> Vec<(f64, f64)> {
    const QS: [f64; 14] = [
        0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999,
    ];
    let to_point = |ms: f64, q: f64| (ms.max(1e-3).log10(), q * 100.0);
    if let Some(h) = app
        .runs
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
    let Some(g) = app.group(col, ALL_TASKS) else {
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

fn columns_of(runs: &[RunData]) -> Vec<Column> {
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
            if !targets.contains(&r.record.target.as_str()) {
                targets.push(&r.record.target);
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

fn items_of(runs: &[RunData], columns: &[Column]) -> Vec<Item> {
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut items: Vec<Item> = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        for loaded in &run.records {
            let r = &loaded.record;
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
                item.prompt = loaded.prompt.clone();
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
/// (router columns are never a model column).
fn find_column(columns: &[Column], names: &[&str], kinds: &[&str]) -> Option<usize> {
    let is_router = |c: &Column| {
        c.target.to_lowercase().contains("router") || c.kind.as_deref() == Some("gateway")
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
