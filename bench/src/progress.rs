//! Progress reporting, behind a small trait (a collector, as in the rlt crate): the runner says
//! what happened — a target's phase started, one request finished, the phase ended — and the
//! implementation decides what to show. [`TerminalBar`] draws an indicatif bar on stderr for
//! interactive runs; [`Silent`] shows nothing (tests, `--quiet`, output that is not a terminal).

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Receives a run's progress. Called from the runner's tasks, so it must be shareable.
pub trait Progress: Send + Sync {
    /// A phase starts: `label` names it (the target), `total` is its number of requests when
    /// known (a run bounded by a duration is not).
    fn start(&self, label: &str, total: Option<u64>);
    /// One request finished; `status` is a short live summary (pass rate, median latency).
    fn inc(&self, status: &str);
    /// The phase ended.
    fn finish(&self);
}

/// Shows nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn inc(&self, _status: &str) {}
    fn finish(&self) {}
}

/// An indicatif progress bar on stderr (a spinner when the total is unknown), cleared when the
/// phase ends. indicatif hides it by itself when stderr is not a terminal.
#[derive(Debug, Default)]
pub struct TerminalBar {
    bar: Mutex<Option<ProgressBar>>,
}

impl TerminalBar {
    fn with_bar(&self, f: impl FnOnce(&mut Option<ProgressBar>)) {
        match self.bar.lock() {
            Ok(mut bar) => f(&mut bar),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

impl Progress for TerminalBar {
    fn start(&self, label: &str, total: Option<u64>) {
        let bar = match total {
            Some(t) => ProgressBar::new(t),
            None => ProgressBar::new_spinner(),
        };
        let template = if total.is_some() {
            "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}"
        } else {
            "{prefix:>12} {spinner} {pos} requests {elapsed_precise} {msg}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        self.with_bar(|slot| {
            if let Some(old) = slot.replace(bar) {
                old.finish_and_clear();
            }
        });
    }

    fn inc(&self, status: &str) {
        self.with_bar(|slot| {
            if let Some(bar) = slot {
                bar.inc(1);
                bar.set_message(status.to_string());
            }
        });
    }

    fn finish(&self) {
        self.with_bar(|slot| {
            if let Some(bar) = slot.take() {
                bar.finish_and_clear();
            }
        });
    }
}
