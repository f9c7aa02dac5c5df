//! # dashboards
//!
//! `triage dash`: a terminal dashboard (ratatui) over what the rest of triage produces.
//!
//! - **Compare** — benchmark run directories written by `bench` (`summary.json`,
//!   `requests.jsonl`, `histograms.json`, optional `calibration.json`): one column per target,
//!   quality with its 95% interval, latency percentiles, throughput, cost, goodput, a per-task
//!   breakdown, latency CDFs from the stored HDR histograms, the calibrated cost–quality
//!   frontier and the routing split.
//! - **Requests** — every benchmark item with each target's score; filters ("SLM wrong, LLM
//!   right", escalated, errors, slowest) and a text filter; the selected item's expected answer
//!   and every target's output side by side.
//! - **Live** — a running gateway: its `/v1/triage/events` SSE stream and its `/metrics`.
//! - **Hardware** — the JSON written by `triage hw`.
//!
//! Structure (as oha and bottom): [`data`] loads files and runs the network tasks, which send
//! [`state::DataMsg`]s over a channel; [`state`] holds everything the screen shows and changes
//! only through [`state::App::apply`] and [`state::App::on_data`]; [`input`] maps keys to
//! [`state::Action`]s; [`render`] draws a frame from `&App` and never does I/O; [`tui`] owns
//! the terminal (raw mode, alternate screen, restored by a drop guard and a panic hook) and the
//! event loop; [`print`](mod@print) renders the compare tables as plain text for `--print` and
//! pipes.

#![warn(missing_docs)]

pub mod data;
pub mod error;
pub mod input;
pub mod print;
pub mod render;
pub mod state;
pub mod tui;

pub use error::{DashError, LiveError};

use std::path::PathBuf;

/// What `triage dash` was asked to show.
#[derive(Clone, Default)]
pub struct DashOptions {
    /// Benchmark run directories (or their `summary.json`).
    pub runs: Vec<PathBuf>,
    /// Base URL of a running gateway, e.g. `http://127.0.0.1:8080`.
    pub live: Option<String>,
    /// A `triage hw` JSON report.
    pub hw: Option<PathBuf>,
    /// Print the compare tables as plain text instead of starting the TUI.
    pub print: bool,
    /// Bearer key for a gateway that requires one (never printed).
    pub api_key: Option<String>,
}

impl std::fmt::Debug for DashOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DashOptions")
            .field("runs", &self.runs)
            .field("live", &self.live)
            .field("hw", &self.hw)
            .field("print", &self.print)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Load everything, then either print the compare tables (when asked, or when stdout is not a
/// terminal) or run the interactive dashboard until the user quits.
pub async fn run(options: DashOptions) -> Result<(), DashError> {
    use std::io::IsTerminal;
    let runs = options
        .runs
        .iter()
        .map(|p| data::runs::RunData::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let hw = options
        .hw
        .as_deref()
        .map(data::hw::HwReport::load)
        .transpose()?;
    let app = state::App::new(runs, hw, options.live.clone());
    if options.print || !std::io::stdout().is_terminal() {
        print!("{}", print::compare_tables(&app));
        if let Some(hw) = &app.hw.report {
            print!("{}", print::hw_tables(hw));
        }
        return Ok(());
    }
    let live = options.live.map(|url| {
        let mut o = data::live::LiveOptions::new(url);
        o.api_key = options.api_key.clone();
        o
    });
    tui::run_interactive(app, live).await
}
