//! State of the hardware view: the loaded `triage hw` report, if any, and its scroll.

use crate::data::hw::HwReport;

/// The hardware view.
#[derive(Clone, Debug)]
pub struct HwState {
    pub report: Option<HwReport>,
    pub scroll: usize,
}
