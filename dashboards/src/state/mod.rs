//! Everything the screen shows, and the only place it changes.
//!
//! [`App`] is plain data: [`App::apply`] handles an [`Action`] (from [`crate::input`]),
//! [`App::on_data`] a [`DataMsg`] (from the live tasks). Neither does I/O, so the draw loop
//! never waits on the network or the disk, and tests drive the whole dashboard by calling them.
//!
//! One module per view, as in [`crate::render`]: [`compare`], [`browser`], [`live`] and
//! [`hw`] hold each tab's state; this file holds the tabs, the actions, the [`App`] that owns
//! them all, and the dispatch of actions to the current tab.

pub mod browser;
pub mod compare;
pub mod hw;
pub mod live;

pub use browser::{BrowserState, Item, ItemFilter};
pub use compare::{Column, CompareState, LatencyMetric};
pub use hw::HwState;
pub use live::{
    Connection, CounterSample, LiveState, Rates, LIVE_RECENT, LIVE_SPARK_POINTS, RATE_WINDOW,
};

use crate::data::hw::HwReport;
use crate::data::live::LiveMsg;
use crate::data::runs::RunData;

/// The dashboard's tabs, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    /// Benchmark runs side by side: quality, latency, cost, per task, CDFs, frontier.
    Compare,
    /// The request browser: every item with each target's score and output.
    Requests,
    /// A running gateway's events and metrics.
    Live,
    /// The `triage hw` report.
    Hardware,
}

impl Tab {
    /// Every tab, in display order (keys 1–4).
    pub const ALL: [Tab; 4] = [Tab::Compare, Tab::Requests, Tab::Live, Tab::Hardware];

    /// The tab's name in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            Tab::Compare => "Compare",
            Tab::Requests => "Requests",
            Tab::Live => "Live",
            Tab::Hardware => "Hardware",
        }
    }

    /// Position of the tab in [`Tab::ALL`] (0-based).
    pub fn index(self) -> usize {
        Tab::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }
}

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave the dashboard (`q`, Ctrl-C).
    Quit,
    /// Go to the next tab, wrapping around (Tab, →, `l`).
    NextTab,
    /// Go to the previous tab, wrapping around (Shift-Tab, ←, `h`).
    PrevTab,
    /// Go to the tab at this 0-based index (keys 1–4); out of range does nothing.
    GoTab(usize),
    /// Move the selection (or scroll) one row up.
    Up,
    /// Move the selection (or scroll) one row down.
    Down,
    /// Move ten rows up.
    PageUp,
    /// Move ten rows down (PageDown, Space).
    PageDown,
    /// Go to the first row (Home, `g`).
    Top,
    /// Go to the last row (End, `G`).
    Bottom,
    /// Scroll the detail pane (request browser) or nothing.
    DetailUp,
    /// Scroll the detail pane (request browser) down, or nothing.
    DetailDown,
    /// Start editing the current tab's text filter (`/`); the Hardware tab has none.
    StartFilter,
    /// Type a character into the filter being edited.
    FilterChar(char),
    /// Delete the filter's last character.
    FilterBackspace,
    /// Keep the filter and leave filter editing.
    FilterDone,
    /// Clear the filter and leave filter editing.
    FilterClear,
    /// Show or hide the key help overlay (`?`).
    ToggleHelp,
    /// Request browser: next preset filter (all, SLM wrong/LLM right, …).
    CycleItemFilter,
    /// Compare view: next latency metric for the distribution chart.
    CycleMetric,
}

/// What arrives over the data channel.
#[derive(Clone, Debug)]
pub enum DataMsg {
    /// A message from the live gateway tasks.
    Live(LiveMsg),
}

/// Whether keys are commands or go into the text filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputMode {
    /// Keys are commands.
    Normal,
    /// Keys edit the current tab's text filter (Enter keeps it, Esc clears it).
    Filter,
}

/// The whole dashboard.
#[derive(Clone, Debug)]
pub struct App {
    /// The tab on screen.
    pub tab: Tab,
    /// Whether keys are commands or filter text.
    pub mode: InputMode,
    /// Whether the key help overlay is shown.
    pub show_help: bool,
    /// Set by [`Action::Quit`]; the event loop ends when it is.
    pub should_quit: bool,
    /// The loaded benchmark runs, in the order given.
    pub runs: Vec<RunData>,
    /// The Compare tab's state.
    pub compare: CompareState,
    /// The Requests tab's state.
    pub browser: BrowserState,
    /// The Live tab's state.
    pub live: LiveState,
    /// The Hardware tab's state.
    pub hw: HwState,
}

impl App {
    /// The dashboard over `runs`, a hw report and a gateway URL; it opens on Compare, or on the
    /// first other tab that has something to show when there are no runs.
    pub fn new(runs: Vec<RunData>, hw: Option<HwReport>, live_url: Option<String>) -> App {
        let columns = compare::columns_of(&runs);
        let browser = BrowserState::new(&runs, &columns);
        let compare = CompareState::new(&runs, columns);
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
        App {
            tab,
            mode: InputMode::Normal,
            show_help: false,
            should_quit: false,
            runs,
            compare,
            browser,
            live: LiveState::new(live_url),
            hw: HwState {
                report: hw,
                scroll: 0,
            },
        }
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
