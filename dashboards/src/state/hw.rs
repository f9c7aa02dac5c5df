//! State of the hardware view: the loaded `triage hw` report, if any, and its scroll.

use crate::data::hw::HwReport;

/// The hardware view.
#[derive(Clone, Debug)]
pub struct HwState {
    /// The report given with `--hw`, if any.
    pub report: Option<HwReport>,
    /// Lines the system and model facts pane is scrolled down by.
    pub scroll: usize,
}
